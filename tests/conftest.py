"""Shared test fixtures: paths to the shared DOTA sample and a quiet, deterministic torch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared sits beside the checkout (a fresh clone in CI has it there too); HSFPN_SHARED overrides.
SHARED = Path(os.environ.get("HSFPN_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def dota_sample() -> Path:
    """The real DOTA sample: two images with labels and five label files whose image is missing."""
    root = SHARED / "dota_sample"
    if not (root / "labelTxt").is_dir():
        pytest.fail(f"shared DOTA sample not found at {root} (set HSFPN_SHARED)")
    return root


@pytest.fixture(autouse=True)
def _torch_threads():
    # Two xdist workers on two cores: one intra-op thread each keeps runs fast and reproducible.
    try:
        import torch
    except ImportError:  # the dataset tests do not need torch
        yield
        return
    torch.set_num_threads(1)
    yield
