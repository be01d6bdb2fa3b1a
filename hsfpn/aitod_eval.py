"""AI-TOD evaluation: COCO-style box AP / AR with AI-TOD's area ranges and detection limits, in numpy.

The reference evaluator of the AI-TOD benchmark (``aitodpycocotools``) is pycocotools' ``COCOeval`` with other
parameters: IoU thresholds 0.50:0.05:0.95, 101 recall points, maxDets (100, 300, 1500) and the area ranges
all [0, 1e10], very tiny [0, 8^2], tiny [8^2, 16^2], small [16^2, 32^2], medium [32^2, 1e10] (squared pixels of
the annotation's ``area`` field, both ends inclusive). :class:`AITODEval` gives the same precision / recall
arrays as pycocotools configured that way, without its per-detection Python loops.

Lifecycle (as pycocotools): ``evaluate()`` -> ``accumulate()`` -> ``summarize()``, or ``run()`` for all three.

Example:
    >>> gt = GroundTruth.from_coco({
    ...     "images": [{"id": 1}], "categories": [{"id": 1, "name": "car"}],
    ...     "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "area": 64}]})
    >>> dets = Detections.from_coco([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 8, 8], "score": 0.9}], gt)
    >>> round(AITODEval(gt, dets).run()["AP"], 6)  # precision is 1 / (1 + eps), as in pycocotools
    1.0
"""

from __future__ import annotations

import dataclasses
import enum
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import read_json
from dotamini10.io import write_json

from .errors import HSFPNError

logger = logging.getLogger(__name__)

@dataclass(frozen=True)
class Figure:
    """One reported figure: which slice of the accumulated precision or recall it averages.

    Args:
        key: The report key (``"AP50"``).
        ap: True for precision (AP), False for recall (AR).
        area: The area-range label (see :class:`AITODParams`).
        max_dets: The detections per image; ``None`` for the largest the parameters have (1500 in AI-TOD's).
        iou: One IoU threshold; ``None`` averages over all of them (0.50:0.95).
        per_class: Reported per category too.
    """

    key: str
    ap: bool
    area: str
    max_dets: int | None = None
    iou: float | None = None
    per_class: bool = False

    def describe(self) -> str:
        """The slice in words: ``"0.50, all, 1500"``."""
        iou = "0.50:0.95" if self.iou is None else f"{self.iou:.2f}"
        return f"{iou}, {AREA_NAMES.get(self.area, self.area)}, {self.max_dets or 1500}"


#: Human names of AI-TOD's area ranges, for tables.
AREA_NAMES: dict[str, str] = {
    "all": "all", "verytiny": "very tiny 0-8 px", "tiny": "tiny 8-16 px", "small": "small 16-32 px",
    "medium": "medium > 32 px",
}  # fmt: skip

#: Every reported figure, in the order of the report and of the printed table: the one definition behind
#: :meth:`AITODEval.summarize`, :meth:`AITODEval.per_class` and the command line's table. Per-class figures
#: are precision only, as MMDetection's classwise table.
FIGURES: tuple[Figure, ...] = (
    Figure("AP", True, "all", per_class=True),
    Figure("AP50", True, "all", iou=0.5, per_class=True),
    Figure("AP75", True, "all", iou=0.75, per_class=True),
    Figure("APvt", True, "verytiny", per_class=True),
    Figure("APt", True, "tiny", per_class=True),
    Figure("APs", True, "small", per_class=True),
    Figure("APm", True, "medium", per_class=True),
    Figure("AR100", False, "all", max_dets=100),
    Figure("AR300", False, "all", max_dets=300),
    Figure("AR1500", False, "all", max_dets=1500),
    Figure("ARvt", False, "verytiny"),
    Figure("ARt", False, "tiny"),
    Figure("ARs", False, "small"),
    Figure("ARm", False, "medium"),
)

#: The reported figures' keys, in order.
REPORT_KEYS: tuple[str, ...] = tuple(f.key for f in FIGURES)

#: The per-class figures' keys, in order.
PER_CLASS_KEYS: tuple[str, ...] = tuple(f.key for f in FIGURES if f.per_class)

#: pycocotools guards its IoU thresholds with ``min(t, 1 - 1e-10)`` so that a threshold of 1 can still match.
_IOU_CAP = 1 - 1e-10
# Number of candidate (detection, ground truth) pairs whose IoU is computed in one vectorised chunk.
_PAIR_CHUNK = 1 << 20
#: An annotation's ``area`` is far from its box when it is more than this factor above or below the box's w x h.
#: A COCO segmentation area lies within the box, mostly well above half of it; an area the size of the whole
#: image (SAHI's test jsons) is thousands of times a tiny box's.
AREA_FACTOR = 2.0


class AITODInputError(HSFPNError):
    """Ground truth or detections that cannot be evaluated (missing file, wrong JSON shape, bad entry)."""


class AITODStateError(HSFPNError):
    """A lifecycle step of :class:`AITODEval` called before the step it depends on."""


def _thresholds(start: float, stop: float, step: float) -> tuple[float, ...]:
    # Built exactly as pycocotools builds iouThrs / recThrs, so that the float values agree bit for bit.
    count = int(np.round((stop - start) / step)) + 1
    return tuple(float(v) for v in np.linspace(start, stop, count, endpoint=True))


