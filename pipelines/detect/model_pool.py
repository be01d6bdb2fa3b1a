"""Where ``detect`` runs its model: in worker processes on a CPU, in the calling process on a GPU.

Why processes on a CPU: a detector's single-threaded parts (mmcv's RoIAlign and NMS, Python between layers:
about a third of a Faster R-CNN window at one thread) leave the other cores idle however many intra-op threads
torch is given. N processes of one thread each keep N cores busy, and the calling process decodes, cuts and
merges beside them.

Notes:
    Determinism: torch's CPU kernels give results that depend on the intra-op thread count (a matrix product's
    blocking follows it), so every CPU model process runs one thread, whatever the worker count: the same
    windows give byte-identical detections with 1 or 8 workers.

    Lifetimes: workers are forked from the calling thread right after the model is loaded (weights shared
    copy-on-write, nothing loaded twice) and before ``detect`` starts its producer thread; each one dies with
    its parent (:func:`dotamini10.processes.die_with_parent`) and ends on a ``None`` task.

    Results come back in submission order (:meth:`ModelRunner.ordered`), so the merge sees windows in the same
    order whatever finished first.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from dotamini10.processes import die_with_parent

from ..errors import PipelineError

# One window's raw detections in window pixels: boxes (K, 4) float32, scores (K,) float32, labels (K,) int64.
WindowDetections = tuple[np.ndarray, np.ndarray, np.ndarray]
_POLL_S = 1.0


class ModelWorkerError(PipelineError):
    """A model process failed or died."""


def default_workers(device: str) -> int:
    """One model process per usable core on a CPU (at most 8: each holds its own activations); 1 on a GPU."""
    if not device.startswith("cpu"):
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def infer(model: Any, data: dict[str, list]) -> list[WindowDetections]:
    """Run ``model.test_step`` on one batch and return each window's detections as numpy arrays."""
    import torch

    with torch.inference_mode():
        results = model.test_step(data)
    out = []
    for result in results:
        pred = result.pred_instances
        out.append((pred.bboxes.detach().cpu().numpy().reshape(-1, 4), pred.scores.detach().cpu().numpy().reshape(-1),
                    pred.labels.detach().cpu().numpy().astype(np.int64).reshape(-1)))
    return out


class ModelRunner:
    """Runs batches on a loaded model, in ``workers`` forked processes (CPU) or in this process (GPU).

    Use as a context manager; create it before starting any other thread of the process.

    Args:
        model: The loaded MMDetection model, in eval mode.
        device: ``cpu`` or ``cuda[:N]``.
        workers: Model processes on a CPU (each runs one torch thread). Ignored on a GPU.
    """

    def __init__(self, model: Any, device: str, workers: int) -> None:
        if workers < 1:
            raise ModelWorkerError(f"--workers: expected at least 1, got {workers}")
        self.model = model
        self.processes: list[multiprocessing.process.BaseProcess] = []
        self.in_process = not device.startswith("cpu")
        self.workers = 1 if self.in_process else workers
        self._tasks: Any = None
        self._results: Any = None
        self._done: dict[int, list[WindowDetections]] = {}
        self._next_key = 0

    def __enter__(self) -> ModelRunner:
        if self.in_process:
            return self
        context = multiprocessing.get_context("fork")
        self._tasks, self._results = context.Queue(), context.Queue()
        parent = os.getpid()
        for k in range(self.workers):
            process = context.Process(target=_serve, args=(self.model, self._tasks, self._results, parent),
                                      name=f"detect-model-{k}", daemon=True)
            process.start()
            self.processes.append(process)
        return self

    def __exit__(self, *exc: object) -> None:
        for _ in self.processes:
            self._tasks.put(None)
        for process in self.processes:
            process.join(timeout=5 if exc[0] is None else 0.5)
            if process.is_alive():
                process.kill()
                process.join()
        if self._tasks is not None:
            if exc[0] is not None:  # tasks no worker will read must not hold this process at its exit
                self._tasks.cancel_join_thread()
                self._results.cancel_join_thread()
            self._tasks.close()
            self._results.close()

    def ordered(self, items: Iterable[Any], data_of: Callable[[Any], dict | None],
                depth: int | None = None) -> Iterator[tuple[Any, list[WindowDetections] | None]]:
        """Each item with its detections, in the order given.

        Args:
            items: Work items; ``data_of(item)`` is the model batch of an item that needs the model, else None
                (such an item passes through once every earlier batch is done).
            depth: Batches in flight at most. Defaults to twice the workers.
        """
        depth = depth or 2 * self.workers
        waiting: collections.deque[tuple[Any, int | None]] = collections.deque()
        in_flight = 0
        for item in items:
            data = data_of(item)
            key = None
            if data is not None:
                key = self._submit(data)
                in_flight += 1
            waiting.append((item, key))
            while waiting and (waiting[0][1] is None or in_flight >= depth):
                head, key = waiting.popleft()
                if key is not None:
                    in_flight -= 1
                yield head, (None if key is None else self._take(key))
        for head, key in waiting:
            yield head, (None if key is None else self._take(key))

    def _submit(self, data: dict) -> int:
        key, self._next_key = self._next_key, self._next_key + 1
        if self.in_process:
            self._done[key] = infer(self.model, data)
        else:
            self._tasks.put((key, _to_numpy(data)))
        return key

    def _take(self, key: int) -> list[WindowDetections]:
        while key not in self._done:
            try:
                got, detections, error = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [p for p in self.processes if not p.is_alive()]
                if dead:
                    raise ModelWorkerError(f"model worker {dead[0].name} died (exit code {dead[0].exitcode}; "
                                           "out of memory?)") from None
                continue
            if error is not None:
                raise ModelWorkerError(f"model worker: {error}")
            self._done[got] = detections
        return self._done.pop(key)


def _to_numpy(data: dict) -> dict:
    # Plain arrays travel through the pipe as bytes; torch tensors would each take a shared-memory file.
    return dict(data, inputs=[t.numpy() for t in data["inputs"]])


def _serve(model: Any, tasks: Any, results: Any, parent: int) -> None:
    die_with_parent(parent)
    import torch

    torch.set_num_threads(1)
    while True:
        task = tasks.get()
        if task is None:
            return
        key, data = task
        try:
            data = dict(data, inputs=[torch.from_numpy(a) for a in data["inputs"]])
            results.put((key, infer(model, data), None))
        except Exception as exc:  # reported to the parent, which raises it as one line
            results.put((key, None, f"{type(exc).__name__}: {exc}"))
