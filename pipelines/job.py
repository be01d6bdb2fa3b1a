"""One job's process: train a resolved config, evaluate it on the test split, write the done marker.

Run by :mod:`pipelines.runner` as ``python -m pipelines.job JOB_DIR --launcher none`` (or under torchrun /
srun with ``--launcher pytorch`` / ``slurm``). ``JOB_DIR/job_config.py`` is the fully resolved config; the
job trains into ``JOB_DIR`` (mmengine's checkpoints, logs and ``last_checkpoint``), evaluates once with
the test loop and, on rank 0, writes ``JOB_DIR/done.json`` with the metrics. When ``last_checkpoint``
exists the job resumes from it.

Notes:
    Resuming under torch >= 2.6: ``torch.load`` defaults to ``weights_only=True`` and rejects
    mmengine's own checkpoints (they pickle ``HistoryBuffer`` and numpy objects). :func:`trust_checkpoint`
    relaxes this for exactly one file, the job's own last checkpoint (written by this toolkit into its
    own work dir); every other file, pretrained backbones included, still loads with torch's default.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dotamini10.io import write_json

DONE = "done.json"
# Not "config.py": mmengine's Runner dumps its own (changed) copy of the config there.
CONFIG = "job_config.py"

# AITODMetric result keys -> table columns.
_AITOD_KEYS = {
    "aitod/AP": "AP",
    "aitod/AP50": "AP50",
    "aitod/AP75": "AP75",
    "aitod/APvt": "APvt",
    "aitod/APt": "APt",
    "aitod/APs": "APs",
    "aitod/APm": "APm",
}


def last_checkpoint(job_dir: Path) -> Path | None:
    """The checkpoint named by mmengine's ``last_checkpoint`` file in ``job_dir``, if it still exists.

    Only a checkpoint inside ``job_dir`` counts: the file is the toolkit's own bookkeeping, so a path
    pointing elsewhere is ignored rather than trusted.
    """
    marker = job_dir / "last_checkpoint"
    if not marker.is_file():
        return None
    path = Path(marker.read_text(encoding="utf-8").strip())
    if not path.is_absolute():
        path = job_dir / path
    path = path.resolve()
    if not path.is_file() or job_dir.resolve() not in path.parents:
        return None
    return path


def trust_checkpoint(path: Path) -> Callable[[], None]:
    """Let ``torch.load`` unpickle exactly ``path`` (an mmengine checkpoint this toolkit wrote).

    Args:
        path: The job's own last checkpoint.

    Returns:
        A function that restores the original ``torch.load``.
    """
    import torch

    trusted = Path(path).resolve()
    original = torch.load

    def load(f: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(f, (str, os.PathLike)) and Path(f).resolve() == trusted:
            kwargs.setdefault("weights_only", False)
        return original(f, *args, **kwargs)

    torch.load = load

    def restore() -> None:
        torch.load = original

    return restore


def table_metrics(raw: dict[str, Any]) -> dict[str, float | None]:
    """AI-TOD metrics in percent (AP .. APm) from an evaluator's results.

    Args:
        raw: ``runner.test()``'s dict; ``AITODMetric`` reports fractions in [0, 1] (or -1 when a size
            range has no ground truth).

    Returns:
        ``{"AP": 23.6, ...}``; a metric the evaluator did not report (or reported as -1) is ``None``.
    """
    out: dict[str, float | None] = {}
    for key, name in _AITOD_KEYS.items():
        value = raw.get(key)
        out[name] = None if value is None or float(value) < 0 else round(100.0 * float(value), 2)
    return out


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def check_loss(loss: Any, iteration: int) -> None:
    """Raise :class:`DivergedError` when a logged loss is not finite (NaN weights evaluate to AP 0 silently)."""
    value = float(loss)
    if not math.isfinite(value):
        raise DivergedError(
            f"training diverged: loss is {value} at iteration {iteration}; lower the learning rate or clip gradients"
        )


def _stop_on_divergence() -> Any:
    from mmengine.hooks import Hook

    class StopOnDivergence(Hook):
        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            if outputs and "loss" in outputs:
                check_loss(outputs["loss"], runner.iter + 1)

    return StopOnDivergence()


def run_job(job_dir: Path, launcher: str = "none") -> dict[str, Any]:
    """Train and evaluate the job in ``job_dir``; returns what was written to ``done.json``."""
    from mmengine.config import Config
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    start = time.monotonic()
    job_dir = Path(job_dir).resolve()
    cfg = Config.fromfile(str(job_dir / CONFIG))
    cfg.work_dir = str(job_dir)
    cfg.launcher = launcher
    resumed_from = last_checkpoint(job_dir)
    if resumed_from is not None:
        cfg.resume = True
        cfg.load_from = str(resumed_from)
        trust_checkpoint(resumed_from)
    # Evaluate once, through the test loop, after the last epoch: a val loop would evaluate the same
    # split a second time at the final epoch.
    cfg.val_dataloader = None
    cfg.val_cfg = None
    cfg.val_evaluator = None
    runner = Runner.from_cfg(cfg)
    runner.register_hook(_stop_on_divergence(), priority="LOW")
    runner.train()
    raw = runner.test()
    record = dict(
        metrics=table_metrics(raw),
        raw_metrics={k: float(v) for k, v in raw.items() if isinstance(v, (int, float))},
        resumed_from=None if resumed_from is None else str(resumed_from),
        attempt_s=round(time.monotonic() - start, 1),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    if get_rank() == 0:
        write_json(job_dir / DONE, record, indent=2, sort_keys=True)
    return record


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of one job process."""
    parser = argparse.ArgumentParser(description="Train and evaluate one hsfpn-repro job.")
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--launcher", choices=("none", "pytorch", "slurm"), default="none")
    # torchrun passes --local-rank / --local_rank to old-style scripts; mmengine reads LOCAL_RANK itself.
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)
    args = parser.parse_args(argv)
    run_job(args.job_dir, args.launcher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
