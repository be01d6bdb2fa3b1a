"""Run a plan of jobs, one process each: skip finished jobs, resume interrupted ones, record failures.

Every job is one (row, neck variant) with its own work dir holding:

* ``job_config.py``: the fully resolved config, and ``job.json`` its fingerprint (the identity of the
  job's settings: a folder holding another fingerprint is never resumed);
* ``job.log``: the job process's stdout and stderr, appended across attempts (mmengine's own logs are
  kept beside it in its timestamped folders);
* ``attempts.jsonl``: one line per attempt (start, wall seconds, exit code);
* ``done.json``: written by the job when it finished (metrics); its presence means "skip";
* ``failed.json``: the last failure (error line, log path, exit code); a later run retries the job,
  resuming from its last checkpoint when there is one.

A failing job never stops the others. Each job runs in its own process (clean registries, isolation,
and the launchers: plain ``python`` for one GPU or CPU, torchrun with mmengine's ``pytorch`` launcher
for several GPUs, ``srun`` with the ``slurm`` launcher on a cluster).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .errors import PipelineError
from dotamini10.io import read_json_if_valid, write_json

from .job import CONFIG, DONE, last_checkpoint

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent
FAILED = "failed.json"
IDENTITY = "job.json"
ATTEMPTS = "attempts.jsonl"
LOG = "job.log"

# Final statuses of a job in a run.
DONE_NOW = "done"
SKIPPED = "skipped (done before)"
FAILED_NOW = "failed"
NOT_AVAILABLE = "not available"
NOT_REPRODUCED = "not reproduced"


class RunnerError(PipelineError):
    """The plan cannot run (duplicate job keys, a work dir that cannot be created)."""


@dataclass(frozen=True)
class Job:
    """One unit of work.

    Args:
        key: Unique id within the plan (``"faster_rcnn__hsfpn"``).
        row: Detector row id.
        variant: Neck variant id.
        work_dir: The job's own folder.
        config_text: The resolved config as Python source; ``None`` when the job cannot run.
        blocked: Why the job cannot run (its status), e.g. ``"not available"``; ``None`` when it can.
        reason: Detail of ``blocked`` for the report.
    """

    key: str
    row: str
    variant: str
    work_dir: Path
    config_text: str | None = None
    blocked: str | None = None
    reason: str = ""

    @property
    def fingerprint(self) -> str | None:
        """SHA-256 (16 hex digits) of the resolved config: the identity of the job's settings."""
        if self.config_text is None:
            return None
        return hashlib.sha256(self.config_text.encode("utf-8")).hexdigest()[:16]


@dataclass
class JobResult:
    """What one job produced in a run."""

    job: Job
    status: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    wall_s: float | None = None
    log: Path | None = None
    error: str | None = None
    resumed_from: str | None = None


@dataclass(frozen=True)
class ProgressEvent:
    """One progress line: a job's state with its ETA and the plan's.

    Args:
        index: 1-based position of the job in the plan.
        total: Jobs in the plan.
        key: The job's key.
        state: ``"skipped"``, ``"starting"``, ``"resuming"``, ``"running"``, ``"done"``, ``"failed"``,
            ``"not available"`` or ``"not reproduced"``.
        detail: Free text (epoch / iteration, error, log path).
        job_eta_s: Seconds left for this job (from mmengine's log), when known.
        plan_eta_s: Seconds left for the whole plan, when it can be estimated.
    """

    index: int
    total: int
    key: str
    state: str
    detail: str = ""
    job_eta_s: float | None = None
    plan_eta_s: float | None = None


ProgressFn = Callable[[ProgressEvent], None]
CommandFn = Callable[[Job], list[str]]


def format_duration(seconds: float | None) -> str:
    """``H:MM:SS`` (or ``?`` when unknown)."""
    if seconds is None:
        return "?"
    seconds = max(int(round(seconds)), 0)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def format_event(event: ProgressEvent) -> str:
    """The one-line text of a progress event."""
    parts = [f"[{event.index}/{event.total}]", event.key, event.state]
    if event.detail:
        parts.append(event.detail)
    if event.job_eta_s is not None:
        parts.append(f"job ETA {format_duration(event.job_eta_s)}")
    if event.plan_eta_s is not None:
        parts.append(f"all ETA {format_duration(event.plan_eta_s)}")
    return "  ".join(parts)


