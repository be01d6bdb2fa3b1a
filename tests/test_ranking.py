"""Chunked ranking: deterministic top-k, chunk-size independence, conflict resolution, ignore regions."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsfpn.assigners.ranking import (
    chunk_length,
    chunk_topk,
    ignored_priors,
    merge_topk,
    resolve_candidates,
    scan_similarity,
    topk_candidates,
)


def table_similarity(matrix: torch.Tensor):
    """A similarity that looks priors up in a fixed (G, N) table by their first coordinate (= index)."""

    def sim(gts: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
        return matrix[:, priors[:, 0].long()]

    return sim


def index_priors(n: int) -> torch.Tensor:
    col = torch.arange(n, dtype=torch.float32)[:, None]
    return torch.cat([col, col, col + 1, col + 1], dim=1)


def test_chunk_length():
    assert chunk_length(3000, 1 << 24) == 5592
    assert chunk_length(10, 5) == 1  # never zero columns
    with pytest.raises(ValueError, match="max_elements"):
        chunk_length(1, 0)


def test_chunk_topk_breaks_ties_towards_lower_column():
    sim = torch.tensor([[0.5, 0.9, 0.5, 0.5], [0.1, 0.1, 0.1, 0.1]])
    values, idx = chunk_topk(sim, 2)
    assert idx.tolist() == [[1, 0], [0, 1]]
    assert values.flatten().tolist() == pytest.approx([0.9, 0.5, 0.1, 0.1])
    values, idx = chunk_topk(sim, 3)
    assert idx.tolist() == [[1, 0, 2], [0, 1, 2]]


def test_chunk_topk_puts_excluded_last():
    sim = torch.tensor([[float("-inf"), 0.2, float("-inf")]])
    values, idx = chunk_topk(sim, 2)
    assert idx.tolist() == [[1, 0]]
    assert values[0, 1].item() == float("-inf")


def test_merge_topk_keeps_best_and_lower_index_on_ties():
    v, i = merge_topk(
        torch.tensor([[0.9, 0.4]]), torch.tensor([[3, 5]]), torch.tensor([[0.4, 0.8]]), torch.tensor([[1, 9]]), 3
    )
    assert v.flatten().tolist() == pytest.approx([0.9, 0.8, 0.4])
    assert i.tolist() == [[3, 9, 1]]  # 0.4 tie: prior 1 before prior 5


def test_scan_by_hand():
    # Two ground truths, five priors; chunk of 2 columns (4 entries over 2 rows).
    matrix = torch.tensor([[0.1, 0.7, 0.7, 0.2, 0.0], [0.3, 0.1, 0.9, 0.9, 0.4]])
    scan = scan_similarity(table_similarity(matrix), torch.zeros(2, 4), index_priors(5), 2, max_elements=4)
    assert scan.prior_max.tolist() == pytest.approx([0.3, 0.7, 0.9, 0.9, 0.4])
    assert scan.topk_indices.tolist() == [[1, 2], [2, 3]]
    excluded = torch.tensor([False, False, True, False, False])
    scan = scan_similarity(
        table_similarity(matrix), torch.zeros(2, 4), index_priors(5), 2, excluded=excluded, max_elements=4
    )
    assert scan.topk_indices.tolist() == [[1, 3], [3, 4]]
    assert scan.prior_max[2].item() == pytest.approx(0.9)  # excluded priors still count for the max


def test_scan_clips_k_to_prior_count_and_validates():
    matrix = torch.tensor([[0.5, 0.6]])
    scan = scan_similarity(table_similarity(matrix), torch.zeros(1, 4), index_priors(2), 5)
    assert scan.topk_indices.tolist() == [[1, 0]]
    with pytest.raises(ValueError, match="k must be"):
        scan_similarity(table_similarity(matrix), torch.zeros(1, 4), index_priors(2), 0)
    with pytest.raises(ValueError, match="at least one box"):
        scan_similarity(table_similarity(matrix), torch.zeros(0, 4), index_priors(2), 1)


def test_resolve_candidates_best_similarity_then_lower_gt():
    gt = torch.tensor([0, 0, 1, 1, 2])
    prior = torch.tensor([4, 7, 4, 2, 7])
    value = torch.tensor([0.5, 0.6, 0.8, 0.3, 0.6])
    p, g = resolve_candidates(gt, prior, value)
    # prior 2 -> gt 1 (only claim); prior 4 -> gt 1 (0.8 > 0.5); prior 7 -> gt 0 (0.6 tie, lower index)
    assert p.tolist() == [2, 4, 7]
    assert g.tolist() == [1, 1, 0]


def test_topk_candidates_drops_excluded_and_weak():
    matrix = torch.tensor([[0.9, 0.05, 0.5]])
    excluded = torch.tensor([False, False, True])
    scan = scan_similarity(table_similarity(matrix), torch.zeros(1, 4), index_priors(3), 3, excluded=excluded)
    gt, prior, value = topk_candidates(scan, 0.1)
    assert prior.tolist() == [0]  # prior 1 is below 0.1, prior 2 is excluded (-inf)
    assert gt.tolist() == [0]


def test_ignored_priors_by_iof():
    priors = torch.tensor([[0.0, 0, 10, 10], [8, 0, 18, 10], [50, 50, 60, 60]])
    ignore = torch.tensor([[0.0, 0, 12, 12]])
    # IoF over each prior's area: 1.0, 0.4, 0.0.
    assert ignored_priors(priors, ignore, 0.5).tolist() == [True, False, False]
    assert ignored_priors(priors, ignore, 0.3, max_elements=1).tolist() == [True, True, False]
    assert ignored_priors(priors, ignore, -1) is None
    assert ignored_priors(priors, None, 0.5) is None


@settings(max_examples=40, deadline=None)
@given(
    g=st.integers(1, 5),
    n=st.integers(1, 23),
    k=st.integers(1, 4),
    budget=st.integers(1, 40),
    levels=st.integers(2, 5),
    seed=st.integers(0, 10_000),
)
def test_chunked_equals_unchunked_and_loop(g, n, k, budget, levels, seed):
    # Few distinct values force many ties: the tie rule must make chunking invisible.
    gen = torch.Generator().manual_seed(seed)
    matrix = torch.randint(0, levels, (g, n), generator=gen).float() / levels
    excluded = torch.rand(n, generator=gen) < 0.2
    sim = table_similarity(matrix)
    whole = scan_similarity(sim, torch.zeros(g, 4), index_priors(n), k, excluded=excluded, max_elements=1 << 20)
    chunked = scan_similarity(sim, torch.zeros(g, 4), index_priors(n), k, excluded=excluded, max_elements=budget)
    assert torch.equal(whole.topk_indices, chunked.topk_indices)
    assert torch.equal(whole.topk_values, chunked.topk_values)
    assert torch.equal(whole.prior_max, chunked.prior_max)
    # Loop reference: sort each row by (value desc, index asc), excluded priors last.
    for row in range(g):
        keyed = sorted(
            range(n), key=lambda j: (bool(excluded[j]), 0.0 if excluded[j] else -matrix[row, j].item(), j)
        )
        assert whole.topk_indices[row].tolist() == keyed[: min(k, n)]
