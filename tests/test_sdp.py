"""Tests of hsfpn.nn.sdp: block cross-attention and the SDP module."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsfpn.nn.sdp import SDP, BlockCrossAttention, block_spans


def loop_attention(q, k, v, block):
    """Explicit loop over the blocks of the documented grid (remainder blocks in the last row/column)."""
    n, c, h, w = q.shape
    out = torch.zeros_like(q)
    bh, bw = block
    for r0 in range(0, h, bh):
        for c0 in range(0, w, bw):
            r1, c1 = min(r0 + bh, h), min(c0 + bw, w)
            for b in range(n):
                qs = q[b, :, r0:r1, c0:c1].reshape(c, -1).t()
                ks = k[b, :, r0:r1, c0:c1].reshape(c, -1).t()
                vs = v[b, :, r0:r1, c0:c1].reshape(c, -1).t()
                a = torch.softmax(qs @ ks.t() / math.sqrt(c), dim=-1)
                out[b, :, r0:r1, c0:c1] = (a @ vs).t().reshape(c, r1 - r0, c1 - c0)
    return out


def test_block_spans_by_hand():
    assert block_spans(201, 26) == [(0, 182, 26), (182, 201, 19)]
    assert block_spans(100, 25) == [(0, 100, 25)]
    assert block_spans(7, 10) == [(0, 7, 7)]  # a block larger than the map is the whole map
    assert block_spans(5, 1) == [(0, 5, 1)]


def test_equals_loop_over_blocks_when_sides_divide():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 8, 6, 9, generator=g) for _ in range(3))
    out = BlockCrossAttention()(q, k, v, (3, 3))
    assert torch.allclose(out, loop_attention(q, k, v, (3, 3)), atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 13), w=st.integers(1, 13), bh=st.integers(1, 6), bw=st.integers(1, 6),
       seed=st.integers(0, 1000))
def test_equals_loop_over_blocks_for_any_size(h, w, bh, bw, seed):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(1, 4, h, w, generator=g) for _ in range(3))
    out = BlockCrossAttention()(q, k, v, (bh, bw))
    assert out.shape == q.shape
    assert torch.allclose(out, loop_attention(q, k, v, (bh, bw)), atol=1e-5)


def test_single_token_blocks_return_the_values():
    # softmax over one key is 1: every query receives its own pixel's value.
    q, k, v = torch.randn(1, 4, 3, 5), torch.randn(1, 4, 3, 5), torch.randn(1, 4, 3, 5)
    assert torch.allclose(BlockCrossAttention()(q, k, v, (1, 1)), v)


def test_equal_keys_average_the_values():
    # With identical keys inside a block every weight is 1/4, so each output is its block's mean value.
    q = torch.randn(1, 2, 2, 4)
    k = torch.ones(1, 2, 2, 4)
    v = torch.arange(16.0).reshape(1, 2, 2, 4)
    out = BlockCrossAttention()(q, k, v, (2, 2))
    # channel 0 block 0 = [[0, 1], [4, 5]] -> 2.5; block 1 = [[2, 3], [6, 7]] -> 4.5
    assert torch.allclose(out[0, 0], torch.tensor([[2.5, 2.5, 4.5, 4.5], [2.5, 2.5, 4.5, 4.5]]))


def test_sdp_is_residual_cross_attention_with_v_equal_k():
    torch.manual_seed(0)
    sdp = SDP(32).eval()
    low, high = torch.randn(1, 32, 8, 8), torch.randn(1, 32, 8, 8)
    q = sdp.query_proj(low)
    k = sdp.key_proj(high)
    expected = low + loop_attention(q, k, k, (4, 4))
    assert torch.allclose(sdp(low, high, (4, 4)), expected, atol=1e-5)


@pytest.mark.parametrize("proj", ["query_proj", "key_proj"])
def test_projections_are_groupnorm_of_relu_of_conv(proj):
    # Q = GN(relu(conv(x))) and K likewise, as in the release (ports often drop the ReLU or put it last).
    # A conv of -1 weights on a positive map is negative everywhere: the ReLU makes it 0, and GroupNorm of a
    # zero map is its bias. Without the ReLU the GN output would vary; with the ReLU last it would be >= 0.
    sdp = SDP(32)
    layer = getattr(sdp, proj)
    with torch.no_grad():
        layer.conv.weight.fill_(-1.0)
        layer.gn.bias.copy_(torch.linspace(-1.0, 1.0, 32))
    out = layer(torch.rand(2, 32, 3, 4) + 0.1)
    assert torch.equal(out, torch.linspace(-1.0, 1.0, 32).view(1, 32, 1, 1).expand(2, 32, 3, 4))


@pytest.mark.parametrize("low_size,high_size", [((8, 12), (4, 6)), ((9, 7), (5, 4)), ((6, 6), (6, 6))])
def test_sdp_upsamples_the_level_above_as_the_paper(low_size, high_size):
    # Paper order: K = GN(relu(conv(up(P)))). The x2 case runs the projection first (exact); others do not.
    torch.manual_seed(1)
    sdp = SDP(64).eval()
    with torch.no_grad():
        sdp.key_proj.gn.weight.uniform_(0.5, 1.5)
        sdp.key_proj.gn.bias.uniform_(-0.5, 0.5)
    low, high = torch.randn(2, 64, *low_size), torch.randn(2, 64, *high_size)
    k = sdp.key_proj(torch.nn.functional.interpolate(high, size=low_size, mode="nearest"))
    expected = low + loop_attention(sdp.query_proj(low), k, k, (3, 3))
    assert torch.allclose(sdp(low, high, (3, 3)), expected, atol=1e-5)


def test_sdp_macs_follow_the_paper_formulation():
    projections, attention = SDP(32).macs((1, 32, 8, 8), (4, 4))
    assert projections == 2 * 64 * 32 * 32
    assert attention == 4 * 2 * 16 * 16 * 32


def test_sdp_parameters():
    # 2 x (1x1 conv without bias + GroupNorm): 2 x (256 * 256 + 2 * 256) = 132,096 (REFERENCE section 1).
    assert sum(p.numel() for p in SDP(256).parameters()) == 132_096


def test_gradients_reach_every_parameter():
    sdp = SDP(32)
    low = torch.randn(2, 32, 6, 10, requires_grad=True)
    high = torch.randn(2, 32, 3, 5, requires_grad=True)
    sdp(low, high, (4, 4)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in sdp.parameters())
    assert high.grad.abs().sum() > 0


def test_macs_by_hand():
    # 8 x 8 map, 4 x 4 blocks: 4 blocks of 16 tokens, 2 * 16 * 16 * C each.
    assert BlockCrossAttention.macs((1, 32, 8, 8), (4, 4)) == 4 * 2 * 16 * 16 * 32
    # 5 x 8 with 4 x 4 blocks: two 16-token blocks and two 4-token remainder blocks.
    assert BlockCrossAttention.macs((1, 2, 5, 8), (4, 4)) == 2 * (2 * 16 * 16 * 2) + 2 * (2 * 4 * 4 * 2)


def test_rejects_bad_channels_and_shapes():
    # GroupNorm(32) needs channels divisible by 32.
    with pytest.raises(ValueError, match="divisible by 32"):
        SDP(48)
    # q, k and v are one map each of one shape.
    with pytest.raises(ValueError, match="one shape"):
        BlockCrossAttention()(torch.randn(1, 4, 4, 4), torch.randn(1, 4, 4, 2), torch.randn(1, 4, 4, 2), (2, 2))