@dataclass(frozen=True)
class AITODParams:
    """Evaluation parameters; the defaults are AI-TOD's (``aitodpycocotools``).

    Args:
        iou_thrs: IoU thresholds. Defaults to 0.50:0.05:0.95 (10 values).
        rec_thrs: Recall points at which interpolated precision is sampled. Defaults to 0:0.01:1 (101 values).
        max_dets: Detections kept per image and category, by score, increasing. Matching uses the last value;
            smaller values truncate the matched lists (as pycocotools). Defaults to (100, 300, 1500).
        area_rngs: ``(low, high)`` area ranges in squared pixels, both ends inclusive. Defaults to all
            [0, 1e10], very tiny [0, 64], tiny [64, 256], small [256, 1024], medium [1024, 1e10].
        area_labels: One label per area range. Defaults to ("all", "verytiny", "tiny", "small", "medium").

    Notes:
        The summary (:meth:`AITODEval.summarize`) reads the slices labelled "all", "verytiny", "tiny", "small"
        and "medium", the thresholds 0.5 and 0.75 and the max_dets 100, 300 and 1500; a figure whose slice is
        absent from custom parameters is reported as -1.
    """

    iou_thrs: tuple[float, ...] = field(default_factory=lambda: _thresholds(0.5, 0.95, 0.05))
    rec_thrs: tuple[float, ...] = field(default_factory=lambda: _thresholds(0.0, 1.0, 0.01))
    max_dets: tuple[int, ...] = (100, 300, 1500)
    area_rngs: tuple[tuple[float, float], ...] = (
        (0.0, 1e10), (0.0, 64.0), (64.0, 256.0), (256.0, 1024.0), (1024.0, 1e10),
    )  # fmt: skip
    area_labels: tuple[str, ...] = ("all", "verytiny", "tiny", "small", "medium")

    def __post_init__(self) -> None:
        object.__setattr__(self, "iou_thrs", tuple(float(t) for t in self.iou_thrs))
        object.__setattr__(self, "rec_thrs", tuple(float(r) for r in self.rec_thrs))
        object.__setattr__(self, "max_dets", tuple(int(m) for m in self.max_dets))
        object.__setattr__(self, "area_rngs", tuple((float(lo), float(hi)) for lo, hi in self.area_rngs))
        object.__setattr__(self, "area_labels", tuple(str(label) for label in self.area_labels))
        if not self.iou_thrs or not all(0.0 <= t <= 1.0 for t in self.iou_thrs):
            raise ValueError(f"iou_thrs must be a non-empty sequence of values in [0, 1], got {self.iou_thrs}")
        if not self.rec_thrs or not all(0.0 <= r <= 1.0 for r in self.rec_thrs):
            raise ValueError(f"rec_thrs must be a non-empty sequence of values in [0, 1], got {self.rec_thrs}")
        if list(self.rec_thrs) != sorted(self.rec_thrs):
            raise ValueError(f"rec_thrs must be increasing, got {self.rec_thrs}")
        if not self.max_dets or self.max_dets[0] < 1 or any(
            a >= b for a, b in zip(self.max_dets, self.max_dets[1:], strict=False)
        ):
            raise ValueError(f"max_dets must be positive and strictly increasing, got {self.max_dets}")
        if not self.area_rngs or any(not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi)
                                     for lo, hi in self.area_rngs):  # fmt: skip
            raise ValueError(f"area_rngs must be finite (low, high) pairs with low <= high, got {self.area_rngs}")
        if len(self.area_labels) != len(self.area_rngs) or len(set(self.area_labels)) != len(self.area_labels):
            raise ValueError(
                f"area_labels must be {len(self.area_rngs)} distinct labels (one per area range), "
                f"got {self.area_labels}"
            )


# ---------------------------------------------------------------------------------------------
# Input: COCO-format ground truth and detections, validated into arrays
# ---------------------------------------------------------------------------------------------


def _column(entries: list, key: str, source: str, what: str) -> list:
    """The values of ``key`` in every entry; names the first entry that is not an object or lacks the key."""
    try:
        return [entry[key] for entry in entries]
    except (KeyError, TypeError, IndexError):
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise AITODInputError(f"{source}: {what} {i}: expected an object, got {type(entry).__name__}") from None
            if key not in entry:
                raise AITODInputError(f"{source}: {what} {i}: missing field '{key}'") from None
        raise


def _first_bad(values: list, ok: Callable[[Any], bool]) -> int:
    return next(i for i, v in enumerate(values) if not ok(v))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_column(values: list, source: str, what: str, key: str) -> np.ndarray:
    arr = np.asarray(values) if values else np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        i = _first_bad(values, _is_int)
        raise AITODInputError(f"{source}: {what} {i}: field '{key}' must be an integer, got {values[i]!r}")
    return arr.astype(np.int64, copy=False)


def _number_column(values: list, source: str, what: str, key: str, *, allow_negative: bool) -> np.ndarray:
    arr = np.asarray(values) if values else np.zeros(0, dtype=np.float64)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        i = _first_bad(values, _is_number)
        raise AITODInputError(f"{source}: {what} {i}: field '{key}' must be a number, got {values[i]!r}")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if not allow_negative:
        bad |= arr < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        problem = "must be finite" if not math.isfinite(arr[i]) else "must not be negative"
        raise AITODInputError(f"{source}: {what} {i}: field '{key}' {problem}, got {values[i]!r}")
    return arr


def _box_column(values: list, source: str, what: str) -> np.ndarray:
    """``[x, y, w, h]`` boxes as an (N, 4) float64 array; finite, with non-negative width and height."""
    try:
        arr = np.asarray(values) if values else np.zeros((0, 4), dtype=np.float64)
    except ValueError:  # ragged lists
        arr = np.zeros(0)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf":
        def ok(v: Any) -> bool:
            return isinstance(v, (list, tuple)) and len(v) == 4 and all(_is_number(c) for c in v)

        i = _first_bad(values, ok)
        raise AITODInputError(f"{source}: {what} {i}: field 'bbox' must be 4 numbers [x, y, w, h], got {values[i]!r}")
    arr = arr.astype(np.float64, copy=False)
    finite = np.isfinite(arr).all(axis=1)
    if not finite.all():
        i = int(np.flatnonzero(~finite)[0])
        raise AITODInputError(f"{source}: {what} {i}: field 'bbox' must be finite, got {values[i]!r}")
    negative = (arr[:, 2] < 0) | (arr[:, 3] < 0)
    if negative.any():
        i = int(np.flatnonzero(negative)[0])
        raise AITODInputError(f"{source}: {what} {i}: field 'bbox' has a negative width or height, got {values[i]!r}")
    return arr


def _index_of(ids: np.ndarray, known: np.ndarray, source: str, what: str, key: str, kind: str) -> np.ndarray:
    """Positions of ``ids`` in the sorted array ``known``; names the first id that is not there."""
    pos = np.searchsorted(known, ids)
    found = pos < len(known)
    found[found] = known[pos[found]] == ids[found]
    if not found.all():
        i = int(np.flatnonzero(~found)[0])
        raise AITODInputError(f"{source}: {what} {i}: {key} {int(ids[i])} is not a {kind} of the ground truth")
    return pos.astype(np.int64)


def _unique_ids(ids: np.ndarray, source: str, what: str) -> None:
    order = np.argsort(ids, kind="stable")
    dup = np.flatnonzero(ids[order][1:] == ids[order][:-1])
    if dup.size:
        i = int(order[dup[0] + 1])
        raise AITODInputError(f"{source}: {what} {i}: duplicate id {int(ids[i])}")


def far_from_box(areas: Any, widths: Any, heights: Any) -> Any:
    """Whether each ``area`` is more than :data:`AREA_FACTOR` above or below its box's w x h (arrays or numbers)."""
    box = np.multiply(widths, heights)
    return (np.greater(areas, AREA_FACTOR * box)) | (np.less(np.multiply(areas, AREA_FACTOR), box))


def far_area_note(source: str, far: int, total: int, example: tuple[Any, float, float, float]) -> str:
    """The one line on ``far`` of ``total`` annotations whose area is far from w x h, with one ``(annotation id,
    area, w, h)`` as the example: the size ranges go by area, so the line points at ``--area-from-box``."""
    ann_id, area, w, h = example
    shown = f"{area:,.0f}" if float(area).is_integer() else f"{area:,.6g}"  # 1,048,576 rather than 1.04858e+06
    return (f"{source}: {far:,} of {total:,} annotations have an area more than {AREA_FACTOR:g}x away from their "
            f"box's w x h (e.g. annotation id {ann_id}: area {shown} for a {w:g} x {h:g} box); the AI-TOD size "
            "ranges go by area: --area-from-box uses w x h")


