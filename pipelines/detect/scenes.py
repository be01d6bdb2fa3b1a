"""The consumer side of ``detect``: window detections mapped back to the scene, merged across windows and
scales (:func:`dotamini10.merge.merge_detections`), and drawn on the scene's preview.

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
                 out: Path, fingerprint: str) -> ImageOutcome:
    """Merge an image's detections across windows and scales, write its record and preview."""
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
    _write_preview(preview_path(out, plan.name), end, merged, classes, options.score)
    write_image_record(out, plan.name, record)
    return ImageOutcome(plan.path, plan.name, Status.DONE, pending.windows, len(merged))


def _write_preview(path: Path, end: ImageEnd, merged: Any, classes: Sequence[str], score: float) -> None:
    import cv2

    from dotamini10.png import encode_png

    canvas = np.ascontiguousarray(end.preview)
    palette = _palette(len(classes))
    s = end.preview_scale
    for box, label in zip(merged.boxes.tolist(), merged.labels.tolist(), strict=True):
        x1, y1, x2, y2 = (int(round(v * s)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (max(x2, x1 + 1), max(y2, y1 + 1)), palette[label % len(palette)], 2)
    caption = f"{end.plan.path.name}: {len(merged):,} detections, score >= {score:g}"
    scale = max(canvas.shape[1] / 1400, 0.5)  # readable once the preview is shown a screen wide
    (w, h), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(canvas, (0, 0), (w + 16, h + 16), (0, 0, 0), -1)
    cv2.putText(canvas, caption, (8, h + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(canvas, compression=1, channels="bgr"))


def _palette(n: int) -> list[tuple[int, int, int]]:
    import colorsys

    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / max(n, 1), 0.9, 1.0))[::-1] for k in range(n)]