# ---------------------------------------------------------------------------------------------
# On-disk state of a job
# ---------------------------------------------------------------------------------------------


def attempts_wall_s(job_dir: Path) -> float:
    """Total wall seconds of every recorded attempt of a job."""
    path = job_dir / ATTEMPTS
    if not path.is_file():
        return 0.0
    total = 0.0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            total += float(json.loads(line)["wall_s"])
        except (ValueError, KeyError, TypeError):
            continue
    return total


def job_state(job: Job) -> tuple[str, str]:
    """The job's state on disk and a detail for the plan.

    Returns:
        ``(state, detail)`` with state one of ``"done"``, ``"resumable"``, ``"failed"``, ``"pending"`` or
        ``job.blocked``; a job whose folder holds another configuration says so in the detail.
    """
    if job.blocked is not None:
        return job.blocked, job.reason
    d = job.work_dir
    previous = (read_json_if_valid(d / IDENTITY) or {}).get("fingerprint")
    other = previous is not None and job.fingerprint is not None and previous != job.fingerprint
    if (d / DONE).is_file():
        return "done", "finished with OTHER settings (job.json fingerprint differs)" if other else ""
    ckpt = last_checkpoint(d)
    if ckpt is not None:
        detail = f"from {ckpt.name}"
        return "resumable", detail + (" but the fingerprint differs: will not resume" if other else "")
    if (d / FAILED).is_file():
        record = read_json_if_valid(d / FAILED) or {}
        return "failed", str(record.get("error", ""))
    return "pending", ""


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# Launch commands
# ---------------------------------------------------------------------------------------------


def launch_command(launcher: str, gpus: int, *, srun_args: str = "", master_port: int = 29500) -> CommandFn:
    """The command that runs one job's process under a launcher.

    Args:
        launcher: ``"none"`` (one process: CPU or one GPU), ``"pytorch"`` (torchrun, one process per
            GPU) or ``"slurm"`` (srun, one task per GPU).
        gpus: GPUs per job.
        srun_args: Extra ``srun`` arguments (partition, time limit), split like a shell would.
        master_port: torchrun's rendezvous port.

    Returns:
        A function from a job to its argv.
    """
    if launcher not in ("none", "pytorch", "slurm"):
        raise RunnerError(f"launcher must be none, pytorch or slurm, got {launcher!r}")
    job_module = ["-m", "pipelines.job"]

    def command(job: Job) -> list[str]:
        tail = [str(job.work_dir), "--launcher", launcher]
        if launcher == "pytorch":
            return [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={gpus}",
                f"--master_port={master_port}",
                *job_module,
                *tail,
            ]
        if launcher == "slurm":
            per_node = min(gpus, 8)
            return [
                "srun",
                f"--ntasks={gpus}",
                f"--ntasks-per-node={per_node}",
                f"--gres=gpu:{per_node}",
                "--kill-on-bad-exit=1",
                *shlex.split(srun_args),
                sys.executable,
                "-u",
                *job_module,
                *tail,
            ]
        return [sys.executable, *job_module, *tail]

    return command


