"""Tests of the ONNX export: the exportable pooling and GroupNorm of hsfpn.nn, the neck and a torchvision backbone in
onnxruntime against torch, which input sizes a graph accepts, and hsfpn-repro export."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from hsfpn.errors import HSFPNError
from hsfpn.export import (
    export_backbone,
    export_neck,
    load_weights,
    neck_example_inputs,
    onnxruntime_session,
    resnet_map_sizes,
)
from hsfpn.nn import HSFPN
from hsfpn.nn.hfp import ChannelPath
from hsfpn.nn.layers import onnx_group_norm
from hsfpn.nn.pool import adaptive_bins, static_adaptive_max_pool2d
from hsfpn.torchvision import resnet_hsfpn_backbone

REPO = Path(__file__).resolve().parent.parent
ISSUE_NECK = dict(in_channels=[64, 128, 256, 512], out_channels=64, num_outs=5)


def test_adaptive_bins_by_hand():
    # n = 5 into 3 cells: [0, 5/3) -> [0, 2), [5/3, 10/3) -> [1, 4), [10/3, 5) -> [3, 5): neighbours overlap.
    assert adaptive_bins(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_bins(8, 4) == [(0, 2), (2, 4), (4, 6), (6, 8)]
    # More cells than elements: every cell still holds one element.
    assert adaptive_bins(2, 4) == [(0, 1), (0, 1), (1, 2), (1, 2)]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 40), w=st.integers(1, 40), kh=st.integers(1, 17), kw=st.integers(1, 17),
       seed=st.integers(0, 2**16))
def test_static_pooling_equals_adaptive_max_pool_bit_for_bit(h, w, kh, kw, seed):
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(static_adaptive_max_pool2d(x, (kh, kw)), F.adaptive_max_pool2d(x, (kh, kw)))


def test_export_traces_no_adaptive_max_pool():
    path = ChannelPath(32, pool_size=16).eval()
    x = torch.randn(1, 32, 50, 37)
    program = torch.export.export(path, (x, x))
    targets = {str(node.target) for node in program.graph.nodes if node.op == "call_function"}
    assert not any("adaptive_max_pool" in t for t in targets), targets
    with torch.no_grad():
        assert torch.equal(program.module()(x, x), path(x, x))


def test_onnx_group_norm_equals_group_norm():
    norm = torch.nn.GroupNorm(4, 16)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.relu(torch.randn(2, 16, 30, 22) * 3 + 1)
    with torch.no_grad():
        assert torch.allclose(onnx_group_norm(x, norm), norm(x), atol=2e-6)


def test_group_norm_of_a_large_map_stays_accurate_in_onnxruntime(tmp_path):
    # 8 channels of 200 x 200 per group, after a ReLU (a mean far from 0): onnxruntime's InstanceNormalization
    # loses ~9e-4 here; the exported form stays within float32 rounding of the float64 result.
    block = HSFPN([32, 64], 256, 2, sdp=False).hfps[0].fuse.eval()
    with torch.no_grad():
        block.gn.weight.uniform_(0.5, 1.5)
    x = torch.randn(1, 256, 200, 200, generator=torch.Generator().manual_seed(0)) * 3
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (x,), path, dynamo=True, external_data=False, verbose=False)
    assert "InstanceNormalization" not in {n.op_type for n in onnx.load(path).graph.node}
    session = onnxruntime_session(path)
    out = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    reference = block.double()(x.double()).detach().numpy()
    assert np.abs(out - reference).max() < 1e-5


@pytest.fixture(scope="module")
def issue_neck():
    torch.manual_seed(0)
    neck = HSFPN(**ISSUE_NECK)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():  # GroupNorm affine parameters away from 1 / 0, so that every parameter shows
        for m in neck.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
    return neck.eval()


@pytest.fixture(scope="module")
def exported_800(issue_neck, tmp_path_factory):
    path = tmp_path_factory.mktemp("onnx") / "neck_800.onnx"
    return export_neck(issue_neck, 800, 800, path)


@pytest.mark.slow
def test_neck_equals_torch_in_onnxruntime_at_800(exported_800):
    report = exported_800
    assert report.path.is_file() and report.size_bytes == report.path.stat().st_size
    assert [o.name for o in report.outputs] == ["p2", "p3", "p4", "p5", "p6"]
    assert [o.shape for o in report.outputs] == [(1, 64, 200 >> i, 200 >> i) for i in range(4)] + [(1, 64, 13, 13)]
    assert report.max_abs_diff <= 1e-4
    assert report.inputs[0] == ("c2", ("batch", 64, 200, 200))


@pytest.mark.slow
def test_neck_equals_torch_in_onnxruntime_at_803_by_797(issue_neck, tmp_path):
    report = export_neck(issue_neck, 803, 797, tmp_path / "neck.onnx")
    assert [o.shape[2:] for o in report.outputs] == [*resnet_map_sizes(803, 797), (13, 13)]
    assert report.max_abs_diff <= 1e-4


@pytest.mark.slow
def test_graph_takes_any_batch_and_refuses_another_size(issue_neck, exported_800):
    session = onnxruntime_session(exported_800.path)
    names = [i.name for i in session.get_inputs()]
    maps = neck_example_inputs(issue_neck.in_channels, 800, 800, batch=3, seed=7)
    outs = session.run(None, dict(zip(names, (t.numpy() for t in maps))))
    with torch.no_grad():
        reference = issue_neck(maps)
    assert max(float(np.abs(o - r.numpy()).max()) for o, r in zip(outs, reference)) <= 1e-4
    # The DCT bases, cutoffs, pooling windows and SDP blocks are fixed at export: 803 x 797 maps are refused.
    other = neck_example_inputs(issue_neck.in_channels, 803, 797)
    with pytest.raises(Exception, match="invalid dimensions"):
        session.run(None, dict(zip(names, (t.numpy() for t in other))))


@pytest.mark.slow
def test_backbone_with_hsfpn_equals_torch_in_onnxruntime(tmp_path):
    torch.manual_seed(0)
    backbone = resnet_hsfpn_backbone(backbone_name="resnet18", weights=None)
    report = export_backbone(backbone, 320, 288, tmp_path / "backbone.onnx", batch=2)
    assert [o.name for o in report.outputs] == ["0", "1", "2", "3", "pool"]
    assert [o.shape for o in report.outputs] == [(2, 256, 80, 72), (2, 256, 40, 36), (2, 256, 20, 18),
                                                 (2, 256, 10, 9), (2, 256, 5, 5)]
    assert report.inputs == (("images", ("batch", 3, 320, 288)),)
    assert report.max_abs_diff <= 1e-4


def test_a_graph_that_differs_is_not_written(tmp_path):
    neck = HSFPN([32, 64], 32, 2).eval()
    out = tmp_path / "neck.onnx"
    with pytest.raises(HSFPNError, match=r"differs from torch's by .* \(> 0\): .*neck.onnx not written"):
        export_neck(neck, 96, 64, out, tolerance=0.0)
    assert list(tmp_path.iterdir()) == []


def test_a_graph_onnxruntime_cannot_run_is_one_line_and_not_written(tmp_path, monkeypatch):
    import hsfpn.export

    def refuse(path, threads=None):
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : no kernel for op X\n(a long stack)")

    monkeypatch.setattr(hsfpn.export, "onnxruntime_session", refuse)
    out = tmp_path / "neck.onnx"
    with pytest.raises(HSFPNError) as caught:
        export_neck(HSFPN([32, 64], 32, 2).eval(), 96, 64, out)
    assert str(caught.value) == ("onnxruntime cannot run the exported graph (RuntimeError: [ONNXRuntimeError] : 9 : "
                                 f"NOT_IMPLEMENTED : no kernel for op X): {out} not written")
    assert list(tmp_path.iterdir()) == []


def test_load_weights_finds_the_module_in_a_detector_checkpoint(tmp_path):
    torch.manual_seed(0)
    source = HSFPN([32, 64], 32, 3)
    target = HSFPN([32, 64], 32, 3)
    path = tmp_path / "detector.pth"
    torch.save({"meta": {"epoch": 3}, "state_dict": {**{f"neck.{k}": v for k, v in source.state_dict().items()},
                                                      "backbone.conv1.weight": torch.zeros(1)}}, path)
    assert load_weights(target, path, ("", "neck.")) == "neck."
    assert all(torch.equal(a, b) for a, b in zip(target.state_dict().values(), source.state_dict().values()))
    with pytest.raises(HSFPNError, match=r"detector.pth: weights do not fit: \d+ of \d+ entries"):
        load_weights(HSFPN([32, 128], 32, 3), path, ("", "neck."))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(REPO / "cli.py"), "repro", "export", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.slow
def test_cli_exports_the_neck_and_says_what_the_graph_accepts(tmp_path):
    torch.manual_seed(0)
    neck = HSFPN([64, 128, 256, 512], 64, 5)
    weights = tmp_path / "neck.pth"
    torch.save(neck.state_dict(), weights)
    out = tmp_path / "neck.onnx"
    result = run_cli("--neck-only", "--in-channels", "64,128,256,512", "--out-channels", "64", "--size", "160,128",
                     "--weights", str(weights), "--out", str(out))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{out}: HS-FPN neck, weights of {weights}, opset ")
    assert lines[1] == "  input  c2: batch x 64 x 40 x 32"
    assert lines[5].startswith("  output p2: batch x 64 x 40 x 32  max |onnxruntime - torch| ")
    assert lines[-1] == "the graph takes 160 x 128 inputs only (export again for another size), any batch"
    session = onnxruntime_session(out)
    maps = neck_example_inputs(neck.in_channels, 160, 128, batch=2)
    with torch.no_grad():
        reference = neck.eval()(maps)
    outs = session.run(None, {f"c{i + 2}": t.numpy() for i, t in enumerate(maps)})
    assert max(float(np.abs(o - r.numpy()).max()) for o, r in zip(outs, reference)) <= 1e-4


def test_cli_refuses_bad_arguments_in_one_line(tmp_path):
    cases = [
        ((), "error: give exactly one of --neck-only and --backbone NAME"),
        (("--neck-only", "--backbone", "resnet18"), "error: give exactly one of --neck-only and --backbone NAME"),
        (("--neck-only", "--size", "800,600,400"), "error: --size: expected H,W or one side, each at least 32"),
        (("--backbone", "resnet9"), "error: unknown backbone 'resnet9'; torchvision's ResNets: resnet18,"),
        (("--neck-only", "--weights", str(tmp_path / "none.pth")), f"error: {tmp_path / 'none.pth'}: no such weights"),
        (("--neck-only", "--out-channels", "48"), "error: HSFPN out_channels must be divisible by 32"),
    ]
    for args, message in cases:
        result = run_cli(*args, "--out", str(tmp_path / "x.onnx"))
        assert result.returncode == 1, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith(message), result.stderr
    assert not (tmp_path / "x.onnx").exists()
    # --out naming a folder: the machine's refusal, in one line naming it, and the folder untouched.
    folder = tmp_path / "a_folder"
    folder.mkdir()
    result = run_cli("--neck-only", "--in-channels", "32,64", "--out-channels", "32", "--num-outs", "2", "--size",
                     "64", "--out", str(folder))
    assert result.returncode == 1, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and result.stderr.startswith("error: [Errno 21] Is a "
                                                                                     "directory"), result.stderr
    assert str(folder) in result.stderr and list(folder.iterdir()) == [] and sorted(tmp_path.iterdir()) == [folder]


def test_export_help_loads_no_torch():
    from test_imports import OPENMMLAB, run_refusing

    code = """
    import cli
    sys.argv = ["hsfpn-repro", "export", "--help"]
    try:
        cli.repro_main()
    except SystemExit as exc:
        assert not exc.code, exc.code
    """
    result = run_refusing(("torch", "torchvision", "onnx", "onnxruntime", *OPENMMLAB), code)
    assert result.returncode == 0, result.stderr
    assert "--neck-only" in result.stdout and "--backbone" in result.stdout and "hsfpn-repro export" in result.stdout
