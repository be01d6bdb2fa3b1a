"""Merging window detections into full-image detections: one merge function for ``detect`` and ``merge``.

The merge is class-wise greedy non-maximum suppression by default, with non-maximum merging (as SAHI's NMM:
a kept box absorbs the boxes it suppressed) and intersection over the smaller box (IoS) as options, and a cap
on detections per image. It needs numpy and numba only (``hsfpn-data merge`` must not load torch).

Notes:
    Semantics, for every option: boxes are visited by descending score; ties keep the input order (a stable
    sort), so equal inputs always give equal outputs. A box is suppressed when its match value with an
    already kept box of the same image (and class, unless class-agnostic) is strictly greater than the
    threshold, as in DOTA_devkit's ``py_cpu_nms``. With ``pixel_inclusive`` areas are
    ``(x2 - x1 + 1) * (y2 - y1 + 1)`` and intersections get the same ``+ 1`` (DOTA_devkit's convention).

    Speed: the result equals the sequential greedy loop, but nothing is sequential over boxes. Boxes are
    bucketed in grids of square cells, one grid per size level (cell side ``base * 2**level`` at least the
    box's side), so each box is compared only with the boxes of neighbouring cells (within a level in the
    compiled loop of :mod:`dotamini10.merge_kernel`, across levels in numpy); the matching pairs form
    a sparse graph, and the greedy decisions are taken in rounds over that graph: a box whose higher-ranked
    neighbours are all suppressed is kept, a box with a kept higher-ranked neighbour is suppressed. Rounds
    are as many as the longest chain of overlapping boxes, a handful for window duplicates. The first level's
    cell is sized from the boxes themselves (``adaptive_base``).

    Window names are DOTA_devkit's ``{image}__{rate}__{left}___{up}``, which the builder writes; a window
    coordinate ``v`` maps to ``(v + offset) / rate`` in the full image.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .io import atomic_write_text

class MergeError(DatasetError):
    """Bad merge input: malformed result lines, window names or options."""


class MergeMethod(enum.Enum):
    """What happens to a box that matches a higher-scored kept box."""

    NMS = "nms"  # it is dropped
    NMM = "nmm"  # it is merged into the kept box (union of the boxes; the kept box's score and class)


class MatchMetric(enum.Enum):
    """How two boxes are compared."""

    IOU = "iou"  # intersection over union
    IOS = "ios"  # intersection over the smaller box's area


@dataclass(frozen=True)
class MergeOptions:
    """How detections are merged.

    Args:
        method: NMS (default) or NMM.
        metric: IoU (default) or IoS.
        threshold: A box matches a kept one when the metric is strictly above this. Defaults to 0.5.
        class_agnostic: Match boxes of different classes too. Defaults to False.
        max_per_image: Keep at most this many detections per image (the highest scores). None: no cap.
        pixel_inclusive: DOTA_devkit's ``+ 1`` areas and intersections. Defaults to False.
    """

    method: MergeMethod = MergeMethod.NMS
    metric: MatchMetric = MatchMetric.IOU
    threshold: float = 0.5
    class_agnostic: bool = False
    max_per_image: int | None = None
    pixel_inclusive: bool = False

    def __post_init__(self) -> None:
        if not (0.0 <= self.threshold <= 1.0):
            raise MergeError(f"threshold: expected a value in [0, 1], got {self.threshold}")
        if self.max_per_image is not None and self.max_per_image < 1:
            raise MergeError(f"max_per_image: expected a positive count, got {self.max_per_image}")

    def to_json(self) -> dict[str, object]:
        """The options as plain JSON values."""
        return dict(method=self.method.value, metric=self.metric.value, threshold=self.threshold,
                    class_agnostic=self.class_agnostic, max_per_image=self.max_per_image,
                    pixel_inclusive=self.pixel_inclusive)


# DOTA_devkit's ResultMerge (mergebyrec): py_cpu_nms at 0.1 with pixel-inclusive areas.
DEVKIT_OPTIONS = MergeOptions(threshold=0.1, pixel_inclusive=True)


@dataclass
class Merged:
    """The merge's result, ordered by image, then by descending score (ties in input order).

    Attributes:
        index: For each output box, the input box it comes from (NMS: the kept box; NMM: the absorbing box),
            shape (K,), int64.
        boxes: ``[x1, y1, x2, y2]``, shape (K, 4), float64 (NMM: the union of the merged boxes).
        scores: Shape (K,).
        labels: Shape (K,), int64.
        images: Shape (K,), int64.
    """

    index: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.index)


def merge_detections(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray | None = None,
    images: np.ndarray | None = None,
    *,
    options: MergeOptions = MergeOptions(),
) -> Merged:
    """Merge full-image detections of one or many images (rules in the module notes).

    Args:
        boxes: ``[x1, y1, x2, y2]`` in full-image pixels, shape (N, 4).
        scores: Shape (N,).
        labels: Class index of each box, shape (N,); None: all one class.
        images: Image index of each box, shape (N,); None: all one image.
        options: The merge rule. Defaults to class-wise NMS at IoU 0.5.

    Returns:
        The kept (or merged) detections.

    Raises:
        MergeError: Inputs of mismatched lengths, non-finite values or boxes with ``x2 < x1`` / ``y2 < y1``.
    """
    boxes, scores, labels, images = _check_inputs(boxes, scores, labels, images)
    groups = images if options.class_agnostic else _pair_ids(images, labels)
    first, second = match_pairs(boxes, groups, metric=options.metric, threshold=options.threshold,
                                pixel_inclusive=options.pixel_inclusive)
    hi, lo = _orient(first, second, scores)
    kept = greedy_decisions(len(boxes), hi, lo)
    out_boxes = boxes
    if options.method is MergeMethod.NMM:
        out_boxes = _absorb(boxes, scores, kept, hi, lo)
    index = _ordered(np.flatnonzero(kept), scores, images)
    if options.max_per_image is not None:
        index = _cap(index, images, options.max_per_image)
    return Merged(index=index, boxes=out_boxes.take(index, axis=0), scores=scores.take(index),
                  labels=labels.take(index), images=images.take(index))


def _check_inputs(boxes, scores, labels, images) -> tuple[np.ndarray, ...]:
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(boxes)
    labels = np.zeros(n, dtype=np.int64) if labels is None else np.asarray(labels, dtype=np.int64).reshape(-1)
    images = np.zeros(n, dtype=np.int64) if images is None else np.asarray(images, dtype=np.int64).reshape(-1)
    if not (len(scores) == len(labels) == len(images) == n):
        raise MergeError(f"boxes, scores, labels and images differ in length: {n}, {len(scores)}, "
                         f"{len(labels)}, {len(images)}")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise MergeError("boxes and scores must be finite numbers")
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if len(bad):
        raise MergeError(f"box {int(bad[0])} has x2 < x1 or y2 < y1: {boxes[bad[0]].tolist()}")
    return boxes, scores, labels, images


def _pair_ids(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    # One id per (image, class), compact so that the grid keys stay small.
    lo_i, lo_l = int(images.min(initial=0)), int(labels.min(initial=0))
    span = int(labels.max(initial=0)) - lo_l + 1
    ids = (images - lo_i) * span + (labels - lo_l)
    if int(ids.max(initial=0)) < 4 * len(ids) + 1024:  # small range: no sort needed
        return ids
    return np.unique(ids, return_inverse=True)[1].reshape(-1)


def _orient(first: np.ndarray, second: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # The higher-ranked box of a pair: higher score, or the same score and earlier in the input.
    s1, s2 = scores.take(first), scores.take(second)
    first_higher = (s1 > s2) | ((s1 == s2) & (first < second))
    return np.where(first_higher, first, second), np.where(first_higher, second, first)


# ---------------------------------------------------------------------------------------------------------------
# Matching pairs through size-level grids
# ---------------------------------------------------------------------------------------------------------------


def match_pairs(
    boxes: np.ndarray,
    groups: np.ndarray,
    *,
    metric: MatchMetric = MatchMetric.IOU,
    threshold: float = 0.5,
    pixel_inclusive: bool = False,
    base: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of boxes of the same group whose match value is strictly above ``threshold``.

    Args:
        boxes: ``[x1, y1, x2, y2]``, shape (N, 4), float64.
        groups: Group id of each box (boxes of different groups never match), shape (N,), int64 >= 0.
        metric: IoU or IoS.
        threshold: The strict lower bound of a match.
        pixel_inclusive: ``+ 1`` areas and intersections.
        base: First level's cell side, a power of two. Defaults to :func:`adaptive_base`.

    Returns:
        ``(i, j)``, each shape (P,), every matching unordered pair once, in no particular order.

    Notes:
        Two boxes can overlap only if the centre of each lies within one cell of the other's, in the grid of
        the larger box's level (both sides are at most that cell's side). A level meets itself through the
        cell itself and four forward neighbours, a smaller level meets a larger one through all nine cells of
        the larger level's grid (or, when the larger boxes are few, 5 x 5 cells of the smaller level's grid).
        For IoU, ``IoU <= smaller side max / larger side max``, so levels too far apart are never compared, and
        ``IoU > t`` needs the centres closer than ``(1 - t)`` times the larger width (height), so the cells
        shrink by that factor.
    """
    if pixel_inclusive:  # +1 areas and intersections are plain ones of boxes one pixel larger
        boxes = boxes + np.array([0.0, 0.0, 1.0, 1.0])
    if len(boxes) < 2:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    frame = _Frame(boxes, groups)
    if base is None:
        base = _base_of(frame.side)
    level = _levels_of(frame.side, base)
    members = {int(v): np.flatnonzero(level == v) for v in np.flatnonzero(np.bincount(level))}
    gap = _level_gap(metric, threshold)
    shrink = _cell_factor(metric, threshold)
    grids = {lv: _Grid(frame, base * 2.0**lv * shrink) for lv in members}
    own = {lv: grids[lv].cells(idx) for lv, idx in members.items()}
    found = [_same_level(own[lb], grids[lb].ncols, metric, threshold) for lb in members]
    for lb, b_idx in members.items():
        for la, a_idx in members.items():
            if not (la < lb and lb - la <= gap):
                continue
            if lb - la == 1 and 3 * len(b_idx) < len(a_idx):
                # Few larger boxes: look them up in the smaller level's grid, two cells around, rather than
                # sorting the many smaller boxes again into the larger level's grid.
                b_fine = grids[la].cells(b_idx)
                found += [_matches(own[la], b_fine, p, q, metric, threshold)
                          for p, q in grids[la].neighbours(own[la], b_fine, radius=2)]
            else:
                a_coarse = grids[lb].cells(a_idx)
                found += [_matches(a_coarse, own[lb], p, q, metric, threshold)
                          for p, q in grids[lb].neighbours(a_coarse, own[lb])]
    if not found:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate([i for i, _ in found]), np.concatenate([j for _, j in found])