@dataclass(frozen=True, eq=False)
class GroundTruth:
    """COCO-format ground truth as arrays (one row per annotation, in file order).

    Attributes:
        img_ids: (I,) int64 image ids, sorted (pycocotools' ``params.imgIds``).
        cat_ids: (K,) int64 category ids, sorted (pycocotools' ``params.catIds``).
        cat_names: K category names, aligned with ``cat_ids``.
        ann_ids: (N,) int64 annotation ids.
        image: (N,) int64 position of each annotation's image in ``img_ids``.
        category: (N,) int64 position of each annotation's category in ``cat_ids``.
        boxes: (N, 4) float64 ``[x, y, w, h]``.
        areas: (N,) float64 the ``area`` field (what the area ranges test).
        iscrowd: (N,) bool the ``iscrowd`` field (absent means 0).
    """

    img_ids: np.ndarray
    cat_ids: np.ndarray
    cat_names: tuple[str, ...]
    ann_ids: np.ndarray
    image: np.ndarray
    category: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    iscrowd: np.ndarray

    @classmethod
    def from_file(cls, path: Path) -> GroundTruth:
        """Load a COCO-format ground-truth JSON file (see :meth:`from_coco`)."""
        return cls.from_coco(read_json(path, what="ground truth", error=AITODInputError), source=str(path))

    @classmethod
    def from_coco(cls, data: Any, source: str = "ground truth") -> GroundTruth:
        """Validate a decoded COCO ground-truth object.

        Args:
            data: ``{"images": [{"id"}...], "categories": [{"id", "name"}...], "annotations": [{"id",
                "image_id", "category_id", "bbox": [x, y, w, h], "area", "iscrowd"?}...]}``.
            source: Name used in error messages (the file path).

        Returns:
            The ground truth as arrays.

        Raises:
            AITODInputError: A missing list, a duplicate id, an annotation whose image or category is not listed,
                a non-finite or negative box size or area; the message names the entry and field.

        Notes:
            An ``ignore`` field is accepted and, as in pycocotools, has no effect: pycocotools overwrites it with
            ``iscrowd`` before matching, so crowd regions are the only ignored annotations (besides those outside
            the area range being evaluated).
        """
        if not isinstance(data, dict):
            raise AITODInputError(
                f"{source}: ground truth must be a JSON object with 'images', 'annotations' and 'categories', "
                f"got a JSON {type(data).__name__}"
            )
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                got = "nothing" if key not in data else f"a JSON {type(data[key]).__name__}"
                raise AITODInputError(f"{source}: ground truth field '{key}' must be a list, got {got}")
        images, anns, cats = data["images"], data["annotations"], data["categories"]

        img_ids = _int_column(_column(images, "id", source, "image"), source, "image", "id")
        _unique_ids(img_ids, source, "image")
        cat_ids = _int_column(_column(cats, "id", source, "category"), source, "category", "id")
        _unique_ids(cat_ids, source, "category")
        names = [str(c.get("name", c["id"])) for c in cats]
        cat_order = np.argsort(cat_ids, kind="stable")

        ann_ids = _int_column(_column(anns, "id", source, "annotation"), source, "annotation", "id")
        _unique_ids(ann_ids, source, "annotation")
        sorted_imgs = np.sort(img_ids)
        sorted_cats = cat_ids[cat_order]
        image = _index_of(
            _int_column(_column(anns, "image_id", source, "annotation"), source, "annotation", "image_id"),
            sorted_imgs, source, "annotation", "image_id", "listed image",
        )  # fmt: skip
        category = _index_of(
            _int_column(_column(anns, "category_id", source, "annotation"), source, "annotation", "category_id"),
            sorted_cats, source, "annotation", "category_id", "listed category",
        )  # fmt: skip
        boxes = _box_column(_column(anns, "bbox", source, "annotation"), source, "annotation")
        areas = _number_column(_column(anns, "area", source, "annotation"), source, "annotation", "area",
                               allow_negative=False)  # fmt: skip
        # pycocotools reads iscrowd as a truth value: accept true/false as well as 0/1.
        crowd_values = [int(v) if isinstance(v := a.get("iscrowd", 0), bool) else v for a in anns]
        iscrowd = _number_column(crowd_values, source, "annotation", "iscrowd", allow_negative=False) != 0
        return cls(
            img_ids=sorted_imgs,
            cat_ids=sorted_cats,
            cat_names=tuple(names[i] for i in cat_order),
            ann_ids=ann_ids,
            image=image,
            category=category,
            boxes=boxes,
            areas=areas,
            iscrowd=iscrowd,
        )

    def select_categories(self, cat_ids: Sequence[int]) -> GroundTruth:
        """The ground truth restricted to some categories (their annotations only; every image kept).

        Args:
            cat_ids: Category ids to keep; each must be a category of this ground truth.

        Returns:
            A new :class:`GroundTruth`.
        """
        wanted = np.unique(np.asarray(list(cat_ids), dtype=np.int64))
        pos = _index_of(wanted, self.cat_ids, "cat_ids", "entry", "category id", "listed category")
        if len(pos) == len(self.cat_ids):
            return self
        remap = np.full(len(self.cat_ids), -1, dtype=np.int64)
        remap[pos] = np.arange(len(pos))
        keep = remap[self.category] >= 0
        return GroundTruth(
            img_ids=self.img_ids,
            cat_ids=self.cat_ids[pos],
            cat_names=tuple(self.cat_names[i] for i in pos),
            ann_ids=self.ann_ids[keep],
            image=self.image[keep],
            category=remap[self.category[keep]],
            boxes=self.boxes[keep],
            areas=self.areas[keep],
            iscrowd=self.iscrowd[keep],
        )

    def far_areas(self) -> np.ndarray:
        """(N,) bool: the annotations whose ``area`` is far from their box's w x h (:func:`far_from_box`)."""
        return far_from_box(self.areas, self.boxes[:, 2], self.boxes[:, 3])

    def with_box_areas(self) -> GroundTruth:
        """The same ground truth with each box's w x h as its ``area`` (what the size ranges then test)."""
        return dataclasses.replace(self, areas=self.boxes[:, 2] * self.boxes[:, 3])

    def area_note(self, source: str, *, from_box: bool) -> str | None:
        """One line on areas far from their box's w x h (None when there are none and ``from_box`` is off).

        Args:
            source: The ground truth's name (its file).
            from_box: Whether the evaluation replaces every area by w x h (``--area-from-box``).
        """
        far = np.flatnonzero(self.far_areas())
        if from_box:
            return (f"{source}: the size ranges use each box's w x h as its area (--area-from-box); {len(far):,} of "
                    f"{len(self.areas):,} annotations had an area more than {AREA_FACTOR:g}x away from it")
        if not len(far):
            return None
        j = int(far[0])
        example = (int(self.ann_ids[j]), float(self.areas[j]), *self.boxes[j, 2:].tolist())
        return far_area_note(source, len(far), len(self.areas), example)

    def to_coco(self) -> dict:
        """The ground truth as a COCO dict (for pycocotools and for writing files)."""
        return {
            "images": [{"id": int(i)} for i in self.img_ids],
            "categories": [{"id": int(c), "name": n} for c, n in zip(self.cat_ids, self.cat_names, strict=True)],
            "annotations": [
                {
                    "id": int(self.ann_ids[j]),
                    "image_id": int(self.img_ids[self.image[j]]),
                    "category_id": int(self.cat_ids[self.category[j]]),
                    "bbox": self.boxes[j].tolist(),
                    "area": float(self.areas[j]),
                    "iscrowd": int(self.iscrowd[j]),
                }
                for j in range(len(self.ann_ids))
            ],
        }


