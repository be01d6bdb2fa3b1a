"""Memory-bounded ranking of priors by similarity to ground truths, shared by the NWD and RFLA assigners.

A ranking assigner needs, for G ground truths and N priors, each prior's best similarity (for the
negative threshold) and each ground truth's k most similar priors. At AI-TOD scale (3,000 objects against
the 200,000 anchors of an 800 x 800 image at P2) the full G x N float32 matrix is 2.4 GB, and its
temporaries several times that. :func:`scan_similarity` therefore walks the priors in column chunks of at
most ``max_elements`` entries, keeps a running per-prior max and merges each chunk's top-k into a running
top-k, so peak memory is a few chunk-sized buffers whatever N is. Inside a chunk everything is vectorised;
the only Python loop is over chunks.

Ties are broken towards the lower prior index (then the lower ground-truth index), both inside a chunk and
across chunks, so the result does not depend on the chunk size and is reproducible.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from mmdet.structures.bbox import bbox_overlaps
from torch import Tensor

#: A pairwise similarity: ``(gt_boxes (G, 4), prior_boxes (n, 4)) -> (G, n)``, larger is more similar.
SimilarityFn = Callable[[Tensor, Tensor], Tensor]

#: Default chunk budget: 2**24 float32 entries = 64 MiB per G x chunk buffer.
DEFAULT_MAX_ELEMENTS = 1 << 24


def chunk_length(num_rows: int, max_elements: int) -> int:
    """Number of prior columns per chunk so that a ``num_rows`` x chunk matrix has <= max_elements entries.

    Args:
        num_rows (int): Rows of the similarity matrix (ground truths).
        max_elements (int): Entry budget of one chunk, >= 1.

    Returns:
        int: Columns per chunk, at least 1.
    """
    if max_elements < 1:
        raise ValueError(f"max_elements must be >= 1, got {max_elements}")
    return max(1, max_elements // max(1, num_rows))


def chunk_topk(sim: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k of each row, sorted by value descending, ties broken towards the lower column index.

    Args:
        sim (Tensor): Similarities, shape ``(G, n)``; ``-inf`` marks excluded columns.
        k (int): How many columns per row; must satisfy ``1 <= k <= n``.

    Returns:
        tuple[Tensor, Tensor]: ``values`` and column ``indices`` (int64), both shape ``(G, k)``.

    Example:
        >>> chunk_topk(torch.tensor([[0.5, 0.9, 0.5, 0.5]]), 2)[1].tolist()  # 0.5 ties: column 0 wins
        [[1, 0]]
    """
    num_rows, n = sim.shape
    if k >= n:
        idx = torch.arange(n, device=sim.device).expand(num_rows, n)
        return _sort_desc_then_index(sim, idx)
    # One extra value tells whether the k-th place is tied with the first one left out.
    values, idx = sim.topk(k + 1, dim=1)
    tied = values[:, k - 1] == values[:, k]
    values, idx = values[:, :k], idx[:, :k]
    if bool(tied.any()):
        # torch.topk picks among tied values arbitrarily: for those rows take the ties in column order
        # (rank of each tie among the ties of its row).
        rows = tied.nonzero(as_tuple=True)[0]
        sub = sim[rows]
        kth = values[rows, k - 1 :]
        above = sub > kth
        at_kth = sub == kth
        need = k - above.sum(dim=1, keepdim=True)
        tie_rank = at_kth.to(torch.int32).cumsum_(dim=1)
        chosen = above | (at_kth & (tie_rank <= need))
        sub_idx = chosen.nonzero(as_tuple=True)[1].view(rows.numel(), k)  # row-major, columns ascending
        idx = idx.clone()
        values = values.clone()
        idx[rows] = sub_idx
        values[rows] = sub.gather(1, sub_idx)
    return _sort_desc_then_index(values, idx)


