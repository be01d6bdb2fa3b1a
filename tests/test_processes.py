"""Tests of dotamini10.processes: a child that asked to die with its parent is gone after the parent's SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

# The parent starts a child that calls die_with_parent, prints the child's pid and the mechanism, then sleeps.
PARENT = r"""
import os, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1], str(os.getpid()), sys.argv[2]], stdout=subprocess.PIPE,
                         text=True)
print(child.stdout.readline().strip(), flush=True)
import time
time.sleep(600)
"""
CHILD = r"""
import sys, time
if sys.argv[2] == "watchdog":
    sys.platform = "elsewhere"  # take the portable path
from dotamini10.processes import die_with_parent
import os
print(os.getpid(), die_with_parent(int(sys.argv[1])), flush=True)
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by init) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("mechanism", ["pdeathsig", "watchdog"])
def test_child_ends_after_its_parent_is_killed(mechanism):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mechanism], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        pid_text, used = parent.stdout.readline().split()
        child = int(pid_text)
        assert used == mechanism
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(child, 5.0), f"child {child} outlived its parent ({mechanism})"
    finally:
        parent.kill()
