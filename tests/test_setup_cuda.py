"""scripts/setup.sh on a CUDA machine, checked here without one: its device detection and CUDA toolkit check
(``--check-cuda`` runs only those) against a fake ``nvidia-smi`` and fake toolkits on PATH."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "scripts" / "setup.sh"


def fake_tool(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(0o755)
    return path


def fake_toolkit(root: Path, release: str) -> Path:
    """A CUDA toolkit folder whose nvcc answers --version and -dryrun as the real one does."""
    fake_tool(root / "bin" / "nvcc",
              f'case "$*" in\n'
              f'  *--version*) echo "Cuda compilation tools, release {release}, V{release}.1";;\n'
              f'  *-dryrun*) echo "#\\$ _HERE_={root}/bin" >&2;;\n'
              f'esac\n')
    return root


def check_cuda(tmp_path: Path, *, gpu: bool = True, path: tuple[Path, ...] = (), **env: str):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    if gpu:
        fake_tool(bin_dir / "nvidia-smi", 'echo "GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0)"\n')
    # Only the fakes and the basic tools: no nvcc of this machine, no /usr/local/cuda.
    base = {k: v for k, v in os.environ.items() if k not in ("CUDA_HOME", "TORCH_CUDA_ARCH_LIST", "HSFPN_DEVICE")}
    full_env = dict(base, PATH=os.pathsep.join([str(bin_dir), *map(str, path), "/usr/bin", "/bin"]),
                    HSFPN_CUDA_DEFAULT_HOME=str(tmp_path / "no-default-cuda"), **env)
    return subprocess.run(["bash", str(SETUP), "--check-cuda"], capture_output=True, text=True, env=full_env,
                          timeout=60)


def test_no_driver_means_the_cpu_build(tmp_path):
    result = check_cuda(tmp_path, gpu=False)
    assert result.returncode == 0
    assert result.stderr == "[setup] CPU build: no NVIDIA driver answers 'nvidia-smi -L'\n"


def test_a_gpu_without_a_toolkit_stops_with_one_line(tmp_path):
    result = check_cuda(tmp_path)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"[setup] FAILED: a CUDA GPU is visible but no CUDA toolkit (no nvcc on PATH, "
                                    f"none in {tmp_path / 'no-default-cuda'}): ")
    assert "set CUDA_HOME" in result.stderr and "HSFPN_DEVICE=cpu" in result.stderr


def test_a_cuda_home_without_nvcc_is_named(tmp_path):
    result = check_cuda(tmp_path, CUDA_HOME=str(tmp_path / "cuda-12.4"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert f"(CUDA_HOME={tmp_path / 'cuda-12.4'} has no bin/nvcc)" in result.stderr


@pytest.mark.parametrize("release,arches", [("12.4", "8.0;9.0"), ("12.8", "8.0;9.0;10.0"), ("13.0", "8.0;9.0;10.0")])
def test_nvcc_on_path_gives_the_toolkit_and_the_arch_list(tmp_path, release, arches):
    toolkit = fake_toolkit(tmp_path / f"cuda-{release}", release)
    # nvcc reached through a wrapper in another folder, as /usr/local/bin/nvcc here: the toolkit is nvcc's own.
    wrapper = fake_tool(tmp_path / "wrap" / "nvcc", f'exec {toolkit}/bin/nvcc "$@"\n')
    result = check_cuda(tmp_path, path=(wrapper.parent,))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"[setup] CUDA build: nvcc {release} in {toolkit}, TORCH_CUDA_ARCH_LIST={arches}\n"


def test_cuda_home_and_arch_list_given_are_used(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda", "13.0")
    result = check_cuda(tmp_path, CUDA_HOME=str(toolkit), TORCH_CUDA_ARCH_LIST="8.6")
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"[setup] CUDA build: nvcc 13.0 in {toolkit}, TORCH_CUDA_ARCH_LIST=8.6\n"


def test_device_override(tmp_path):
    toolkit = fake_toolkit(tmp_path / "cuda", "13.0")
    assert check_cuda(tmp_path, HSFPN_DEVICE="cpu").stderr.startswith("[setup] CPU build")
    forced = check_cuda(tmp_path, gpu=False, HSFPN_DEVICE="cuda", CUDA_HOME=str(toolkit))
    assert forced.returncode == 0 and forced.stderr.startswith("[setup] CUDA build: nvcc 13.0")
    bad = check_cuda(tmp_path, HSFPN_DEVICE="gpu")
    assert bad.returncode == 1
    assert bad.stderr == "[setup] FAILED: HSFPN_DEVICE must be cpu or cuda (or unset to detect), got 'gpu'\n"