def _sort_desc_then_index(values: Tensor, idx: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row by value descending, equal values by index ascending (two stable sorts)."""
    order = idx.argsort(dim=1, stable=True)
    values, idx = values.gather(1, order), idx.gather(1, order)
    order = values.argsort(dim=1, descending=True, stable=True)
    return values.gather(1, order), idx.gather(1, order)


def merge_topk(values_a: Tensor, idx_a: Tensor, values_b: Tensor, idx_b: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Merge two per-row top lists into the top-k of their union (ties: lower index first).

    Args:
        values_a (Tensor): Values, shape ``(G, ka)``. idx_a (Tensor): Their global indices, ``(G, ka)``.
        values_b (Tensor): Values, shape ``(G, kb)``. idx_b (Tensor): Their global indices, ``(G, kb)``.
        k (int): Length of the merged list (at most ``ka + kb``).

    Returns:
        tuple[Tensor, Tensor]: Merged ``values`` and ``indices``, shape ``(G, min(k, ka + kb))``.
    """
    values, idx = _sort_desc_then_index(torch.cat([values_a, values_b], 1), torch.cat([idx_a, idx_b], 1))
    return values[:, :k], idx[:, :k]


@dataclass(frozen=True)
class ScanResult:
    """What one pass over the priors found.

    Attributes:
        prior_max (Tensor | None): Each prior's best similarity over the ground truths, shape ``(N,)``
            (float32), or None when not tracked.
        topk_values (Tensor): Each ground truth's best similarities, shape ``(G, min(k, N))``, descending;
            ``-inf`` where fewer than k priors were eligible.
        topk_indices (Tensor): The matching prior indices, shape ``(G, min(k, N))`` (int64).
    """

    prior_max: Tensor | None
    topk_values: Tensor
    topk_indices: Tensor


def scan_similarity(
    similarity: SimilarityFn,
    gt_boxes: Tensor,
    priors: Tensor,
    k: int,
    *,
    excluded: Tensor | None = None,
    track_prior_max: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> ScanResult:
    """One chunked pass over the priors: per-prior best similarity and per-ground-truth top-k.

    Args:
        similarity (SimilarityFn): Pairwise similarity, ``(G, 4) x (n, 4) -> (G, n)``.
        gt_boxes (Tensor): Ground-truth boxes, shape ``(G, 4)``, G >= 1.
        priors (Tensor): Prior boxes, shape ``(N, 4)``, N >= 1.
        k (int): Priors to keep per ground truth, >= 1 (clipped to N).
        excluded (Tensor | None): Bool mask ``(N,)`` of priors that may not enter any top-k (ignored
            regions, priors already positive). They still count for ``prior_max``. Defaults to None.
        track_prior_max (bool): Whether to compute ``prior_max``. Defaults to True.
        max_elements (int): Entry budget of one ``G x chunk`` buffer. Defaults to 2**24.

    Returns:
        ScanResult: See :class:`ScanResult`.
    """
    num_gts, num_priors = gt_boxes.shape[0], priors.shape[0]
    if num_gts < 1 or num_priors < 1:
        raise ValueError(f"scan_similarity needs at least one box on each side, got {num_gts} x {num_priors}")
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, num_priors)
    step = chunk_length(num_gts, max_elements)
    device = priors.device
    prior_max = torch.empty(num_priors, dtype=torch.float32, device=device) if track_prior_max else None
    best_v = torch.empty((num_gts, 0), dtype=torch.float32, device=device)
    best_i = torch.empty((num_gts, 0), dtype=torch.long, device=device)
    for start in range(0, num_priors, step):
        stop = min(start + step, num_priors)
        sim = similarity(gt_boxes, priors[start:stop]).float()
        if track_prior_max:
            # amax, not max: the arg-max is not needed and costs 8x more on a (G, n) column reduction.
            prior_max[start:stop] = sim.amax(dim=0)
        if excluded is not None:
            sim.masked_fill_(excluded[None, start:stop], float("-inf"))
        values, idx = chunk_topk(sim, min(k, stop - start))
        best_v, best_i = merge_topk(best_v, best_i, values, idx + start, k)
        del sim
    return ScanResult(prior_max, best_v, best_i)


def resolve_candidates(gt_idx: Tensor, prior_idx: Tensor, values: Tensor) -> tuple[Tensor, Tensor]:
    """Give each prior claimed by several ground truths to the most similar one.

    Args:
        gt_idx (Tensor): Ground-truth index of each candidate pair, shape ``(M,)`` (int64).
        prior_idx (Tensor): Prior index of each pair, shape ``(M,)`` (int64).
        values (Tensor): Similarity of each pair, shape ``(M,)``.

    Returns:
        tuple[Tensor, Tensor]: Distinct ``prior`` indices (ascending) and the winning ``gt`` index of each.
        Ties in similarity go to the lower ground-truth index.
    """
    if prior_idx.numel() == 0:
        return prior_idx, gt_idx
    # Lexicographic order (prior asc, value desc, gt asc) by stable sorts from the last key to the first.
    order = gt_idx.argsort(stable=True)
    order = order[values[order].argsort(descending=True, stable=True)]
    order = order[prior_idx[order].argsort(stable=True)]
    p, g = prior_idx[order], gt_idx[order]
    first = torch.ones_like(p, dtype=torch.bool)
    first[1:] = p[1:] != p[:-1]
    return p[first], g[first]


def topk_candidates(scan: ScanResult, min_similarity: float) -> tuple[Tensor, Tensor, Tensor]:
    """Flatten a scan's per-ground-truth top-k into candidate pairs above ``min_similarity``.

    Args:
        scan (ScanResult): A finished scan.
        min_similarity (float): A pair is a candidate only if its similarity is >= this (and finite).

    Returns:
        tuple[Tensor, Tensor, Tensor]: ``gt_idx``, ``prior_idx`` and ``values``, each shape ``(M,)``.
    """
    num_gts, k = scan.topk_values.shape
    gt_idx = torch.arange(num_gts, device=scan.topk_values.device).repeat_interleave(k)
    values = scan.topk_values.reshape(-1)
    prior_idx = scan.topk_indices.reshape(-1)
    keep = torch.isfinite(values) & (values >= min_similarity)
    return gt_idx[keep], prior_idx[keep], values[keep]


def ignored_priors(
    priors: Tensor,
    ignore_boxes: Tensor | None,
    iof_thr: float,
    wrt_candidates: bool = True,
    max_elements: int = DEFAULT_MAX_ELEMENTS,
) -> Tensor | None:
    """Priors that overlap an ignore region by more than ``iof_thr`` (mmdet's ``ignore_iof_thr`` rule).

    Args:
        priors (Tensor): Prior boxes, shape ``(N, 4)``.
        ignore_boxes (Tensor | None): Ignore regions, shape ``(M, 4)``, or None.
        iof_thr (float): IoF threshold; a value <= 0 disables ignoring (returns None).
        wrt_candidates (bool): IoF over the prior's area (True) or the region's area. Defaults to True.
        max_elements (int): Entry budget of one chunk. Defaults to 2**24.

    Returns:
        Tensor | None: Bool mask ``(N,)``, or None when nothing can be ignored.
    """
    if iof_thr <= 0 or ignore_boxes is None or ignore_boxes.numel() == 0 or priors.numel() == 0:
        return None
    step = chunk_length(ignore_boxes.shape[0], max_elements)
    parts = []
    for start in range(0, priors.shape[0], step):
        chunk = priors[start : start + step]
        if wrt_candidates:
            iof = bbox_overlaps(chunk, ignore_boxes, mode="iof").max(dim=1).values
        else:
            iof = bbox_overlaps(ignore_boxes, chunk, mode="iof").max(dim=0).values
        parts.append(iof > iof_thr)
    return torch.cat(parts)
