"""Tests of dotamini10.pool: how worker processes start, and that none outlives a builder that is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_build import box, make_split

from dotamini10.processes import process_stats

REPO = Path(__file__).resolve().parent.parent

# A builder with two workers that stops in its progress callback after the first finished unit: it is then
# mid-build, with both workers alive, when the test kills it. ``setup`` decides how the workers start: a clean
# interpreter forks them; one that has imported OpenCV starts them from a fork server (``fork_is_safe``).
BUILDER = r"""
import sys, time
from pathlib import Path
{setup}
from dotamini10.build import BuildOptions, build_dotamini10
from dotamini10.pool import fork_is_safe
assert fork_is_safe() == {forked}, "the test needs the other start method"

def stall(done, total):
    if done:
        Path(sys.argv[3]).write_text("mid-build", encoding="utf-8")
        time.sleep(600)

options = BuildOptions(crop_size=128, stride=96, scale_mode="fixed", scales=(1.0,))
build_dotamini10(Path(sys.argv[1]), dota_root=Path(sys.argv[2]), workers=2, options=options, progress=stall)
"""


def _process_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (parent pid, state, start time) of every process that /proc lists."""
    return {pid: (stat.parent, stat.state, stat.started) for pid, stat in process_stats().items()}


def _descendants(pid: int) -> dict[int, int]:
    """Every process whose chain of parents leads to ``pid``, with its start time (against pid reuse)."""
    table = _process_table()
    found: dict[int, int] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _, started) in table.items():
            if ppid == parent and child not in found:
                found[child] = started
                frontier.append(child)
    return found


def _survivors(processes: dict[int, int]) -> list[int]:
    # A zombie has exited and holds no memory: it only waits for whoever adopted it to reap it.
    table = _process_table()
    return [pid for pid, started in processes.items()
            if pid in table and table[pid][1] != "Z" and table[pid][2] == started]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads the process tree from /proc")
@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_no_worker_outlives_a_killed_builder(tmp_path, start):
    root = make_split(tmp_path / "src", {s: (300, 200) for s in "abcd"},
                      {s: [box(10, 10, 40, 30, "plane")] for s in "abcd"})
    marker = tmp_path / "mid-build"
    script = BUILDER.format(setup="import cv2" if start == "forkserver" else "", forked=start == "fork")
    builder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "out"), str(root), str(marker)],
                               cwd=REPO)
    children: dict[int, int] = {}
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and builder.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), f"the builder never got mid-build (exit status {builder.poll()})"
        children = _descendants(builder.pid)
        # Two workers, plus the fork server and multiprocessing's resource tracker where they exist.
        assert len(children) >= 2, children
        os.kill(builder.pid, signal.SIGKILL)
        # Not reaped yet: the builder is a zombie now, as under a parent that does not wait for it.
        deadline = time.monotonic() + 5
        while _survivors(children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _survivors(children) == [], f"processes outlived the builder ({start})"
    finally:
        builder.kill()
        builder.wait()
        for pid in _survivors(children):  # only after a failure: do not leave them running
            os.kill(pid, signal.SIGKILL)
