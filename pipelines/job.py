"""One job's process: train a resolved config, evaluate it, export the model, write the done marker.

Run by :mod:`pipelines.runner` as ``python -m pipelines.job JOB_DIR --launcher none`` (or under torchrun /
srun with ``--launcher pytorch`` / ``slurm``, one process per GPU or per CPU share). ``JOB_DIR/job_config.py`` is
the fully resolved config; the job trains into ``JOB_DIR`` (mmengine's checkpoints, logs and
``last_checkpoint``), evaluates with AITODMetric and, on rank 0, writes ``JOB_DIR/model.pth`` (the weights
and the class names, for ``init_detector``), ``JOB_DIR/progress.json`` while it runs and ``JOB_DIR/done.json``
with the metrics at the end. When ``last_checkpoint`` exists the job resumes from it.

Notes:
    Several processes: the job sets up the process group itself, from torchrun's variables (``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or Slurm's (``SLURM_PROCID``,
    ``SLURM_NTASKS``, ``SLURM_LOCALID``, the step's node list), with NCCL on GPUs and gloo on CPU. mmengine
    0.10.7's own set-up calls ``torch.cuda.set_device``, which a CPU-only torch refuses; its Runner skips that
    set-up when a group exists. On CPU the model is wrapped with ``device_ids=None`` (mmengine's default
    ``[LOCAL_RANK]`` is refused by CPU DDP).

    Checkpoints and ``save_best``: mmengine saves an epoch's checkpoint before that epoch's validation, so the
    best score found by the validation is missing from the checkpoint a resume starts from. With validation on,
    the job saves each validated epoch's checkpoint after the validation instead (:func:`register_checkpoint_hook`).

    Resuming under torch >= 2.6: ``torch.load`` defaults to ``weights_only=True`` and rejects
    mmengine's own checkpoints (they pickle ``HistoryBuffer`` and numpy objects). :func:`trust_checkpoint`
    relaxes this for exactly one file, the job's own last checkpoint (written by this toolkit into its
    own work dir); every other file, pretrained backbones included, still loads with torch's default.
    ``model.pth`` holds tensors and plain values only, so it loads with the default.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_path, atomic_write_text, write_json

from .progress import JobProgress, Phase, remaining_evaluations, write_progress

DONE = "done.json"
# Not "config.py": mmengine's Runner dumps its own (changed) copy of the config there.
CONFIG = "job_config.py"
MODEL = "model.pth"
# The pid of the launcher (torchrun) a job's processes must not outlive; set by pipelines.parent_guard.
LAUNCHER_PID_ENV = "HSFPN_LAUNCHER_PID"

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
METRIC_COLUMNS: tuple[str, ...] = tuple(_AITOD_KEYS.values())


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


# ---------------------------------------------------------------------------------------------
# Processes: the parent guard and the process group
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a multi-process job.

    Args:
        rank: Global rank.
        world_size: Processes of the job.
        local_rank: Rank on this machine (the GPU index on GPUs).
        master_addr: Host of rank 0.
        master_port: Rendezvous port on that host.
    """

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    def to_environ(self) -> dict[str, str]:
        """The ``env://`` variables of ``torch.distributed`` (and mmengine's ``LOCAL_RANK``)."""
        return dict(
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK=str(self.local_rank),
            MASTER_ADDR=self.master_addr,
            MASTER_PORT=str(self.master_port),
        )


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``"node[03-05,9],gpu1"`` -> ``"node03"``), without ``scontrol``."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if m is None:
        raise ValueError(f"not a Slurm node list: {nodelist!r}")
    prefix, ranges = m.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_port(job_id: int, step_id: int) -> int:
    """A rendezvous port every task of a Slurm step derives alike (12000-31999), different for other steps."""
    return 12000 + (job_id * 8 + step_id) % 20000


