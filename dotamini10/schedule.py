"""Running the planned tasks, in this process or on the worker pool, and handing every result to one sink.

Notes:
    Tasks are submitted in build order, image by image: the image's checksum, then for a shared image its
    ``PrepareTask``, then its units. The pool starts tasks in submission order, so a unit never waits for rows
    that no worker is decoding. At most ``MAX_SHARED_IMAGES`` shared images exist at once (one being split, the
    next being decoded), which bounds the disk their pixel files take. A shared image's units run while it is
    decoded, but their results are held until the decode has succeeded: if it fails, what they wrote is deleted
    and every unit reports the image's problem instead.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from . import worker
from .errors import DatasetError
from .plan import ImagePlan
from .worker import HashResult, HashTask, PrepareResult, PrepareTask, UnitResult, UnitTask

# At most this many shared images exist at once: one being split, the next being prepared.
MAX_SHARED_IMAGES = 2
BROKEN_POOL = (
    "a worker process died (out of memory, or a script that starts a build without an "
    "`if __name__ == '__main__':` guard); rerun with --resume and fewer --workers"
)


class ResultSink(Protocol):
    """Where results go, always in this process (``resume.BuildState``)."""

    def hash_done(self, result: HashResult) -> None:
        """An image's checksum."""

    def prepare_done(self, result: PrepareResult) -> None:
        """A shared image's decode (``result.problems`` says whether it failed)."""

    def unit_done(self, result: UnitResult) -> None:
        """A unit that counts: its windows (or its image's problem)."""

    def discard(self, result: UnitResult) -> None:
        """A unit of a shared image whose decode failed: none of its files may remain."""


@dataclass
class Group:
    """The pending tasks of one image at one scale, and the scheduler's book-keeping of them.

    Attributes:
        checksum: The image's checksum task (on the image's first group only).
        prepare: The decode its units share; None when each unit decodes the image itself.
        units: Its pending units, in output order.
        outstanding: Submitted units and prepare not yet returned.
        prepared: The shared decode succeeded.
        failed: The shared decode failed.
        held: Results of units that finished before the shared decode did.
    """

    checksum: HashTask | None
    prepare: PrepareTask | None
    units: list[UnitTask]
    outstanding: int = 0
    prepared: bool = False
    failed: bool = False
    held: list[UnitResult] = field(default_factory=list)


class _Kind(enum.Enum):
    HASH = "hash"
    PREPARE = "prepare"
    UNIT = "unit"


def groups_of(plans: Iterable[ImagePlan]) -> list[Group]:
    """The groups of the pending tasks of ``plans`` (an image without pending units may still need its checksum)."""
    result = []
    for plan in plans:
        by_tag: dict[str, list[UnitTask]] = {}
        for unit in plan.units:
            by_tag.setdefault(unit.tag, []).append(unit)
        checksum = plan.checksum
        for tag, units in by_tag.items():
            result.append(Group(checksum, plan.prepares.get(tag), units))
            checksum = None
        if checksum is not None:
            result.append(Group(checksum, None, []))
    return result


def run_groups(groups: list[Group], pool: ProcessPoolExecutor | None, sink: ResultSink) -> None:
    """Run every task of ``groups`` on ``pool`` (None: in this process), handing each result to ``sink``.

    Raises:
        DatasetError: A worker process died, or writing an output (reading a source) failed.
    """
    if not groups:
        return
    if pool is None:
        _run_here(groups, sink)
    else:
        _PoolRun(pool, sink, groups).run()


def _run_here(groups: list[Group], sink: ResultSink) -> None:
    # In this process the worker cache must not outlive the build: it would keep an image in memory and could
    # serve stale pixels to a later build that reads a changed file under the same name.
    worker.reset_cache()
    try:
        for group in groups:
            if group.checksum is not None:
                sink.hash_done(_here(worker.run_hash, group.checksum, _Kind.HASH))
            if group.prepare is None:
                for unit in group.units:
                    sink.unit_done(_here(worker.run_unit, unit, _Kind.UNIT))
                continue
            worker.create_shared(group.prepare)
            try:
                prepared = _here(worker.run_prepare, group.prepare, _Kind.PREPARE)
                sink.prepare_done(prepared)
                for unit in group.units:
                    sink.unit_done(_failed(unit, prepared) if prepared.problems
                                   else _here(worker.run_unit, unit, _Kind.UNIT))
            finally:
                worker.remove_shared(group.prepare)
    finally:
        worker.reset_cache()


