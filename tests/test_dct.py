"""Tests of hsfpn.nn.dct: the DCT high-pass filter of paper eq. 2."""

from __future__ import annotations

import math

import pytest
import torch
import torch_dct
from hypothesis import given, settings
from hypothesis import strategies as st

from hsfpn.nn.dct import DCTHighPass, dct_basis, dct_cutoffs


def release_filter(x: torch.Tensor, ratio: tuple[float, float]) -> torch.Tensor:
    """The release's computation: full DCT, zero the corner, inverse DCT (float64 here)."""
    h, w = x.shape[-2:]
    coeffs = torch_dct.dct_2d(x.double(), norm="ortho")
    coeffs[..., : int(h * ratio[0]), : int(w * ratio[1])] = 0
    return torch_dct.idct_2d(coeffs, norm="ortho")


def test_alpha_zero_passes_the_input_unchanged():
    x = torch.randn(2, 3, 9, 7)
    assert torch.equal(DCTHighPass((0.0, 0.0))(x), x)


def test_alpha_one_blocks_everything():
    x = torch.randn(2, 3, 9, 7)
    out = DCTHighPass((1.0, 1.0))(x)
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0


def test_4x4_dc_removal_is_mean_subtraction():
    # alpha 0.25 on a 4 x 4 map removes int(0.25 * 4) = 1 row and 1 column of coefficients: only the DC term,
    # whose orthonormal basis image is constant 1/4 -> its removal subtracts the map's mean (7.5 for 0..15).
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = DCTHighPass((0.25, 0.25))(x)
    expected = x - 7.5
    assert torch.allclose(out, expected, atol=1e-5)


def test_4x4_first_row_band_removes_column_means():
    # alpha (0.25, 1.0): cut 1 row x 4 columns, i.e. every coefficient with vertical frequency 0. What is left
    # is x minus its mean over the rows: for 0..15 the column means are 6, 7, 8, 9, so each row of the
    # response is constant: -6, -2, 2, 6.
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    out = DCTHighPass((0.25, 1.0))(x)
    expected = torch.tensor([-6.0, -2.0, 2.0, 6.0]).reshape(1, 1, 4, 1).expand(1, 1, 4, 4)
    assert torch.allclose(out, expected, atol=1e-5)


def test_cutoffs_truncate_like_the_release():
    assert dct_cutoffs(25, 25, (0.25, 0.25)) == (6, 6)
    assert dct_cutoffs(200, 100, (0.25, 0.5)) == (50, 50)
    assert dct_cutoffs(3, 1, (0.25, 0.25)) == (0, 0)  # sides below 1/alpha: nothing is removed


def test_small_side_is_not_filtered():
    x = torch.randn(1, 2, 3, 40)
    assert torch.equal(DCTHighPass((0.25, 0.25))(x), x)


def test_basis_is_orthonormal_and_matches_torch_dct():
    b = dct_basis(11)
    assert torch.allclose(b @ b.t(), torch.eye(11), atol=1e-6)
    x = torch.randn(5, 11)
    assert torch.allclose(x @ b.t(), torch_dct.dct(x, norm="ortho"), atol=1e-5)
    assert dct_basis(11, 3).shape == (3, 11)


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    ah=st.floats(0.0, 1.0),
    aw=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_equals_release_filter_for_any_size_and_alpha(h, w, ah, aw, seed):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    ours = DCTHighPass((ah, aw))(x)
    ref = release_filter(x, (ah, aw))
    assert ours.shape == x.shape
    assert torch.allclose(ours.double(), ref, atol=1e-5)


def test_linear_and_idempotent():
    # A projection: filtering twice changes nothing, and the filter of a sum is the sum of the filters.
    hp = DCTHighPass((0.3, 0.2))
    x, y = torch.randn(1, 2, 17, 13), torch.randn(1, 2, 17, 13)
    assert torch.allclose(hp(hp(x)), hp(x), atol=1e-5)
    assert torch.allclose(hp(x + y), hp(x) + hp(y), atol=1e-5)


def test_runs_in_fp32_under_bf16_autocast():
    hp = DCTHighPass((0.25, 0.25))
    x = torch.randn(1, 4, 32, 32).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = hp(x)
    assert out.dtype == torch.bfloat16
    # Same result as the fp32 computation on the same bf16 values, rounded once at the end.
    expected = (x.float() - hp.low_pass(x.float())).bfloat16()
    assert torch.equal(out, expected)


def test_gradient_is_the_filter_itself():
    # The filter is a symmetric projection, so the gradient of sum(F * g) with respect to x is F(g).
    hp = DCTHighPass((0.25, 0.5))
    x = torch.randn(1, 1, 8, 6, requires_grad=True)
    g = torch.randn(1, 1, 8, 6)
    (hp(x) * g).sum().backward()
    assert torch.allclose(x.grad, hp(g), atol=1e-5)


def test_macs_count_the_four_products():
    # H=8, W=6, cut 2 x 3: 2*2*8*6 + 2*2*6*3 = 192 + 72 = 264 per map, 2 x 3 maps.
    assert DCTHighPass((0.25, 0.5)).macs((2, 3, 8, 6)) == 6 * 264
    assert DCTHighPass((0.0, 0.5)).macs((2, 3, 8, 6)) == 0


def test_rejects_ratio_outside_unit_interval():
    # alpha is a fraction of each side: values outside [0, 1] have no meaning.
    with pytest.raises(ValueError, match="ratio"):
        DCTHighPass((0.25, 1.5))
    with pytest.raises(ValueError, match="ratio"):
        DCTHighPass((0.25,))


def test_basis_scale():
    b = dct_basis(4)
    assert math.isclose(float(b[0, 0]), 0.5, rel_tol=1e-6)
    assert math.isclose(float(b[1, 0]), math.sqrt(0.5) * math.cos(math.pi / 8), rel_tol=1e-6)