def dist_env(launcher: str, environ: Mapping[str, str]) -> DistEnv | None:
    """This process's place in the job, from the launcher's variables; ``None`` for a single process.

    Args:
        launcher: ``"none"``, ``"pytorch"`` (torchrun's ``RANK`` ...) or ``"slurm"`` (``SLURM_PROCID`` ...;
            ``MASTER_PORT`` when set, else :func:`slurm_port`).
        environ: The process environment.

    Returns:
        The rank, world size, local rank and rendezvous address.
    """
    if launcher == "none":
        return None
    if launcher == "pytorch":
        return DistEnv(
            int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ["LOCAL_RANK"]),
            environ["MASTER_ADDR"], int(environ["MASTER_PORT"]),
        )
    if launcher == "slurm":
        nodes = environ.get("SLURM_STEP_NODELIST") or environ["SLURM_NODELIST"]
        port = environ.get("MASTER_PORT") or slurm_port(int(environ["SLURM_JOB_ID"]), int(environ.get("SLURM_STEP_ID", 0)))
        return DistEnv(
            int(environ["SLURM_PROCID"]), int(environ.get("SLURM_STEP_NUM_TASKS") or environ["SLURM_NTASKS"]),
            int(environ["SLURM_LOCALID"]), environ.get("MASTER_ADDR") or first_host(nodes), int(port),
        )
    raise ValueError(f"launcher must be none, pytorch or slurm, got {launcher!r}")


