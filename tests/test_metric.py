"""Tests of hsfpn.metric.AITODMetric: built through METRICS, fed like MMDetection 3.3 feeds it, equal to the CLI path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from mmdet.registry import METRICS
from mmdet.structures import DetDataSample
from mmengine.evaluator import Evaluator
from mmengine.registry import DefaultScope
from mmengine.structures import InstanceData

import hsfpn  # noqa: F401  (registers AITODMetric)
from hsfpn.aitod_eval import REPORT_KEYS, AITODInputError, evaluate_files
from hsfpn.metric import AITODMetric

CLASSES = ("plane", "ship")
# Ground-truth category ids deliberately differ from label indices and are listed out of class order.
CATEGORIES = [{"id": 7, "name": "ship"}, {"id": 2, "name": "plane"}]
LABEL_TO_CAT = {0: 2, 1: 7}


def make_scene(seed: int = 0, images: int = 4) -> tuple[dict, list[dict]]:
    """A ground truth (tiny boxes, a crowd region) and per-image predictions with float32 xyxy boxes."""
    rng = np.random.default_rng(seed)
    anns, preds = [], []
    for img_id in range(1, images + 1):
        n = int(rng.integers(2, 8))
        xy = rng.uniform(0, 90, (n, 2))
        wh = rng.uniform(3, 40, (n, 2)).round(1)
        labels = rng.integers(0, 2, n)
        for j in range(n):
            anns.append({"id": len(anns) + 1, "image_id": img_id, "category_id": LABEL_TO_CAT[int(labels[j])],
                         "bbox": [*xy[j].round(1).tolist(), *wh[j].tolist()],
                         "area": float(wh[j, 0] * wh[j, 1]), "iscrowd": int(j == 0 and img_id == 2)})  # fmt: skip
        # Jittered copies of the objects (some with the wrong label) plus background boxes.
        m = n + int(rng.integers(0, 6))
        src = rng.integers(0, n, m)
        x1y1 = xy[src] + rng.normal(0, 1.5, (m, 2))
        x1y1[n:] = rng.uniform(0, 90, (m - n, 2))
        x2y2 = x1y1 + wh[src] * rng.uniform(0.8, 1.2, (m, 2))
        boxes = np.concatenate([x1y1, x2y2], axis=1).astype(np.float32)
        pred_labels = np.where(rng.random(m) < 0.85, labels[src], 1 - labels[src])
        preds.append({"img_id": img_id, "bboxes": boxes, "scores": rng.random(m).astype(np.float32),
                      "labels": pred_labels})  # fmt: skip
    gt = {"images": [{"id": i, "width": 128, "height": 128} for i in range(1, images + 1)],
          "categories": CATEGORIES, "annotations": anns}  # fmt: skip
    return gt, preds


def as_sample(pred: dict) -> dict:
    """A data sample as mmengine's Evaluator hands it to a metric (DetDataSample.to_dict(): tensors inside)."""
    return {
        "img_id": pred["img_id"],
        "ori_shape": (128, 128),
        "pred_instances": {
            "bboxes": torch.from_numpy(pred["bboxes"]),
            "scores": torch.from_numpy(pred["scores"]),
            "labels": torch.from_numpy(pred["labels"]).long(),
        },
    }


def results_json(preds: list[dict]) -> list[dict]:
    """COCO results written independently of the metric: xyxy -> xywh after the float32 -> float64 cast."""
    out = []
    for pred in preds:
        for box, score, label in zip(pred["bboxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(),
                                     strict=True):  # fmt: skip
            out.append({"image_id": pred["img_id"], "category_id": LABEL_TO_CAT[label],
                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]], "score": score})  # fmt: skip
    return out


@pytest.fixture()
def scene(tmp_path: Path) -> tuple[Path, Path, list[dict]]:
    gt, preds = make_scene()
    ann = tmp_path / "gt.json"
    ann.write_text(json.dumps(gt), encoding="utf-8")
    dets = tmp_path / "dets.json"
    dets.write_text(json.dumps(results_json(preds)), encoding="utf-8")
    return ann, dets, preds


def build(ann: Path | None, **kw) -> AITODMetric:
    metric = METRICS.build(dict(type="AITODMetric", ann_file=None if ann is None else str(ann), **kw))
    metric.dataset_meta = {"classes": CLASSES}
    return metric


def test_builds_through_the_registry(scene):
    ann, _, _ = scene
    metric = build(ann)
    assert isinstance(metric, AITODMetric)
    assert metric.default_prefix == "aitod"
    # As a Runner builds val_evaluator from a config: mmengine's Evaluator in the 'mmdet' scope.
    with DefaultScope.overwrite_default_scope("mmdet"):
        evaluator = Evaluator([dict(type="AITODMetric", ann_file=str(ann), classwise=True)])
    assert isinstance(evaluator.metrics[0], AITODMetric) and evaluator.metrics[0].classwise


def test_compute_metrics_equals_evaluate_files(scene):
    ann, dets, preds = scene
    metric = build(ann)
    metric.process({}, [as_sample(p) for p in preds[:2]])  # two batches, as a dataloader would
    metric.process({}, [as_sample(p) for p in preds[2:]])
    got = metric.compute_metrics(metric.results)
    expected = evaluate_files(ann, dets)
    assert list(got) == list(REPORT_KEYS)
    assert got == {k: expected[k] for k in REPORT_KEYS}
    assert 0 < got["AP50"] < 1  # a scene with both hits and misses


def test_evaluate_prefixes_keys_and_clears_results(scene):
    ann, dets, preds = scene
    metric = build(ann)
    metric.process({}, [as_sample(p) for p in preds])
    got = metric.evaluate(size=len(preds))
    assert sorted(got) == sorted(f"aitod/{k}" for k in REPORT_KEYS)
    assert got["aitod/AP"] == evaluate_files(ann, dets)["AP"]
    assert metric.results == []


