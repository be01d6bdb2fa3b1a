"""Independent tasks run in this process or on the worker pool, resumable, with progress: the engine of
``build-aitod`` and ``slice`` (the DOTAmini10 builder has its own, for units that share an image's decode).

Notes:
    A run's bookkeeping lives in one work folder (:class:`WorkFolder`): ``state.json`` holds the fingerprint of
    the run (options and inputs), which a resumed run must match, and ``records/{key}.json`` the result of each
    finished task, written after the task's files. A resumed run skips the tasks whose record its ``load``
    accepts. Results are handed back in completion order; callers order them by task before writing anything
    that depends on order, so outputs never depend on the worker count.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol

from .errors import DatasetError
from .io import ProgressFn, json_text, read_json_if_valid, write_json
from .schedule import BROKEN_POOL


class Task(Protocol):
    """What a task offers: a key naming its record."""

    @property
    def key(self) -> str: ...


class Result(Protocol):
    """What a task's result offers: its record, its seconds per stage and its process's peak memory."""

    timings: dict[str, float]
    peak_rss_mb: float

    def to_dict(self) -> dict[str, Any]: ...


class WorkFolder:
    """A run's resume bookkeeping: the fingerprint and the finished tasks' records.

    Args:
        work: The folder (created when the fingerprint is recorded).
        what: What runs there, for messages (``"build"``, ``"slice of train"``).
    """

    def __init__(self, work: Path, *, what: str) -> None:
        self.work = Path(work)
        self.records = self.work / "records"
        self.what = what

    def check_fingerprint(self, fingerprint: dict[str, Any], *, resume: bool) -> None:
        """Record ``fingerprint``; when resuming, first require a recorded one to equal it.

        Raises:
            DatasetError: ``resume`` and the unfinished run used other options or inputs (named).
        """
        path = self.work / "state.json"
        wanted = json.loads(json_text(fingerprint))  # as it reads back (tuples become lists)
        recorded = read_json_if_valid(path) if resume else None
        if isinstance(recorded, dict) and recorded != wanted:
            changed = sorted(k for k in set(wanted) | set(recorded) if wanted.get(k) != recorded.get(k))
            raise DatasetError(f"--resume: the unfinished {self.what} in {self.work.parent} used other "
                               f"{', '.join(changed)}; use --overwrite to start again")
        write_json(path, wanted)

    def record(self, key: str) -> dict[str, Any] | None:
        """The record of task ``key``, or None."""
        data = read_json_if_valid(self.records / f"{key}.json")
        return data if isinstance(data, dict) else None

    def save(self, key: str, result: Result) -> None:
        """Record a finished task."""
        write_json(self.records / f"{key}.json", result.to_dict())

    def clear(self) -> None:
        """Delete the folder (the run is complete)."""
        shutil.rmtree(self.work, ignore_errors=True)


class TaskRun:
    """Runs tasks, skipping those a previous run finished, and accounts for progress, time and memory.

    Args:
        folder: The run's work folder.
        resume: Skip the tasks whose record ``load`` accepts.
        progress: Called as ``progress(done, total)`` at the start and after every task.
        total: The amount of work of all tasks (images, windows), for the progress bar.
        timing_keys: The stages results report seconds for.

    Attributes:
        results: Every result by task key (resumed ones included).
        resumed: Tasks a previous run had finished.
        timings: Seconds per stage summed over the tasks run now.
        peak_rss_mb: Largest peak resident memory of a process that ran a task now.
    """

    def __init__(self, folder: WorkFolder, *, resume: bool, progress: ProgressFn | None, total: int,
                 timing_keys: Iterable[str]) -> None:
        self.folder = folder
        self.resume = resume
        self.progress = progress
        self.total = total
        self.done = 0
        self.resumed = 0
        self.results: dict[str, Any] = {}
        self.timings = dict.fromkeys(timing_keys, 0.0)
        self.peak_rss_mb = 0.0

    def run(self, tasks: list[Task], runner: Callable[[Any], Result], pool: ProcessPoolExecutor | None, *,
            load: Callable[[dict[str, Any]], Result | None], amount: Callable[[Any, Any], int]) -> None:
        """Run every task not finished before.

        Args:
            tasks: The tasks, in submission order.
            runner: The function a worker calls with a task (picklable: a module-level function).
            pool: The worker pool; None runs here.
            load: A record back to its result, or None when the task must run again.
            amount: ``amount(task, result)``: the work the task accounts for in the progress bar.

        Raises:
            DatasetError: A worker process died, or writing an output failed.
        """
        pending = []
        for task in tasks:
            data = self.folder.record(task.key) if self.resume else None
            done = load(data) if data is not None else None
            if done is None:
                pending.append(task)
            else:
                self.resumed += 1
                self._add(task, done, amount, fresh=False)
        self._report()
        if pool is None:
            for task in pending:
                self._add(task, _here(runner, task), amount, fresh=True)
            return
        futures = {pool.submit(runner, task): task for task in pending}
        try:
            for future in as_completed(futures):
                self._add(futures[future], _outcome(future), amount, fresh=True)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise

    def _add(self, task: Task, result: Result, amount: Callable[[Any, Any], int], *, fresh: bool) -> None:
        if fresh:
            self.folder.save(task.key, result)
            for key, seconds in result.timings.items():
                self.timings[key] = self.timings.get(key, 0.0) + seconds
            self.peak_rss_mb = max(self.peak_rss_mb, result.peak_rss_mb)
        self.results[task.key] = result
        self.done += amount(task, result)
        self._report()

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done, self.total)


def _here(runner: Callable[[Any], Result], task: Task) -> Result:
    try:
        return runner(task)
    except OSError as exc:
        raise DatasetError(f"writing outputs failed: {exc}") from None


def _outcome(future: Future) -> Result:
    try:
        return future.result()
    except BrokenProcessPool:
        raise DatasetError(BROKEN_POOL) from None
    except OSError as exc:
        raise DatasetError(f"writing outputs failed: {exc}") from None
