"""Run a plan of jobs, one process each: skip finished jobs, resume interrupted ones, record failures.

Every job is one (row, neck variant) with its own folder (:class:`pipelines.job_folder.JobFolder`, which names
and reads every file in it). Before each attempt the runner writes the resolved config and the job's identity
there; the job writes its progress, checkpoints (with their digests), ``model.pth`` and ``done.json``; the
runner appends the attempt and, when the job failed, ``failed.json``.

A failing job never stops the others. Each job runs in its own process group (clean registries,
isolation, and the launchers: plain ``python`` for one GPU or CPU, torchrun with mmengine's ``pytorch``
launcher for several GPUs or CPU processes, ``srun`` with the ``slurm`` launcher on a cluster), started
through :mod:`pipelines.parent_guard`, so that no job process outlives the runner, however it dies."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotamini10.io import folder_lock

from .errors import PipelineError
from .job_folder import JobFolder, JobOnDisk, JobStatus, UntrustedCheckpointError
from .parent_guard import guarded
from .progress import JobProgress

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parent.parent


class JobBusy(PipelineError):
    """Another run holds the job's folder."""


class RunnerError(PipelineError):
    """The plan cannot run (duplicate job keys, a work dir that cannot be created, GPUs this machine lacks)."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a running job: its processes were stopped and the attempt recorded; ``job`` is the job (its
    folder names the checkpoint a rerun resumes from)."""

    def __init__(self, job: Job) -> None:
        super().__init__(job.key)
        self.job = job