def job_env(gpus: int, base: dict[str, str] | None = None) -> dict[str, str]:
    """Environment of a job process: the toolkit importable, unbuffered output, no GPU when ``gpus`` is 0."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


# ---------------------------------------------------------------------------------------------
# Progress from mmengine's log
# ---------------------------------------------------------------------------------------------

_ETA = re.compile(r"eta: (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
_EPOCH = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\s*\[\s*(\d+)/(\d+)\]")
_ERROR = re.compile(r"^\s*([A-Za-z_][\w.]*(?:Error|Exception|Interrupt)\b.*)$")


def log_progress(text: str) -> tuple[str, float | None]:
    """The latest training position and ETA in a job's log text.

    Args:
        text: The tail of ``job.log``.

    Returns:
        ``("epoch 3 iter 50/120", eta seconds)``, or ``("", None)`` before the first log line.
    """
    where, eta = "", None
    for line in reversed(text.splitlines()):
        if not where:
            m = _EPOCH.search(line)
            if m:
                where = f"epoch {m.group(1)} iter {m.group(2)}/{m.group(3)}"
        if eta is None:
            m = _ETA.search(line)
            if m:
                days, h, mi, s = (int(g) if g else 0 for g in m.groups())
                eta = float(days * 86400 + h * 3600 + mi * 60 + s)
        if where and eta is not None:
            break
    return where, eta


def error_line(text: str) -> str | None:
    """The last exception line (``ValueError: ...``) in a log text, if any."""
    for line in reversed(text.splitlines()):
        m = _ERROR.match(line)
        if m:
            return m.group(1).strip()
    return None


def _tail(path: Path, size: int = 65536) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(fh.tell() - size, 0))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# The run loop
# ---------------------------------------------------------------------------------------------


def _finished_result(job: Job, status: str) -> JobResult:
    record = read_json_if_valid(job.work_dir / DONE) or {}
    state, detail = job_state(job)
    return JobResult(
        job=job,
        status=status,
        metrics=dict(record.get("metrics", {})),
        wall_s=round(attempts_wall_s(job.work_dir), 1) or record.get("attempt_s"),
        log=job.work_dir / LOG,
        error=detail or None,
        resumed_from=record.get("resumed_from"),
    )


def _plan_eta(durations: list[float], remaining: int, current_eta: float | None) -> float | None:
    if remaining == 0:
        return current_eta
    if not durations:
        return None
    return (current_eta or 0.0) + remaining * (sum(durations) / len(durations))


def run_jobs(
    jobs: Sequence[Job],
    command: CommandFn,
    *,
    env: dict[str, str] | None = None,
    progress: ProgressFn | None = None,
    poll_s: float = 2.0,
    report_every_s: float = 300.0,
) -> list[JobResult]:
    """Run every job that is not finished, one after the other, each in its own process.

    Args:
        jobs: The plan (keys unique).
        command: Builds a job's argv (:func:`launch_command`; tests pass fake jobs).
        env: The job processes' environment (:func:`job_env`); ``None`` inherits this process's.
        progress: Receives one event per job state change and, while a job runs, one every
            ``report_every_s`` seconds with its ETA.
        poll_s: Seconds between checks of a running job.
        report_every_s: Seconds between "running" events of one job.

    Returns:
        One result per job, in plan order.

    Raises:
        RunnerError: Duplicate job keys.
        KeyboardInterrupt: Re-raised after the running job's process group was stopped and the attempt
            recorded (the next run resumes it).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise RunnerError(f"duplicate job keys in the plan: {sorted({k for k in keys if keys.count(k) > 1})}")
    emit = progress or (lambda event: logger.info(format_event(event)))
    results: list[JobResult] = []
    durations: list[float] = []
    runnable = [j for j in jobs if j.blocked is None and job_state(j)[0] != "done"]
    remaining = len(runnable)
    for index, job in enumerate(jobs, start=1):
        total = len(jobs)
        if job.blocked is not None:
            emit(ProgressEvent(index, total, job.key, job.blocked, job.reason))
            results.append(JobResult(job=job, status=job.blocked, error=job.reason or None))
            continue
        state, detail = job_state(job)
        if state == "done":
            result = _finished_result(job, SKIPPED)
            emit(ProgressEvent(index, total, job.key, "skipped", "done before" + (f"; {detail}" if detail else "")))
            results.append(result)
            continue
        remaining -= 1
        if state == "resumable" and "differs" in detail:
            error = f"{job.work_dir} holds checkpoints of a run with other settings; delete it or use another --work-dir"
            emit(ProgressEvent(index, total, job.key, "failed", error))
            results.append(JobResult(job=job, status=FAILED_NOW, log=job.work_dir / LOG, error=error))
            continue
        results.append(
            _run_one(job, command, env, emit, index, total, state, detail, durations, remaining, poll_s, report_every_s)
        )
    return results