def _same_level(cells: _Cells, ncols: int, metric: MatchMetric, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    # Each cell against itself and its four forward neighbours, in the compiled loop (merge_kernel notes).
    from .merge_kernel import same_level_pairs

    a, b = same_level_pairs(cells.keys, cells.cols, cells.areas, ncols, metric is MatchMetric.IOS, threshold)
    return cells.sorted_idx.take(a), cells.sorted_idx.take(b)


def adaptive_base(boxes: np.ndarray) -> float:
    """The grid's base cell: the power of two at or above the 90th percentile of the boxes' larger sides
    (at least 4), so that most boxes share the first level and its cells stay near their size."""
    return _base_of(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]))


def _base_of(side: np.ndarray) -> float:
    k = int(0.9 * (len(side) - 1))
    p90 = float(np.partition(side, k)[k]) if len(side) else 0.0
    return float(2.0 ** math.ceil(math.log2(max(p90, 4.0))))


def size_levels(boxes: np.ndarray, base: float) -> np.ndarray:
    """Grid level of each box: the smallest ``l >= 0`` with ``max(w, h) <= base * 2**l`` (exact, via frexp)."""
    return _levels_of(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]), base)


def _levels_of(side: np.ndarray, base: float) -> np.ndarray:
    mantissa, exponent = np.frexp(np.maximum(side / base, 1.0))  # side / base is exact: base is 2**k
    return (exponent - (mantissa == 0.5)).astype(np.int64)


