"""Process lifetimes: a child process of the toolkit ends when the process that started it dies.

The builder's workers and the table runner's jobs call :func:`die_with_parent` first thing, so that a SIGKILL
of the command (which no handler can catch) still leaves no worker or job behind holding memory or a GPU.

Notes:
    On Linux the kernel delivers a signal to the child when its parent dies (``prctl(PR_SET_PDEATHSIG)``).
    Strictly, the signal fires when the parent *thread* that forked the child ends, so only fork children from
    a thread that lives as long as the parent process (the main thread, or a pool's own long-lived thread).
    Elsewhere a daemon thread polls the parent pid once a second and ends the process when it changes.
    Both are set up in the child, so the parent's pid is passed in: a parent that died between the fork and
    the set-up is caught by comparing it with ``os.getppid()``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_POLL_S = 1.0


@dataclass(frozen=True)
class ProcessStat:
    """The fields of ``/proc/PID/stat`` the toolkit reads.

    Args:
        pid: The process.
        parent: Its parent's pid.
        state: One letter: ``R`` running, ``S`` sleeping, ``Z`` zombie (ended, not yet reaped), ...
        started: Start time in clock ticks after boot (with ``pid``, tells a process from a later one that
            reuses its pid).
    """

    pid: int
    parent: int
    state: str
    started: int


def process_stat(pid: int) -> ProcessStat | None:
    """``/proc/PID/stat`` of a process (Linux), or None when no such process exists (or no ``/proc``)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (second field) may hold spaces and parentheses: the fields after its last ")" are fixed.
    fields = text.rsplit(")", 1)[1].split()
    return ProcessStat(pid, int(fields[1]), fields[0], int(fields[19]))


def process_stats() -> dict[int, ProcessStat]:
    """Every process ``/proc`` lists, by pid (those that end while it is read are left out)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := process_stat(int(entry.name))) is not None:
            found[stat.pid] = stat
    return found


def is_alive(pid: int) -> bool:
    """Whether ``pid`` runs; a zombie (an ended process its parent has not reaped yet) does not.

    Reads ``/proc`` on Linux; elsewhere asks the kernel with signal 0 (which counts zombies as alive).
    """
    if Path("/proc/self/stat").exists():
        stat = process_stat(pid)
        return stat is not None and stat.state != "Z"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def die_with_parent(parent_pid: int, sig: int = signal.SIGKILL) -> str:
    """Make this process end when ``parent_pid`` (its parent) dies.

    Args:
        parent_pid: The pid of the parent, read by the parent before it started this process.
        sig: The signal the kernel sends on Linux. Defaults to SIGKILL (no clean-up, as after the parent's own
            SIGKILL; files are written atomically, so nothing half-written remains under a final name).

    Returns:
        ``"pdeathsig"`` or ``"watchdog"``: the mechanism in use.
    """
    mechanism = "watchdog"
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0:
                mechanism = "pdeathsig"
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os.kill(os.getpid(), sig)
    if mechanism == "watchdog":
        threading.Thread(target=_watch_parent, args=(parent_pid, sig), name="parent-watchdog", daemon=True).start()
    return mechanism


def _watch_parent(parent_pid: int, sig: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_POLL_S)
    os.kill(os.getpid(), sig)
