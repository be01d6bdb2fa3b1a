"""The producer side of ``detect``: each image probed, decoded once, scaled and cut into the builder's windows,
prepared into model batches by the config's test pipeline, in a background thread ahead of the model.

Windows follow the builder exactly: ``scale.scaled_size`` and ``resize_image`` with its interpolation,
``split.get_windows`` (the same flush-to-edge rule) and ``worker.crop_window`` (the same bottom/right
padding). Windows are views of the decoded array (only edge windows of images smaller than a window are padded
copies), so memory holds one image plus a couple of batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.read import ImageProbeError, decode_image, probe_image
from dotamini10.scale import factor_tag, resize_image, scaled_size
from dotamini10.split import get_windows
from dotamini10.worker import crop_window

from .options import DetectOptions, ImageError


def window_pipeline(cfg: Any) -> Any:
    """The config's test pipeline for in-memory windows: loading from an array, no annotations."""
    import copy

    from mmcv.transforms import Compose

    steps = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    steps = [s for s in steps if "LoadAnnotations" not in s["type"]]
    steps[0] = dict(type="mmdet.LoadImageFromNDArray")
    return Compose(steps)


@dataclass
class ImagePlan:
    """One image to run: its header size and, per scale, the scaled size and windows."""

    path: Path
    name: str
    size: tuple[int, int]
    scales: list[tuple[float, tuple[int, int], np.ndarray]]

    @property
    def windows(self) -> int:
        return sum(len(w) for _, _, w in self.scales)


@dataclass
class Batch:
    """Prepared windows of one image: model inputs and where each window lies."""

    name: str
    data: dict[str, list]
    origins: list[tuple[int, int, float, float, int, int]]  # x0, y0, ratio x, ratio y, valid w, valid h


@dataclass
class ImageEnd:
    """An image's last batch has been queued; ``preview`` is its downscaled copy."""

    plan: ImagePlan
    preview: np.ndarray
    preview_scale: float


@dataclass
class ImageFailed:
    """An image could not be read."""

    plan: ImagePlan
    error: str


def plan_image(path: Path, options: DetectOptions) -> ImagePlan:
    """Probe one image and lay out its windows at every scale.

    Raises:
        ImageError: Missing, unreadable or truncated file, or a side over ``options.max_side`` at a scale.
    """
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        info = probe_image(path)
    except ImageProbeError as exc:
        raise ImageError(f"{path}: {exc.reason.replace('_', ' ')}: {exc.detail}") from None
    scales = []
    for factor in sorted(set(options.scales)):
        sw, sh = scaled_size(info.width, info.height, factor)
        if max(sw, sh) > options.max_side:
            raise ImageError(f"{path}: {sw:,} x {sh:,} px at scale {factor_tag(factor)} is over the "
                             f"{options.max_side:,} px limit a side")
        scales.append((factor, (sw, sh), get_windows(sw, sh, crop_size=options.window, stride=options.stride)))
    return ImagePlan(path, path.stem, (info.width, info.height), scales)


def produce(plans: Sequence[ImagePlan], pipeline: Any, options: DetectOptions) -> Iterator[Batch | ImageEnd | ImageFailed]:
    """Decode, scale, cut and prepare every planned image, one image in memory at a time."""
    for plan in plans:
        try:
            image = decode_image(plan.path, channels="bgr")
            if (image.shape[1], image.shape[0]) != plan.size:
                raise ImageProbeError("unreadable_image", f"decoded size {image.shape[1]} x {image.shape[0]} "
                                      f"differs from the header's {plan.size[0]} x {plan.size[1]}")
        except ImageProbeError as exc:
            yield ImageFailed(plan, f"{plan.path}: {exc.reason.replace('_', ' ')}: {exc.detail}")
            continue
        preview, preview_scale = _downscale(image, options.preview_side)
        for factor, (sw, sh), windows in plan.scales:
            pixels = resize_image(image, (sw, sh), interpolation=options.interpolation)
            for start in range(0, len(windows), options.batch):
                part = windows[start:start + options.batch]
                yield _prepare(plan, pixels, part, pipeline, options.pad_value, factor)
            del pixels
        del image
        yield ImageEnd(plan, preview, preview_scale)


def _prepare(plan: ImagePlan, pixels: np.ndarray, windows: np.ndarray, pipeline: Any, pad_value: int,
             factor: float) -> Batch:
    inputs, samples, origins = [], [], []
    sh, sw = pixels.shape[:2]
    # Exact per-axis ratios of the rounded scaled size, as the builder scales polygons.
    rx, ry = plan.size[0] / sw, plan.size[1] / sh
    for x0, y0, x1, y1 in windows.tolist():
        crop = crop_window(pixels, np.array([x0, y0, x1, y1]), pad_value=pad_value)
        packed = pipeline(dict(img=crop, img_id=0))
        sample = packed["data_samples"]
        sample.set_metainfo(dict(scene=plan.name, scene_size=plan.size, scaled_size=(sw, sh),
                                 window=(x0, y0, x1, y1), scene_scale=factor))
        inputs.append(packed["inputs"])
        samples.append(sample)
        origins.append((x0, y0, rx, ry, min(x1, sw) - x0, min(y1, sh) - y0))
    return Batch(plan.name, dict(inputs=inputs, data_samples=samples), origins)


def _downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = min(1.0, side / max(image.shape[:2]))
    if scale == 1.0:
        return image.copy(), 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def in_background(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    # Runs the producer in a thread (decoding, resizing and the pipeline release the GIL in their heavy parts),
    # at most ``depth`` items ahead of the model, so memory holds one image plus a couple of batches.
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(exc)

    thread = threading.Thread(target=work, name="detect-producer", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)
