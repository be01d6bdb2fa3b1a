"""The builder's worker processes: how they start, and that they end with the builder however it ends.

Notes:
    Workers are forked straight from the builder when that is safe (:func:`fork_is_safe`), otherwise they come
    from a fork server (Linux) or are spawned. Every worker first binds its life to the builder's
    (:func:`init_worker`): a worker the builder started itself (fork, spawn) asks for a signal on its parent's
    death (:func:`dotamini10.processes.die_with_parent`). A fork server's worker cannot rely on that alone: the
    fork server is its parent, and CPython's fork server exits only when every holder of its "alive" pipe has
    closed it, the workers included, so after a SIGKILL of the builder the server and its workers would wait
    on each other for ever. Such a worker also watches its grandparent: once the fork server's parent is no
    longer the builder, the worker ends, and the fork server follows when the last one is gone.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor

from .processes import die_with_parent, process_stat

# Libraries that keep native thread pools: a child forked after one of them ran a parallel loop can hang in
# its first call (measured: OpenCV after a parallel resize). Their presence rules out a plain fork.
_THREADED_LIBRARIES = ("cv2", "torch")
# How often a fork server's worker checks that the builder is still its grandparent.
GRANDPARENT_POLL_S = 0.25


def fork_is_safe() -> bool:
    """Whether worker processes may be forked straight from this process.

    Forking copies only the calling thread, with every lock as it was: it is safe on Linux while this process
    runs no other Python thread and has not loaded a library that keeps a thread pool. The command line is
    in that state when a build starts; a test session or a notebook usually is not.
    """
    return (
        sys.platform.startswith("linux")
        and threading.active_count() == 1
        and not any(name in sys.modules for name in _THREADED_LIBRARIES)
    )


def start_pool(workers: int) -> Future[ProcessPoolExecutor]:
    """The worker pool, as a future.

    Forked straight from this process when ``fork_is_safe()``: the workers then start in milliseconds with
    every module already imported. Otherwise they come from a fork server (Linux) or are spawned, which takes
    about as long as reading the labels (a new interpreter imports numpy and shapely), so a helper thread
    starts them while this process reads.

    Args:
        workers: Number of worker processes (at least 2; one worker runs in this process instead).

    Returns:
        A future of the started pool; the caller shuts the pool down.
    """
    if fork_is_safe():
        # Forked by this (the only) thread: a worker's parent-death signal is tied to the thread that forked it.
        started: Future[ProcessPoolExecutor] = Future()
        started.set_result(_new_pool(workers, multiprocessing.get_context("fork")))
        return started
    if sys.platform.startswith("linux"):
        # forkserver: workers fork from a clean server that imported numpy, shapely and the worker module once,
        # and inherit no thread or lock of this process.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["dotamini10.pool", "dotamini10.worker", "shapely"])
    else:
        context = multiprocessing.get_context("spawn")
    starter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dotamini10-pool-start")
    try:
        return starter.submit(_new_pool, workers, context)
    finally:
        starter.shutdown(wait=False)


def _new_pool(workers: int, context: multiprocessing.context.BaseContext) -> ProcessPoolExecutor:
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=init_worker,
                               initargs=(os.getpid(),))
    for _ in range(workers):  # a process per submitted task until there are ``workers`` (with fork: all at once)
        pool.submit(warm_up)
    return pool


def init_worker(builder_pid: int) -> None:
    """Pool initializer: end with the builder, and use one OpenCV thread (the pool provides the parallelism).

    Args:
        builder_pid: The pid of the builder process, read by the builder when it created the pool.
    """
    parent = os.getppid()
    die_with_parent(parent)
    if parent != builder_pid:  # a fork server's child (or already orphaned): watch the builder itself
        threading.Thread(target=_watch_grandparent, args=(builder_pid,), name="builder-watchdog",
                         daemon=True).start()
    # Through the variable OpenCV reads when it is first imported: a worker that never needs cv2 (unscaled
    # images without augmented copies) does not pay for importing it.
    os.environ["OPENCV_FOR_THREADS_NUM"] = "1"
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)


def warm_up() -> None:
    """A task that does nothing: submitting it makes the pool start a worker process early."""


def _watch_grandparent(builder_pid: int) -> None:
    # The builder's death reparents the fork server at once (even while the builder is an unreaped zombie), and
    # the fork server's death reparents this worker: either way the chain no longer leads to the builder.
    while (stat := process_stat(os.getppid())) is not None and stat.parent == builder_pid:
        time.sleep(GRANDPARENT_POLL_S)
    os.kill(os.getpid(), signal.SIGKILL)
