"""Settings resolution: defaults, then preset, then CLI overrides, with validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.presets import SettingsError, SyntheticSpec, resolve_settings


def test_paper_preset_is_the_papers_schedule(tmp_path):
    s = resolve_settings("paper", tmp_path)
    assert (s.img_scale, s.max_epochs, s.milestones, s.warmup_iters, s.batch_per_gpu) == (800, 12, (8, 11), 500, 1)
    assert s.lr_factor == 1.0 and s.max_per_img is None and s.pretrained is None
    assert s.effective_batch == 1  # one GPU by default; the paper used 2


def test_smoke_preset_then_cli_overrides(tmp_path):
    s = resolve_settings("smoke", tmp_path, max_epochs=3, milestones=[2, 3], lr_factor=None)
    assert s.img_scale == 256 and s.gpus == 0 and s.max_epochs == 3 and s.milestones == (2, 3)
    assert s.lr_factor == 2.0 and s.clip_grad == 35.0  # None means "not given": the preset's value stays
    assert s.effective_batch == 2 and s.is_smoke
    assert s.to_json()["effective_batch"] == 2 and s.to_json()["work_dir"] == str(tmp_path)


def test_effective_batch_counts_gpus(tmp_path):
    assert resolve_settings("paper", tmp_path, gpus=2, launcher="slurm").effective_batch == 2
    assert resolve_settings("paper", tmp_path, gpus=4, launcher="pytorch", batch_per_gpu=2).effective_batch == 8


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(launcher="mpi"), "launcher must be one of"),  # closed set of launchers
        (dict(launcher="pytorch", gpus=0), "needs --gpus >= 1"),  # torchrun without GPUs makes no sense here
        (dict(gpus=2), "needs --launcher pytorch or slurm"),  # one plain process drives one GPU
        (dict(img_scale=250), "multiple of 32"),  # SDP blocks need sides divisible by 32
        (dict(milestones=(11, 8)), "milestones must be increasing"),
        (dict(milestones=(8, 13)), "milestones must be increasing"),  # beyond max_epochs
        (dict(gpus=-1), "gpus must be >= 0"),
        (dict(lr_factor=0.0), "lr_factor must be > 0"),
        (dict(clip_grad=-1.0), "clip_grad must be > 0"),
        (dict(max_per_img=0), "max_per_img must be >= 1"),
        (dict(colour="red"), "unknown setting"),
        (dict(train_crop=100), "train_crop must be a multiple of 32"),
        (dict(img_scale=256, train_crop=512), "train_crop must be a multiple of 32 within 32..img_scale=256"),
        (dict(seeds=()), "seeds must be distinct"),
        (dict(threads=0), "threads must be >= 1"),
    ],
)
def test_invalid_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings("paper", tmp_path, **overrides)


def test_unknown_preset_and_smoke_with_data_root(tmp_path):
    with pytest.raises(SettingsError, match="preset must be one of paper, smoke"):
        resolve_settings("fast", tmp_path)
    with pytest.raises(SettingsError, match="drop --data-root"):
        resolve_settings("smoke", tmp_path, data_root=tmp_path)


@given(st.integers(1, 40), st.integers(0, 8))
def test_any_valid_epoch_count_resolves(epochs, gpus):
    launcher = "pytorch" if gpus > 1 else "none"
    s = resolve_settings("smoke", Path("w"), max_epochs=epochs, milestones=(epochs,), gpus=gpus, launcher=launcher)
    assert s.max_epochs == epochs and s.effective_batch == max(gpus, 1) * 2


def test_synthetic_spec_is_part_of_the_settings(tmp_path):
    spec = SyntheticSpec(num_train=2, num_test=1, image_size=64, seed=3)
    assert resolve_settings("smoke", tmp_path, synthetic=spec).synthetic == spec


def test_nproc_defaults_to_the_gpus_or_one_cpu_process(tmp_path):
    assert resolve_settings("paper", tmp_path, gpus=4, launcher="pytorch").processes == 4
    assert resolve_settings("smoke", tmp_path).processes == 1
    cpu = resolve_settings("smoke", tmp_path, nproc=2, launcher="pytorch")
    assert (cpu.processes, cpu.effective_batch, cpu.backend) == (2, 4, "gloo")  # 2 processes x 2 images
    assert resolve_settings("paper", tmp_path, gpus=2, launcher="slurm").backend == "nccl"
    assert cpu.to_json()["processes"] == 2 and cpu.to_json()["nproc"] == 2


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(nproc=2), "--nproc 2 needs --launcher pytorch or slurm"),
        (dict(nproc=0, launcher="pytorch"), "nproc must be >= 1"),
        (dict(gpus=2, nproc=3, launcher="pytorch"), "one process per GPU"),
        (dict(gpus=0, nproc=1, launcher="slurm"), "or --nproc >= 2 for CPU processes"),
        (dict(val_interval=-1), "val_interval must be >= 0"),
    ],
)
def test_invalid_process_settings_are_rejected(tmp_path, overrides, message):
    with pytest.raises(SettingsError, match=message):
        resolve_settings("smoke", tmp_path, **overrides)