@dataclass(frozen=True, eq=False)
class Detections:
    """Scored detections as arrays (one row per detection, in input order), checked against a ground truth.

    Attributes:
        image: (N,) int64 position of each detection's image in ``GroundTruth.img_ids``.
        category: (N,) int64 position of each detection's category in ``GroundTruth.cat_ids``.
        boxes: (N, 4) float64 ``[x, y, w, h]``.
        scores: (N,) float64 confidence.
    """

    image: np.ndarray
    category: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray

    @classmethod
    def from_file(cls, path: Path, gt: GroundTruth) -> Detections:
        """Load a detections JSON file (see :meth:`from_coco`)."""
        return cls.from_coco(read_json(path, what="detections", error=AITODInputError), gt, source=str(path))

    @classmethod
    def from_coco(cls, data: Any, gt: GroundTruth, source: str = "detections") -> Detections:
        """Validate decoded detections.

        Args:
            data: The COCO results format, a list ``[{"image_id", "category_id", "bbox": [x, y, w, h],
                "score"}...]``; an object ``{"annotations": [...]}`` holding such a list is accepted too (other
                keys are ignored), since some exporters write predictions in a ground-truth-like file.
            gt: The ground truth the detections refer to.
            source: Name used in error messages (the file path).

        Returns:
            The detections as arrays. An empty list is valid (every AP is then 0 where ground truth exists).

        Raises:
            AITODInputError: Wrong JSON shape, a missing field, an image id or category id absent from the
                ground truth, a NaN / infinite / negative-size box or a non-finite score; the message names the
                detection's index and the field.
        """
        if isinstance(data, dict):
            if not isinstance(data.get("annotations"), list):
                raise AITODInputError(
                    f"{source}: detections must be a JSON list of {{image_id, category_id, bbox, score}} objects "
                    "(COCO results format) or an object with an 'annotations' list; got an object without one"
                )
            data = data["annotations"]
        if not isinstance(data, list):
            raise AITODInputError(
                f"{source}: detections must be a JSON list of {{image_id, category_id, bbox, score}} objects "
                f"(COCO results format), got a JSON {type(data).__name__}"
            )
        what = "detection"
        image_ids = _int_column(_column(data, "image_id", source, what), source, what, "image_id")
        category_ids = _int_column(_column(data, "category_id", source, what), source, what, "category_id")
        boxes = _box_column(_column(data, "bbox", source, what), source, what)
        scores = _number_column(_column(data, "score", source, what), source, what, "score", allow_negative=True)
        return cls(
            image=_index_of(image_ids, gt.img_ids, source, what, "image_id", "listed image"),
            category=_index_of(category_ids, gt.cat_ids, source, what, "category_id", "listed category"),
            boxes=boxes,
            scores=scores,
        )

    @classmethod
    def from_arrays(
        cls,
        gt: GroundTruth,
        image_ids: np.ndarray,
        category_ids: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        source: str = "detections",
    ) -> Detections:
        """Validate detections given as arrays (the MMDetection metric's path, no per-detection dicts).

        Args:
            gt: The ground truth the detections refer to.
            image_ids: (N,) integer image ids.
            category_ids: (N,) integer category ids.
            boxes: (N, 4) ``[x, y, w, h]``.
            scores: (N,) confidences.
            source: Name used in error messages.

        Returns:
            The detections.
        """
        image_ids = np.asarray(image_ids, dtype=np.int64).reshape(-1)
        category_ids = np.asarray(category_ids, dtype=np.int64).reshape(-1)
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        n = len(image_ids)
        if not (len(category_ids) == len(boxes) == len(scores) == n):
            raise AITODInputError(
                f"{source}: image_ids, category_ids, boxes and scores must have one row per detection, got "
                f"{n}, {len(category_ids)}, {len(boxes)}, {len(scores)}"
            )
        bad = ~np.isfinite(boxes).all(axis=1) | (boxes[:, 2] < 0) | (boxes[:, 3] < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise AITODInputError(
                f"{source}: detection {i}: field 'bbox' must be finite with non-negative size, got {boxes[i].tolist()}"
            )
        if not np.isfinite(scores).all():
            i = int(np.flatnonzero(~np.isfinite(scores))[0])
            raise AITODInputError(f"{source}: detection {i}: field 'score' must be finite, got {scores[i]}")
        return cls(
            image=_index_of(image_ids, gt.img_ids, source, "detection", "image_id", "listed image"),
            category=_index_of(category_ids, gt.cat_ids, source, "detection", "category_id", "listed category"),
            boxes=boxes,
            scores=scores,
        )


# ---------------------------------------------------------------------------------------------
# The evaluator
# ---------------------------------------------------------------------------------------------


def _bbox_iou(det: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """IoU of paired ``[x, y, w, h]`` boxes, with pycocotools' float operations in the same order.

    Args:
        det: (P, 4) detection boxes.
        gt: (P, 4) ground-truth boxes.
        crowd: (P,) bool; for a crowd region the union is the detection's own area.

    Returns:
        (P,) float64 IoU, 0 where the boxes do not overlap.
    """
    w = np.minimum(det[:, 2] + det[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(det[:, 0], gt[:, 0])
    h = np.minimum(det[:, 3] + det[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(det[:, 1], gt[:, 1])
    overlap = (w > 0) & (h > 0)
    inter = np.where(overlap, w * h, 0.0)
    det_area = det[:, 2] * det[:, 3]
    union = np.where(crowd, det_area, det_area + gt[:, 2] * gt[:, 3] - inter)
    iou = np.zeros(len(det))
    np.divide(inter, union, out=iou, where=overlap)
    return iou


def _greedy_match(
    pair_det: np.ndarray, pair_gt: np.ndarray, shareable: np.ndarray, n_det: int, n_gt: int
) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools' greedy matching, resolved in vectorised rounds.

    pycocotools visits detections by decreasing score and gives each the most preferred ground truth still
    free. Here every unresolved detection proposes its most preferred free ground truth at once; a proposal is
    final when no earlier (higher-scored) unresolved detection still has that ground truth as a candidate (or
    the ground truth is a crowd region, which any number of detections may share). Then no earlier detection can
    take it, and everything the detection prefers is already taken, so the choice is the one the sequential loop
    makes. The earliest unresolved detection of each image and category always qualifies, so every round makes
    progress; with tiny objects two or three rounds resolve nearly everything.

    Args:
        pair_det: (P,) detection of each candidate pair, ascending (score order), the pairs of one detection
            from most to least preferred.
        pair_gt: (P,) ground truth of each pair.
        shareable: (n_gt,) bool, crowd regions.
        n_det: Number of detections (bound of ``pair_det``).
        n_gt: Number of ground truths (bound of ``pair_gt``).

    Returns:
        ``(det, gt)`` int64 arrays of the matched pairs.
    """
    matched_det: list[np.ndarray] = []
    matched_gt: list[np.ndarray] = []
    det_done = np.zeros(n_det, dtype=bool)
    gt_taken = np.zeros(n_gt, dtype=bool)
    never = np.iinfo(np.int64).max
    earliest = np.full(n_gt, never, dtype=np.int64)
    while pair_det.size:
        first = np.ones(pair_det.size, dtype=bool)
        first[1:] = pair_det[1:] != pair_det[:-1]
        top_det, top_gt = pair_det[first], pair_gt[first]
        np.minimum.at(earliest, pair_gt, pair_det)
        final = shareable[top_gt] | (earliest[top_gt] == top_det)
        earliest[pair_gt] = never
        top_det, top_gt = top_det[final], top_gt[final]
        matched_det.append(top_det)
        matched_gt.append(top_gt)
        det_done[top_det] = True
        gt_taken[top_gt[~shareable[top_gt]]] = True
        alive = ~det_done[pair_det] & ~gt_taken[pair_gt]
        pair_det, pair_gt = pair_det[alive], pair_gt[alive]
    if not matched_det:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(matched_det), np.concatenate(matched_gt)


def _segment_cumsum(cumsum: np.ndarray, rows: np.ndarray, start: int) -> np.ndarray:
    """A running total restarted at ``start``: ``cumsum[rows]`` minus the total before ``start``."""
    return cumsum[rows] - (cumsum[start - 1] if start > 0 else 0)


def _mean_defined(values: np.ndarray) -> float:
    defined = values[values > -1]
    return float(np.mean(defined)) if defined.size else -1.0


def _scatter(values: np.ndarray, rows: np.ndarray, size: int, fill: int) -> np.ndarray:
    """``values`` of some rows put back in input order; the other rows get ``fill``."""
    out = np.full(size, fill, dtype=values.dtype)
    out[rows] = values
    return out


class MatchStatus(enum.IntEnum):
    """What the evaluator made of one detection or ground truth (:meth:`AITODEval.matching`).

    ``MATCHED``: a true positive (detection) or a found object (ground truth). ``UNMATCHED``: a false positive
    (detection) or a miss (ground truth). ``IGNORED``: counted neither way (crowd regions, ground truth outside
    the area range and the detections matched to them, unmatched detections outside the range).
    ``NOT_EVALUATED``: its image is not evaluated, or the detection is beyond ``max_dets[-1]`` of its image and
    category.
    """

    NOT_EVALUATED = 0
    MATCHED = 1
    UNMATCHED = 2
    IGNORED = 3


@dataclass(frozen=True, eq=False)
class Matching:
    """Per-row outcome of the evaluator's matching at one IoU threshold and area range.

    Attributes:
        iou: The IoU threshold.
        area: The area-range label.
        det_status: (N_det,) int8 :class:`MatchStatus` of each detection, in the input order of :class:`Detections`.
        det_gt: (N_det,) int64 ground-truth row (input order of :class:`GroundTruth`) the detection matched,
            -1 for none.
        gt_status: (N_gt,) int8 :class:`MatchStatus` of each ground truth.
        gt_det: (N_gt,) int64 detection row that matched it, -1 for none (and for crowd regions, which many
            detections may share).
        det_image: (N_det,) int64 image position of each detection (``GroundTruth.img_ids`` order).
        gt_image: (N_gt,) int64 image position of each ground truth.
    """

    iou: float
    area: str
    det_status: np.ndarray
    det_gt: np.ndarray
    gt_status: np.ndarray
    gt_det: np.ndarray
    det_image: np.ndarray
    gt_image: np.ndarray

    def counts_per_image(self, n_images: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """True positives, false positives and misses of every image.

        Args:
            n_images: Number of images (``len(GroundTruth.img_ids)``).

        Returns:
            ``(tp, fp, fn)``: three (n_images,) int64 arrays.
        """
        def count(image: np.ndarray, status: np.ndarray, which: MatchStatus) -> np.ndarray:
            return np.bincount(image[status == which], minlength=n_images).astype(np.int64)

        return (count(self.det_image, self.det_status, MatchStatus.MATCHED),
                count(self.det_image, self.det_status, MatchStatus.UNMATCHED),
                count(self.gt_image, self.gt_status, MatchStatus.UNMATCHED))  # fmt: skip


class AITODEval:
    """COCO-style box evaluation with AI-TOD's parameters, equal to pycocotools configured with them.

    Semantics (all as pycocotools' ``COCOeval`` with ``iouType='bbox'``, ``useCats=1``):

    * Per image and category, detections are ranked by score (stable: ties keep input order) and only the
      first ``max_dets[-1]`` are matched; smaller ``max_dets`` truncate those matched lists.
    * IoU uses the boxes (not ``area``); for a crowd ground truth the union is the detection's area.
    * A ground truth is ignored when it is a crowd region or its ``area`` lies outside the area range (both ends
      inclusive). At each IoU threshold, each detection in score order takes the free ground truth of highest
      IoU >= threshold, preferring non-ignored ones; among equal IoUs the later ground truth (input order) wins.
      Crowd regions stay free. A detection matched to an ignored ground truth is ignored, and so is an unmatched
      detection whose box area (w * h) lies outside the area range.
    * Ranking for precision / recall merges every image's (truncated) list by score, stable in image-id order.
      A category without any non-ignored ground truth in an area range gets -1 there.
    * Ground truth with annotation id 0 behaves as in pycocotools, which uses the id as its "matched" flag:
      a detection matched to it is then counted as unmatched.

    Args:
        gt: The ground truth.
        dets: The detections (validated against ``gt``).
        params: Evaluation parameters. Defaults to AI-TOD's.
        img_ids: Evaluate only these image ids (pycocotools' ``params.imgIds``). Defaults to every image.
        log: Progress messages. Defaults to this module's ``logger.debug``.

    Attributes:
        precision: (T, R, K, A, M) float64 after :meth:`accumulate`: interpolated precision per IoU threshold,
            recall point, category, area range and max_dets; -1 where undefined (pycocotools'
            ``eval['precision']``).
        recall: (T, K, A, M) float64 after :meth:`accumulate` (pycocotools' ``eval['recall']``).

    Example:
        >>> gt = GroundTruth.from_coco({"images": [{"id": 7}], "categories": [{"id": 1, "name": "ship"}],
        ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 10, 10], "area": 100}]})
        >>> dets = Detections.from_coco([{"image_id": 7, "category_id": 1, "bbox": [10, 10, 10, 9], "score": 1},
        ...                              {"image_id": 7, "category_id": 1, "bbox": [50, 50, 9, 9], "score": 2}], gt)
        >>> stats = AITODEval(gt, dets).run()
        >>> stats["AP50"], stats["AR1500"]   # FP ranked first: precision 1/2 at recall 1; IoU 0.9 matches up to 0.9
        (0.5, 0.9)
    """

    def __init__(
        self,
        gt: GroundTruth,
        dets: Detections,
        params: AITODParams | None = None,
        *,
        img_ids: Sequence[int] | None = None,
        log: Callable[[str], None] = logger.debug,
    ) -> None:
        self.gt = gt
        self.dets = dets
        self.params = params if params is not None else AITODParams()
        self.log = log
        if img_ids is None:
            self._img_mask = np.ones(len(gt.img_ids), dtype=bool)
        else:
            wanted = np.unique(np.asarray(list(img_ids), dtype=np.int64))
            pos = _index_of(wanted, gt.img_ids, "img_ids", "entry", "image id", "listed image")
            self._img_mask = np.zeros(len(gt.img_ids), dtype=bool)
            self._img_mask[pos] = True
        self._matches: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] | None = None
        self.precision: np.ndarray | None = None
        self.recall: np.ndarray | None = None
        self._stats: dict[str, float] | None = None

    # -- evaluate ------------------------------------------------------------------------------

    def evaluate(self) -> None:
        """Rank, truncate and match detections per image and category, for every area range and IoU threshold."""
        p, gt, dt = self.params, self.gt, self.dets
        n_cat = len(gt.cat_ids)

        # Ground truth of the evaluated images, grouped by (image, category), input order inside a group.
        g_keep = np.flatnonzero(self._img_mask[gt.image])
        g_order = g_keep[np.lexsort((g_keep, gt.category[g_keep], gt.image[g_keep]))]
        self._g_group = gt.image[g_order] * n_cat + gt.category[g_order]
        self._g_boxes = gt.boxes[g_order]
        self._g_areas = gt.areas[g_order]
        self._g_crowd = gt.iscrowd[g_order]
        self._g_category = gt.category[g_order]
        self._g_nonzero_id = gt.ann_ids[g_order] != 0
        self._g_input = g_order  # row of each grouped ground truth in the input (for matching())

        # Detections grouped the same way, by decreasing score inside a group (stable), cut to max_dets[-1].
        d_keep = np.flatnonzero(self._img_mask[dt.image])
        d_order = d_keep[np.lexsort((d_keep, -dt.scores[d_keep], dt.category[d_keep], dt.image[d_keep]))]
        d_group = dt.image[d_order] * n_cat + dt.category[d_order]
        starts = np.searchsorted(d_group, d_group, side="left")
        rank = np.arange(len(d_group)) - starts
        cut = rank < p.max_dets[-1]
        d_order, d_group, rank = d_order[cut], d_group[cut], rank[cut]
        self._d_group = d_group
        self._d_rank = rank
        self._d_input = d_order  # row of each kept detection in the input (for matching())
        self._d_image = dt.image[d_order]
        self._d_category = dt.category[d_order]
        self._d_scores = dt.scores[d_order]
        d_boxes = dt.boxes[d_order]
        self._d_areas = d_boxes[:, 2] * d_boxes[:, 3]
        self.log(f"evaluate: {len(g_order)} ground truths, {len(d_order)} detections after the max_dets cut")

        pair_det, pair_gt, pair_iou = self._candidate_pairs(d_boxes)
        self.log(f"evaluate: {len(pair_det)} candidate pairs at IoU >= {min(p.iou_thrs)}")

        n_det, n_gt = len(d_group), len(g_order)
        thresholds = [min(t, _IOU_CAP) for t in p.iou_thrs]
        self._matches = {}
        for a, (lo, hi) in enumerate(p.area_rngs):
            g_ignored = self._g_crowd | (self._g_areas < lo) | (self._g_areas > hi)
            # Preference of each detection: non-ignored first, then higher IoU, then the later ground truth.
            order = np.lexsort((-pair_gt, -pair_iou, g_ignored[pair_gt], pair_det))
            a_det, a_gt, a_iou = pair_det[order], pair_gt[order], pair_iou[order]
            for t, thr in enumerate(thresholds):
                sel = a_iou >= thr
                self._matches[a, t] = _greedy_match(a_det[sel], a_gt[sel], self._g_crowd, n_det, n_gt)
        self.precision = self.recall = None
        self._stats = None

    def _candidate_pairs(self, d_boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every (detection, ground truth) pair of the same image and category with IoU >= the lowest threshold.

        Returns:
            ``(det, gt, iou)``: (P,) int64, (P,) int64, (P,) float64.
        """
        lowest = min(min(self.params.iou_thrs), _IOU_CAP)
        first = np.searchsorted(self._d_group, self._g_group, side="left")
        count = np.searchsorted(self._d_group, self._g_group, side="right") - first
        bounds = np.concatenate(([0], np.cumsum(count)))
        out_det, out_gt, out_iou = [], [], []
        g_start = 0
        n_gt = len(self._g_group)
        while g_start < n_gt:
            # Whole ground truths per chunk, about _PAIR_CHUNK pairs each.
            g_stop = int(np.searchsorted(bounds, bounds[g_start] + _PAIR_CHUNK, side="right")) - 1
            g_stop = min(max(g_stop, g_start + 1), n_gt)
            counts = count[g_start:g_stop]
            total = int(counts.sum())
            if total:
                pg = np.repeat(np.arange(g_start, g_stop), counts)
                offsets = np.arange(total) - np.repeat(bounds[g_start:g_stop] - bounds[g_start], counts)
                pd = np.repeat(first[g_start:g_stop], counts) + offsets
                iou = _bbox_iou(d_boxes[pd], self._g_boxes[pg], self._g_crowd[pg])
                keep = iou >= lowest
                out_det.append(pd[keep])
                out_gt.append(pg[keep])
                out_iou.append(iou[keep])
            g_start = g_stop
        if not out_det:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty.copy(), np.zeros(0)
        return np.concatenate(out_det), np.concatenate(out_gt), np.concatenate(out_iou)

    # -- matching ------------------------------------------------------------------------------

    def matching(self, iou: float = 0.5, area: str = "all") -> Matching:
        """The evaluator's own matching at one IoU threshold and area range, per input row.

        What :meth:`accumulate` counts at the largest ``max_dets``: the true positives are exactly the ones behind
        ``recall[t, k, a, -1]`` (per category, ``TP / (TP + FN)``), and the false positives those behind its
        precision curve.

        Args:
            iou: An IoU threshold of the parameters (``params.iou_thrs``), e.g. 0.5.
            area: An area-range label of the parameters (``params.area_labels``), e.g. ``"all"``.

        Returns:
            The status of every detection and ground truth (see :class:`Matching`).

        Raises:
            AITODStateError: :meth:`evaluate` has not run.
            ValueError: ``iou`` or ``area`` is not one of the parameters'.
        """
        if self._matches is None:
            raise AITODStateError("matching() needs evaluate() first")
        p = self.params
        hits = np.flatnonzero(np.isclose(np.asarray(p.iou_thrs), iou, rtol=0, atol=1e-12))
        if not hits.size:
            raise ValueError(f"iou must be one of the evaluator's thresholds {p.iou_thrs}, got {iou}")
        if area not in p.area_labels:
            raise ValueError(f"area must be one of the evaluator's area labels {p.area_labels}, got {area!r}")
        a = p.area_labels.index(area)
        lo, hi = p.area_rngs[a]
        md, mg = self._matches[a, int(hits[0])]
        g_ignored = self._g_crowd | (self._g_areas < lo) | (self._g_areas > hi)
        # The rules of accumulate(): a match to an ignored ground truth is ignored; a match to a ground truth
        # with id 0 is not credited (pycocotools' flag is the id); an uncredited detection outside the range
        # is ignored, any other is a false positive.
        credited = self._g_nonzero_id[mg] & ~g_ignored[mg]
        n_det, n_gt = len(self._d_group), len(self._g_group)
        det_status = np.full(n_det, MatchStatus.UNMATCHED, dtype=np.int8)
        outside = (self._d_areas < lo) | (self._d_areas > hi)
        det_status[outside] = MatchStatus.IGNORED
        det_status[md[g_ignored[mg]]] = MatchStatus.IGNORED
        det_status[md[credited]] = MatchStatus.MATCHED
        gt_status = np.where(g_ignored, MatchStatus.IGNORED, MatchStatus.UNMATCHED).astype(np.int8)
        gt_status[mg[credited]] = MatchStatus.MATCHED
        det_gt = np.full(n_det, -1, dtype=np.int64)
        det_gt[md] = self._g_input[mg]
        sole = ~self._g_crowd[mg]  # a crowd region may be shared: it names no single detection
        gt_det = np.full(n_gt, -1, dtype=np.int64)
        gt_det[mg[sole]] = self._d_input[md[sole]]
        return Matching(
            iou=float(p.iou_thrs[int(hits[0])]),
            area=area,
            det_status=_scatter(det_status, self._d_input, len(self.dets.scores), MatchStatus.NOT_EVALUATED),
            det_gt=_scatter(det_gt, self._d_input, len(self.dets.scores), -1),
            gt_status=_scatter(gt_status, self._g_input, len(self.gt.ann_ids), MatchStatus.NOT_EVALUATED),
            gt_det=_scatter(gt_det, self._g_input, len(self.gt.ann_ids), -1),
            det_image=self.dets.image,
            gt_image=self.gt.image,
        )

    # -- accumulate ----------------------------------------------------------------------------

    def accumulate(self) -> None:
        """Precision / recall per IoU threshold, recall point, category, area range and max_dets.

        Raises:
            AITODStateError: :meth:`evaluate` has not run.

        Notes:
            Interpolated precision only changes at true positives, so each curve is built from the true
            positives alone (their rank among the non-ignored detections gives the false positives before them);
            this is exactly pycocotools' sampled curve without walking every detection per threshold.
        """
        if self._matches is None:
            raise AITODStateError("accumulate() needs evaluate() first")
        p = self.params
        n_thr, n_rec, n_area, n_md = len(p.iou_thrs), len(p.rec_thrs), len(p.area_rngs), len(p.max_dets)
        n_cat = len(self.gt.cat_ids)
        precision = -np.ones((n_thr, n_rec, n_cat, n_area, n_md))
        recall = -np.ones((n_thr, n_cat, n_area, n_md))
        rec_thrs = np.asarray(p.rec_thrs)
        eps = np.spacing(1)

        # Ranking of every kept detection within its category: by score, ties in image-id order then rank.
        n_det = len(self._d_scores)
        acc_order = np.lexsort((self._d_rank, self._d_image, -self._d_scores, self._d_category))
        acc_pos = np.empty(n_det, dtype=np.int64)
        acc_pos[acc_order] = np.arange(n_det)
        cat_sorted = self._d_category[acc_order]
        seg_start = np.searchsorted(cat_sorted, np.arange(n_cat), side="left")
        rank_sorted = self._d_rank[acc_order]
        areas_sorted = self._d_areas[acc_order]

        for a, (lo, hi) in enumerate(p.area_rngs):
            g_ignored = self._g_crowd | (self._g_areas < lo) | (self._g_areas > hi)
            npig = np.bincount(self._g_category[~g_ignored], minlength=n_cat)
            d_outside = (self._d_areas < lo) | (self._d_areas > hi)
            outside_sorted = (areas_sorted < lo) | (areas_sorted > hi)
            # Matched detections of each threshold in ranking order (shared by every max_dets).
            ranked = []
            for t in range(n_thr):
                md, mg = self._matches[a, t]
                order = np.argsort(acc_pos[md], kind="stable")
                ranked.append((md[order], mg[order]))
            for m, max_det in enumerate(p.max_dets):
                # Before matching is taken into account, every kept in-range detection counts as a false positive.
                base = np.concatenate(([0], np.cumsum((rank_sorted < max_det) & ~outside_sorted)))
                for t in range(n_thr):
                    md, mg = ranked[t]
                    valid = self._d_rank[md] < max_det
                    md, mg = md[valid], mg[valid]
                    pos = acc_pos[md]
                    credited = self._g_nonzero_id[mg]  # pycocotools' "matched" flag is the ground truth's id
                    gt_ign = g_ignored[mg]
                    outside = d_outside[md]
                    is_tp = credited & ~gt_ign
                    is_fp = ~credited & ~gt_ign & ~outside
                    cum_tp = np.cumsum(is_tp)
                    cum_fp = np.cumsum(is_fp)
                    cum_in = np.cumsum(~outside)
                    cat_of = self._d_category[md]
                    bounds = np.searchsorted(cat_of, np.arange(n_cat + 1), side="left")
                    for k in range(n_cat):
                        if npig[k] == 0:
                            continue
                        s, e = bounds[k], bounds[k + 1]
                        rows = s + np.flatnonzero(is_tp[s:e])
                        n_tp = len(rows)
                        recall[t, k, a, m] = n_tp / npig[k]
                        if n_tp == 0:
                            precision[t, :, k, a, m] = 0.0
                            continue
                        # False positives up to each true positive: in-range kept detections of this category
                        # ranked at or before it, minus the matched ones among them, plus those that are FPs.
                        fp = (base[pos[rows] + 1] - base[seg_start[k]]
                              - _segment_cumsum(cum_in, rows, s) + _segment_cumsum(cum_fp, rows, s))  # fmt: skip
                        tp = _segment_cumsum(cum_tp, rows, s).astype(np.float64)
                        rc = tp / npig[k]
                        pr = tp / (fp.astype(np.float64) + tp + eps)
                        pr = np.maximum.accumulate(pr[::-1])[::-1]
                        idx = np.searchsorted(rc, rec_thrs, side="left")
                        inside = idx < n_tp
                        q = np.zeros(n_rec)
                        q[inside] = pr[idx[inside]]
                        precision[t, :, k, a, m] = q
        self.precision, self.recall = precision, recall
        self._stats = None

    # -- summarize -----------------------------------------------------------------------------

    def _value(self, figure: Figure, cat: int | None = None) -> float:
        """The mean of the defined (> -1) entries of ``figure``'s slice; -1 when the parameters lack it."""
        p = self.params
        max_det = figure.max_dets or (1500 if 1500 in p.max_dets else p.max_dets[-1])
        if figure.area not in p.area_labels or max_det not in p.max_dets:
            return -1.0
        a, m = p.area_labels.index(figure.area), p.max_dets.index(max_det)
        arr = self.precision if figure.ap else self.recall
        if figure.iou is not None:
            hits = np.flatnonzero(np.isclose(np.asarray(p.iou_thrs), figure.iou, rtol=0, atol=1e-12))
            if not hits.size:
                return -1.0
            arr = arr[hits]
        if figure.ap:
            sub = arr[:, :, :, a, m] if cat is None else arr[:, :, cat, a, m]
        else:
            sub = arr[:, :, a, m] if cat is None else arr[:, cat, a, m]
        return _mean_defined(sub)

    def summarize(self) -> dict[str, float]:
        """The reported figures (:data:`FIGURES`), as fractions in [0, 1] (-1 where undefined).

        Each is a slice of ``precision`` (T, R, K, A, M) or ``recall`` (T, K, A, M) averaged over its defined
        (> -1) entries: AP and AR over all thresholds unless the figure names one (AP50, AP75), at max_dets
        1500 unless it names another (AR100, AR300), for its area range.

        (pycocotools' own ``summarize()`` reads AP at max_dets 100 and cannot be used with these parameters.)

        Returns:
            ``{key: value}`` for every key of :data:`REPORT_KEYS`.

        Raises:
            AITODStateError: :meth:`accumulate` has not run.
        """
        if self.precision is None or self.recall is None:
            raise AITODStateError("summarize() needs accumulate() first")
        self._stats = {figure.key: self._value(figure) for figure in FIGURES}
        self.log("summarize: " + ", ".join(f"{k}={v:.4f}" for k, v in self._stats.items()))
        return dict(self._stats)

    def stats_as_dict(self) -> dict[str, float]:
        """The figures of the last :meth:`summarize` (keys of :data:`REPORT_KEYS`).

        Raises:
            AITODStateError: :meth:`summarize` has not run.
        """
        if self._stats is None:
            raise AITODStateError("stats_as_dict() needs summarize() first")
        return dict(self._stats)

    def per_class(self) -> dict[str, dict[str, float]]:
        """Per-category precision figures (keys of :data:`PER_CLASS_KEYS`), keyed by category name.

        A name shared by several categories is suffixed with its id. -1 where undefined (the category has
        no non-ignored ground truth in that area range).

        Raises:
            AITODStateError: :meth:`accumulate` has not run.
        """
        if self.precision is None:
            raise AITODStateError("per_class() needs accumulate() first")
        names = self.gt.cat_names
        out: dict[str, dict[str, float]] = {}
        for k, (cat_id, name) in enumerate(zip(self.gt.cat_ids, names, strict=True)):
            key = name if names.count(name) == 1 else f"{name} (id {int(cat_id)})"
            out[key] = {figure.key: self._value(figure, cat=k) for figure in FIGURES if figure.per_class}
        return out

    def run(self) -> dict[str, float]:
        """``evaluate()``, ``accumulate()`` and ``summarize()``; returns the summary."""
        self.evaluate()
        self.accumulate()
        return self.summarize()

    def report(self) -> dict[str, Any]:
        """The summary plus ``per_class`` (what ``hsfpn-repro eval`` writes)."""
        stats = self.stats_as_dict()
        return {**stats, "per_class": self.per_class()}


# ---------------------------------------------------------------------------------------------
# Files in, report out
# ---------------------------------------------------------------------------------------------


def write_report(report: dict[str, Any], path: Path) -> None:
    """Write a report as indented JSON, atomically."""
    write_json(path, report, indent=2)


def evaluate_files(
    ann: Path,
    dets: Path,
    *,
    out: Path | None = None,
    params: AITODParams | None = None,
    log: Callable[[str], None] = logger.debug,
    area_from_box: bool = False,
    note: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Evaluate a detections file against a COCO-format ground-truth file with AI-TOD's parameters.

    Args:
        ann: Ground-truth JSON (COCO instances format; see :meth:`GroundTruth.from_coco`).
        dets: Detections JSON (COCO results list, or ``{"annotations": [...]}``; see :meth:`Detections.from_coco`).
        out: Where to write the report as JSON (atomically). Defaults to not writing it.
        params: Evaluation parameters. Defaults to AI-TOD's.
        log: Progress messages. Defaults to ``logger.debug``.
        area_from_box: Use each ground-truth box's w x h as its area (for jsons whose ``area`` is something else).
        note: Receives one line when areas are far from their box's w x h (:meth:`GroundTruth.area_note`).

    Returns:
        ``{"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm", "AR100", "AR300", "AR1500", "ARvt", "ARt", "ARs",
        "ARm": float, "per_class": {name: {"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm": float}}}``;
        fractions in [0, 1], -1 where undefined.

    Raises:
        AITODInputError: Missing or empty file, wrong JSON shape, or a bad entry (named by index and field).
    """
    gt = GroundTruth.from_file(ann)
    line = gt.area_note(str(ann), from_box=area_from_box)
    if line is not None and note is not None:
        note(line)
    if area_from_box:
        gt = gt.with_box_areas()
    detections = Detections.from_file(dets, gt)
    log(f"loaded {len(gt.ann_ids)} ground truths on {len(gt.img_ids)} images, {len(detections.scores)} detections")
    evaluator = AITODEval(gt, detections, params, log=log)
    evaluator.run()
    report = evaluator.report()
    if out is not None:
        write_report(report, out)
    return report
