"""Tests of hsfpn.nn.hfp: channel path, spatial path and the HFP module."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from hsfpn.nn.dct import DCTHighPass
from hsfpn.nn.hfp import HFP, ChannelPath, SpatialPath


def ones_(module):
    for p in module.parameters():
        torch.nn.init.ones_(p)


def test_channel_path_by_hand():
    # 32 channels in 32 groups: each grouped conv is one scalar weight per channel; set them to 1.
    # On a constant map of 1 with k = 1: max = avg = 1, scores relu(1) + relu(1) = 2, weight sigmoid(relu(2)).
    cp = ChannelPath(32, pool_size=1)
    ones_(cp)
    x = torch.ones(1, 32, 4, 4)
    out = cp(x, x)
    assert torch.allclose(out, torch.full_like(x, 1 / (1 + math.exp(-2))))


def test_channel_path_sums_relu_over_the_pooling_grid():
    # k = 2 on a 4 x 4 map with values +-1 in quadrants: max cells (1, 1, -1, -1) -> relu sum 2; the same for
    # the average cells; score = 2 + 2 = 4; channel weight sigmoid(4).
    cp = ChannelPath(32, pool_size=2)
    ones_(cp)
    quad = torch.tensor([[1.0, 1.0, -1.0, -1.0]] * 2 + [[1.0, 1.0, -1.0, -1.0]] * 2)
    src = quad.expand(1, 32, 4, 4)
    x = torch.full((1, 32, 4, 4), 3.0)
    assert torch.allclose(cp(x, src), x * (1 / (1 + math.exp(-4))))


def test_negative_scores_give_weight_one_half():
    # relu after the second conv: a negative score becomes 0 and sigmoid(0) = 0.5 (the release's behaviour).
    cp = ChannelPath(32, pool_size=1)
    ones_(cp)
    with torch.no_grad():
        cp.weight_conv.conv.weight.fill_(-1.0)
    x = torch.rand(1, 32, 5, 5) + 0.1
    assert torch.allclose(cp.channel_weights(x), torch.full((1, 32, 1, 1), 0.5))


def test_concat_fusion_shapes_and_parameters():
    sum_cp, cat_cp = ChannelPath(256, 16, "sum"), ChannelPath(256, 16, "concat")
    assert sum(p.numel() for p in sum_cp.parameters()) == 4096
    assert sum(p.numel() for p in cat_cp.parameters()) == 2048 + 4096
    x = torch.randn(2, 256, 20, 20)
    assert cat_cp(x, x).shape == x.shape


def test_spatial_path_dct_level_multiplies_by_the_response():
    sp = SpatialPath(32, learned_mask=False)
    x = torch.randn(1, 32, 6, 6)
    f = DCTHighPass((0.25, 0.25))(x)
    assert list(sp.parameters()) == []
    assert torch.equal(sp(x, f), x * f)


def test_spatial_path_learned_mask():
    sp = SpatialPath(32, learned_mask=True)
    ones_(sp)
    x = torch.full((1, 32, 3, 3), -1.0)
    # conv gives -32 -> relu 0 -> sigmoid 0.5
    assert torch.allclose(sp(x, None), x * 0.5)
    with pytest.raises(ValueError, match="response"):
        SpatialPath(32, learned_mask=False)(x, None)


def test_hfp_composition_matches_the_equations():
    torch.manual_seed(0)
    hfp = HFP(32, DCTHighPass((0.25, 0.25)), pool_size=4).eval()
    x = torch.randn(2, 32, 12, 10)
    f = DCTHighPass((0.25, 0.25))(x)
    cp = hfp.channel_path(x, f)
    sp = x * f
    conv = hfp.fuse.conv
    expected = hfp.fuse.gn(F.relu(conv(cp + sp)))
    assert torch.allclose(hfp(x), expected, atol=1e-5)


def test_hfp_non_dct_variant_pools_the_input():
    torch.manual_seed(0)
    hfp = HFP(32, None).eval()
    x = torch.randn(1, 32, 7, 9)
    cp = hfp.channel_path(x, x)
    sp = x * torch.sigmoid(F.relu(hfp.spatial_path.mask_conv.conv(x)))
    expected = hfp.fuse.gn(F.relu(hfp.fuse.conv(cp + sp)))
    assert torch.allclose(hfp(x), expected, atol=1e-5)


def test_hfp_parameters_per_variant():
    # REFERENCE section 1: 3x3 conv + bias + GN = 590,592; grouped convs 4,096; spatial 1x1 256 (non-DCT only).
    def count(m):
        return sum(p.numel() for p in m.parameters())

    assert count(HFP(256, DCTHighPass())) == 590_592 + 4_096
    assert count(HFP(256, None)) == 590_592 + 4_096 + 256
    assert count(HFP(256, None, spatial_path=False)) == 590_592 + 4_096  # only CP
    assert count(HFP(256, None, channel_path=False)) == 590_592 + 256  # only SP
    assert count(HFP(256, DCTHighPass(), channel_path=False)) == 590_592


def test_single_paths_run_and_reach_gradients():
    for cp, sp in ((True, False), (False, True), (True, True)):
        for hp in (DCTHighPass(), None):
            hfp = HFP(32, hp, channel_path=cp, spatial_path=sp, pool_size=2)
            x = torch.randn(1, 32, 8, 8, requires_grad=True)
            hfp(x).square().sum().backward()
            assert all(p.grad is not None for p in hfp.parameters())
            assert x.grad is not None


def test_rejects_invalid_configs():
    # Grouped convs (32 groups) and GroupNorm(32) need channels divisible by 32.
    with pytest.raises(ValueError, match="divisible by 32"):
        HFP(40, None)
    # An HFP with neither path is not a module of the paper ("only SDP" has no HFP at all).
    with pytest.raises(ValueError, match="channel path or the spatial path"):
        HFP(32, None, channel_path=False, spatial_path=False)
    # The pooling grid is at least 1 x 1.
    with pytest.raises(ValueError, match="pool_size"):
        ChannelPath(32, pool_size=0)
    # Fusion is a closed set.
    with pytest.raises(ValueError, match="fusion"):
        ChannelPath(32, fusion="mean")
