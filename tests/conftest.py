"""Shared test fixtures and settings: the repository's real DOTA sample, the paper's text where it is available,
one compute thread per test process, and the hypothesis profiles."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Two xdist workers on two cores: one intra-op thread each keeps runs fast and reproducible. Set before any
# test module imports torch (conftest loads first), so the dataset tests need not import torch at all.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

# Property tests: CI derandomises (the same examples on every run, so a red CI is reproducible, and a failure
# prints the blob that replays it); local runs keep drawing new examples. `.ci/run` selects "ci".
settings.register_profile("ci", derandomize=True, print_blob=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA = REPO_ROOT / "tests" / "data"
# The paper is not redistributed with the repository: its text sits in ../shared beside a checkout that has one
# (CI's); HSFPN_SHARED overrides. Checks of our transcriptions against it skip, with the reason, elsewhere.
SHARED = Path(os.environ.get("HSFPN_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def paper_text() -> str:
    """The HS-FPN paper as plain text (``../shared/paper``), for checks of transcribed numbers."""
    path = SHARED / "paper" / "hs-fpn_aaai2025.txt"
    if not path.is_file():
        pytest.skip(f"the paper's text is not beside this checkout ({path}; set HSFPN_SHARED): "
                    "transcriptions are not compared with it")
    return path.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def dota_sample() -> Path:
    """The real DOTA sample held in the repository: two images with labels and five label files whose image is
    missing (``tests/data/dota_sample``)."""
    return DATA / "dota_sample"