@dataclass(frozen=True)
class Job:
    """One unit of work.

    Args:
        key: Unique id within the plan (``"faster_rcnn__hsfpn"``).
        row: Detector row id.
        variant: Neck variant id.
        work_dir: The job's own folder.
        config_text: The resolved config as Python source; ``None`` when the job cannot run.
        blocked: Why the job cannot run (``JobStatus.NOT_AVAILABLE`` or ``NOT_REPRODUCED``); ``None`` when it can.
        reason: Detail of ``blocked`` for the report.
        seed: The training seed (:mod:`pipelines.seeds`).
    """

    key: str
    row: str
    variant: str
    work_dir: Path
    config_text: str | None = None
    blocked: JobStatus | None = None
    reason: str = ""
    seed: int = 0

    @property
    def folder(self) -> JobFolder:
        """The job's folder."""
        return JobFolder(self.work_dir)

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
    status: JobStatus
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
        state: What happened (a :class:`~pipelines.job_folder.JobStatus`).
        detail: Free text (epoch / iteration, loss, speed, evaluation, error, log path).
        job_eta_s: Seconds left for this job, when known.
        plan_eta_s: Seconds left for the whole plan, when it can be estimated.
        progress: The running job's position as its process wrote it (``None`` when not known).
    """

    index: int
    total: int
    key: str
    state: JobStatus
    detail: str = ""
    job_eta_s: float | None = None
    plan_eta_s: float | None = None
    progress: JobProgress | None = None


EventFn = Callable[[ProgressEvent], None]
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


def inspect_job(job: Job) -> JobOnDisk:
    """A job's state before a run: its blocked status, or what its folder says
    (:meth:`~pipelines.job_folder.JobFolder.inspect`)."""
    if job.blocked is not None:
        return JobOnDisk(job.blocked, job.reason)
    return job.folder.inspect(job.fingerprint)


def job_state(job: Job) -> tuple[JobStatus, str]:
    """The job's state on disk and a detail for the plan (see :func:`inspect_job`).

    Returns:
        ``(state, detail)``; a job whose folder holds another configuration says so in the detail.
    """
    disk = inspect_job(job)
    return disk.state, disk.detail


# ---------------------------------------------------------------------------------------------
# Launch commands
# ---------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port free on this machine now (torchrun's rendezvous of one job)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch_command(
    launcher: str, gpus: int, *, nproc: int | None = None, srun_args: str = "", master_port: int | None = None
) -> CommandFn:
    """The command that runs one job's processes under a launcher.

    Args:
        launcher: ``"none"`` (one process: CPU or one GPU), ``"pytorch"`` (torchrun, ``nproc`` processes on
            this machine) or ``"slurm"`` (srun, ``nproc`` tasks).
        gpus: GPUs per job (0: CPU processes).
        nproc: Processes per job; defaults to ``gpus`` (at least 1).
        srun_args: Extra ``srun`` arguments (partition, time limit), split like a shell would.
        master_port: torchrun's rendezvous port; ``None`` picks a free port for each job.

    Returns:
        A function from a job to its argv.
    """
    if launcher not in ("none", "pytorch", "slurm"):
        raise RunnerError(f"launcher must be none, pytorch or slurm, got {launcher!r}")
    procs = nproc if nproc is not None else max(gpus, 1)
    job_module = ["-m", "pipelines.job"]

    def command(job: Job) -> list[str]:
        # Absolute: the job process runs in its own folder (mmengine writes cwd-relative gathering files).
        tail = [str(job.work_dir.absolute()), "--launcher", launcher]
        if launcher == "pytorch":
            port = master_port if master_port is not None else free_port()
            return [
                sys.executable,
                "-m",
                "torch.distributed.run",
                f"--nproc_per_node={procs}",
                f"--master_port={port}",
                *job_module,
                *tail,
            ]
        if launcher == "slurm":
            # GPUs: at most 8 tasks (one per GPU) per node; CPU tasks one CPU each, placed by Slurm.
            per_node = [f"--ntasks-per-node={min(procs, 8)}", f"--gres=gpu:{min(procs, 8)}"] if gpus else ["--cpus-per-task=1"]
            return [
                "srun",
                f"--ntasks={procs}",
                *per_node,
                "--kill-on-bad-exit=1",
                *shlex.split(srun_args),
                sys.executable,
                "-u",
                *job_module,
                *tail,
            ]
        return [sys.executable, *job_module, *tail]

    return command


def gpu_shortfall(gpus: int, launcher: str) -> str | None:
    """Why this machine cannot give a job ``gpus`` CUDA devices (None when it can, or when Slurm places the job on
    other nodes). Imports torch: for the commands that train, not for ``--help``."""
    if gpus == 0 or launcher == "slurm":
        return None
    import torch

    found = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if found >= gpus:
        return None
    have = "no CUDA device" if found == 0 else f"only {found} CUDA device(s)"
    return (f"--gpus {gpus}: this machine has {have}; --gpus 0 runs the job on the CPU instead, or run it where "
            "the GPUs are")


def check_gpus(gpus: int, launcher: str) -> None:
    """Stop before anything is read or written when the GPUs asked for are not here (:func:`gpu_shortfall`): a
    job would otherwise train on the CPU for hours while its records say GPUs.

    Raises:
        RunnerError: One line saying what is missing and how to run on the CPU instead.
    """
    problem = gpu_shortfall(gpus, launcher)
    if problem is not None:
        raise RunnerError(problem)


def job_env(gpus: int, base: dict[str, str] | None = None, threads: int | None = None) -> dict[str, str]:
    """Environment of a job process: the toolkit importable, unbuffered output, no GPU when ``gpus`` is 0, and
    ``threads`` intra-op threads per process when given (``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``)."""
    env = dict(os.environ if base is None else base)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if gpus == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""
    if threads is not None:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
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


# ---------------------------------------------------------------------------------------------
# The run loop
# ---------------------------------------------------------------------------------------------


def _finished_result(job: Job, status: JobStatus) -> JobResult:
    record = job.folder.done() or {}
    state, detail = job_state(job)
    return JobResult(
        job=job,
        status=status,
        metrics=dict(record.get("metrics", {})),
        wall_s=round(job.folder.attempts_wall_s(), 1) or record.get("attempt_s"),
        log=job.folder.log,
        error=detail or None,
        resumed_from=record.get("resumed_from"),
    )


@dataclass
class PlanClock:
    """The plan's ETA: durations of the jobs finished in this run, and how many are still to start.

    Args:
        remaining: Runnable jobs not started yet.
        durations: Wall seconds of each job finished in this run.
    """

    remaining: int
    durations: list[float] = field(default_factory=list)

    def eta(self, current_eta: float | None, current_total_s: float | None = None, *, including: int = 0) -> float | None:
        """Seconds until the plan ends.

        Args:
            current_eta: Seconds left of the running job (``None``: none running, or not known yet).
            current_total_s: Estimated whole duration of the running job: the per-job estimate until a job
                of this run has finished.
            including: Jobs to count beside :attr:`remaining` (the one about to start).
        """
        todo = self.remaining + including
        if todo == 0:
            return current_eta
        per_job = sum(self.durations) / len(self.durations) if self.durations else current_total_s
        if per_job is None:
            return None
        return (current_eta or 0.0) + todo * per_job


def run_jobs(
    jobs: Sequence[Job],
    command: CommandFn,
    *,
    env: dict[str, str] | None = None,
    progress: EventFn | None = None,
    poll_s: float = 2.0,
    report_every_s: float = 300.0,
) -> list[JobResult]:
    """Run every job that is not finished, one after the other, each in its own process.

    Args:
        jobs: The plan (keys unique).
        command: Builds a job's argv (:func:`launch_command`; tests pass fake jobs).
        env: The job processes' environment (:func:`job_env`); ``None`` inherits this process's.
        progress: Receives one event per job state change and, while a job runs, one every
            ``report_every_s`` seconds with its position, loss, speed and ETA (``progress.json``).
        poll_s: Seconds between checks of a running job.
        report_every_s: Seconds between "running" events of one job.

    Returns:
        One result per job, in plan order.

    Raises:
        RunnerError: Duplicate job keys.
        JobInterrupted: Ctrl-C (a KeyboardInterrupt), raised after the running job's process group was stopped
            and the attempt recorded (the next run resumes it).
    """
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        raise RunnerError(f"duplicate job keys in the plan: {sorted({k for k in keys if keys.count(k) > 1})}")
    emit = progress or (lambda event: logger.info(format_event(event)))
    results: list[JobResult] = []
    runnable = [j for j in jobs if j.blocked is None and job_state(j)[0] is not JobStatus.DONE]
    clock = PlanClock(remaining=len(runnable))
    for index, job in enumerate(jobs, start=1):
        total = len(jobs)
        if job.blocked is not None:
            emit(ProgressEvent(index, total, job.key, job.blocked, job.reason))
            results.append(JobResult(job=job, status=job.blocked, error=job.reason or None))
            continue
        try:
            # Another runner on the same job folder would resume the same checkpoint beside this one.
            with folder_lock(job.work_dir, what="job folder", error=JobBusy):
                results.append(_attempt(job, command, env, emit, (index, total), clock, poll_s, report_every_s))
        except JobBusy as exc:
            emit(ProgressEvent(index, total, job.key, JobStatus.FAILED, str(exc)))
            results.append(JobResult(job=job, status=JobStatus.FAILED, error=str(exc)))
    return results


def _attempt(job: Job, command: CommandFn, env: dict[str, str] | None, emit: EventFn, where: tuple[int, int],
             clock: PlanClock, poll_s: float, report_every_s: float) -> JobResult:
    # One runnable job, its folder held: skipped when done, refused when it holds another run's checkpoints or a
    # checkpoint it did not record.
    disk = inspect_job(job)
    if disk.state is JobStatus.DONE:
        emit(ProgressEvent(*where, job.key, JobStatus.SKIPPED, disk.detail))
        return _finished_result(job, JobStatus.SKIPPED)
    clock.remaining -= 1
    error = None
    if disk.state is JobStatus.RESUMABLE and disk.foreign:
        error = f"{job.work_dir} holds checkpoints of a run with other settings; delete it or use another --work-dir"
    elif disk.state is JobStatus.RESUMABLE:
        try:
            job.folder.trusted_checkpoint()
        except UntrustedCheckpointError as exc:
            error = str(exc)
    if error is not None:
        emit(ProgressEvent(*where, job.key, JobStatus.FAILED, error))
        return JobResult(job=job, status=JobStatus.FAILED, log=job.folder.log, error=error)
    return _run_one(job, command, env, emit, where, disk, clock, poll_s, report_every_s)


def _prepare_dir(job: Job) -> None:
    folder = job.folder
    try:
        folder.path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunnerError(f"cannot create job work dir {folder.path}: {exc}") from None
    if job.config_text is not None:
        identity = dict(key=job.key, row=job.row, variant=job.variant, seed=job.seed, fingerprint=job.fingerprint)
        folder.write_config(job.config_text, identity)
    folder.start_attempt()


def _running_event(job: Job, where: tuple[int, int], clock: PlanClock, started: float) -> ProgressEvent:
    progress = job.folder.progress()
    if progress is not None:
        detail, eta = progress.describe(), progress.eta_s
    else:  # a process that writes no progress.json (or not yet): mmengine's log lines
        detail, eta = log_progress(job.folder.log_tail())
    total_s = None if eta is None else time.monotonic() - started + eta
    return ProgressEvent(
        *where, job.key, JobStatus.RUNNING, detail, job_eta_s=eta, plan_eta_s=clock.eta(eta, total_s), progress=progress
    )


def _wait(
    proc: subprocess.Popen, report: Callable[[float], None], poll_s: float, report_every_s: float
) -> None:
    """Wait for the job's process, calling ``report(started)`` every ``report_every_s`` seconds."""
    start = last_report = time.monotonic()
    while proc.poll() is None:
        time.sleep(poll_s)
        now = time.monotonic()
        if now - last_report >= report_every_s:
            last_report = now
            report(start)