def _level_gap(metric: MatchMetric, threshold: float) -> float:
    # A box of level la < lb has a max side below 2 ** (1 - (lb - la)) times that of a box of level lb, and IoU
    # never exceeds that ratio: a match needs lb - la < 1 - log2(threshold). Powers of two are exact in floating
    # point, so the default 0.5 compares adjacent levels only.
    if metric is not MatchMetric.IOU or threshold <= 0.0:
        return math.inf
    return math.ceil(1.0 - math.log2(threshold)) - 1


def _matches(a: _Cells, b: _Cells, p: np.ndarray, q: np.ndarray, metric: MatchMetric,
             threshold: float) -> tuple[np.ndarray, np.ndarray]:
    # Candidates index the cell-sorted copies of the coordinates, so that neighbouring cells sit close in
    # memory; only the matches are turned back into input indices.
    (ax1, ay1, ax2, ay2), (bx1, by1, bx2, by2) = a.cols, b.cols
    # Most candidates from neighbouring cells do not even overlap in x: drop them before the full metric.
    iw = np.minimum(ax2.take(p), bx2.take(q)) - np.maximum(ax1.take(p), bx1.take(q))
    keep = np.flatnonzero(iw > 0)
    p, q, iw = p.take(keep), q.take(keep), iw.take(keep)
    ih = np.minimum(ay2.take(p), by2.take(q)) - np.maximum(ay1.take(p), by1.take(q))
    keep = np.flatnonzero(ih > 0)
    p, q = p.take(keep), q.take(keep)
    inter = iw.take(keep) * ih.take(keep)
    area_a, area_b = a.areas.take(p), b.areas.take(q)
    denominator = area_a + area_b - inter if metric is MatchMetric.IOU else np.minimum(area_a, area_b)
    value = np.zeros(len(inter))
    np.divide(inter, denominator, out=value, where=denominator > 0)
    hit = np.flatnonzero(value > threshold)
    return a.sorted_idx.take(p.take(hit)), b.sorted_idx.take(q.take(hit))


