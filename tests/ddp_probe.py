"""A test-only mmengine hook that records, per rank, what a real multi-process job did (tests/test_ddp.py).

Each rank appends JSON lines to ``OUT_DIR/rank{R}.jsonl``:

* ``start``: the position training starts from (epoch, iteration), the schedulers' step counts, the learning
  rate and the ``save_best`` record (``best_score``, ``best_ckpt``) restored into the message hub;
* ``batch``: before each training iteration, its global index, epoch, image ids and learning rate;
* ``end``: after training, a SHA-256 of every parameter of the unwrapped model.

A job config uses it with ``custom_imports = dict(imports=['hsfpn', 'ddp_probe'])`` and
``custom_hooks = [dict(type='RankProbe', out_dir=...)]``; the tests folder must be on ``PYTHONPATH``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.registry import HOOKS


def parameter_digest(model: Any) -> str:
    """SHA-256 over the names and bytes of every parameter, in name order."""
    digest = hashlib.sha256()
    for name, param in sorted(model.named_parameters()):
        digest.update(name.encode())
        digest.update(param.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


@HOOKS.register_module(force=True)
class RankProbe(Hook):
    """Records the rank's view of training (see the module docstring)."""

    priority = "VERY_HIGH"  # before the scheduler and checkpoint hooks change anything in an iteration

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def _write(self, record: dict[str, Any]) -> None:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        record = dict(record, rank=get_rank(), pid=os.getpid())
        with (self.out_dir / f"rank{get_rank()}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    @staticmethod
    def _lr(runner: Any) -> float:
        return float(runner.optim_wrapper.get_lr()["lr"][0])

    def before_train(self, runner: Any) -> None:
        hub = runner.message_hub
        self._write(dict(
            event="start", epoch=runner.epoch, iter=runner.iter, lr=self._lr(runner),
            last_steps=[s.last_step for s in runner.param_schedulers],
            best_score=hub.get_info("best_score"), best_ckpt=hub.get_info("best_ckpt"),
        ))

    def before_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None) -> None:
        ids = [int(s.metainfo["img_id"]) for s in data_batch["data_samples"]]
        self._write(dict(event="batch", iter=runner.iter, epoch=runner.epoch, ids=ids, lr=self._lr(runner)))

    def after_train(self, runner: Any) -> None:
        model = runner.model.module if is_model_wrapper(runner.model) else runner.model
        self._write(dict(event="end", iter=runner.iter, digest=parameter_digest(model)))
