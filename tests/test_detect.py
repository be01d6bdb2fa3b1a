"""The detection chain (pipelines.detect, pipelines.oracle and the CLI commands around it): split -> detect ->
merge -> eval with the oracle detector gives AP 1.0 under both protocols; bad input is one line per image; a
checkpoint that does not fit is one line; a randomly initialised real detector runs on a 3,000 x 2,500 scene."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from cli import data_app, repro_app
from dotamini10.coco_gt import write_coco_gt
from dotamini10.png import encode_png
from hsfpn.aitod_eval import evaluate_files
from hsfpn.dota_eval import evaluate_task2
from pipelines.detect import DetectError, DetectOptions, Status, detect_images
from scene_fixture import oracle_config, scene_objects, write_scene

runner = CliRunner()


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    image, labels, classes = write_scene(root / "val")
    config, checkpoint = oracle_config(root, labels, classes)
    write_coco_gt(root / "val", root / "gt.json")
    return dict(root=root, image=image, labels=labels, classes=classes, config=config, checkpoint=checkpoint,
                gt=root / "gt.json")


def test_oracle_chain_gives_ap_one_under_both_protocols(scene, tmp_path):
    out = tmp_path / "out"
    seen = []
    summary = detect_images([scene["image"]], out, config=str(scene["config"]), checkpoint=scene["checkpoint"],
                            options=DetectOptions(scales=(0.5, 1.0), score=0.5, batch=3), gt=scene["gt"],
                            progress=lambda done, total: seen.append((done, total)))
    outcome = summary.outcomes[0]
    # 4 x 3 windows at scale 1.0 (2,600 x 2,200) and 2 x 2 at 0.5 (1,300 x 1,100): every object once.
    assert (outcome.status, outcome.windows) == (Status.DONE, 16)
    assert outcome.detections == len(scene_objects())
    assert seen[-1] == (16, 16) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    report = evaluate_files(scene["gt"], out / "results.bbox.json")
    assert report["AP"] == 1.0 and report["AP75"] == 1.0
    dota = evaluate_task2(out, scene["labels"], scene["classes"])
    assert dota["mAP"] == 1.0 and set(dota["per_class"].values()) == {1.0}
    record = json.loads((out / "images" / "S1.json").read_text())
    assert record["width"] == 2600 and record["windows"] == 16 and len(record["detections"]["score"]) == 165
    assert (out / "previews" / "S1.png").stat().st_size > 1000
    # The preview draws the evaluator's matching at IoU 0.5 above its score: the oracle finds every object.
    shown = record["preview"]
    assert (shown["score"], shown["iou"], shown["FP"], shown["FN"]) == (0.3, 0.5, 0, 0)
    assert shown["TP"] + shown["ignored"] == shown["detections"] == 165
    assert json.loads((out / "detect.json").read_text())["images"][0]["status"] == "done"

    # --resume skips the finished image and rebuilds the same outputs.
    before = (out / "Task2_ship.txt").read_bytes()
    again = detect_images([scene["image"]], out, config=str(scene["config"]), checkpoint=scene["checkpoint"],
                          options=DetectOptions(scales=(0.5, 1.0), score=0.5, batch=3), gt=scene["gt"], resume=True)
    assert again.outcomes[0].status is Status.RESUMED and again.windows == 0
    assert (out / "Task2_ship.txt").read_bytes() == before


def test_wrong_offsets_would_show(scene, tmp_path, monkeypatch):
    # The chain's check has teeth: shift every window's origin by 5 px when mapping back and AP drops.
    import pipelines.detect.windows as windows

    original = windows._prepare

    def shifted(*args, **kwargs):
        batch = original(*args, **kwargs)
        batch.origins = [(x0 + 5, *rest) for x0, *rest in batch.origins]
        return batch

    monkeypatch.setattr(windows, "_prepare", shifted)
    out = tmp_path / "out"
    detect_images([scene["image"]], out, config=str(scene["config"]), checkpoint=scene["checkpoint"],
                  options=DetectOptions(score=0.5), gt=scene["gt"])
    assert evaluate_files(scene["gt"], out / "results.bbox.json")["AP"] < 0.9


def test_bad_images_are_one_line_each_and_the_others_go_on(scene, tmp_path):
    small = tmp_path / "small.png"
    small.write_bytes(encode_png(np.full((500, 600, 3), 20, np.uint8)))
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(encode_png(np.full((500, 600, 3), 20, np.uint8))[:200])
    lines = []
    summary = detect_images([scene["image"], tmp_path / "missing.png", truncated, small], tmp_path / "out",
                            config=str(scene["config"]), checkpoint=scene["checkpoint"],
                            options=DetectOptions(max_side=2000), log=lines.append)
    status = {o.name: o.status for o in summary.outcomes}
    assert status == {"S1": Status.FAILED, "missing": Status.FAILED, "cut": Status.FAILED, "small": Status.DONE}
    assert len(lines) == 3 and all("\n" not in line for line in lines)
    assert "2,600 x 2,200 px at scale 1 is over the 2,000 px limit" in lines[0]
    assert "image file not found" in lines[1] and "truncated image" in lines[2]
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == ["small.json"]  # nothing else


def test_checkpoint_with_another_class_count_is_one_line(scene, tmp_path):
    config, checkpoint = oracle_config(tmp_path, scene["labels"], scene["classes"],
                                       checkpoint_classes=scene["classes"][:8])
    with pytest.raises(DetectError, match=r"oracle.pth does not fit config .*oracle_config.py: cls_weight is "
                                          r"\(8, 1\) there and \(10, 1\) in the model .*names 8 classes"):
        detect_images([scene["image"]], tmp_path / "out", config=str(config), checkpoint=checkpoint)
    with pytest.raises(DetectError, match="no such checkpoint file"):
        detect_images([scene["image"]], tmp_path / "out", config=str(config), checkpoint=tmp_path / "none.pth")
    with pytest.raises(DetectError, match="neither a row id"):
        detect_images([scene["image"]], tmp_path / "out", config="no_such_row", checkpoint=checkpoint)


def test_cli_chain_detect_coco_gt_eval_and_merge(scene, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(repro_app, ["detect", "--config", str(scene["config"]), "--checkpoint",
                                       str(scene["checkpoint"]), "--images", str(scene["image"].parent), "--out",
                                       str(out), "--score", "0.5", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "1 done" in result.output and "12 windows" in result.output
    gt = tmp_path / "gt.json"
    result = runner.invoke(data_app, ["coco-gt", "--dota-root", str(scene["root"]), "--split", "val", "--out", str(gt)])
    assert result.exit_code == 0, result.output
    assert f"1 images, {len(scene_objects())} annotations" in result.output
    result = runner.invoke(repro_app, ["eval", "--protocol", "dota", "--dets", str(out), "--ann",
                                       str(scene["labels"]), "--out", str(tmp_path / "dota.json")])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "dota.json").read_text())["mAP"] == 1.0
    # hsfpn-data merge of window results written under the builder's names.
    windows = tmp_path / "windows"
    windows.mkdir()
    (windows / "Task2_ship.txt").write_text("S1__1__768___0 0.9 32 100 72 130\nS1__1__0___0 0.8 800 100 840 130\n",
                                            encoding="utf-8")
    result = runner.invoke(data_app, ["merge", str(windows), "--out", str(tmp_path / "full")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "full" / "Task2_ship.txt").read_text() == "S1 0.9 800.0 100.0 840.0 130.0\n"
    bad = runner.invoke(data_app, ["merge", str(windows), "--out", str(tmp_path / "x"), "--method", "soft"])
    assert bad.exit_code == 1 and "--method must be one of nms, nmm" in bad.output
    missing = runner.invoke(repro_app, ["detect", "--config", str(scene["config"]), "--checkpoint",
                                        str(tmp_path / "none.pth"), "--images", "x.png", "--out", str(out)])
    assert missing.exit_code == 1 and "no such checkpoint file" in missing.output and "Traceback" not in missing.output


@pytest.mark.slow
def test_random_init_faster_rcnn_runs_detect_on_a_3000_by_2500_scene(tmp_path):
    # A real MMDetection detector (Faster R-CNN R-50 FPN, random init, inputs resized to 256 px to stay quick)
    # on CPU: the chain's plumbing with real heads, real per-window postprocessing and real merging.
    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    from dotamini10.classes import DOTAMINI10_CLASSES
    from pipelines.detectors import CONFIG_DIR

    config = tmp_path / "frcnn.py"
    config.write_text(
        f"_base_ = {str(CONFIG_DIR / 'faster-rcnn_r50_fpn_1x_aitod.py')!r}\n"
        "model = dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(num_classes=10)),\n"
        "             test_cfg=dict(rpn=dict(nms_pre=300, max_per_img=300), rcnn=dict(max_per_img=100)))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(256, 256), keep_ratio=True),\n"
        "                 dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor'))]\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n", encoding="utf-8")
    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    checkpoint = tmp_path / "random.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list(DOTAMINI10_CLASSES)))),
               checkpoint)
    image = tmp_path / "scene.png"
    image.write_bytes(encode_png(np.random.default_rng(0).integers(0, 255, (2500, 3000, 3), dtype=np.uint8)))
    summary = detect_images([image], tmp_path / "out", config=str(config), checkpoint=checkpoint,
                            options=DetectOptions(batch=4))
    outcome = summary.outcomes[0]
    assert outcome.status is Status.DONE and outcome.windows == 12  # x 0, 768, 1536, 1976; y 0, 768, 1476
    record = json.loads((tmp_path / "out" / "images" / "scene.json").read_text())
    boxes = np.array(record["detections"]["bbox"]).reshape(-1, 4)
    assert record["classes"] == list(DOTAMINI10_CLASSES) and 0 < len(boxes) == outcome.detections
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= 3000).all() and (boxes[:, 3] <= 2500).all()
    assert (np.array(record["detections"]["score"]) >= 0.05).all()
    # One model process or three: every model process runs one torch thread, so the outputs are the same bytes.
    for workers in (1, 3):
        detect_images([image], tmp_path / f"out{workers}", config=str(config), checkpoint=checkpoint,
                      options=DetectOptions(batch=4, workers=workers))
        for name in ("images/scene.json", "results.bbox.json", "Task2_plane.txt", "Task2_ship.txt"):
            assert (tmp_path / f"out{workers}" / name).read_bytes() == (tmp_path / "out" / name).read_bytes()
    # The config names 10 classes: a checkpoint whose meta names 8 is refused with both counts.
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list(DOTAMINI10_CLASSES[:8])))),
               tmp_path / "eight.pth")
    with pytest.raises(DetectError, match=r"eight.pth has 8 classes, config .*frcnn.py has 10"):
        detect_images([image], tmp_path / "out2", config=str(config), checkpoint=tmp_path / "eight.pth")


def test_neck_option_on_a_config_that_has_no_fpn(scene, tmp_path):
    # The oracle has no neck: --neck hsfpn cannot swap one in, and says so in one line.
    with pytest.raises(DetectError, match="has no neck to swap"):
        detect_images([scene["image"]], tmp_path / "out", config=str(scene["config"]),
                      checkpoint=scene["checkpoint"], neck="hsfpn")
    # A chain of necks, and a file that is no detector config: one line each, before any model is built.
    from pipelines.models import ModelError, resolve_config

    chained = tmp_path / "libra_like.py"
    chained.write_text("model = dict(type='FasterRCNN', neck=[dict(type='FPN'), dict(type='BFP')])\n")
    with pytest.raises(ModelError, match=r"^--neck fpn: config .*libra_like.py chains 2 necks; --neck swaps a single"):
        resolve_config(str(chained), "fpn")
    settings_only = tmp_path / "settings_only.py"
    settings_only.write_text("lr = 0.01\n")
    with pytest.raises(ModelError, match=r"settings_only.py: no 'model' dict in the file"):
        resolve_config(str(settings_only), "fpn")
    with pytest.raises(DetectError, match="--neck must be one of fpn, hsfpn"):
        detect_images([scene["image"]], tmp_path / "out", config=str(scene["config"]),
                      checkpoint=scene["checkpoint"], neck="bifpn")


def test_a_second_detect_on_the_same_output_folder_is_one_line(scene, tmp_path):
    from dotamini10.io import folder_lock

    out = tmp_path / "out"
    with folder_lock(out, what="test", error=RuntimeError):
        with pytest.raises(DetectError, match=r"out: another run is using this detect output"):
            detect_images([scene["image"]], out, config=str(scene["config"]), checkpoint=scene["checkpoint"])
    assert list(out.iterdir()) == []


def test_a_model_trained_on_category_ids_0_to_2_writes_0_to_2(tmp_path):
    # The training json numbers its classes 0, 1, 2; the job's export_model records those ids (read from mmdet's
    # own CocoDataset) in model.pth, and detect without --gt writes them: "plane" is 0, not its position + 1.
    from types import SimpleNamespace

    from mmdet.datasets import CocoDataset
    from mmengine.config import Config

    from pipelines.job import export_model
    from pipelines.models import build_model

    classes = ("plane", "small-vehicle", "ship")
    image, labels, _ = write_scene(tmp_path / "val", size=(1200, 900))
    train = tmp_path / "train.json"
    train.write_text(json.dumps(dict(images=[dict(id=1, file_name="S1.png", width=1200, height=900)], annotations=[],
                                     categories=[dict(id=k, name=c) for k, c in enumerate(classes)])))
    dataset = CocoDataset(ann_file=str(train), metainfo=dict(classes=classes), data_prefix=dict(img=""), pipeline=[])
    config, _ = oracle_config(tmp_path, labels, classes)
    model = build_model(Config.fromfile(str(config)))
    checkpoint = tmp_path / "model.pth"
    export_model(SimpleNamespace(model=model, train_dataloader=SimpleNamespace(dataset=dataset), epoch=1, iter=1),
                 checkpoint)
    summary = detect_images([image], tmp_path / "out", config=str(config), checkpoint=checkpoint,
                            options=DetectOptions(score=0.5))
    written = json.loads((tmp_path / "out" / "results.bbox.json").read_text())
    names = {c: sum(o[4] == c for o in scene_objects(size=(1200, 900))) for c in classes}
    assert {c: sum(d["category_id"] == k for d in written) for k, c in enumerate(classes)} == names
    assert min(names.values()) > 0 and summary.notes == []
    record = json.loads((tmp_path / "out" / "detect.json").read_text())
    assert record["category_ids"] == {"plane": 0, "small-vehicle": 1, "ship": 2}

    # A checkpoint without ids: numbered 1.., and said in one line.
    (tmp_path / "bare").mkdir()
    _, bare = oracle_config(tmp_path / "bare", labels, classes)
    summary = detect_images([image], tmp_path / "out2", config=str(config), checkpoint=bare,
                            options=DetectOptions(score=0.5))
    assert summary.notes == ["the checkpoint records no category ids: results.bbox.json numbers the classes 1.. in "
                             "class order; --gt takes a json's ids"]
    assert {d["category_id"] for d in json.loads((tmp_path / "out2" / "results.bbox.json").read_text())} == {1, 2, 3}


def test_gt_is_checked_before_any_image_and_images_outside_it_are_named(scene, tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(DetectError, match="broken.json"):
        detect_images([scene["image"]], tmp_path / "out", config=str(scene["config"]),
                      checkpoint=scene["checkpoint"], gt=broken)
    assert not (tmp_path / "out").exists()  # stopped before the first image
    other = tmp_path / "other.json"
    gt = json.loads(scene["gt"].read_text())
    gt["images"][0]["file_name"] = "another.png"
    ship = next(c["id"] for c in gt["categories"] if c["name"] == "ship")
    gt["categories"] = [c for c in gt["categories"] if c["id"] != ship]
    other.write_text(json.dumps(gt))
    # Annotations of a category the json does not list: bad input, one line naming the file and annotation.
    with pytest.raises(DetectError, match=r"^--gt .*other.json: annotation \d+: category_id \d+ is not a listed"):
        detect_images([scene["image"]], tmp_path / "out", config=str(scene["config"]),
                      checkpoint=scene["checkpoint"], gt=other)
    gt["annotations"] = [a for a in gt["annotations"] if a["category_id"] != ship]
    other.write_text(json.dumps(gt))
    summary = detect_images([scene["image"]], tmp_path / "out", config=str(scene["config"]),
                            checkpoint=scene["checkpoint"], options=DetectOptions(score=0.5), gt=other)
    assert summary.notes == [
        f"1 image(s) not in --gt {other} left out of results.bbox.json: S1.png (their detections are in images/ and "
        "the Task2 files)",
        f"--gt {other} names no category ship: their detections are left out of results.bbox.json",
    ]
    assert json.loads((tmp_path / "out" / "results.bbox.json").read_text()) == []