def _cell_factor(metric: MatchMetric, threshold: float) -> float:
    # With IoU > t the intersection's width exceeds t times the wider box's, which puts the centres less than
    # (1 - t) * max(w) <= (1 - t) * cell apart (the same for heights): cells that much smaller still hold every
    # match within one cell. Not below 1/8, where the cells' count would outgrow the boxes'.
    if metric is not MatchMetric.IOU or threshold <= 0.0:
        return 1.0
    return max(1.0 - threshold, 0.125)


def pair_metric(a: np.ndarray, b: np.ndarray, metric: MatchMetric) -> np.ndarray:
    """IoU or IoS of box pairs ``a[k]``, ``b[k]`` (plain areas); 0 where the denominator is 0.

    Args:
        a: Boxes, shape (P, 4).
        b: Boxes, shape (P, 4).
        metric: IoU or IoS.

    Returns:
        Shape (P,), float64.
    """
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    denominator = area_a + area_b - inter if metric is MatchMetric.IOU else np.minimum(area_a, area_b)
    out = np.zeros(len(a))
    np.divide(inter, denominator, out=out, where=denominator > 0)
    return out


class _Frame:
    """What every grid of one merge shares: the boxes, their centres (contiguous columns) and extents."""

    def __init__(self, boxes: np.ndarray, groups: np.ndarray) -> None:
        self.boxes, self.groups = boxes, groups
        self.cols = x1, y1, x2, y2 = tuple(np.ascontiguousarray(boxes[:, k]) for k in range(4))
        width, height = x2 - x1, y2 - y1
        self.areas = width * height
        self.side = np.maximum(width, height)
        self.cx = (x1 + x2) * 0.5
        self.cy = (y1 + y2) * 0.5
        self.x_range = (float(self.cx.min()), float(self.cx.max()))
        self.y_range = (float(self.cy.min()), float(self.cy.max()))
        self.groups_count = int(groups.max()) + 1


