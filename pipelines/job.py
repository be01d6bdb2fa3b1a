"""One job's process: train a resolved config, evaluate it, export the model, write the done marker.

Run by :mod:`pipelines.runner` as ``python -m pipelines.job JOB_DIR --launcher none`` (or under torchrun /
srun with ``--launcher pytorch`` / ``slurm``, one process per GPU or per CPU share; :mod:`pipelines.distributed`).
The job reads the resolved config the runner wrote into its folder (:class:`pipelines.job_folder.JobFolder`),
trains there (mmengine's checkpoints, logs and ``last_checkpoint``) with the hooks of :mod:`pipelines.hooks`,
evaluates with AITODMetric and, on rank 0, writes ``model.pth`` (the weights and the class names, for
``init_detector``), ``progress.json`` while it runs and ``done.json`` with the metrics at the end. When the
folder names a last checkpoint the job resumes from it.

Notes:
    Resuming under torch >= 2.6: ``torch.load`` defaults to ``weights_only=True``, and mmengine's checkpoints
    hold a few objects besides tensors (``HistoryBuffer``, numpy values). The job resumes only from a checkpoint
    whose digest it recorded when it saved it, and loads it with the weights-only default under the toolkit's
    allowlist (:func:`hsfpn.checkpoints.checkpoint_globals`): no file is unpickled beyond that list.
    ``model.pth`` holds tensors and plain values only.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_path

from .distributed import cpu_model_wrapper, dist_env, guard_parent, init_process_group
from .job_folder import JobFolder
from .metrics import table_metrics


# ---------------------------------------------------------------------------------------------
# The job
# ---------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """``value`` with tuples, numpy scalars and arrays turned into lists and numbers (``weights_only``-safe)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


def dataset_category_ids(dataset: Any) -> list[int] | None:
    """The json category id of each label of a training dataset (mmdet's ``cat_ids``: label ``i`` is category
    ``cat_ids[i]``), looked up through dataset wrappers; None when the dataset has none (not a COCO json)."""
    while not hasattr(dataset, "cat_ids") and hasattr(dataset, "dataset"):
        dataset = dataset.dataset
    ids = getattr(dataset, "cat_ids", None)
    if not ids or len(ids) != len(dataset.metainfo.get("classes") or ()):
        return None
    return [int(i) for i in ids]


def export_model(runner: Any, path: Path) -> None:
    """Write the trained weights and the dataset's class names and category ids to ``path`` (rank 0; atomic).

    The file is what ``mmdet.apis.init_detector(job_config.py, path)`` loads: ``state_dict`` plus
    ``meta['dataset_meta']['classes']`` and ``['category_ids']`` (the training json's id of each class, which
    ``detect`` writes into its COCO results), with plain values only (it loads with ``weights_only=True``).
    """
    import torch
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper

    if not is_main_process():
        return
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    dataset = runner.train_dataloader.dataset
    dataset_meta = _plain(dataset.metainfo)
    ids = dataset_category_ids(dataset)
    if ids is not None:
        dataset_meta["category_ids"] = ids
    meta = dict(dataset_meta=dataset_meta, epoch=runner.epoch, iter=runner.iter)
    with atomic_path(path) as tmp:
        torch.save(dict(state_dict=state, meta=meta), tmp)


def _prepare(cfg: Any, folder: JobFolder, launcher: str) -> tuple[Path | None, int]:
    """Apply the job's run-time settings to ``cfg``; returns the checkpoint it resumes from and its val interval."""
    import torch

    from .hooks import CHECKPOINT_HOOK

    cfg.work_dir = str(folder.path)
    cfg.launcher = launcher
    env = dist_env(launcher, os.environ)
    if env is not None:
        init_process_group(env, cfg.env_cfg.get("dist_cfg", {}).get("backend", "nccl"))
        if not torch.cuda.is_available():
            cfg.model_wrapper_cfg = cpu_model_wrapper(cfg)
    resumed_from = folder.trusted_checkpoint()  # refuses a checkpoint the job did not record
    if resumed_from is not None:
        cfg.resume = True
        cfg.load_from = str(resumed_from)
    # Every checkpoint is saved through the job's hook, which records its digest (and, with validation, saves
    # a validated epoch after its validation).
    cfg.default_hooks.checkpoint.type = CHECKPOINT_HOOK
    val_interval = int(cfg.get("job", {}).get("val_interval", 0))
    if not val_interval:
        # Evaluate once, through the test loop, after the last epoch: a val loop would evaluate the same
        # split a second time at the final epoch.
        cfg.val_dataloader = None
        cfg.val_cfg = None
        cfg.val_evaluator = None
    return resumed_from, val_interval


def _load_config(folder: JobFolder) -> Any:
    """The resolved config of the folder, named so that mmengine's Runner dumps its run-time copy (launcher,
    resume, hook types) to ``folder.runtime_config`` instead of over the runner's ``job_config.py``."""
    from mmengine.config import Config

    text = folder.config.read_text(encoding="utf-8")
    return Config(Config.fromfile(str(folder.config)).to_dict(), cfg_text=text, filename=str(folder.runtime_config))


def run_job(job_dir: Path, launcher: str = "none") -> dict[str, Any]:
    """Train and evaluate the job in ``job_dir``; returns what was written to ``done.json``."""
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    from hsfpn.checkpoints import checkpoint_globals

    from .hooks import LastValidation, ProgressHook, StopOnDivergence, TestScalars

    start = time.monotonic()
    folder = JobFolder(Path(job_dir).resolve())
    cfg = _load_config(folder)
    resumed_from, val_interval = _prepare(cfg, folder, launcher)
    runner = Runner.from_cfg(cfg)
    runner.register_hook(StopOnDivergence())
    runner.register_hook(ProgressHook(folder, val_interval))
    runner.register_hook(TestScalars())
    last_val = LastValidation()
    runner.register_hook(last_val)
    with checkpoint_globals():  # a resume loads mmengine's checkpoint weights-only, under the allowlist
        runner.train()
        # The last epoch is always validated when validation is on: its figures are the final ones.
        validated_last = val_interval and last_val.epoch == runner.train_loop.max_epochs
        raw = last_val.metrics if validated_last else runner.test()
    export_model(runner, folder.model)
    record = dict(
        metrics=table_metrics(raw),
        raw_metrics={k: float(v) for k, v in raw.items() if isinstance(v, (int, float))},
        resumed_from=None if resumed_from is None else str(resumed_from),
        attempt_s=round(time.monotonic() - start, 1),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        processes=runner.world_size,
    )
    if get_rank() == 0:
        _remove_empty(folder.path / ".dist_test")  # mmengine's gathering folder (cwd-relative), empty after use
        folder.write_done(record)
    return record


def _remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # absent, or not empty
        pass


def main(argv: list[str] | None = None) -> int:
    """Command-line entry of one job process."""
    parser = argparse.ArgumentParser(description="Train and evaluate one hsfpn-repro job.")
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--launcher", choices=("none", "pytorch", "slurm"), default="none")
    # torchrun passes --local-rank / --local_rank to old-style scripts; mmengine reads LOCAL_RANK itself.
    parser.add_argument("--local-rank", "--local_rank", type=int, default=0)
    args = parser.parse_args(argv)
    guard_parent(args.launcher)
    run_job(args.job_dir, args.launcher)
    return 0


if __name__ == "__main__":
    sys.exit(main())
