"""What a slice's worker does with one image: decode it once, and at each scale cut its windows, clip and keep
the boxes by the builder's rule, and write the windows as PNG.

Notes:
    Objects are boxes (shapely rectangles) assigned with :func:`dotamini10.split.assign_objects`: kept in a window
    when area(box ∩ window) / area(box) >= ``iof``, clipped to it. Ignore areas are assigned separately and kept,
    clipped, in every window they overlap at all: a part of an ignore area still covers unlabelled objects, and
    dropping it would make them background. Everything a task writes depends on the task alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io import atomic_write_bytes
from ..png import encode_png_parts
from ..read import ImageProbeError, decode_image, probe_image
from ..scale import factor_tag, resize_image, scaled_size
from ..split import IOF_TOLERANCE, ObjectSet, assign_objects, get_windows, horizontal_box
from ..worker import crop_window, peak_rss_mb, timed
from ..write import sha256_bytes

TIMING_KEYS: tuple[str, ...] = ("decode", "resize", "intersect", "encode", "write")
# assign_objects keeps iof >= threshold - IOF_TOLERANCE: this keeps every ignore area overlapping a window by
# more than IOF_TOLERANCE of its area.
IGNORE_IOF = 2 * IOF_TOLERANCE


@dataclass(frozen=True)
class SliceSettings:
    """Options every task needs.

    Attributes:
        out_dir: The output root (windows go to ``images/{split}/``).
        split: The output split.
        window: Window size, px.
        stride: Step between windows, px.
        iof: Minimum share of a box's area inside a window to keep it there.
        pad_value: Gray value of the padding of images smaller than a window.
        interpolation: Resizing filter for scales other than 1.
        png_compression: ISA-L deflate level of the PNGs.
        decimals: Decimals of output coordinates.
        drop_empty: Write no window without a kept object (ignore areas do not count).
    """

    out_dir: Path
    split: str
    window: int
    stride: int
    iof: float
    pad_value: int
    interpolation: str
    png_compression: int
    decimals: int
    drop_empty: bool


@dataclass
class SliceTask:
    """One image, every scale.

    Attributes:
        index: The image's position in the json.
        file_name: Its ``file_name``.
        path: The file.
        size: ``(width, height)`` from the json.
        factors: Scale factors, increasing.
        boxes: ``[x0, y0, x1, y1]`` of its usable annotations, shape (K, 4).
        ann_index: Each box's index among the image's annotations, shape (K,).
        ignore: Whether each box is an ignore area, shape (K,).
        settings: Shared options.
    """

    index: int
    file_name: str
    path: Path
    size: tuple[int, int]
    factors: tuple[float, ...]
    boxes: np.ndarray
    ann_index: np.ndarray
    ignore: np.ndarray
    settings: SliceSettings

    @property
    def key(self) -> str:
        """The task's resume record name."""
        return f"image_{self.index:08d}"


