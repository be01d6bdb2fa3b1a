"""pipelines.detect.model_pool: detections come back in submission order whatever finishes first, pass-through items
keep their place, a failing or dying worker is one line, and no worker outlives a SIGKILLed parent.

The models here are stand-ins with ``test_step`` (forked workers inherit them, nothing is pickled): each window's
"detection" is computed from its input, so a result handed to the wrong window shows.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pipelines.detect.model_pool import ModelRunner, ModelWorkerError, default_workers
from process_probe import alive, wait_until

REPO = Path(__file__).resolve().parent.parent


class EchoModel:
    """One box per window, ``[v, v, v + 1, v + 1]`` with ``v`` the window's first pixel; window values below 3
    take longer, so that later submissions finish first."""

    def test_step(self, data):
        out = []
        for image in data["inputs"]:
            v = float(image.reshape(-1)[0])
            time.sleep(0.15 if v < 3 else 0.0)
            pred = SimpleNamespace(bboxes=torch.tensor([[v, v, v + 1, v + 1]]), scores=torch.tensor([v / 100]),
                                   labels=torch.tensor([int(v) % 3]))
            out.append(SimpleNamespace(pred_instances=pred))
        return out


def _batch(*values):
    return dict(inputs=[torch.full((3, 4, 4), v, dtype=torch.uint8) for v in values], data_samples=[None] * len(values))


def _stream():
    # Batches of one or two windows, with pass-through markers between them.
    return [("b", _batch(1)), ("mark", 0), ("b", _batch(2, 3)), ("b", _batch(4)), ("mark", 1), ("b", _batch(5))]


@pytest.mark.parametrize("device, workers", [("cpu", 1), ("cpu", 2), ("cpu", 3), ("cuda", 4)])
def test_results_come_back_in_order_with_pass_through_items_in_place(device, workers):
    model = EchoModel()
    # "cuda" only chooses the in-process path here; the stand-in model needs no GPU.
    with ModelRunner(model, device, workers) as runner:
        assert len(runner.processes) == (0 if device == "cuda" else workers)
        got = list(runner.ordered(_stream(), lambda item: item[1] if item[0] == "b" else None, depth=2))
    kinds = [(item[0], item[1] if item[0] == "mark" else None) for item, _ in got]
    assert kinds == [("b", None), ("mark", 0), ("b", None), ("b", None), ("mark", 1), ("b", None)]
    boxes = [[float(b[0, 0]) for b, _, _ in found] for item, found in got if item[0] == "b"]
    assert boxes == [[1.0], [2.0, 3.0], [4.0], [5.0]]
    labels = [[int(lab[0]) for _, _, lab in found] for item, found in got if item[0] == "b"]
    assert labels == [[1], [2, 0], [1], [2]]
    assert all(found is None for item, found in got if item[0] == "mark")


def test_a_model_error_is_one_line_and_the_workers_end():
    class Broken:
        def test_step(self, data):
            raise RuntimeError("shapes do not match")

    with pytest.raises(ModelWorkerError, match=r"^model worker: RuntimeError: shapes do not match$"):
        with ModelRunner(Broken(), "cpu", 2) as runner:
            workers = list(runner.processes)
            list(runner.ordered([("b", _batch(1))], lambda item: item[1]))
    assert not any(p.is_alive() for p in workers)


def test_a_dead_worker_is_reported_not_waited_for():
    class Dies:
        def test_step(self, data):
            os._exit(3)

    start = time.monotonic()
    with pytest.raises(ModelWorkerError, match=r"model worker detect-model-0 died \(exit code 3"):
        with ModelRunner(Dies(), "cpu", 1) as runner:
            list(runner.ordered([("b", _batch(1))], lambda item: item[1]))
    assert time.monotonic() - start < 10


# A worker that dies on its first batch while large batches wait in the pipe: the parent reports it and exits.
DYING = r"""
import os, sys, torch
from pipelines.detect.model_pool import ModelRunner, ModelWorkerError

class Dies:
    def test_step(self, data):
        os._exit(3)

batches = [dict(inputs=[torch.zeros(3, 1024, 1024, dtype=torch.uint8)], data_samples=[None]) for _ in range(6)]
try:
    with ModelRunner(Dies(), "cpu", 1) as runner:
        list(runner.ordered(batches, lambda item: item, depth=6))
except ModelWorkerError as exc:
    print(exc, flush=True)
    sys.exit(5)
"""


def test_a_parent_whose_worker_died_with_batches_queued_still_exits():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", DYING], cwd=REPO, capture_output=True, text=True, env=env,
                          timeout=60)
    assert proc.returncode == 5 and "died (exit code 3" in proc.stdout, proc.stderr[-2000:]


def test_workers_count_and_options():
    assert default_workers("cuda:0") == 1
    assert 1 <= default_workers("cpu") <= 8
    with pytest.raises(ModelWorkerError, match="at least 1"):
        ModelRunner(EchoModel(), "cpu", 0)


# A parent holding two model workers that sleep in their first batch; it prints their pids and waits.
PARENT = r"""
import time
from pipelines.detect.model_pool import ModelRunner

class Sleeper:
    def test_step(self, data):
        time.sleep(600)

with ModelRunner(Sleeper(), "cpu", 2) as runner:
    print(" ".join(str(p.pid) for p in runner.processes), flush=True)
    list(runner.ordered([1, 2], lambda item: dict(inputs=[], data_samples=[])))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_no_model_worker_outlives_a_sigkilled_parent():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(v) for v in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        gone = wait_until(lambda: not any(alive(p) for p in pids), 10.0)
        assert gone, f"model workers {pids} outlived their parent"
    finally:
        parent.kill()


def test_detections_arrive_as_numpy():
    with ModelRunner(EchoModel(), "cpu", 1) as runner:
        ((_, found),) = list(runner.ordered([("b", _batch(7))], lambda item: item[1]))
    boxes, scores, labels = found[0]
    assert isinstance(boxes, np.ndarray) and boxes.shape == (1, 4) and labels.dtype == np.int64
    assert boxes.tolist() == [[7.0, 7.0, 8.0, 8.0]] and scores.tolist() == pytest.approx([0.07])


def test_every_cpu_model_process_runs_one_torch_thread():
    # Kernel results depend on the intra-op thread count; one thread in every worker makes them independent of
    # the worker count, whatever the parent runs with.
    class Threads:
        def test_step(self, data):
            n = float(torch.get_num_threads())
            return [SimpleNamespace(pred_instances=SimpleNamespace(bboxes=torch.zeros(1, 4), scores=torch.tensor([n]),
                                                                   labels=torch.zeros(1, dtype=torch.int64)))]

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for workers in (1, 2):
            with ModelRunner(Threads(), "cpu", workers) as runner:
                got = list(runner.ordered([("b", _batch(1))] * 3, lambda item: item[1]))
            assert [float(found[0][1][0]) for _, found in got] == [1.0, 1.0, 1.0]
    finally:
        torch.set_num_threads(before)