class _Grid:
    """Square cells of one side; keys pack (group, row, column) into one int64."""

    def __init__(self, frame: _Frame, cell: float) -> None:
        self.frame, self.cell = frame, cell
        # A margin of two cells on each side keeps the neighbours (up to two cells away) of edge cells inside
        # their own group's block of keys.
        self.col0 = math.floor(frame.x_range[0] / cell) - 2
        self.row0 = math.floor(frame.y_range[0] / cell) - 2
        self.ncols = math.floor(frame.x_range[1] / cell) + 3 - self.col0
        self.nrows = math.floor(frame.y_range[1] / cell) + 3 - self.row0
        self.groups_count = frame.groups_count
        if self.groups_count * self.nrows * self.ncols >= 2**62:
            raise MergeError("coordinates span too large a range to merge (more than 2**62 grid cells)")

    def cells(self, idx: np.ndarray) -> _Cells:
        f = self.frame
        col = np.floor(f.cx.take(idx) / self.cell).astype(np.int64) - self.col0
        row = np.floor(f.cy.take(idx) / self.cell).astype(np.int64) - self.row0
        keys = (f.groups.take(idx) * self.nrows + row) * self.ncols + col
        return _Cells(idx, keys, f)

    def neighbours(self, a: _Cells, b: _Cells, *, radius: int = 1):
        """Candidate pairs between two sets of boxes (of two levels) as positions into ``a.sorted_idx`` and
        ``b.sorted_idx``, one array pair at a time: the boxes of ``b`` within ``radius`` cells of each box of ``a``.
        """
        key_space = self.groups_count * self.nrows * self.ncols
        span = range(-radius, radius + 1)
        offsets = [(dy, dx) for dy in span for dx in span]
        if len(b.unique) < len(a.unique):
            # Fewer cells on b's side: look its cells' neighbours up among a's cells (the same pairs, found from
            # the small side; a few large boxes against a million small ones is the common case).
            lookup_a = a.lookup(key_space)
            for dy, dx in offsets:
                theirs, mine = lookup_a(b.unique - (dy * self.ncols + dx))
                yield a.product(mine, theirs, b)
            return
        lookup = b.lookup(key_space)
        for dy, dx in offsets:
            mine, theirs = lookup(a.unique + (dy * self.ncols + dx))
            yield a.product(mine, theirs, b)


