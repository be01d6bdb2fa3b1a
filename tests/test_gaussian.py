"""Box Gaussians, Wasserstein / NWD and KL distances against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsfpn.assigners.gaussian import (
    AITOD_NWD_CONSTANT,
    box_gaussians,
    kl_divergence,
    normalized_wasserstein,
    receptive_field_similarity,
    rescale_boxes,
    wasserstein_squared,
)


def boxes(*rows: list[float]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


# A box strategy: centre in [0, 200), sides in [1, 64] px (tiny-object range, never degenerate).
box_st = st.tuples(
    st.floats(0, 200), st.floats(0, 200), st.floats(1, 64), st.floats(1, 64)
).map(lambda t: [t[0] - t[2] / 2, t[1] - t[3] / 2, t[0] + t[2] / 2, t[1] + t[3] / 2])


def test_box_gaussian_is_centre_and_half_sides():
    mean, std = box_gaussians(boxes([0, 0, 4, 2], [10, 20, 18, 26]))
    assert mean.tolist() == [[2, 1], [14, 23]]
    assert std.tolist() == [[2, 1], [4, 3]]


def test_box_gaussians_rejects_wrong_shape():
    # A box has exactly four coordinates.
    with pytest.raises(ValueError, match="4 coordinates"):
        box_gaussians(torch.zeros(3, 5))


def test_paper_constant_is_aitod_mean_size():
    assert AITOD_NWD_CONSTANT == 12.8


def test_equal_boxes_give_nwd_one():
    a = boxes([3, 4, 11, 9], [0, 0, 1, 1])
    nwd = normalized_wasserstein(a, a, is_aligned=True)
    assert nwd.tolist() == [1.0, 1.0]
    assert wasserstein_squared(a, a).diagonal().tolist() == [0.0, 0.0]


def test_shifted_box_gives_exp_of_minus_shift_over_c():
    # Same 8 x 8 box, centre moved by (3, 4): W2 = 5 px exactly, NWD = exp(-5 / C).
    a = boxes([0, 0, 8, 8])
    b = boxes([3, 4, 11, 12])
    assert wasserstein_squared(a, b).item() == 25.0
    assert normalized_wasserstein(a, b).item() == pytest.approx(math.exp(-5 / 12.8), rel=1e-6)
    assert normalized_wasserstein(a, b, constant=5.0).item() == pytest.approx(math.exp(-1), rel=1e-6)


def test_scaled_box_closed_form():
    # Same centre (4, 4), 8 x 8 versus 4 x 4: sigmas (4, 4) and (2, 2), W2^2 = 2^2 + 2^2 = 8.
    a = boxes([0, 0, 8, 8])
    b = boxes([2, 2, 6, 6])
    assert wasserstein_squared(a, b).item() == 8.0
    assert normalized_wasserstein(a, b).item() == pytest.approx(math.exp(-math.sqrt(8) / 12.8), rel=1e-6)
    # Scaling a w x h box by s about its centre gives W2 = |1 - s| * sqrt(w^2 + h^2) / 2.
    c = boxes([10, 10, 22, 15])  # 12 x 5
    for s in (0.5, 0.9, 2.0):
        w2 = wasserstein_squared(c, rescale_boxes(c, s)).item()
        assert math.sqrt(w2) == pytest.approx(abs(1 - s) * 13 / 2, rel=1e-5)


def test_pairwise_shape_and_aligned_diagonal():
    a = boxes([0, 0, 8, 8], [4, 4, 10, 12], [1, 2, 3, 4])
    b = boxes([2, 2, 6, 6], [0, 0, 8, 8], [5, 5, 20, 9])
    full = normalized_wasserstein(a, b)
    assert full.shape == (3, 3)
    assert torch.equal(full.diagonal(), normalized_wasserstein(a, b, is_aligned=True))
    assert normalized_wasserstein(a, b[:2]).shape == (3, 2)


def test_aligned_needs_equal_lengths():
    # is_aligned pairs box i with box i, so both sets must have the same length.
    with pytest.raises(ValueError, match="same shape"):
        wasserstein_squared(boxes([0, 0, 1, 1]), boxes([0, 0, 1, 1], [0, 0, 2, 2]), is_aligned=True)


def test_nwd_constant_must_be_positive():
    # C divides the distance; zero or negative has no meaning.
    with pytest.raises(ValueError, match="constant"):
        normalized_wasserstein(boxes([0, 0, 1, 1]), boxes([0, 0, 1, 1]), constant=0.0)


def test_fp16_inputs_do_not_overflow():
    # 1,000 px apart: W2^2 = 2e6 overflows fp16 (max 65504); computing in float32 keeps it exact.
    a = boxes([0, 0, 8, 8])
    b = boxes([1000, 0, 1008, 8])
    ref = normalized_wasserstein(a, b)
    out = normalized_wasserstein(a.half(), b.half())
    assert out.dtype == torch.float32
    assert torch.isfinite(wasserstein_squared(a.half(), b.half())).all()
    assert torch.allclose(out, ref)


def test_kl_closed_form_small_case():
    # p: 2 x 2 box at (1, 1) -> sigma 1; q: 4 x 4 box at (2, 2) -> sigma 2; per axis
    # 0.5 * (1/4 + (1/2)^2 - 1 + ln 4), two axes: KL(p || q) = ln 4 - 0.5.
    p = boxes([0, 0, 2, 2])
    q = boxes([0, 0, 4, 4])
    assert kl_divergence(p, q).item() == pytest.approx(math.log(4) - 0.5, rel=1e-6)
    # Reverse: per axis 0.5 * (4 + 1 - 1 - ln 4), two axes: KL(q || p) = 4 - ln 4.
    assert kl_divergence(q, p).item() == pytest.approx(4 - math.log(4), rel=1e-6)
    assert kl_divergence(p, p).item() == 0.0


def test_kl_of_shifted_equal_boxes_is_half_mahalanobis():
    # Equal sigmas (2, 1), centres 3 px apart along x: KL = 0.5 * (3 / 2)^2 = 1.125.
    p = boxes([0, 0, 4, 2])
    q = boxes([3, 0, 7, 2])
    assert kl_divergence(p, q).item() == pytest.approx(1.125)


def test_receptive_field_similarity_is_one_over_one_plus_kl_prior_to_gt():
    gt = boxes([0, 0, 4, 4])
    prior = boxes([0, 0, 2, 2], [0, 0, 4, 4])
    sim = receptive_field_similarity(gt, prior)
    assert sim.shape == (1, 2)
    assert sim[0, 0].item() == pytest.approx(1 / (1 + math.log(4) - 0.5), rel=1e-6)  # KL(prior || gt)
    assert sim[0, 1].item() == 1.0


def test_kl_is_finite_for_degenerate_boxes():
    # A zero-width box would divide by zero; sides are clamped so the divergence stays finite.
    kl = kl_divergence(boxes([5, 5, 5, 9]), boxes([0, 0, 8, 8]))
    assert torch.isfinite(kl).all()
    assert torch.isfinite(receptive_field_similarity(boxes([5, 5, 5, 9]), boxes([0, 0, 8, 8]))).all()


def test_rescale_boxes_keeps_centre():
    out = rescale_boxes(boxes([0, 0, 10, 20]), 0.9)
    assert torch.allclose(out, boxes([0.5, 1.0, 9.5, 19.0]))
    with pytest.raises(ValueError, match="ratio"):
        rescale_boxes(boxes([0, 0, 1, 1]), 0.0)


@settings(max_examples=60, deadline=None)
@given(a=box_st, b=box_st, c=box_st)
def test_wasserstein_is_a_metric_and_nwd_in_unit_interval(a, b, c):
    a, b, c = (torch.tensor([x], dtype=torch.float64) for x in (a, b, c))
    dab = wasserstein_squared(a, b).sqrt().item()
    assert dab == pytest.approx(wasserstein_squared(b, a).sqrt().item())
    assert wasserstein_squared(a, c).sqrt().item() <= dab + wasserstein_squared(b, c).sqrt().item() + 1e-9
    nwd = normalized_wasserstein(a, b).item()
    assert 0.0 < nwd <= 1.0
    assert nwd == pytest.approx(math.exp(-dab / 12.8))


@settings(max_examples=60, deadline=None)
@given(p=box_st, q=box_st)
def test_kl_nonnegative_and_matches_loop(p, q):
    # Against a scalar loop over the two axes.
    expected = 0.0
    for axis in (0, 1):
        mp, sp = (p[axis] + p[axis + 2]) / 2, (p[axis + 2] - p[axis]) / 2
        mq, sq = (q[axis] + q[axis + 2]) / 2, (q[axis + 2] - q[axis]) / 2
        expected += 0.5 * (sp**2 / sq**2 + (mq - mp) ** 2 / sq**2 - 1 + math.log(sq**2 / sp**2))
    got = kl_divergence(torch.tensor([p], dtype=torch.float64), torch.tensor([q], dtype=torch.float64)).item()
    assert got >= -1e-12
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(gt=st.lists(box_st, min_size=1, max_size=5), prior=st.lists(box_st, min_size=1, max_size=5))
def test_pairwise_fast_paths_match_the_closed_forms(gt, prior):
    # The all-pairs paths (cdist for NWD, split constants for KL) against the element-wise closed forms.
    g, p = torch.tensor(gt), torch.tensor(prior)
    nwd = normalized_wasserstein(g, p)
    assert torch.allclose(nwd, wasserstein_squared(g, p).sqrt().div(-12.8).exp(), rtol=1e-5, atol=1e-6)
    sim = receptive_field_similarity(g, p)
    expected = 1.0 / (1.0 + kl_divergence(p, g).T)
    assert torch.allclose(sim, expected, rtol=1e-4, atol=1e-6)
    assert (sim <= 1.0).all() and (sim > 0).all()
