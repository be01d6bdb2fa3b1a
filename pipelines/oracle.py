"""A registered test detector that returns the ground truth of each window: for checking a detection chain.

``OracleDetector`` reads the scene's DOTA label file and, for each window ``detect`` hands it (the window, the
scene and the scale travel in the data sample's metainfo), keeps the objects the builder would keep there,
clipped as the builder clips them (``split.assign_objects`` on polygons scaled by the builder's exact
ratios). Its scores come from the pixels it is given: the share of bright pixels inside each box (the test
scenes draw objects bright on a dark ground), times ``0.9 + 0.1 * iof``, so a window cut at the wrong place or
scale scores near 0, and an object's whole copy outranks its clipped ones. Any error in offsets, scales or
merging then shows in the evaluation.

Config (any MMDetection config file naming this module in ``custom_imports``)::

    custom_imports = dict(imports=['pipelines.oracle'], allow_failed_imports=False)
    model = dict(type='OracleDetector', label_dir='scenes/labelTxt', classes=[...],
                 data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1],
                                        bgr_to_rgb=False, pad_size_divisor=1))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmdet.models.detectors.base import BaseDetector
from mmdet.registry import MODELS
from mmengine.structures import InstanceData
from torch import nn

from dotamini10.read import read_label_file
from dotamini10.split import ObjectSet, assign_objects, horizontal_box

BRIGHT = 64  # a pixel whose brightest channel exceeds this belongs to an object


@MODELS.register_module()
class OracleDetector(BaseDetector):
    """Ground truth per window (module notes).

    Args:
        label_dir: Folder of the scenes' DOTA label files (``{scene}.txt``).
        classes: Class names in label order; objects of other classes are not reported.
        iof_threshold: The builder's rule for keeping an object in a window. Defaults to 0.7.
        data_preprocessor: Should pass raw pixels (mean 0, std 1, no channel swap) for the brightness scores.
        init_cfg: Unused (no weights to initialise).
    """

    def __init__(self, label_dir: str, classes: Sequence[str], iof_threshold: float = 0.7,
                 data_preprocessor: dict | None = None, init_cfg: dict | None = None) -> None:
        super().__init__(data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.label_dir = Path(label_dir)
        self.classes = tuple(classes)
        self.iof_threshold = iof_threshold
        # One row per class, as a classifier has: a checkpoint of another class count does not fit.
        self.cls_weight = nn.Parameter(torch.zeros(len(self.classes), 1))
        self._scenes: dict[tuple[str, tuple[int, int]], tuple[ObjectSet, np.ndarray]] = {}

    def _objects(self, scene: str, size: tuple[int, int], scaled: tuple[int, int]) -> tuple[ObjectSet, np.ndarray]:
        key = (scene, tuple(scaled))
        if key not in self._scenes:
            import shapely

            label = read_label_file(self.label_dir / f"{scene}.txt")
            keep = [k for k, c in enumerate(label.categories) if label.invalid[k] is None and c in self.classes]
            ratio = np.array([scaled[0] / size[0], scaled[1] / size[1]])
            geoms = shapely.polygons(label.coords[keep] * ratio) if keep else np.zeros(0, dtype=object)
            labels = np.array([self.classes.index(label.categories[k]) for k in keep], dtype=np.int64)
            self._scenes[key] = (ObjectSet.from_geoms(geoms), labels)
        return self._scenes[key]

    def predict(self, batch_inputs: torch.Tensor, batch_data_samples: list, rescale: bool = True) -> list:
        for pixels, sample in zip(batch_inputs, batch_data_samples, strict=True):
            meta = sample.metainfo
            objects, labels = self._objects(meta["scene"], meta["scene_size"], meta["scaled_size"])
            kept = assign_objects(objects, np.asarray(meta["window"]), iof_threshold=self.iof_threshold)
            boxes = np.array([horizontal_box(r) for r in kept.rings], dtype=np.float64).reshape(-1, 4)
            boxes[:, 2:] += boxes[:, :2]
            sx, sy = meta["scale_factor"]
            in_input = boxes * np.array([sx, sy, sx, sy])
            bright = _bright_share(pixels, in_input)
            scores = bright * (0.9 + 0.1 * kept.iof)
            result = InstanceData()
            result.bboxes = torch.as_tensor(boxes if rescale else in_input, dtype=torch.float32)
            result.scores = torch.as_tensor(scores, dtype=torch.float32)
            result.labels = torch.as_tensor(labels[kept.indices], dtype=torch.int64)
            sample.pred_instances = result
        return batch_data_samples

    def loss(self, batch_inputs: torch.Tensor, batch_data_samples: list) -> dict:
        raise NotImplementedError("the oracle detector is for inference only")

    def _forward(self, batch_inputs: torch.Tensor, batch_data_samples: Any = None) -> Any:
        raise NotImplementedError("the oracle detector is for inference only")

    def extract_feat(self, batch_inputs: torch.Tensor) -> Any:
        raise NotImplementedError("the oracle detector has no features")


def _bright_share(pixels: torch.Tensor, boxes: np.ndarray) -> np.ndarray:
    """Share of bright pixels inside each box of one (C, H, W) input."""
    mask = (pixels.max(dim=0).values > BRIGHT).cpu().numpy()
    shares = np.zeros(len(boxes))
    for k, (x1, y1, x2, y2) in enumerate(boxes.tolist()):
        c1, r1 = int(round(x1)), int(round(y1))
        c2, r2 = max(int(round(x2)), c1 + 1), max(int(round(y2)), r1 + 1)
        region = mask[max(r1, 0):r2, max(c1, 0):c2]
        shares[k] = float(region.mean()) if region.size else 0.0
    return shares
