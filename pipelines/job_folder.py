"""One job's folder: the only owner of its file names, reads and writes, and of the job's status.

A job (one row and neck of a table, or one ``hsfpn-repro train``) keeps everything in its own folder:

* ``job_config.py``: the fully resolved config, written by the runner before each attempt (the job reads it;
  mmengine's run-time dump of it goes to ``mmengine_config.py``, which nothing reads);
* ``job.json``: the job's identity: key, row, neck variant and the fingerprint of its settings (a folder
  holding another fingerprint is never resumed);
* ``job.log``: the job processes' stdout and stderr, appended across attempts;
* ``attempts.jsonl``: one line per attempt (start, wall seconds, exit code);
* ``progress.json``: where the running job is (:class:`pipelines.progress.JobProgress`);
* ``checkpoints.json``: the SHA-256 of every checkpoint the job saved, recorded as it saved it: the job
  resumes only from a checkpoint whose digest is recorded here;
* ``done.json``: the job's metrics, written when it finished; its presence means "skip";
* ``failed.json``: the last failure (error line, log, exit code); a later run retries the job;
* ``model.pth``: the trained weights with the class names (``detect`` and ``init_detector`` take it);
* ``train.json``, ``train.md`` and ``training.png``: what ``hsfpn-repro train`` resolved and reports;
* ``data_check/``: under ``--skip-bad``, the dataset's jsons without the bad objects and ``skipped.json``
  (:mod:`pipelines.dataset_check` names and writes them);
* mmengine's own files: ``epoch_N.pth``, ``best_*.pth``, ``last_checkpoint`` and its timestamped log folders.

The module needs only the standard library: the runner reads folders without loading torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_write_text, read_json_if_valid, sha256_file, write_json

from .errors import PipelineError
from .progress import JobProgress


class JobStatus(StrEnum):
    """A job's status: on disk before a run, as a run goes (progress events) and at its end (the tables'
    status column)."""

    PENDING = "pending"  # on disk: nothing done yet
    RESUMABLE = "resumable"  # on disk: a recorded checkpoint to resume from
    STARTING = "starting"
    RESUMING = "resuming"
    RUNNING = "running"
    DONE = "done"
    SKIPPED = "skipped (done before)"
    FAILED = "failed"
    NOT_AVAILABLE = "not available"  # the row needs what this toolkit does not ship
    NOT_REPRODUCED = "not reproduced"  # the paper's figures only

    @property
    def finished(self) -> bool:
        """The job's figures exist: trained in this run, or before it."""
        return self in (JobStatus.DONE, JobStatus.SKIPPED)


class UntrustedCheckpointError(PipelineError):
    """A job folder names a checkpoint to resume from whose digest the job did not record."""


@dataclass(frozen=True)
class JobOnDisk:
    """What a job's folder says about it.

    Args:
        state: ``PENDING``, ``RESUMABLE``, ``DONE`` or ``FAILED`` (or the job's blocked status).
        detail: Text for the plan (the checkpoint resumed from, the last error).
        foreign: The folder was written by a job with other settings (another fingerprint in ``job.json``).
    """

    state: JobStatus
    detail: str = ""
    foreign: bool = False


