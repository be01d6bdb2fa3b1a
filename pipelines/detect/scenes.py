"""The consumer side of ``detect``: window detections mapped back to the scene, merged across windows and
scales (:func:`dotamini10.merge.merge_detections`), and drawn on the scene's preview (:mod:`.preview`).

Detections are mapped back with the exact per-axis ratios of the scaled size, as the builder scales polygons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import atomic_write_bytes
from dotamini10.merge import merge_detections

from .model_pool import WindowDetections
from .options import DetectOptions, ImageOutcome, Status
from .outputs import preview_path, write_image_record
from .preview import PREVIEW_IOU, PreviewBoxes, SceneTruth, draw_preview, match_scene
from .windows import Batch, ImageEnd


@dataclass
class SceneDetections:
    """Full-image detections of the image being run."""

    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    windows: int = 0


def add_batch(batch: Batch, found: list[WindowDetections], score: float, pending: SceneDetections) -> None:
    """Add one batch's detections (window pixels, as :func:`model_pool.infer` gives them) to ``pending``, in
    full-image coordinates."""
    for (boxes, scores, labels), (x0, y0, rx, ry, vw, vh) in zip(found, batch.origins, strict=True):
        boxes, scores = boxes.astype(np.float64), scores.astype(np.float64)
        keep = scores >= score
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        # Clip to the window's part of the image (padding is not image), then back to full-image pixels.
        boxes = np.clip(boxes, 0.0, np.array([vw, vh, vw, vh], dtype=np.float64))
        boxes = (boxes + np.array([x0, y0, x0, y0])) * np.array([rx, ry, rx, ry])
        pending.boxes.append(boxes)
        pending.scores.append(scores)
        pending.labels.append(labels)
        pending.windows += 1


def finish_image(end: ImageEnd, pending: SceneDetections, classes: Sequence[str], options: DetectOptions,
                 out: Path, fingerprint: str, truth: SceneTruth | None = None) -> ImageOutcome:
    """Merge an image's detections across windows and scales, write its record and preview (matched against
    ``truth`` when given)."""
    boxes = np.concatenate(pending.boxes) if pending.boxes else np.zeros((0, 4))
    scores = np.concatenate(pending.scores) if pending.scores else np.zeros(0)
    labels = np.concatenate(pending.labels) if pending.labels else np.zeros(0, dtype=np.int64)
    merged = merge_detections(boxes, scores, labels, options=options.merge)
    plan = end.plan
    record = dict(
        image=plan.path.name, path=str(plan.path), width=plan.size[0], height=plan.size[1],
        fingerprint=fingerprint, scales=[s for s, _, _ in plan.scales], windows=pending.windows,
        classes=list(classes), window_detections=int(len(boxes)),
        detections=dict(bbox=np.round(merged.boxes, 3).tolist(), score=np.round(merged.scores, 6).tolist(),
                        label=merged.labels.tolist()),
    )
    record["preview"] = _write_preview(preview_path(out, plan.name), end, merged, classes, options, truth)
    write_image_record(out, plan.name, record)
    return ImageOutcome(plan.path, plan.name, Status.DONE, pending.windows, len(merged))


def _write_preview(path: Path, end: ImageEnd, merged: Any, classes: Sequence[str], options: DetectOptions,
                   truth: SceneTruth | None) -> dict[str, Any]:
    """Draw the scene's detections above ``options.preview_score`` (:mod:`.preview`), matched against the ground
    truth when it is known; returns what it drew (the score, and the TP / FP / FN / ignored counts when matched)."""
    from dotamini10.png import encode_png

    keep = merged.scores >= options.preview_score
    boxes, scores, labels = merged.boxes[keep], merged.scores[keep], merged.labels[keep]
    name = end.plan.path.name
    header = [f"{name}: {int(keep.sum()):,} of {len(merged):,} detections, those with score >= "
              f"{options.preview_score:g} drawn (label: class score)"]
    drawn = None
    if truth is not None:
        drawn = match_scene(truth, name, boxes, scores, labels, classes)
        gt_name = Path(truth.source).name
        header.append(f"AI-TOD matching at IoU >= {PREVIEW_IOU:g} against {gt_name}" if drawn is not None
                      else f"{name} is not in {gt_name}: detections drawn by class")
    if drawn is None:
        drawn = PreviewBoxes(boxes, ("",) * len(boxes), labels, scores)
    canvas = draw_preview(end.preview, end.preview_scale, drawn, classes, header)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(canvas, compression=1, channels="bgr"))
    shown: dict[str, Any] = dict(score=options.preview_score, detections=int(keep.sum()))
    if any(drawn.kinds):
        shown.update(iou=PREVIEW_IOU, **{k: drawn.count(k) for k in ("TP", "FP", "FN", "ignored")})
    return shown
