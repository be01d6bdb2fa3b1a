"""The merge's inner loop, compiled: every matching pair among the boxes of one grid level.

Why compiled: a level's boxes, sorted by cell, meet their own cell and four forward neighbours. In numpy that
is five rounds of candidate index arrays (about two million candidates for a 20,000 px scene) gathered and
tested; most candidates fail, and building and gathering them took most of the merge. Here each cell is
scanned once against its neighbours, and only matches are written.

Imported by :mod:`dotamini10.merge` on first use (numba compiles the loop once per machine and caches it
beside this file).

Notes:
    The arithmetic is the numpy path's, operation for operation in float64 (numba does not reorder it without
    ``fastmath``): ``iw = min(x2) - max(x1)``, ``ih`` alike, ``inter = iw * ih``, then
    ``inter / (area_a + area_b - inter)`` (IoU) or ``inter / min(area_a, area_b)`` (IoS), 0 where the
    denominator is not positive; a pair matches when the value is strictly above the threshold.

    Keys pack ``(group, row, column)`` with a margin of empty cells around every group's block, so the
    neighbours of a cell (``key + 1``, ``key + ncols - 1 .. key + ncols + 1``) never reach another group.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _match(x1, y1, x2, y2, area, a, b, ios, threshold):
    iw = min(x2[a], x2[b]) - max(x1[a], x1[b])
    if iw <= 0.0:
        return False
    ih = min(y2[a], y2[b]) - max(y1[a], y1[b])
    if ih <= 0.0:
        return False
    inter = iw * ih
    denominator = min(area[a], area[b]) if ios else area[a] + area[b] - inter
    value = inter / denominator if denominator > 0.0 else 0.0
    return value > threshold


@njit(cache=True, nogil=True)
def _scan(keys, x1, y1, x2, y2, area, ncols, ios, threshold, out_a, out_b):
    # One pass over the cells; with ``out_a`` empty it only counts (the caller then sizes the output). Counting
    # first and scanning twice measured faster than one pass into a buffer that doubles when full (56 vs 70 ms
    # on a 20,000 px scene): the growth check in the innermost loop costs more than the second scan.
    n = len(keys)
    found = 0
    below = 0  # first box whose key is at least the current cell's key + ncols - 1 (keys only grow)
    start = 0
    while start < n:
        key = keys[start]
        end = start
        while end < n and keys[end] == key:
            end += 1
        right_end = end  # the right neighbour's boxes follow this cell's, when it is occupied
        while right_end < n and keys[right_end] == key + 1:
            right_end += 1
        while below < n and keys[below] < key + ncols - 1:
            below += 1
        below_end = below
        while below_end < n and keys[below_end] <= key + ncols + 1:
            below_end += 1
        for a in range(start, end):
            for b in range(a + 1, right_end):  # the cell itself, then its right neighbour
                if _match(x1, y1, x2, y2, area, a, b, ios, threshold):
                    if len(out_a):
                        out_a[found] = a
                        out_b[found] = b
                    found += 1
            for b in range(below, below_end):  # the three cells of the row below
                if _match(x1, y1, x2, y2, area, a, b, ios, threshold):
                    if len(out_a):
                        out_a[found] = a
                        out_b[found] = b
                    found += 1
        start = end
    return found


def same_level_pairs(keys: np.ndarray, cols: tuple[np.ndarray, ...], area: np.ndarray, ncols: int, ios: bool,
                     threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Every matching pair of boxes sorted by cell key, as positions ``(a, b)`` with ``a < b``.

    Args:
        keys: Cell key of each box, ascending, shape (N,), int64.
        cols: ``x1, y1, x2, y2`` in the same order, contiguous float64.
        area: Areas in the same order.
        ncols: Columns of the grid (the key of the cell below is ``key + ncols``).
        ios: Intersection over the smaller box instead of IoU.
        threshold: A pair matches when its value is strictly above this.
    """
    x1, y1, x2, y2 = cols
    none = np.zeros(0, dtype=np.int64)
    count = _scan(keys, x1, y1, x2, y2, area, ncols, ios, threshold, none, none)
    out_a, out_b = np.empty(count, dtype=np.int64), np.empty(count, dtype=np.int64)
    if count:
        _scan(keys, x1, y1, x2, y2, area, ncols, ios, threshold, out_a, out_b)
    return out_a, out_b

