"""Tests of dotamini10.processes: a child that asked to die with its parent is gone after the parent's SIGKILL."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_probe import alive, wait_until

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


def _wait_gone(pid: int, timeout: float) -> bool:
    return wait_until(lambda: not alive(pid), timeout)


@pytest.mark.parametrize("mechanism", ["pdeathsig", "watchdog"])
def test_child_ends_after_its_parent_is_killed(mechanism):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD, mechanism], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        pid_text, used = parent.stdout.readline().split()
        child = int(pid_text)
        assert used == mechanism
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(child, 5.0), f"child {child} outlived its parent ({mechanism})"
    finally:
        parent.kill()
