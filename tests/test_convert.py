"""Tests of hsfpn.convert: release checkpoints -> HSFPN names, and equality with the release's maths."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import cli
from hsfpn.convert import (
    CheckpointConversionError,
    convert_checkpoint,
    convert_neck_state_dict,
    infer_neck_config,
    load_release_state_dict,
)
from hsfpn.neck import HSFPN

CH = [32, 64, 128, 256]
REPO = Path(__file__).resolve().parent.parent


def reference_module():
    """benchmarks/reference_hsfpn.py: the release transcription, whose state dict is in release naming."""
    name = "reference_hsfpn"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / "reference_hsfpn.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def release_neck(seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    ref = reference_module().ReferenceHSFPN(CH, 64, 5, **kwargs)
    ref.init_weights()
    # Non-trivial GroupNorm affine parameters so that a wrong mapping shows in the outputs.
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return ref.eval()


def feats(size: int, batch: int = 1, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // 2 ** (i + 2), size // 2 ** (i + 2), generator=g) for i, c in enumerate(CH)]


def test_release_names_are_the_documented_ones():
    keys = set(release_neck().state_dict())
    assert "SelfAttn_p3.spatial.spatial1x1.0.conv.weight" in keys
    assert "SelfAttn_p1.spatial.spatial1x1.0.conv.weight" not in keys  # DCT levels have no mask conv
    assert "SelfAttn_p2.channel.channel2x1.0.conv.weight" in keys
    assert "SelfAttn_p4.out.1.bias" in keys
    assert "CrossAtten_p2_p1.conv_k.1.weight" in keys


@pytest.mark.parametrize("size,kwargs", [(128, {}), (160, dict(add_extra_convs="on_input")),
                                         (64, dict(add_extra_convs="on_output"))])
def test_converted_weights_give_the_release_outputs(size, kwargs):
    ref = release_neck(**kwargs)
    ours = HSFPN(CH, 64, 5, **kwargs).eval()
    load_release_state_dict(ours, ref.state_dict())
    x = feats(size, batch=2)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    for p, q in zip(a, b):
        assert float((p - q).abs().max() / q.abs().max()) < 1e-4


def test_rename_by_hand():
    t = torch.zeros(1)
    out = convert_neck_state_dict({
        "lateral_convs.0.conv.weight": t,
        "SelfAttn_p4.spatial.spatial1x1.0.conv.weight": t,
        "SelfAttn_p1.channel.channel1x1.0.conv.weight": t,
        "SelfAttn_p2.out.0.conv.bias": t,
        "SelfAttn_p3.out.1.weight": t,
        "CrossAtten_p4_p3.conv_q.0.conv.weight": t,
        "CrossAtten_p2_p1.conv_k.1.bias": t,
    })
    assert list(out) == [
        "lateral_convs.0.conv.weight",
        "hfps.3.spatial_path.mask_conv.conv.weight",
        "hfps.0.channel_path.score_conv.conv.weight",
        "hfps.1.fuse.conv.bias",
        "hfps.2.fuse.gn.weight",
        "sdps.2.query_proj.conv.weight",
        "sdps.0.key_proj.gn.bias",
    ]


def test_unknown_and_non_adjacent_keys_are_named():
    t = torch.zeros(1)
    with pytest.raises(CheckpointConversionError, match=r"CrossAtten_p4_p2\.conv_q\.0\.conv\.weight.*foo\.bar"):
        convert_neck_state_dict({"CrossAtten_p4_p2.conv_q.0.conv.weight": t, "foo.bar": t})


def test_missing_keys_are_named():
    state = release_neck().state_dict()
    del state["SelfAttn_p2.out.1.bias"]
    with pytest.raises(CheckpointConversionError, match=r"missing: hfps\.1\.fuse\.gn\.bias"):
        load_release_state_dict(HSFPN(CH, 64, 5), state)


def test_infer_config_from_weights():
    state = convert_neck_state_dict(release_neck(add_extra_convs="on_input").state_dict())
    cfg = infer_neck_config(state)
    assert cfg == dict(in_channels=CH, out_channels=64, num_outs=5, add_extra_convs="on_input", channel_path=True,
                       spatial_path=True, sdp=True, dct_levels=(0, 1), channel_fusion="sum")


def test_detector_checkpoint_round_trip(tmp_path):
    ref = release_neck()
    state = {"backbone.conv1.weight": torch.randn(4, 3, 7, 7)}
    state.update({f"neck.{k}": v for k, v in ref.state_dict().items()})
    state["rpn_head.rpn_conv.weight"] = torch.randn(2, 2)
    src = tmp_path / "release.pth"
    torch.save({"meta": {"epoch": 12, "CLASSES": ("ship", "vehicle")}, "state_dict": state,
                "optimizer": {"state": {}, "param_groups": []}}, src)
    report = convert_checkpoint(src, tmp_path / "out" / "ours.pth")
    assert report.layout == "detector"
    assert report.dropped == ["optimizer"]
    out = torch.load(report.destination, weights_only=True)
    assert set(out) == {"meta", "state_dict"}
    assert out["meta"]["epoch"] == 12 and out["meta"]["hsfpn_converted_from"] == "release.pth"
    sd = out["state_dict"]
    assert torch.equal(sd["backbone.conv1.weight"], state["backbone.conv1.weight"])
    assert "rpn_head.rpn_conv.weight" in sd
    assert report.unchanged + report.renamed == len(state)
    neck = HSFPN(CH, 64, 5).eval()
    neck.load_state_dict({k[5:]: v for k, v in sd.items() if k.startswith("neck.")}, strict=True)
    x = feats(128)
    with torch.no_grad():
        assert all(float((a - b).abs().max() / b.abs().max()) < 1e-4 for a, b in zip(neck(x), ref(x)))
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["ours.pth"]


def test_bare_neck_file_and_cli(tmp_path):
    src = tmp_path / "neck.pth"
    torch.save(release_neck().state_dict(), src)
    result = CliRunner().invoke(cli.repro_app, ["convert-checkpoint", str(src), str(tmp_path / "ours.pth")])
    assert result.exit_code == 0, result.output
    assert "neck checkpoint" in result.output
    sd = torch.load(tmp_path / "ours.pth", weights_only=True)
    HSFPN(CH, 64, 5).load_state_dict(sd, strict=True)


def test_cli_reports_bad_checkpoints_in_one_line(tmp_path):
    state = release_neck().state_dict()
    state["SelfAttn_p9.extra.weight"] = torch.zeros(1)
    src = tmp_path / "bad.pth"
    torch.save(state, src)
    result = CliRunner().invoke(cli.repro_app, ["convert-checkpoint", str(src), str(tmp_path / "o.pth")])
    assert result.exit_code == 1
    assert "SelfAttn_p9.extra.weight" in result.output
    assert not (tmp_path / "o.pth").exists()
    incomplete = release_neck().state_dict()
    del incomplete["CrossAtten_p3_p2.conv_q.0.conv.weight"]
    torch.save(incomplete, src)
    result = CliRunner().invoke(cli.repro_app, ["convert-checkpoint", str(src), str(tmp_path / "o.pth")])
    assert result.exit_code == 1
    assert "sdps.1.query_proj.conv.weight" in result.output
    missing = CliRunner().invoke(cli.repro_app, ["convert-checkpoint", str(tmp_path / "nope.pth"), "o.pth"])
    assert missing.exit_code == 1 and "no such checkpoint" in missing.output
