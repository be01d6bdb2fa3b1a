"""benchmarks/gpu_suite.py cannot rot: its --quick run prints the whole table on the CPU, in a process that refuses
every package a bare GPU machine (torch, maybe torchvision) would not have."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from test_imports import run_refusing

REPO = Path(__file__).resolve().parent.parent
SUITE = REPO / "benchmarks" / "gpu_suite.py"
# The project's other dependencies and packages: none may be needed by the suite. Imports of the first fail in
# the child; the others are checked to stay unimported (torch's compiler probes for several of them).
NOT_ON_A_BARE_GPU_MACHINE = ("mmcv", "mmdet", "mmengine", "torch_dct", "dotamini10", "pipelines")
NOT_IMPORTED = ("cv2", "shapely", "pandas", "numba", "typer", "rich", "matplotlib", "onnx", "onnxruntime", "onnxscript")


@pytest.mark.slow
def test_quick_run_prints_the_table_with_only_torch_and_torchvision():
    code = f"""
    import runpy
    sys.argv = [{str(SUITE)!r}, "--quick"]
    try:
        runpy.run_path({str(SUITE)!r}, run_name="__main__")
    except SystemExit as exc:
        print("exit", exc.code)
    print("repository modules:", sorted({{m.partition(".")[0] for m in sys.modules
                                          if m.partition(".")[0] in ("hsfpn", "bench_neck", "dotamini10")}}))
    print("hsfpn modules:", sorted(m for m in sys.modules if m.startswith("hsfpn.")))
    print("not imported:", not any(m.partition(".")[0] in {NOT_IMPORTED!r} for m in sys.modules))
    """
    result = run_refusing(NOT_ON_A_BARE_GPU_MACHINE, code, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-4] == "exit 0", result.stdout
    assert lines[-3] == "repository modules: ['bench_neck', 'hsfpn']"
    assert lines[-1] == "not imported: True"
    assert set(lines[-2].split(": ", 1)[1].strip("[]").replace("'", "").split(", ")) <= {
        "hsfpn.errors", "hsfpn.nn", "hsfpn.nn.dct", "hsfpn.nn.hfp", "hsfpn.nn.layers", "hsfpn.nn.neck",
        "hsfpn.nn.pool", "hsfpn.nn.sdp", "hsfpn.torchvision"}
    start = next(i for i, line in enumerate(lines) if line.startswith("HS-FPN GPU suite --quick: CPU, torch "))
    table = lines[start + 1:-4]
    assert table[0] == "| part | setting | FPN | HS-FPN | HS-FPN / FPN | target |"
    rows = [line.split(" | ") for line in table[2:]]
    assert [r[1] for r in rows[:4]] == ["forward, fp32", "forward+backward, fp32", "forward, bf16",
                                        "forward+backward, bf16"]
    assert all(r[0] == "| neck 64x64, batch 2" for r in rows[:4])
    assert rows[4][0] == "| CPU vs CPU (no GPU)" and rows[4][-1] == "<= 1e-3 x output: yes |"
    detector = rows[5:]
    assert [r[1] for r in detector] == ["train s/iter", "loss over 8 steps", "eval boxes per image"]
    assert detector[0][0].startswith("| Faster R-CNN resnet18, 128x128, batch 2")
    assert all("decreasing: yes" in cell for cell in detector[1][2:4])
    assert all("finite and inside: yes" in cell for cell in detector[2][2:4])


def test_nms_stand_in_is_greedy_nms():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from gpu_suite import greedy_nms

    # A and B overlap with IoU 81 / 119 = 0.68; C is apart. Kept in decreasing score order.
    boxes = torch.tensor([[1.0, 1.0, 11.0, 11.0], [20.0, 20.0, 30.0, 30.0], [0.0, 0.0, 10.0, 10.0]])
    scores = torch.tensor([0.8, 0.7, 0.9])
    assert greedy_nms(boxes, scores, 0.5).tolist() == [2, 1]
    assert greedy_nms(boxes, scores, 0.7).tolist() == [2, 0, 1]
    # Suppression is transitive only through kept boxes: B removed by A cannot remove D.
    chain = torch.tensor([[0.0, 0.0, 10.0, 10.0], [3.0, 0.0, 13.0, 10.0], [6.0, 0.0, 16.0, 10.0]])
    assert greedy_nms(chain, torch.tensor([0.9, 0.8, 0.7]), 0.4).tolist() == [0, 2]