def _run_one(
    job: Job,
    command: CommandFn,
    env: dict[str, str] | None,
    emit: EventFn,
    where: tuple[int, int],
    disk: JobOnDisk,
    clock: PlanClock,
    poll_s: float,
    report_every_s: float,
) -> JobResult:
    folder = job.folder
    _prepare_dir(job)
    argv = command(job)
    resuming = disk.state is JobStatus.RESUMABLE
    kind = JobStatus.RESUMING if resuming else JobStatus.STARTING
    emit(ProgressEvent(*where, job.key, kind, disk.detail if resuming else "", plan_eta_s=clock.eta(None, including=1)))
    start_wall = time.time()
    start = time.monotonic()
    with folder.log.open("a", encoding="utf-8") as log:
        log.write(f"\n==== attempt started {time.strftime('%Y-%m-%d %H:%M:%S')}: {shlex.join(argv)}\n")
        log.flush()
        # The guard ends the job (and a launcher's children) when this process dies, even by SIGKILL; its own
        # session keeps a terminal's Ctrl-C away from the job: the runner stops it (and records the attempt).
        proc = subprocess.Popen(
            guarded(argv, os.getpid()), stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(folder.path.absolute()),
            start_new_session=True,
        )
        try:
            _wait(proc, lambda started: emit(_running_event(job, where, clock, started)), poll_s, report_every_s)
        except KeyboardInterrupt:
            _stop(proc)
            _record_attempt(folder, start_wall, time.monotonic() - start, None)
            raise JobInterrupted(job) from None
    wall = time.monotonic() - start
    _record_attempt(folder, start_wall, wall, proc.returncode)
    return _conclude(job, proc.returncode, wall, emit, where, clock)


