"""Shared test fixtures: the path to the shared DOTA sample; one compute thread per test process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Two xdist workers on two cores: one intra-op thread each keeps runs fast and reproducible. Set before any
# test module imports torch (conftest loads first), so the dataset tests need not import torch at all.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

REPO_ROOT = Path(__file__).resolve().parent.parent
# ../shared sits beside the checkout (a fresh clone in CI has it there too); HSFPN_SHARED overrides.
SHARED = Path(os.environ.get("HSFPN_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def paper_text() -> str:
    """The HS-FPN paper as plain text (shared/paper), for checks of transcribed numbers."""
    path = SHARED / "paper" / "hs-fpn_aaai2025.txt"
    if not path.is_file():
        pytest.fail(f"paper text not found at {path} (set HSFPN_SHARED)")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def dota_sample() -> Path:
    """The real DOTA sample: two images with labels and five label files whose image is missing."""
    root = SHARED / "dota_sample"
    if not (root / "labelTxt").is_dir():
        pytest.fail(f"shared DOTA sample not found at {root} (set HSFPN_SHARED)")
    return root
