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

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_POLL_S = 1.0


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