@dataclass(frozen=True)
class JobFolder:
    """The folder of one job (module notes): its paths, and every read and write of its files."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    # The files. mmengine names its own (checkpoints, last_checkpoint, log folders).
    @property
    def config(self) -> Path:
        return self.path / "job_config.py"

    @property
    def runtime_config(self) -> Path:
        """Where mmengine's Runner dumps its run-time copy of the config (nothing reads it)."""
        return self.path / "mmengine_config.py"

    @property
    def identity(self) -> Path:
        return self.path / "job.json"

    @property
    def log(self) -> Path:
        return self.path / "job.log"

    @property
    def attempts(self) -> Path:
        return self.path / "attempts.jsonl"

    @property
    def progress_file(self) -> Path:
        return self.path / "progress.json"

    @property
    def checkpoint_digests(self) -> Path:
        return self.path / "checkpoints.json"

    @property
    def done_file(self) -> Path:
        return self.path / "done.json"

    @property
    def failed_file(self) -> Path:
        return self.path / "failed.json"

    @property
    def model(self) -> Path:
        return self.path / "model.pth"

    @property
    def train_record(self) -> Path:
        return self.path / "train.json"

    @property
    def report(self) -> Path:
        return self.path / "train.md"

    @property
    def figure(self) -> Path:
        return self.path / "training.png"

    @property
    def data_check(self) -> Path:
        return self.path / "data_check"

    @property
    def last_checkpoint_marker(self) -> Path:
        return self.path / "last_checkpoint"

    # Identity and config: written by the runner before each attempt.
    def write_config(self, text: str, identity: dict[str, Any]) -> None:
        """Write the resolved config and the identity (key, row, variant, fingerprint) the job runs with."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config, text)
        write_json(self.identity, identity, indent=2, sort_keys=True)

    def fingerprint(self) -> str | None:
        """The settings fingerprint ``job.json`` records, if any."""
        return _record(self.identity).get("fingerprint")

    # Outcome records.
    def done(self) -> dict[str, Any] | None:
        """``done.json`` (the metrics), or None while the job has not finished."""
        if not self.done_file.is_file():
            return None
        return _record(self.done_file)

    def write_done(self, record: dict[str, Any]) -> None:
        write_json(self.done_file, record, indent=2, sort_keys=True)

    def failure(self) -> dict[str, Any] | None:
        """``failed.json`` (the last failure), or None."""
        if not self.failed_file.is_file():
            return None
        return _record(self.failed_file)

    def write_failure(self, record: dict[str, Any]) -> None:
        write_json(self.failed_file, record, indent=2, sort_keys=True)

    def start_attempt(self) -> None:
        """Forget the last attempt's failure and position (a new attempt starts)."""
        self.failed_file.unlink(missing_ok=True)
        self.progress_file.unlink(missing_ok=True)

    def append_attempt(self, start: str, wall_s: float, returncode: int | None) -> None:
        """Add one line to ``attempts.jsonl``."""
        line = json.dumps(dict(start=start, wall_s=round(wall_s, 1), returncode=returncode))
        with self.attempts.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def attempts_wall_s(self) -> float:
        """Total wall seconds of every recorded attempt."""
        if not self.attempts.is_file():
            return 0.0
        total = 0.0
        for line in self.attempts.read_text(encoding="utf-8").splitlines():
            try:
                total += float(json.loads(line)["wall_s"])
            except (ValueError, KeyError, TypeError):
                continue
        return total

    def log_tail(self, size: int = 65536) -> str:
        """The last ``size`` bytes of ``job.log`` as text ("" when there is none)."""
        try:
            with self.log.open("rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(fh.tell() - size, 0))
                return fh.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    # Progress: written by the job's rank 0, read by the runner.
    def write_progress(self, progress: JobProgress) -> None:
        write_json(self.progress_file, progress.to_json(), sort_keys=True)

    def progress(self) -> JobProgress | None:
        """The job's last written position, or None before its process wrote any."""
        return JobProgress.from_json(read_json_if_valid(self.progress_file))

    # Checkpoints.
    def last_checkpoint(self) -> Path | None:
        """The checkpoint named by mmengine's ``last_checkpoint`` file, if it still exists inside the folder.

        Only a checkpoint inside the folder counts: a path pointing elsewhere is ignored rather than trusted.
        """
        if not self.last_checkpoint_marker.is_file():
            return None
        try:
            path = Path(self.last_checkpoint_marker.read_text(encoding="utf-8").strip())
        except (OSError, ValueError):  # unreadable, or not text (ValueError: a decoding error or a NUL byte)
            return None
        if not path.is_absolute():
            path = self.path / path
        path = path.resolve()
        if not path.is_file() or self.path.resolve() not in path.parents:
            return None
        return path

    def record_checkpoint(self, checkpoint: Path) -> str:
        """Record the digest of a checkpoint the job has just saved; returns it."""
        digest = sha256_file(checkpoint)
        recorded = _record(self.checkpoint_digests)
        recorded[Path(checkpoint).name] = digest
        write_json(self.checkpoint_digests, recorded, indent=2, sort_keys=True)
        return digest

    def recorded_digest(self, checkpoint: Path) -> str | None:
        """The digest recorded when the job saved ``checkpoint``, if it did."""
        value = _record(self.checkpoint_digests).get(Path(checkpoint).name)
        return value if isinstance(value, str) else None

    def trusted_checkpoint(self) -> Path | None:
        """The checkpoint to resume from, checked against the digest the job recorded when it saved it.

        Returns:
            The last checkpoint, or None when there is none.

        Raises:
            UntrustedCheckpointError: The folder names a checkpoint the job did not record, or whose bytes changed.
        """
        path = self.last_checkpoint()
        if path is None:
            return None
        recorded = self.recorded_digest(path)
        if recorded is None or sha256_file(path) != recorded:
            why = "no digest recorded for it" if recorded is None else "its digest differs from the recorded one"
            raise UntrustedCheckpointError(
                f"{path}: not a checkpoint this job saved ({why} in {self.checkpoint_digests.name}); refusing to "
                f"load it. Delete {self.path} (or its last_checkpoint) to train from the start"
            )
        return path

    # The state before a run.
    def inspect(self, fingerprint: str | None) -> JobOnDisk:
        """The job's state on disk: done, resumable, failed or pending, and whether another run wrote it.

        Args:
            fingerprint: The settings fingerprint of the job about to run (None: the job cannot run).
        """
        previous = self.fingerprint()
        foreign = previous is not None and fingerprint is not None and previous != fingerprint
        if self.done_file.is_file():
            detail = "finished with OTHER settings (job.json fingerprint differs)" if foreign else ""
            return JobOnDisk(JobStatus.DONE, detail, foreign)
        checkpoint = self.last_checkpoint()
        if checkpoint is not None:
            detail = f"from {checkpoint.name}" + (" but the fingerprint differs: will not resume" if foreign else "")
            if self.recorded_digest(checkpoint) is None:
                detail += " (not a checkpoint this job recorded: will not resume)"
            return JobOnDisk(JobStatus.RESUMABLE, detail, foreign)
        failure = self.failure()
        if failure is not None:
            return JobOnDisk(JobStatus.FAILED, str(failure.get("error", "")), foreign)
        return JobOnDisk(JobStatus.PENDING, "", foreign)


def _record(path: Path) -> dict[str, Any]:
    """A bookkeeping json's object; empty when it is missing, unreadable or not an object (edited by hand)."""
    value = read_json_if_valid(path)
    return value if isinstance(value, dict) else {}