def test_mmengine_evaluator_with_det_data_samples(scene):
    ann, dets, preds = scene
    evaluator = Evaluator(build(ann))
    evaluator.dataset_meta = {"classes": CLASSES}
    samples = []
    for pred in preds:
        sample = DetDataSample(metainfo={"img_id": pred["img_id"], "ori_shape": (128, 128)})
        sample.pred_instances = InstanceData(bboxes=torch.from_numpy(pred["bboxes"]),
                                             scores=torch.from_numpy(pred["scores"]),
                                             labels=torch.from_numpy(pred["labels"]).long())  # fmt: skip
        samples.append(sample)
    evaluator.process(data_samples=samples)
    got = evaluator.evaluate(len(samples))
    expected = evaluate_files(ann, dets)
    assert got == {f"aitod/{k}": expected[k] for k in REPORT_KEYS}


def test_ground_truth_from_data_samples_without_ann_file(scene, tmp_path: Path):
    _, _, preds = scene
    gt, _ = make_scene()
    samples = []
    for pred in preds:
        sample = as_sample(pred)
        # mmdet's LoadAnnotations: xyxy boxes, label indices, ignore_flag for crowd regions.
        sample["instances"] = [
            {"bbox": [a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]],
             "bbox_label": {2: 0, 7: 1}[a["category_id"]], "ignore_flag": a["iscrowd"]}
            for a in gt["annotations"] if a["image_id"] == pred["img_id"]
        ]  # fmt: skip
        samples.append(sample)
    metric = build(None, outfile_prefix=str(tmp_path / "run"))
    metric.process({}, samples)
    got = metric.compute_metrics(metric.results)
    # The metric wrote the ground truth it built (category ids = label indices, area = w * h) and the results.
    expected = evaluate_files(tmp_path / "run.gt.json", tmp_path / "run.bbox.json")
    assert got == {k: expected[k] for k in REPORT_KEYS}
    written = json.loads((tmp_path / "run.gt.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in written["categories"]] == list(CLASSES)
    assert len(written["annotations"]) == len(gt["annotations"])


def test_format_only_writes_results_and_returns_nothing(scene, tmp_path: Path):
    ann, dets, preds = scene
    metric = build(ann, format_only=True, outfile_prefix=str(tmp_path / "sub" / "preds"))
    metric.process({}, [as_sample(p) for p in preds])
    assert metric.compute_metrics(metric.results) == {}
    written = json.loads((tmp_path / "sub" / "preds.bbox.json").read_text(encoding="utf-8"))
    assert written == json.loads(dets.read_text(encoding="utf-8"))


def test_classwise_adds_per_class_keys(scene):
    ann, dets, preds = scene
    metric = build(ann, classwise=True)
    metric.process({}, [as_sample(p) for p in preds])
    got = metric.compute_metrics(metric.results)
    per_class = evaluate_files(ann, dets)["per_class"]
    for name in CLASSES:
        assert got[f"{name}_AP"] == per_class[name]["AP"]
        assert got[f"{name}_APvt"] == per_class[name]["APvt"]


def test_images_without_predictions_count_as_misses(scene):
    ann, _, preds = scene
    full, partial = build(ann), build(ann)
    full.process({}, [as_sample(p) for p in preds])
    empty = {**preds[0], "bboxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32),
             "labels": np.zeros(0, np.int64)}  # fmt: skip
    partial.process({}, [as_sample(empty)] + [as_sample(p) for p in preds[1:]])
    assert partial.compute_metrics(partial.results)["AR1500"] < full.compute_metrics(full.results)["AR1500"]


def test_invalid_configuration_and_data(scene):
    ann, _, preds = scene
    # format_only needs somewhere to write the results.
    with pytest.raises(ValueError, match="outfile_prefix"):
        build(ann, format_only=True)
    # Every class name must be a category of the ground truth.
    metric = build(ann)
    metric.dataset_meta = {"classes": ("plane", "car")}
    metric.process({}, [as_sample(preds[0])])
    with pytest.raises(AITODInputError, match="car"):
        metric.compute_metrics(metric.results)
    # A label beyond the class list.
    metric = build(ann)
    metric.process({}, [as_sample({**preds[0], "labels": np.full(len(preds[0]["labels"]), 5)})])
    with pytest.raises(AITODInputError, match="detection 0: label 5 out of range"):
        metric.compute_metrics(metric.results)
    # Predictions for an image the ground truth does not list.
    metric = build(ann)
    metric.process({}, [as_sample({**preds[0], "img_id": 99})])
    with pytest.raises(AITODInputError, match="image_id 99"):
        metric.compute_metrics(metric.results)


def test_area_from_box_gives_the_same_figures_as_eval_with_the_option(scene, tmp_path: Path):
    # Every area multiplied by 9: far from w x h everywhere. With area_from_box the metric scores the boxes' own
    # sizes, as `eval --area-from-box` does; the figures differ from those on the inflated areas.
    ann, dets, preds = scene
    gt = json.loads(ann.read_text())
    for a in gt["annotations"]:
        a["area"] *= 9
    inflated = tmp_path / "inflated.json"
    inflated.write_text(json.dumps(gt))
    metric = build(inflated, area_from_box=True)
    metric.process({}, [as_sample(p) for p in preds])
    got = metric.compute_metrics(metric.results)
    assert got == {k: v for k, v in evaluate_files(ann, dets).items() if k in REPORT_KEYS}
    assert got != {k: v for k, v in evaluate_files(inflated, dets).items() if k in REPORT_KEYS}