def guard_parent(launcher: str) -> None:
    """End this process when its launcher dies (torchrun's workers); see :mod:`pipelines.parent_guard`.

    A plain job process is already covered (the guard execs into it). Slurm's tasks are children of
    ``slurmstepd``, which ends the step when ``srun`` dies.
    """
    if launcher != "pytorch":
        return
    from dotamini10.processes import die_with_parent

    parent = os.getppid()
    expected = int(os.environ.get(LAUNCHER_PID_ENV) or parent)
    if expected != parent and _alive(expected):
        # A value inherited from elsewhere (torchrun started by hand): the living parent is the launcher.
        expected = parent
    # Otherwise a launcher that died before this line is caught: die_with_parent compares it with getppid().
    die_with_parent(expected)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, such as a launcher that just died, does not)."""
    stat = Path(f"/proc/{pid}/stat")
    if stat.parent.parent.is_dir() and Path("/proc/self").exists():
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


def init_process_group(env: DistEnv, backend: str) -> None:
    """Set up the job's process group before mmengine's Runner (which then keeps it).

    Args:
        env: This process's place (:func:`dist_env`).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (GPUs; this process takes GPU ``local_rank``).
    """
    import torch
    import torch.distributed as dist

    os.environ.update(env.to_environ())
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size)


def cpu_model_wrapper(cfg: Any) -> dict[str, Any]:
    """The ``model_wrapper_cfg`` of CPU DDP: mmengine's wrapper with ``device_ids=None`` (the config's keys kept)."""
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("broadcast_buffers", False)
    wrapper.setdefault("find_unused_parameters", bool(cfg.get("find_unused_parameters", False)))
    wrapper["device_ids"] = None
    return wrapper


# ---------------------------------------------------------------------------------------------
# Hooks: divergence, progress, checkpoints after validation
# ---------------------------------------------------------------------------------------------


def _stop_on_divergence() -> Any:
    from mmengine.hooks import Hook

    class StopOnDivergence(Hook):
        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            if outputs and "loss" in outputs:
                check_loss(outputs["loss"], runner.iter + 1)

    return StopOnDivergence()


def _mean_time(runner: Any, phase: Phase) -> float | None:
    key = f"{phase}/time"
    if key not in runner.message_hub.log_scalars:
        return None
    return float(runner.message_hub.get_scalar(key).mean(10))


def progress_hook(job_dir: Path, val_interval: int, min_interval_s: float = 1.0) -> Any:
    """A hook writing ``job_dir/progress.json`` on rank 0 (at most every ``min_interval_s`` within a phase)."""
    from mmengine.dist import is_main_process
    from mmengine.hooks import Hook

    class ProgressHook(Hook):
        priority = "LOW"  # after IterTimerHook has recorded the iteration's time

        def __init__(self) -> None:
            self.loss: float | None = None
            self.written = 0.0
            self.last_key: tuple[Phase, int] | None = None
            self.eval_started = 0.0
            self.eval_s: float | None = None

        def write(self, runner: Any, phase: Phase, done: int, total: int, force: bool = False) -> None:
            now = time.monotonic()
            key = (phase, runner.epoch)
            force = force or key != self.last_key or done == total  # each phase's first and last position
            if not is_main_process() or (not force and now - self.written < min_interval_s):
                return
            self.written, self.last_key = now, key
            loop = runner.train_loop
            # In after_train_iter runner.iter does not count the iteration yet.
            train_done = runner.iter + (1 if phase is Phase.TRAIN and done > 0 else 0)
            train_total = loop.max_iters
            epoch = runner.epoch + 1 if phase is Phase.TRAIN else runner.epoch
            iter_s = _mean_time(runner, Phase.TRAIN)
            eta = None if iter_s is None else (train_total - train_done) * iter_s
            if eta is not None:
                evals_left = remaining_evaluations(runner.epoch, loop.max_epochs, val_interval)
                if phase is not Phase.TRAIN:
                    eval_iter_s = _mean_time(runner, phase) or 0.0
                    eta += (total - done) * eval_iter_s
                    evals_left = max(evals_left - (1 if phase is Phase.TEST else 0), 0)
                eta += evals_left * (self.eval_s or 0.0)
            progress = JobProgress(
                phase, min(epoch, loop.max_epochs), loop.max_epochs, done, total, train_done, train_total,
                self.loss, iter_s, eta,
            )
            write_progress(job_dir, progress)

        def before_train(self, runner: Any) -> None:
            self.write(runner, Phase.TRAIN, 0, len(runner.train_dataloader), force=True)

        def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            if outputs and "loss" in outputs:
                self.loss = float(outputs["loss"])
            # runner.iter counts this iteration only after the hooks: pass the position explicitly.
            self.write(runner, Phase.TRAIN, batch_idx + 1, len(runner.train_dataloader))

        def _eval_start(self, runner: Any, phase: Phase, loader: Any) -> None:
            self.eval_started = time.monotonic()
            self.write(runner, phase, 0, len(loader), force=True)

        def _eval_end(self) -> None:
            self.eval_s = time.monotonic() - self.eval_started

        def before_val_epoch(self, runner: Any) -> None:
            self._eval_start(runner, Phase.VAL, runner.val_dataloader)

        def after_val_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            self.write(runner, Phase.VAL, batch_idx + 1, len(runner.val_dataloader))

        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            self._eval_end()

        def before_test_epoch(self, runner: Any) -> None:
            self._eval_start(runner, Phase.TEST, runner.test_dataloader)

        def after_test_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
            self.write(runner, Phase.TEST, batch_idx + 1, len(runner.test_dataloader))

        def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
            self._eval_end()

    return ProgressHook()


CHECKPOINT_HOOK = "CheckpointAfterValidation"


def register_checkpoint_hook() -> str:
    """Register mmengine's ``CheckpointHook`` variant that saves a validated epoch after its validation.

    mmengine saves in ``after_train_epoch``, before the epoch's validation updates the best score, so a resume
    from that checkpoint forgets the epoch's score (and keeps a stale ``best_ckpt``). The variant saves an
    epoch that is validated in ``after_val_epoch``, once the best record is up to date; other epochs as
    before. A job killed during a validation resumes from the epoch before and trains that epoch again.

    Returns:
        The registered type name, for ``default_hooks.checkpoint.type``.
    """
    from mmengine.hooks import CheckpointHook
    from mmengine.registry import HOOKS

    class CheckpointAfterValidation(CheckpointHook):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pending = False

        def _validates(self, runner: Any) -> bool:
            loop = runner.train_loop
            epoch = runner.epoch + 1  # the epoch that just ended (the loop counts it after this hook)
            return runner.val_loop is not None and epoch >= loop.val_begin and (
                epoch % loop.val_interval == 0 or epoch == loop.max_epochs
            )

        def after_train_epoch(self, runner: Any) -> None:
            due = self.by_epoch and (
                self.every_n_epochs(runner, self.interval, self.save_begin)
                or (self.save_last and self.is_last_train_epoch(runner))
            )
            if due and self._validates(runner):
                self._pending = True
                return
            super().after_train_epoch(runner)

        def after_val_epoch(self, runner: Any, metrics: Any) -> None:
            super().after_val_epoch(runner, metrics)
            if self._pending:
                self._pending = False
                # The loop has counted the epoch by now: runner.epoch is the number of epochs trained.
                runner.logger.info(f"Saving checkpoint at {runner.epoch} epochs (after its validation)")
                self._save_checkpoint_with_step(runner, runner.epoch, dict(epoch=runner.epoch, iter=runner.iter))

    HOOKS.register_module(name=CHECKPOINT_HOOK, module=CheckpointAfterValidation, force=True)
    return CHECKPOINT_HOOK


def final_metrics_hook() -> Any:
    """A hook keeping the last validation's ``(epoch, metrics)``: the last epoch's need no second evaluation."""
    from mmengine.hooks import Hook

    class LastValidation(Hook):
        def __init__(self) -> None:
            self.epoch: int | None = None
            self.metrics: dict[str, Any] = {}

        def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
            self.epoch, self.metrics = runner.epoch, dict(metrics or {})

    return LastValidation()


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


def export_model(runner: Any, path: Path) -> None:
    """Write the trained weights and the dataset's class names to ``path`` (rank 0 only; atomic).

    The file is what ``mmdet.apis.init_detector(job_config.py, path)`` loads: ``state_dict`` plus
    ``meta['dataset_meta']['classes']``, with plain values only (it loads with ``weights_only=True``).
    """
    import torch
    from mmengine.dist import is_main_process
    from mmengine.model import is_model_wrapper

    if not is_main_process():
        return
    model = runner.model.module if is_model_wrapper(runner.model) else runner.model
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    meta = dict(dataset_meta=_plain(runner.train_dataloader.dataset.metainfo), epoch=runner.epoch, iter=runner.iter)
    with atomic_path(path) as tmp:
        torch.save(dict(state_dict=state, meta=meta), tmp)


def _prepare(cfg: Any, job_dir: Path, launcher: str) -> tuple[Path | None, int]:
    """Apply the job's run-time settings to ``cfg``; returns the checkpoint it resumes from and its val interval."""
    import torch

    cfg.work_dir = str(job_dir)
    cfg.launcher = launcher
    env = dist_env(launcher, os.environ)
    if env is not None:
        init_process_group(env, cfg.env_cfg.get("dist_cfg", {}).get("backend", "nccl"))
        if not torch.cuda.is_available():
            cfg.model_wrapper_cfg = cpu_model_wrapper(cfg)
    resumed_from = last_checkpoint(job_dir)
    if resumed_from is not None:
        cfg.resume = True
        cfg.load_from = str(resumed_from)
        trust_checkpoint(resumed_from)
    val_interval = int(cfg.get("job", {}).get("val_interval", 0))
    if val_interval:
        cfg.default_hooks.checkpoint.type = register_checkpoint_hook()
    else:
        # Evaluate once, through the test loop, after the last epoch: a val loop would evaluate the same
        # split a second time at the final epoch.
        cfg.val_dataloader = None
        cfg.val_cfg = None
        cfg.val_evaluator = None
    return resumed_from, val_interval


