"""Start a command that ends when the process that asked for it dies: ``python -m pipelines.parent_guard PID -- ARGV``.

The runner starts every job through this guard, so a job never outlives the runner, however the runner dies
(a SIGKILL included, which no handler sees). On Linux the guard asks the kernel for SIGTERM on the runner's
death (``PR_SET_PDEATHSIG``, :func:`dotamini10.processes.die_with_parent`) and then *becomes* the command
(``exec``): the request survives the exec, so the job process itself, or torchrun, or srun, receives it.
SIGTERM lets a launcher clean up: torchrun stops its workers, srun cancels its step. torchrun's workers also
end on their own when torchrun dies (``pipelines.distributed.guard_parent``: they find torchrun's pid in
``HSFPN_LAUNCHER_PID``, which equals the guard's pid since exec keeps it).

Elsewhere (no ``prctl``) the guard stays as the command's parent, polls the runner once a second and
terminates the command when the runner is gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from dotamini10.processes import die_with_parent

from .distributed import LAUNCHER_PID_ENV

_STOP_WAIT_S = 30.0


def guarded(argv: list[str], parent_pid: int) -> list[str]:
    """``argv`` run through this guard on behalf of ``parent_pid``."""
    return [sys.executable, "-m", "pipelines.parent_guard", str(parent_pid), "--", *argv]


class _ParentGone(Exception):
    pass


def _on_sigterm(signum: int, frame: object) -> None:
    raise _ParentGone()


def _stop(child: subprocess.Popen) -> int:
    child.terminate()
    try:
        return child.wait(timeout=_STOP_WAIT_S)
    except subprocess.TimeoutExpired:
        child.kill()
        return child.wait()


def _supervise(argv: list[str], parent_pid: int) -> int:
    # SIGTERM (from die_with_parent's watchdog, or anyone) stops the command too.
    signal.signal(signal.SIGTERM, _on_sigterm)
    child = subprocess.Popen(argv)
    try:
        while True:
            try:
                return child.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                if os.getppid() != parent_pid:
                    return _stop(child)
    except _ParentGone:
        return _stop(child)


def main(args: list[str]) -> int:
    """Entry point: ``PID -- ARGV...``."""
    if len(args) < 3 or args[1] != "--":
        print("usage: python -m pipelines.parent_guard PARENT_PID -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    parent_pid, argv = int(args[0]), args[2:]
    os.environ[LAUNCHER_PID_ENV] = str(os.getpid())
    if not sys.platform.startswith("linux") or die_with_parent(parent_pid, signal.SIGTERM) != "pdeathsig":
        return _supervise(argv, parent_pid)
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"error: cannot start {argv[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 127
    return 0  # not reached: exec replaced this process


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
