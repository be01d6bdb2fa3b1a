"""Tests of hsfpn.nn: the plain-PyTorch HS-FPN equals the MMDetection neck, takes any input kind, and runs under
torch.compile, torch.export, autocast and channels-last; plus the details ports of the neck most often get wrong."""

from __future__ import annotations

import importlib.util
import math
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import hsfpn.nn as hnn
from hsfpn.convert import convert_checkpoint
from hsfpn.neck import HSFPN as MMDetHSFPN

CH = [32, 64, 128, 256]
REPO = Path(__file__).resolve().parent.parent


def resnet_sizes(h: int, w: int) -> list[tuple[int, int]]:
    """C2..C5 sizes a ResNet gives for an h x w image (every stride-2 layer rounds up)."""
    sizes = []
    for _ in range(5):
        h, w = math.ceil(h / 2), math.ceil(w / 2)
        sizes.append((h, w))
    return sizes[1:]


def feats(h: int, w: int, batch: int = 1, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, *s, generator=g) for c, s in zip(CH, resnet_sizes(h, w))]


def randomise_norms(module: torch.nn.Module, seed: int = 3) -> None:
    """GroupNorm affine parameters away from 1 / 0, so that a wrong name or order shows in the outputs."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


def pair(**kwargs) -> tuple[torch.nn.Module, torch.nn.Module]:
    """An MMDetection HSFPN with random weights and a plain one loaded from its state dict (strict)."""
    torch.manual_seed(0)
    mm = MMDetHSFPN(CH, 64, **kwargs)
    mm.init_weights()
    randomise_norms(mm)
    plain = hnn.HSFPN(CH, 64, **kwargs)
    plain.load_state_dict(mm.state_dict(), strict=True)
    return mm.eval(), plain.eval()


CONFIGS = {
    "default": dict(num_outs=5),
    "on_input": dict(num_outs=5, add_extra_convs=True),
    "on_lateral": dict(num_outs=6, add_extra_convs="on_lateral", relu_before_extra_convs=True),
    "on_output": dict(num_outs=6, add_extra_convs="on_output"),
    "start_level": dict(num_outs=4, start_level=1),
    "end_level": dict(num_outs=3, end_level=2),
    "concat_alpha_dct3": dict(num_outs=5, channel_fusion="concat", ratio=(0.5, 0.25), dct_levels=(0, 1, 2)),
    "pool_sizes": dict(num_outs=5, pool_sizes=(4, 2, 2, 1)),
    "only_sdp": dict(num_outs=5, channel_path=False, spatial_path=False),
    "only_cp": dict(num_outs=5, spatial_path=False, sdp=False),
    "only_sp": dict(num_outs=5, channel_path=False),
    "all_off": dict(num_outs=5, channel_path=False, spatial_path=False, sdp=False),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_same_parameter_names_and_shapes_as_the_mmdet_neck(name):
    mm, plain = pair(**CONFIGS[name])
    assert [(k, v.shape) for k, v in plain.state_dict().items()] == [(k, v.shape) for k, v in mm.state_dict().items()]
    # And back: the plain neck's state dict loads into the MMDetection one.
    MMDetHSFPN(CH, 64, **CONFIGS[name]).load_state_dict(plain.state_dict(), strict=True)


# (256, 192) has every side a multiple of 32 (the release's sizes); (203, 157) halves unevenly at every level.
@pytest.mark.parametrize("size", [(256, 192), (203, 157)])
@pytest.mark.parametrize("name", CONFIGS)
def test_outputs_equal_the_mmdet_neck(name, size):
    mm, plain = pair(**CONFIGS[name])
    x = feats(*size, batch=2)
    with torch.no_grad():
        ref, ours = mm(x), plain(x)
    assert len(ours) == len(ref) == CONFIGS[name]["num_outs"]
    assert all(torch.equal(a, b) for a, b in zip(ours, ref))


def test_top_down_scale_factor_equals_the_mmdet_neck():
    mm, plain = pair(num_outs=5, upsample_cfg=dict(scale_factor=2, mode="nearest"))
    x = feats(256, 256)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(plain(x), mm(x)))


def test_gradients_equal_the_mmdet_neck():
    mm, plain = pair(num_outs=5, add_extra_convs="on_input")
    mm.train(), plain.train()
    x = feats(100, 84, batch=2)
    for neck in (mm, plain):
        sum((o * (i + 1)).square().mean() for i, o in enumerate(neck([t.clone() for t in x]))).backward()
    grads = dict(mm.named_parameters())
    for name, p in plain.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, grads[name].grad), name


def test_default_init_is_the_mmdet_necks():
    # Xavier-uniform convs (zero bias), GroupNorm 1 / 0: checked against the bound of each conv.
    torch.manual_seed(0)
    neck = hnn.HSFPN(CH, 64, 5)
    for name, m in neck.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            k = m.kernel_size[0] * m.kernel_size[1]
            bound = math.sqrt(6.0 / (m.in_channels // m.groups * k + m.out_channels * k))
            assert 0.5 * bound < float(m.weight.detach().abs().max()) <= bound + 1e-6, name
            assert m.bias is None or torch.count_nonzero(m.bias) == 0, name
        elif isinstance(m, torch.nn.GroupNorm):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and torch.count_nonzero(m.bias) == 0


def test_list_tuple_and_mapping_inputs_return_their_kind():
    _, neck = pair(num_outs=5)
    x = feats(96, 64)
    with torch.no_grad():
        as_list = neck(x)
        as_tuple = neck(tuple(x))
        as_odict = neck(OrderedDict((f"c{i + 2}", t) for i, t in enumerate(x)))
        as_dict = neck({str(i): t for i, t in enumerate(x)})
    assert type(as_list) is list and type(as_tuple) is tuple
    assert type(as_odict) is OrderedDict and list(as_odict) == ["c2", "c3", "c4", "c5", "extra1"]
    assert type(as_dict) is dict and list(as_dict) == ["0", "1", "2", "3", "extra1"]
    for outs in (as_tuple, list(as_odict.values()), list(as_dict.values())):
        assert all(torch.equal(a, b) for a, b in zip(outs, as_list))


def test_mapping_keys_follow_the_used_levels():
    _, neck = pair(num_outs=5, start_level=1, add_extra_convs="on_output")
    x = OrderedDict((f"c{i + 2}", t) for i, t in enumerate(feats(64, 64)))
    with torch.no_grad():
        out = neck(x)
    assert list(out) == ["c3", "c4", "c5", "extra1", "extra2"]
    assert [tuple(v.shape[2:]) for v in out.values()] == [(8, 8), (4, 4), (2, 2), (1, 1), (1, 1)]


def test_rejects_invalid_configs_and_inputs():
    # FPN's constructor rules, as clear errors (MMDetection's FPN asserts them).
    with pytest.raises(ValueError, match="num_outs must be at least the 4"):
        hnn.HSFPN(CH, 64, 3)
    with pytest.raises(ValueError, match="num_outs must be 3"):
        hnn.HSFPN(CH, 64, 4, end_level=2)
    with pytest.raises(ValueError, match="add_extra_convs"):
        hnn.HSFPN(CH, 64, 5, add_extra_convs="on_top")
    with pytest.raises(ValueError, match="start_level"):
        hnn.HSFPN(CH, 64, 5, start_level=4)
    # The HS-FPN switches, shared with the MMDetection neck.
    with pytest.raises(ValueError, match="pool_sizes"):
        hnn.HSFPN(CH, 64, 5, pool_sizes=(16, 8))
    with pytest.raises(ValueError, match="divisible by 32"):
        hnn.HSFPN(CH, 48, 5)
    with pytest.raises(ValueError, match="expects 4 input maps"):
        hnn.HSFPN(CH, 64, 5)(feats(64, 64)[:3])


def reference_module():
    """benchmarks/reference_hsfpn.py: the release transcription, whose state dict is in release naming."""
    name = "reference_hsfpn"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "reference_hsfpn.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_release_checkpoint_loads_into_both_through_convert_checkpoint(tmp_path):
    torch.manual_seed(0)
    release = reference_module().ReferenceHSFPN(CH, 64, 5)
    release.init_weights()
    randomise_norms(release)
    src = tmp_path / "release.pth"
    torch.save({"state_dict": {f"neck.{k}": v for k, v in release.state_dict().items()}, "meta": {}}, src)
    convert_checkpoint(src, tmp_path / "ours.pth")
    state = torch.load(tmp_path / "ours.pth", weights_only=True)["state_dict"]
    neck_state = {k[len("neck."):]: v for k, v in state.items()}
    plain, mm = hnn.HSFPN(CH, 64, 5).eval(), MMDetHSFPN(CH, 64, 5).eval()
    plain.load_state_dict(neck_state, strict=True)
    mm.load_state_dict(neck_state, strict=True)
    x = feats(256, 224, batch=2)
    with torch.no_grad():
        ref, ours, theirs = release.eval()(x), plain(x), mm(x)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))
    # The release computes the DCT with FFTs and the attention unfused: equal to rounding.
    assert all(float((a - b).abs().max() / b.abs().max()) < 1e-4 for a, b in zip(ours, ref))


# ---------------------------------------------------------------------------------------------
# compilers, precisions and memory formats
# ---------------------------------------------------------------------------------------------


def small_neck() -> hnn.HSFPN:
    """Two levels, both HFP variants, an SDP and an extra conv: every kind of op, few kernels to compile."""
    torch.manual_seed(0)
    neck = hnn.HSFPN([32, 64], 32, 3, dct_levels=(0,), add_extra_convs="on_output")
    randomise_norms(neck)
    return neck.eval()


@pytest.mark.slow
def test_torch_compile_default_backend():
    # Inductor on CPU compiles C++ kernels: the first run on a machine takes minutes, later ones use its cache.
    neck = small_neck()
    x = [torch.randn(2, 32, 24, 20), torch.randn(2, 64, 12, 10)]
    compiled = torch.compile(neck)
    with torch.no_grad():
        ref, out = neck(x), compiled(x)
    assert len(out) == 3
    for a, b in zip(out, ref):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def test_torch_export_equals_eager():
    _, neck = pair(num_outs=5, add_extra_convs="on_input")
    x = feats(203, 157, batch=2)
    program = torch.export.export(neck, (x,))
    with torch.no_grad():
        ref = neck(x)
        out = program.module()(x)
    assert all(torch.equal(a, b) for a, b in zip(out, ref))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_autocast_runs_close_to_fp32(dtype):
    _, neck = pair(num_outs=5)
    x = feats(160, 128)
    with torch.no_grad():
        ref = neck(x)
        with torch.autocast("cpu", dtype=dtype):
            low = neck(x)
    for a, b in zip(low, ref):
        assert a.dtype == dtype and torch.isfinite(a).all()
        # bf16 keeps 8 bits of mantissa, fp16 11: a few per cent of the largest value at most.
        assert float((a.float() - b).abs().max() / b.abs().max()) < (0.05 if dtype == torch.bfloat16 else 0.01)


def test_autocast_backward_reaches_every_parameter():
    _, neck = pair(num_outs=5)
    neck.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = sum(o.float().square().mean() for o in neck(feats(96, 96, batch=2)))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in neck.parameters())


def test_channels_last_inputs_give_the_same_maps():
    _, neck = pair(num_outs=5, add_extra_convs="on_input")
    x = feats(203, 157, batch=2)
    with torch.no_grad():
        ref = neck(x)
        out = neck([t.to(memory_format=torch.channels_last) for t in x])
    for a, b in zip(out, ref):
        # Other conv kernels run on channels-last memory: equal to rounding, not bit for bit.
        assert a.shape == b.shape and float((a - b).abs().max() / b.abs().max()) < 1e-5


# ---------------------------------------------------------------------------------------------
# what ports of the neck get wrong (README "Use HS-FPN in your own model")
# ---------------------------------------------------------------------------------------------


def test_every_conv_inside_hfp_and_sdp_is_followed_by_a_relu():
    # The release's ConvModule adds a ReLU after every conv, also before each GroupNorm. Negative weights on a
    # positive map give a negative, varying conv output: with the ReLU the block returns exactly its GN bias
    # (GroupNorm of zeros) or zero; without it (or with it after the GN) it would not.
    neck = hnn.HSFPN([256, 512, 1024, 2048], 256, 5)
    blocks = [m for part in (neck.hfps, neck.sdps) for m in part.modules() if isinstance(m, hnn.ConvActNorm)]
    # 4 HFPs: score, weight and 3x3 fuse convs, plus the mask conv at the 2 coarse levels; 3 SDPs: Q and K.
    assert len(blocks) == 4 * 3 + 2 + 3 * 2
    g = torch.Generator().manual_seed(0)
    for block in blocks:
        with torch.no_grad():
            block.conv.weight.fill_(-1.0)
            x = torch.rand(1, block.conv.in_channels, 3, 5, generator=g) + 0.1
            expected = torch.zeros(1, block.conv.out_channels, 3, 5)
            if block.gn is not None:
                block.gn.bias.copy_(torch.rand(block.gn.bias.shape, generator=g) - 0.5)
                expected += block.gn.bias.view(1, -1, 1, 1)
            assert torch.equal(block(x), expected)


def test_dct_only_at_the_two_finest_levels():
    neck = hnn.HSFPN([256, 512, 1024, 2048], 256, 5)
    assert [h.high_pass is not None for h in neck.hfps] == [True, True, False, False]
    assert [h.channel_path.pool_size for h in neck.hfps] == [16, 8, 1, 1]
    # The coarse levels learn their spatial mask instead (the release's spatial1x1 exists only there).
    assert [h.spatial_path.mask_conv is not None for h in neck.hfps] == [False, False, True, True]


def test_sdp_blocks_are_the_size_of_the_c5_lateral_map():
    # At 800 x 800 C5 is 25 x 25, so C2 (200 x 200) is cut into 8 x 8 blocks, C3 into 4 x 4, C4 into 2 x 2.
    # Here 203 x 157: C2..C5 are 51 x 40, 26 x 20, 13 x 10 and 7 x 5; every SDP (top-down: C4, C3, C2) gets
    # C5's size as its block, also where it does not divide the finer map.
    neck = hnn.HSFPN(CH, 32, 5)
    seen = []
    for sdp in neck.sdps:
        sdp.register_forward_hook(lambda m, args, out: seen.append((tuple(args[0].shape[2:]), args[2])))
    with torch.no_grad():
        neck(feats(203, 157))
    assert seen == [((13, 10), (7, 5)), ((26, 20), (7, 5)), ((51, 40), (7, 5))]


def test_top_down_sum_runs_after_sdp_on_the_sdp_outputs():
    # L_i = SDP(HFP(L_i), up(L_{i+1})) from the top down, *then* FPN's sum P_i = L_i + up(P_{i+1}): the sum
    # does not feed SDP and SDP does not replace the sum.
    _, neck = pair(num_outs=4)
    x = feats(128, 96)
    with torch.no_grad():
        lat = [conv(t) for conv, t in zip(neck.lateral_convs, x)]
        lat = [hfp(t) for hfp, t in zip(neck.hfps, lat)]
        block = tuple(lat[3].shape[2:])
        for i in (2, 1, 0):
            lat[i] = neck.sdps[i](lat[i], lat[i + 1], block)
        for i in (3, 2, 1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], mode="nearest")
        expected = [conv(t) for conv, t in zip(neck.fpn_convs, lat)]
        assert all(torch.equal(a, b) for a, b in zip(neck(x), expected))


def test_readme_example_runs_and_prints_p2_to_p6(capsys):
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Use HS-FPN in your own model", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    shapes = [(1, 256, 80 >> i, 80 >> i) for i in range(5)]
    assert [tuple(p.shape) for p in namespace["p2_to_p6"]] == shapes
    assert capsys.readouterr().out.strip() == str(shapes)