def _run_one(
    job: Job,
    command: CommandFn,
    env: dict[str, str] | None,
    emit: ProgressFn,
    index: int,
    total: int,
    state: str,
    detail: str,
    durations: list[float],
    remaining: int,
    poll_s: float,
    report_every_s: float,
) -> JobResult:
    d = job.work_dir
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunnerError(f"cannot create job work dir {d}: {exc}") from None
    if job.config_text is not None:
        (d / CONFIG).write_text(job.config_text, encoding="utf-8")
        # mmengine's Runner overwrites CONFIG with its own dump: the job's identity is kept apart.
        write_json(
            d / IDENTITY, dict(key=job.key, row=job.row, variant=job.variant, fingerprint=job.fingerprint),
            indent=2, sort_keys=True,
        )
    (d / FAILED).unlink(missing_ok=True)
    log_path = d / LOG
    argv = command(job)
    resuming = state == "resumable"
    emit(
        ProgressEvent(
            index,
            total,
            job.key,
            "resuming" if resuming else "starting",
            detail if resuming else "",
            plan_eta_s=_plan_eta(durations, remaining + 1, None),
        )
    )
    start_wall = time.time()
    start = time.monotonic()
    with log_path.open("a", encoding="utf-8") as log:
        log.write(f"\n==== attempt started {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n")
        log.flush()
        proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT), start_new_session=True
        )
        last_report = start
        try:
            while proc.poll() is None:
                time.sleep(poll_s)
                now = time.monotonic()
                if now - last_report >= report_every_s:
                    last_report = now
                    where, eta = log_progress(_tail(log_path))
                    emit(
                        ProgressEvent(
                            index,
                            total,
                            job.key,
                            "running",
                            where,
                            job_eta_s=eta,
                            plan_eta_s=_plan_eta(durations, remaining, eta),
                        )
                    )
        except KeyboardInterrupt:
            _stop(proc)
            _record_attempt(d, start_wall, time.monotonic() - start, None)
            raise
    wall = time.monotonic() - start
    rc = proc.returncode
    _record_attempt(d, start_wall, wall, rc)
    if rc == 0 and (d / DONE).is_file():
        durations.append(wall)
        result = _finished_result(job, DONE_NOW)
        ap = result.metrics.get("AP")
        emit(
            ProgressEvent(
                index,
                total,
                job.key,
                "done",
                f"AP {ap} in {format_duration(wall)}",
                plan_eta_s=_plan_eta(durations, remaining, None),
            )
        )
        return result
    text = _tail(log_path)
    error = error_line(text) or (f"exit code {rc}" if rc else "the job exited without writing done.json")
    record = dict(error=error, log=str(log_path), returncode=rc, when=time.strftime("%Y-%m-%dT%H:%M:%S"))
    write_json(d / FAILED, record, indent=2, sort_keys=True)
    emit(ProgressEvent(index, total, job.key, "failed", f"{error} (log: {log_path})"))
    return JobResult(job=job, status=FAILED_NOW, wall_s=round(wall, 1), log=log_path, error=error)


def _stop(proc: subprocess.Popen) -> None:
    # The job runs in its own session: stop its whole process group (torchrun / srun children too).
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _record_attempt(job_dir: Path, start_wall: float, wall_s: float, rc: int | None) -> None:
    line = json.dumps(
        dict(
            start=time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start_wall)),
            wall_s=round(wall_s, 1),
            returncode=rc,
        )
    )
    with (job_dir / ATTEMPTS).open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")


__all__ = [
    "Job",
    "JobResult",
    "ProgressEvent",
    "RunnerError",
    "attempts_wall_s",
    "error_line",
    "format_duration",
    "format_event",
    "job_env",
    "job_state",
    "launch_command",
    "log_progress",
    "run_jobs",
]
