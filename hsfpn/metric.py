"""``AITODMetric``: the AI-TOD evaluation as an MMDetection 3 metric (``val_evaluator`` / ``test_evaluator``).

Config (old style, as every config of this project):

.. code-block:: python

    custom_imports = dict(imports=["hsfpn"], allow_failed_imports=False)
    val_evaluator = dict(type="AITODMetric", ann_file="data/aitod/annotations/aitod_test.json", classwise=True)
    test_evaluator = val_evaluator

MMEngine prefixes the returned keys with ``aitod/`` (``aitod/AP``, ``aitod/APvt``, ...).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from mmdet.registry import METRICS
from mmengine.evaluator import BaseMetric
from mmengine.fileio import get_local_path
from mmengine.logging import MMLogger

from dotamini10.io import read_json, write_json

from .aitod_eval import (
    PER_CLASS_KEYS,
    REPORT_KEYS,
    AITODEval,
    AITODInputError,
    AITODParams,
    Detections,
    GroundTruth,
)


def _to_numpy(value: Any) -> np.ndarray:
    # Data samples hold tensors (possibly on a GPU); tests and custom loops may pass arrays or lists.
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


@METRICS.register_module()
class AITODMetric(BaseMetric):
    """AI-TOD box evaluation (AP, AP50, AP75, APvt, APt, APs, APm, AR100/300/1500, ARvt..ARm) for MMDetection 3.

    The figures are those of :class:`hsfpn.aitod_eval.AITODEval` (equal to pycocotools with AI-TOD's parameters),
    computed on every image of the ground truth, like ``CocoMetric``. Options follow ``CocoMetric``.

    Args:
        ann_file: COCO-format ground truth. Defaults to None: the ground truth is then built from the data
            samples' ``instances`` (``bbox`` in xyxy, ``bbox_label``, ``ignore_flag`` as crowd; area = w * h), with
            category ids 0..C-1 in the order of ``dataset_meta['classes']``.
        classwise: Also return per-class AP (``{class}_AP``, ``{class}_AP50``, ...) and log a per-class table.
            Defaults to False.
        outfile_prefix: Write the detections to ``{outfile_prefix}.bbox.json`` (COCO results format) and, without
            ``ann_file``, the ground truth to ``{outfile_prefix}.gt.json``. Defaults to None (nothing written).
        format_only: Only write the files, return no figures (requires ``outfile_prefix``). Defaults to False.
        backend_args: MMEngine file backend arguments for reading ``ann_file``. Defaults to None.
        collect_device: Device used to collect results across ranks, 'cpu' or 'gpu'. Defaults to 'cpu'.
        prefix: Prefix of the returned keys. Defaults to None, meaning ``default_prefix`` ('aitod').
        params: Evaluation parameters. Defaults to AI-TOD's (:class:`hsfpn.aitod_eval.AITODParams`).
        area_from_box: Use each ground-truth box's w x h as its area in the size ranges (for an ``ann_file`` whose
            ``area`` is something else: the log says how many areas are far from w x h either way). Defaults to
            False. The ground truth built from the samples always uses w x h.

    Notes:
        Labels map to category ids through the class names of ``dataset_meta['classes']`` (each name must be a
        category of the ground truth; categories without a class are not evaluated). Without class names,
        label i is the i-th category by id. Boxes are converted to xywh in float64 after the float32 -> float64
        cast, exactly as ``CocoMetric`` writes its JSON, so the figures equal ``hsfpn-repro eval`` on that file.

    Example:
        >>> from mmdet.registry import METRICS
        >>> metric = METRICS.build(dict(type="AITODMetric", ann_file="aitod_test.json"))  # doctest: +SKIP
    """

    default_prefix: str | None = "aitod"

    def __init__(
        self,
        ann_file: str | None = None,
        classwise: bool = False,
        outfile_prefix: str | None = None,
        format_only: bool = False,
        backend_args: dict | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
        params: AITODParams | dict | None = None,
        area_from_box: bool = False,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if format_only and outfile_prefix is None:
            raise ValueError("format_only=True needs outfile_prefix (where to write the results), got None")
        self.classwise = bool(classwise)
        self.outfile_prefix = outfile_prefix
        self.format_only = bool(format_only)
        self.backend_args = backend_args
        if isinstance(params, dict):
            params = AITODParams(**params)
        self.params = params if params is not None else AITODParams()
        self.ann_file = ann_file
        self._gt: GroundTruth | None = None
        if ann_file is not None:
            with get_local_path(ann_file, backend_args=backend_args) as local_path:
                self._gt = GroundTruth.from_coco(read_json(Path(local_path), what="ground truth", error=AITODInputError), source=str(ann_file))
            note = self._gt.area_note(str(ann_file), from_box=area_from_box)
            if note is not None:
                MMLogger.get_current_instance().warning(note)
            if area_from_box:
                self._gt = self._gt.with_box_areas()

    def process(self, data_batch: Any, data_samples: Sequence[dict]) -> None:
        """Keep each sample's predictions (xyxy boxes, scores, labels) and, without ``ann_file``, its ground truth.

        Args:
            data_batch: The batch from the dataloader (unused).
            data_samples: MMDetection 3 data samples as dicts: ``img_id``, ``ori_shape``, ``pred_instances``
                (``bboxes`` (N, 4) xyxy in original-image pixels, ``scores`` (N,), ``labels`` (N,)) and, without
                ``ann_file``, ``instances`` (list of ``{'bbox', 'bbox_label', 'ignore_flag'}``).
        """
        for sample in data_samples:
            pred = sample["pred_instances"]
            result = {
                "img_id": sample["img_id"],
                "bboxes": _to_numpy(pred["bboxes"]).reshape(-1, 4),
                "scores": _to_numpy(pred["scores"]).reshape(-1),
                "labels": _to_numpy(pred["labels"]).reshape(-1),
            }
            gt: dict[str, Any] = {"img_id": sample["img_id"]}
            if "ori_shape" in sample:
                gt["height"], gt["width"] = (int(v) for v in sample["ori_shape"][:2])
            if self._gt is None:
                if "instances" not in sample:
                    raise AITODInputError(
                        f"data sample of image {sample['img_id']}: without ann_file the metric needs the "
                        "ground truth in 'instances'"
                    )
                gt["anns"] = [
                    {
                        "bbox": [float(v) for v in ann["bbox"]],
                        "bbox_label": int(ann["bbox_label"]),
                        "ignore_flag": int(ann.get("ignore_flag", 0)),
                    }
                    for ann in sample["instances"]
                ]
            self.results.append((gt, result))

    # -- ground truth and detections ----------------------------------------------------------

    def _classes(self) -> list[str] | None:
        meta = self.dataset_meta or {}
        classes = meta.get("classes")
        return list(classes) if classes else None

    def _ground_truth_from_samples(self, gts: Sequence[dict]) -> GroundTruth:
        classes = self._classes()
        if classes is None:
            raise AITODInputError("without ann_file the metric needs dataset_meta['classes'] (set by the dataset)")
        images, anns, seen = [], [], set()
        for gt in gts:
            if gt["img_id"] not in seen:
                seen.add(gt["img_id"])
                images.append({"id": gt["img_id"], "width": gt.get("width"), "height": gt.get("height")})
            for ann in gt["anns"]:
                x1, y1, x2, y2 = ann["bbox"]
                w, h = x2 - x1, y2 - y1
                anns.append({"id": len(anns) + 1, "image_id": gt["img_id"], "category_id": ann["bbox_label"],
                             "bbox": [x1, y1, w, h], "area": w * h, "iscrowd": ann["ignore_flag"]})  # fmt: skip
        coco = {"images": images, "annotations": anns,
                "categories": [{"id": i, "name": name} for i, name in enumerate(classes)]}  # fmt: skip
        if self.outfile_prefix is not None:
            write_json(Path(f"{self.outfile_prefix}.gt.json"), coco)
        return GroundTruth.from_coco(coco, source="data samples")

    def _label_to_category(self, gt: GroundTruth) -> tuple[GroundTruth, np.ndarray]:
        """The ground truth restricted to the dataset's classes, and the category id of each label."""
        classes = self._classes()
        if classes is None:
            return gt, gt.cat_ids.copy()
        by_name = {name: int(cid) for cid, name in zip(gt.cat_ids, gt.cat_names, strict=True)}
        missing = [name for name in classes if name not in by_name]
        if missing:
            raise AITODInputError(
                f"{self.ann_file or 'ground truth'}: classes {missing} of dataset_meta are not categories of the "
                f"ground truth (its categories: {sorted(by_name)})"
            )
        label_ids = np.array([by_name[name] for name in classes], dtype=np.int64)
        return gt.select_categories(label_ids), label_ids

    def compute_metrics(self, results: list) -> dict[str, float]:
        """Evaluate the collected results.

        Args:
            results: ``(gt, prediction)`` pairs from :meth:`process`, gathered from every rank.

        Returns:
            ``{'AP', 'AP50', ..., 'ARm': float}`` (fractions, -1 where undefined), plus ``{class}_{key}`` per
            class with ``classwise``; empty with ``format_only``.
        """
        mm_logger = MMLogger.get_current_instance()
        gts, preds = zip(*results) if results else ((), ())
        gt = self._gt if self._gt is not None else self._ground_truth_from_samples(gts)
        gt, label_ids = self._label_to_category(gt)

        image_ids, category_ids, boxes, scores = [], [], [], []
        for pred in preds:
            labels = pred["labels"].astype(np.int64)
            bad = (labels < 0) | (labels >= len(label_ids))
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise AITODInputError(
                    f"predictions of image {pred['img_id']}: detection {i}: label {int(labels[i])} out of range "
                    f"for {len(label_ids)} classes"
                )
            xyxy = pred["bboxes"].astype(np.float64)
            # CocoMetric's xyxy2xywh: cast to float64 first, then subtract (same float values as its JSON).
            boxes.append(np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1))
            scores.append(pred["scores"].astype(np.float64))
            category_ids.append(label_ids[labels])
            image_ids.append(np.full(len(labels), int(pred["img_id"]), dtype=np.int64))
        arrays = (_concat(image_ids, (0,), np.int64), _concat(category_ids, (0,), np.int64),
                  _concat(boxes, (0, 4), np.float64), _concat(scores, (0,), np.float64))  # fmt: skip
        if self.outfile_prefix is not None:
            path = Path(f"{self.outfile_prefix}.bbox.json")
            write_json(path, _results_list(*arrays))
            mm_logger.info(f"AITODMetric: detections written to {path}")
        if self.format_only:
            return OrderedDict()

        dets = Detections.from_arrays(gt, *arrays, source="predictions")
        evaluator = AITODEval(gt, dets, self.params, log=mm_logger.debug)
        stats = evaluator.run()
        mm_logger.info("AI-TOD evaluation: " + " ".join(f"{k}={stats[k]:.4f}" for k in REPORT_KEYS))
        out: dict[str, float] = OrderedDict((k, float(stats[k])) for k in REPORT_KEYS)
        if self.classwise:
            per_class = evaluator.per_class()
            lines = ["per-class AP: " + " ".join(f"{k:>7}" for k in PER_CLASS_KEYS)]
            for name, figures in per_class.items():
                lines.append(f"{name}: " + " ".join(f"{figures[k]:7.4f}" for k in PER_CLASS_KEYS))
                out.update((f"{name}_{k}", float(figures[k])) for k in PER_CLASS_KEYS)
            mm_logger.info("\n".join(lines))
        return out


def _concat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(empty_shape, dtype=dtype)


def _results_list(image_ids: np.ndarray, category_ids: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> list:
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s}
        for i, c, b, s in zip(image_ids.tolist(), category_ids.tolist(), boxes.tolist(), scores.tolist(), strict=True)
    ]