class _Cells:
    """Boxes sorted by cell key (indices and a copy of their coordinates), with each occupied cell's start and
    count."""

    def __init__(self, idx: np.ndarray, keys: np.ndarray, frame: _Frame) -> None:
        order = _argsort_keys(keys)
        self.sorted_idx = idx.take(order)
        self.cols = tuple(c.take(self.sorted_idx) for c in frame.cols)
        self.areas = frame.areas.take(self.sorted_idx)
        self.keys = ordered = keys.take(order)
        new = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
        self.unique = ordered.take(new)
        self.start = new
        self.count = np.diff(np.concatenate([new, [len(ordered)]]))

    def lookup(self, key_space: int):
        """A function from cell keys to ``(positions of the occupied ones, their cell index)``.

        A dense table when the key space is small enough (a gather per key), else a binary search.
        """
        if key_space <= max(8 * len(self.unique), 1 << 22):
            # Neighbour keys never leave the key space: every occupied cell has a free margin cell around it.
            table = np.full(key_space, -1, dtype=np.int32 if len(self.unique) < 2**31 else np.int64)
            table[self.unique] = np.arange(len(self.unique))

            def dense(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                cell = table.take(keys)
                mine = np.flatnonzero(cell >= 0)
                return mine, cell.take(mine).astype(np.int64)

            return dense

        def search(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            found = np.minimum(np.searchsorted(self.unique, keys), len(self.unique) - 1)
            mine = np.flatnonzero(self.unique[found] == keys)
            return mine, found[mine]

        return search

    def product(self, mine: np.ndarray, theirs: np.ndarray, other: _Cells) -> tuple[np.ndarray, np.ndarray]:
        """Every (box of my cell ``mine[k]``, box of their cell ``theirs[k]``) pair, as sorted positions."""
        na, nb = self.count.take(mine), other.count.take(theirs)
        sa, sb = self.start.take(mine), other.start.take(theirs)
        sizes = na * nb
        single = sizes == 1  # most cells hold one box: their pair needs no expansion
        if single.all():
            return sa, sb
        many = np.flatnonzero(~single)
        sizes_m, nb_m = sizes.take(many), nb.take(many)
        total = int(sizes_m.sum())
        which = np.repeat(np.arange(len(many)), sizes_m)
        local = np.arange(total) - np.repeat(np.cumsum(sizes_m) - sizes_m, sizes_m)
        per_b = nb_m.take(which)
        first = sa.take(many).take(which) + local // per_b
        second = sb.take(many).take(which) + local % per_b
        one = np.flatnonzero(single)
        return np.concatenate([sa.take(one), first]), np.concatenate([sb.take(one), second])


def _argsort_keys(keys: np.ndarray) -> np.ndarray:
    # Non-negative int64 keys below 2**32 sort in two stable 16-bit radix passes, about twice as fast as
    # numpy's quicksort of int64 here (and faster than a counting sort, whose table misses the cache); larger
    # keys take the general sort.
    if len(keys) == 0 or int(keys.max()) >= 2**32:
        return np.argsort(keys, kind="stable")
    order = np.argsort((keys & 0xFFFF).astype(np.uint16), kind="stable")
    return order[np.argsort((keys[order] >> 16).astype(np.uint16), kind="stable")]


# ---------------------------------------------------------------------------------------------------------------
# Greedy decisions over the match graph
# ---------------------------------------------------------------------------------------------------------------


def greedy_decisions(n: int, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Which boxes greedy suppression keeps, given every matching pair as (higher-ranked, lower-ranked).

    Args:
        n: Number of boxes.
        hi: Higher-ranked box of each matching pair, shape (P,).
        lo: Lower-ranked box of each pair, shape (P,).

    Returns:
        Kept mask, shape (n,): exactly the boxes the sequential loop (visit by rank, keep a box unless a kept
        box matches it) keeps.
    """
    kept = np.ones(n, dtype=bool)
    if len(hi) == 0:
        return kept
    # Work on the boxes that appear in a pair only; the others are kept as they are.
    involved = np.zeros(n, dtype=bool)
    involved[hi] = True
    involved[lo] = True
    nodes = np.flatnonzero(involved)
    position = np.zeros(n, dtype=np.int64)
    position[nodes] = np.arange(len(nodes))
    h, l = position[hi], position[lo]
    undecided, keep, drop = 0, 1, 2
    state = np.zeros(len(nodes), dtype=np.int8)
    while len(h):
        blocked = np.zeros(len(nodes), dtype=bool)
        blocked[l] = True
        state[(state == undecided) & ~blocked] = keep
        state[l[state[h] == keep]] = drop
        live = (state[l] == undecided) & (state[h] != drop)
        h, l = h[live], l[live]
    state[state == undecided] = keep
    kept[nodes[state == drop]] = False
    return kept


def _absorb(boxes: np.ndarray, scores: np.ndarray, kept: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    # NMM: each suppressed box joins the first kept box (in rank order) that matches it, which is the one the
    # sequential loop would have merged it into; the kept box becomes the union of its members' boxes.
    out = boxes.copy()
    joins = kept[hi] & ~kept[lo]
    head, member = hi[joins], lo[joins]
    if not len(head):
        return out
    rank = np.empty(len(boxes), dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(len(boxes))
    order = np.lexsort((rank[head], member))
    head, member = head[order], member[order]
    first = np.concatenate([[True], member[1:] != member[:-1]])
    head, member = head[first], member[first]
    np.minimum.at(out[:, 0], head, boxes[member, 0])
    np.minimum.at(out[:, 1], head, boxes[member, 1])
    np.maximum.at(out[:, 2], head, boxes[member, 2])
    np.maximum.at(out[:, 3], head, boxes[member, 3])
    return out


def _ordered(index: np.ndarray, scores: np.ndarray, images: np.ndarray) -> np.ndarray:
    # By image, then descending score; equal scores keep the input order (``index`` is increasing).
    index = index.take(_descending(scores.take(index)))
    img = images.take(index)
    if len(index) and img.min() != img.max():
        index = index.take(np.argsort(img, kind="stable"))
    return index


def _descending(values: np.ndarray) -> np.ndarray:
    """The stable descending argsort of ``values``: quicksort, then each run of equal values put back in
    position order (timsort, numpy's stable sort for floats, takes about 1.7x as long here)."""
    order = np.argsort(-values, kind="quicksort")
    ordered = values.take(order)
    tied = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(tied):
        members = np.unique(np.concatenate([tied, tied + 1]))
        # Sorted values stay in place; within each value, positions ascend.
        order[members] = order[members][np.lexsort((order[members], -ordered[members]))]
    return order


def _cap(index: np.ndarray, images: np.ndarray, cap: int) -> np.ndarray:
    # ``index`` is sorted by image then score: keep each image's first ``cap`` entries.
    img = images[index]
    starts = np.concatenate([[0], np.flatnonzero(img[1:] != img[:-1]) + 1])
    position = np.arange(len(index)) - np.repeat(starts, np.diff(np.concatenate([starts, [len(index)]])))
    return index[position < cap]


# ---------------------------------------------------------------------------------------------------------------
# Window names and DOTA Task2 result files
# ---------------------------------------------------------------------------------------------------------------

# DOTA_devkit's patterns: the first ``__{left}___{up}`` of a name, and the rate just before it.
_OFFSET = re.compile(r"__(\d+)___(\d+)")
_RATE = re.compile(r"__([\d+\.]+)__\d+___")
TASK2_PREFIX = "Task2_"


@dataclass(frozen=True)
class WindowName:
    """A parsed ``{image}__{rate}__{left}___{up}`` window name.

    Attributes:
        image: The full image's name (the text before the first ``__``).
        rate: The scale factor the window was cut at.
        left: Window origin x in the scaled image.
        up: Window origin y in the scaled image.
    """

    image: str
    rate: float
    left: int
    up: int


def parse_window_name(name: str) -> WindowName:
    """Parse a window name as DOTA_devkit's ResultMerge does.

    Raises:
        MergeError: The name has no ``__{rate}__{left}___{up}`` part or a rate that is not a positive number.
    """
    offset, rate = _OFFSET.search(name), _RATE.search(name)
    if offset is None or rate is None:
        raise MergeError(f"window name {name!r} is not of the form image__rate__left___up")
    try:
        value = float(rate.group(1))
    except ValueError:
        value = 0.0
    if not value > 0:
        raise MergeError(f"window name {name!r}: rate {rate.group(1)!r} is not a positive number")
    return WindowName(name.split("__")[0], value, int(offset.group(1)), int(offset.group(2)))


def window_name(image: str, tag: str, left: int, up: int) -> str:
    """The builder's window name, ``{image}__{tag}__{left}___{up}`` (``tag`` as ``scale.factor_tag`` writes)."""
    return f"{image}__{tag}__{left}___{up}"


@dataclass
class ResultTable:
    """Detections of many images and classes, as read from (or written to) Task2 files.

    Attributes:
        classes: Class names; ``labels`` index them.
        names: Image (or window) names; ``images`` index them.
        images: Shape (N,), int64.
        labels: Shape (N,), int64.
        scores: Shape (N,).
        boxes: ``[x1, y1, x2, y2]``, shape (N, 4).
    """

    classes: list[str]
    names: list[str]
    images: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)


def task2_files(folder: Path) -> dict[str, Path]:
    """The ``Task2_{class}.txt`` files of a folder, by class name, sorted.

    Raises:
        MergeError: The folder is missing or holds no such file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise MergeError(f"{folder}: results folder not found")
    files = {p.stem[len(TASK2_PREFIX):]: p for p in sorted(folder.glob(f"{TASK2_PREFIX}*.txt")) if p.is_file()}
    if not files:
        raise MergeError(f"{folder}: no {TASK2_PREFIX}{{class}}.txt result files")
    return files


def read_task2(files: dict[str, Path], *, ordered_boxes: bool = True) -> ResultTable:
    """Read Task2 files (lines ``name score x1 y1 x2 y2``; blank lines are skipped).

    Args:
        files: Class name to file, as :func:`task2_files` gives.
        ordered_boxes: Reject boxes with ``x2 < x1`` or ``y2 < y1`` (an evaluation scores them as they are).
            Defaults to True.

    Returns:
        Every line as one detection; names in order of first appearance.

    Raises:
        MergeError: A file is unreadable, or a line has another token count, a non-number or ``x2 < x1``;
            the message names the file and line.
    """
    names: dict[str, int] = {}
    images, labels, values = [], [], []
    for label, (name, path) in enumerate(files.items()):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MergeError(f"{path}: cannot read the result file ({type(exc).__name__}: {exc})") from None
        for number, line in enumerate(text.splitlines(), start=1):
            tokens = line.split()
            if not tokens:
                continue
            if len(tokens) != 6:
                raise MergeError(f"{path}:{number}: expected 'image score x1 y1 x2 y2', got {len(tokens)} tokens")
            try:
                row = [float(t) for t in tokens[1:]]
            except ValueError:
                raise MergeError(f"{path}:{number}: score and coordinates must be numbers: {line.strip()!r}") from None
            if not all(math.isfinite(v) for v in row) or (ordered_boxes and (row[3] < row[1] or row[4] < row[2])):
                raise MergeError(f"{path}:{number}: expected finite numbers with x1 <= x2 and y1 <= y2: "
                                 f"{line.strip()!r}")
            images.append(names.setdefault(tokens[0], len(names)))
            labels.append(label)
            values.append(row)
    table = np.array(values, dtype=np.float64).reshape(-1, 5)
    return ResultTable(list(files), list(names), np.array(images, dtype=np.int64), np.array(labels, dtype=np.int64),
                       table[:, 0].copy(), table[:, 1:].copy())


def windows_to_images(table: ResultTable) -> ResultTable:
    """Map window-level detections to their full images: each coordinate ``v`` becomes ``(v + offset) / rate``.

    Raises:
        MergeError: A name is not a window name.
    """
    parsed = [parse_window_name(name) for name in table.names]
    full: dict[str, int] = {}
    image_of = np.array([full.setdefault(p.image, len(full)) for p in parsed], dtype=np.int64)
    shift = np.array([[p.left, p.up, p.left, p.up] for p in parsed], dtype=np.float64).reshape(-1, 4)
    rate = np.array([p.rate for p in parsed], dtype=np.float64)
    boxes = (table.boxes + shift[table.images]) / rate[table.images, None]
    return ResultTable(table.classes, list(full), image_of[table.images], table.labels, table.scores, boxes)


def number_text(value: float, decimals: int) -> str:
    """A number as result files write it: rounded to ``decimals`` places, shortest form (``12.5``, ``3.0``)."""
    return repr(round(float(value), decimals))


def task2_lines(names: list[str], images: np.ndarray, scores: np.ndarray, boxes: np.ndarray) -> list[str]:
    """Lines ``image score x1 y1 x2 y2`` (score to 6 places, coordinates to 3)."""
    return [
        f"{names[i]} {number_text(s, 6)} " + " ".join(number_text(v, 3) for v in box)
        for i, s, box in zip(images.tolist(), scores.tolist(), boxes.tolist(), strict=True)
    ]


def write_task2(folder: Path, classes: Iterable[str], names: list[str], merged: Merged) -> list[Path]:
    """Write one ``Task2_{class}.txt`` per class (every class, empty files included), atomically.

    Returns:
        The files written, in class order.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for label, name in enumerate(classes):
        mine = merged.labels == label
        lines = task2_lines(names, merged.images[mine], merged.scores[mine], merged.boxes[mine])
        path = folder / f"{TASK2_PREFIX}{name}.txt"
        atomic_write_text(path, "".join(line + "\n" for line in lines))
        written.append(path)
    return written


@dataclass(frozen=True)
class MergeSummary:
    """What :func:`merge_result_folder` did.

    Attributes:
        files: The files written.
        windows: Distinct window names read.
        images: Distinct full images.
        boxes_in: Detections read.
        boxes_out: Detections written.
        seconds: Time of the merge itself (without reading and writing).
    """

    files: list[Path]
    windows: int
    images: int
    boxes_in: int
    boxes_out: int
    seconds: float


def merge_result_folder(src: Path, dst: Path, *, options: MergeOptions = MergeOptions()) -> MergeSummary:
    """``hsfpn-data merge``: window-level Task2 files of any detector -> full-image Task2 files.

    Args:
        src: Folder of ``Task2_{class}.txt`` files with window names (``{image}__{rate}__{left}___{up}``).
        dst: Folder for the full-image files, same names (created; must differ from ``src``).
        options: The merge; :data:`DEVKIT_OPTIONS` reproduces DOTA_devkit's ``mergebyrec``.

    Returns:
        The summary.

    Raises:
        MergeError: Bad folders, files, lines or window names (one line naming the file and line).
    """
    import time

    if Path(src).resolve() == Path(dst).resolve():
        raise MergeError(f"--out {dst}: must differ from the source folder (the files have the same names)")
    windows = read_task2(task2_files(src))
    table = windows_to_images(windows)
    start = time.perf_counter()
    merged = merge_detections(table.boxes, table.scores, table.labels, table.images, options=options)
    seconds = time.perf_counter() - start
    # Images in name order in every output file, whatever order the detector wrote them in.
    order = np.argsort(np.array(table.names, dtype=object)[merged.images], kind="stable")
    merged = Merged(*(getattr(merged, f)[order] for f in ("index", "boxes", "scores", "labels", "images")))
    files = write_task2(dst, table.classes, table.names, merged)
    return MergeSummary(files, len(windows.names), len(table.names), len(table), len(merged), seconds)