@dataclass
class SliceResult:
    """What a task produced.

    Attributes:
        key: The task's key.
        windows: One record per written window, in output order (by factor, then row by row): ``name`` (the
            ``file_name``), ``scale``, ``window`` ``[x0, y0]``, ``width``, ``height``, ``png_sha256`` and
            ``objects`` (``ann``: index among the image's annotations, ``bbox``, ``area``, ``truncated``).
        best_iof: Per annotation index (as text), its largest share inside any window, rounded to 4 places.
        problems: ``[reason, detail]`` when the image could not be used (no window is then written).
        windows_total: Windows considered (written or dropped as empty).
        timings: Seconds per stage; not part of any output.
        peak_rss_mb: Peak resident memory of the process that ran it.
    """

    key: str
    windows: list[dict[str, Any]] = field(default_factory=list)
    best_iof: dict[str, float] = field(default_factory=dict)
    problems: list[list[str]] = field(default_factory=list)
    windows_total: int = 0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the resume record."""
        return {"key": self.key, "windows": self.windows, "best_iof": self.best_iof, "problems": self.problems,
                "windows_total": self.windows_total}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceResult:
        """Inverse of :meth:`to_dict`."""
        return cls(data["key"], data["windows"], data["best_iof"], data["problems"], data["windows_total"])


def window_stem(file_name: str) -> str:
    """The part of output names that comes from the source: its ``file_name`` without suffix (folders kept)."""
    return Path(file_name).with_suffix("").as_posix()


def run_slice(task: SliceTask) -> SliceResult:
    """Slice one image at every scale.

    Returns:
        The windows written, or one problem for an image that is truncated, cannot be decoded or has another
        size than its json entry says.
    """
    result = SliceResult(task.key)
    try:
        image = _decode(task, result)
        if image is not None:
            for factor in task.factors:
                _slice_at(task, image, factor, result)
    finally:
        result.peak_rss_mb = peak_rss_mb()
    return result


def _decode(task: SliceTask, result: SliceResult) -> np.ndarray | None:
    with timed(result.timings, "decode"):
        try:
            probe_image(task.path)
            image = decode_image(task.path, channels="rgb")
        except ImageProbeError as exc:
            result.problems.append([exc.reason, exc.detail])
            return None
    if (image.shape[1], image.shape[0]) != tuple(task.size):
        result.problems.append(["size_mismatch", f"decoded {image.shape[1]} x {image.shape[0]}, the json says "
                                f"{task.size[0]} x {task.size[1]}"])
        return None
    return image


def _objects(boxes: np.ndarray) -> ObjectSet:
    import shapely

    return ObjectSet.from_geoms(shapely.box(boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]))


def _slice_at(task: SliceTask, image: np.ndarray, factor: float, result: SliceResult) -> None:
    s = task.settings
    t = result.timings
    width, height = task.size
    sw, sh = scaled_size(width, height, factor)
    with timed(t, "resize"):
        scaled = resize_image(image, (sw, sh), interpolation=s.interpolation)
    boxes = task.boxes * np.array([sw / width, sh / height, sw / width, sh / height])
    regular, ignore = np.flatnonzero(~task.ignore), np.flatnonzero(task.ignore)
    objects, areas = _objects(boxes[regular]), _objects(boxes[ignore])
    best = np.zeros(len(regular))
    tag = factor_tag(factor)
    stem = window_stem(task.file_name)
    for window in get_windows(sw, sh, crop_size=s.window, stride=s.stride):
        result.windows_total += 1
        with timed(t, "intersect"):
            kept = assign_objects(objects, window, iof_threshold=s.iof)
            covered = assign_objects(areas, window, iof_threshold=IGNORE_IOF)
            best[kept.touched] = np.maximum(best[kept.touched], kept.touched_iof)
        if s.drop_empty and len(kept) == 0:
            continue
        x0, y0 = int(window[0]), int(window[1])
        name = f"{stem}__{tag}__{x0}___{y0}.png"
        objects_out = _records(task.ann_index[regular], kept, s.decimals)
        objects_out += _records(task.ann_index[ignore], covered, s.decimals)
        objects_out.sort(key=lambda o: o["ann"])  # the json's order, whatever the kind
        with timed(t, "encode"):
            parts = encode_png_parts(crop_window(scaled, window, pad_value=s.pad_value),
                                     compression=s.png_compression, channels="rgb")
            digest = sha256_bytes(parts)
        with timed(t, "write"):
            atomic_write_bytes(s.out_dir / "images" / s.split / name, parts, make_parents=True)
        result.windows.append({"name": name, "scale": factor, "window": [x0, y0], "width": s.window,
                               "height": s.window, "png_sha256": digest, "objects": objects_out})
    for i in np.flatnonzero(best > 0).tolist():
        key = str(int(task.ann_index[regular][i]))
        result.best_iof[key] = max(result.best_iof.get(key, 0.0), round(float(best[i]), 4))


def _records(ann_index: np.ndarray, kept: Any, decimals: int) -> list[dict[str, Any]]:
    """One output record per kept object: its annotation index, clipped box, area and whether it was cut."""
    records = []
    for k, idx in enumerate(kept.indices.tolist()):
        box = np.round(horizontal_box(kept.rings[k]), decimals) + 0.0
        records.append({"ann": int(ann_index[idx]), "bbox": box.tolist(), "area": round(box[2] * box[3], 4),
                        "truncated": bool(kept.truncated[k])})
    return records