def _conclude(
    job: Job, rc: int, wall: float, emit: EventFn, where: tuple[int, int], clock: PlanClock
) -> JobResult:
    folder = job.folder
    if rc == 0 and folder.done_file.is_file():
        clock.durations.append(wall)
        result = _finished_result(job, JobStatus.DONE)
        ap = result.metrics.get("AP")
        detail = f"AP {ap} in {format_duration(wall)}"
        emit(ProgressEvent(*where, job.key, JobStatus.DONE, detail, plan_eta_s=clock.eta(None)))
        return result
    error = error_line(folder.log_tail()) or (f"exit code {rc}" if rc else "the job exited without writing done.json")
    folder.write_failure(dict(error=error, log=str(folder.log), returncode=rc, when=time.strftime("%Y-%m-%dT%H:%M:%S")))
    emit(ProgressEvent(*where, job.key, JobStatus.FAILED, f"{error} (log: {folder.log})"))
    return JobResult(job=job, status=JobStatus.FAILED, wall_s=round(wall, 1), log=folder.log, error=error)


def _stop(proc: subprocess.Popen) -> None:
    # The job runs in its own session: stop its whole process group. torchrun stops its workers (which sit in
    # sessions of their own) on SIGTERM; srun cancels its step.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _record_attempt(folder: JobFolder, start_wall: float, wall_s: float, rc: int | None) -> None:
    folder.append_attempt(time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start_wall)), wall_s, rc)


__all__ = [
    "Job",
    "JobOnDisk",
    "JobInterrupted",
    "JobResult",
    "JobStatus",
    "PlanClock",
    "ProgressEvent",
    "RunnerError",
    "check_gpus",
    "error_line",
    "format_duration",
    "format_event",
    "free_port",
    "gpu_shortfall",
    "inspect_job",
    "job_env",
    "job_state",
    "launch_command",
    "log_progress",
    "run_jobs",
]