def run_job(job_dir: Path, launcher: str = "none") -> dict[str, Any]:
    """Train and evaluate the job in ``job_dir``; returns what was written to ``done.json``."""
    from mmengine.config import Config
    from mmengine.dist import get_rank
    from mmengine.runner import Runner

    start = time.monotonic()
    job_dir = Path(job_dir).resolve()
    resolved = (job_dir / CONFIG).read_text(encoding="utf-8")
    cfg = Config.fromfile(str(job_dir / CONFIG))
    resumed_from, val_interval = _prepare(cfg, job_dir, launcher)
    runner = Runner.from_cfg(cfg)
    if get_rank() == 0:
        # The Runner dumps its run-time copy (launcher, resume, hook types) under the config's own name: put
        # the resolved config back, the one init_detector(job_config.py, model.pth) should build.
        atomic_write_text(job_dir / CONFIG, resolved)
    runner.register_hook(_stop_on_divergence(), priority="LOW")
    runner.register_hook(progress_hook(job_dir, val_interval))
    last_val = final_metrics_hook()
    runner.register_hook(last_val)
    runner.train()
    # The last epoch is always validated when validation is on: its figures are the final ones.
    validated_last = val_interval and last_val.epoch == runner.train_loop.max_epochs
    raw = last_val.metrics if validated_last else runner.test()
    export_model(runner, job_dir / MODEL)
    record = dict(
        metrics=table_metrics(raw),
        raw_metrics={k: float(v) for k, v in raw.items() if isinstance(v, (int, float))},
        resumed_from=None if resumed_from is None else str(resumed_from),
        attempt_s=round(time.monotonic() - start, 1),
        finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        processes=runner.world_size,
    )
    if get_rank() == 0:
        _remove_empty(job_dir / ".dist_test")  # mmengine's gathering folder (cwd-relative), empty after use
        write_json(job_dir / DONE, record, indent=2, sort_keys=True)
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