class _PoolRun:
    """One run of groups on the pool: what is queued, what is in flight, how many shared images exist."""

    def __init__(self, pool: ProcessPoolExecutor, sink: ResultSink, groups: list[Group]) -> None:
        self.pool = pool
        self.sink = sink
        self.queue = deque(groups)
        self.inflight: dict[Future, tuple[Group, _Kind]] = {}
        self.shared = 0

    def run(self) -> None:
        try:
            self._feed()
            while self.inflight:
                done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
                for future in done:
                    self._settle(future)
                self._feed()
        except BrokenProcessPool:  # raised by submit() once a worker has died
            self.pool.shutdown(wait=True, cancel_futures=True)
            raise DatasetError(BROKEN_POOL) from None
        except BaseException:
            self.pool.shutdown(wait=True, cancel_futures=True)
            raise

    def _feed(self) -> None:
        while self.queue:
            group = self.queue[0]
            if group.prepare is not None and self.shared >= MAX_SHARED_IMAGES:
                return
            self._submit(group)
            self.queue.popleft()

    def _submit(self, group: Group) -> None:
        if group.checksum is not None:
            self.inflight[self.pool.submit(worker.run_hash, group.checksum)] = (group, _Kind.HASH)
        if group.prepare is not None:
            self.shared += 1
            worker.create_shared(group.prepare)
            self.inflight[self.pool.submit(worker.run_prepare, group.prepare)] = (group, _Kind.PREPARE)
            group.outstanding += 1
        for unit in group.units:
            self.inflight[self.pool.submit(worker.run_unit, unit)] = (group, _Kind.UNIT)
        group.outstanding += len(group.units)

    def _settle(self, future: Future) -> None:
        group, kind = self.inflight.pop(future)
        result = _outcome(future, kind)
        if kind is _Kind.HASH:
            self.sink.hash_done(result)
            return
        if kind is _Kind.PREPARE:
            self._prepared(group, result)
        else:
            self._unit_returned(group, result)
        group.outstanding -= 1
        if group.outstanding == 0 and group.prepare is not None:
            worker.remove_shared(group.prepare)
            self.shared -= 1

    def _prepared(self, group: Group, result: PrepareResult) -> None:
        self.sink.prepare_done(result)
        if result.problems:  # not decodable: every unit reports the image's problem, and what they wrote goes
            group.failed = True
            for unit in group.units:
                self.sink.unit_done(_failed(unit, result))
            for held in group.held:
                self.sink.discard(held)
        else:
            group.prepared = True
            for held in group.held:
                self.sink.unit_done(held)
        group.held = []

    def _unit_returned(self, group: Group, result: UnitResult) -> None:
        # A shared image's unit counts once its decode is known to have succeeded.
        if group.prepare is None or group.prepared:
            self.sink.unit_done(result)
        elif group.failed or result.aborted:
            self.sink.discard(result)
        else:
            group.held.append(result)


def _failed(unit: UnitTask, prepared: PrepareResult) -> UnitResult:
    """What a unit of a shared image reports when the image failed to decode."""
    return UnitResult(unit.split, unit.stem, unit.key, problems=list(prepared.problems), processed=len(unit.windows))


def _error(kind: _Kind, exc: OSError) -> DatasetError:
    if kind is _Kind.HASH:
        return DatasetError(f"reading a source image failed: {exc}")
    return DatasetError(f"writing outputs failed: {exc}")


def _outcome(future: Future, kind: _Kind):
    try:
        return future.result()
    except BrokenProcessPool:
        raise DatasetError(BROKEN_POOL) from None
    except OSError as exc:
        raise _error(kind, exc) from None


T = TypeVar("T")


def _here(fn: Callable[[object], T], task: object, kind: _Kind) -> T:
    try:
        return fn(task)
    except OSError as exc:
        raise _error(kind, exc) from None
