"""The MMEngine hooks a job runs with: stop on divergence, write progress, checkpoint after validation (with
the digest the job resumes by), keep the last validation's figures, and send the final evaluation's figures to
TensorBoard.

Imported by the job process only (it loads mmengine).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from mmengine.dist import is_main_process
from mmengine.hooks import CheckpointHook, Hook
from mmengine.registry import HOOKS

from dotamini10.io import atomic_write_text

from .job_folder import JobFolder
from .progress import JobProgress, Phase, remaining_evaluations

# The type name of JobCheckpointHook in the config (``default_hooks.checkpoint.type``).
CHECKPOINT_HOOK = "JobCheckpointHook"


class DivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def check_loss(loss: Any, iteration: int) -> None:
    """Raise :class:`DivergedError` when a logged loss is not finite (NaN weights evaluate to AP 0 silently)."""
    value = float(loss)
    if not math.isfinite(value):
        raise DivergedError(
            f"training diverged: loss is {value} at iteration {iteration}; lower the learning rate or clip gradients"
        )


class StopOnDivergence(Hook):
    """Stops the training at the first loss that is not finite (:func:`check_loss`)."""

    priority = "LOW"

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if outputs and "loss" in outputs:
            check_loss(outputs["loss"], runner.iter + 1)


def _mean_time(runner: Any, phase: Phase) -> float | None:
    key = f"{phase}/time"
    if key not in runner.message_hub.log_scalars:
        return None
    return float(runner.message_hub.get_scalar(key).mean(10))


class ProgressHook(Hook):
    """Writes the job's position to its folder on rank 0, at most every ``min_interval_s`` within a phase and
    at each phase's first and last position.

    Args:
        folder: The job's folder.
        val_interval: Epochs between validations (0: one test after training), for the ETA.
        min_interval_s: Least seconds between two writes within a phase.
    """

    priority = "LOW"  # after IterTimerHook has recorded the iteration's time

    def __init__(self, folder: JobFolder, val_interval: int, min_interval_s: float = 1.0) -> None:
        self.folder = folder
        self.val_interval = val_interval
        self.min_interval_s = min_interval_s
        self.loss: float | None = None
        self.written = 0.0
        self.last_key: tuple[Phase, int] | None = None
        self.eval_started = 0.0
        self.eval_s: float | None = None

    def write(self, runner: Any, phase: Phase, done: int, total: int, force: bool = False) -> None:
        now = time.monotonic()
        key = (phase, runner.epoch)
        force = force or key != self.last_key or done == total  # each phase's first and last position
        if not is_main_process() or (not force and now - self.written < self.min_interval_s):
            return
        self.written, self.last_key = now, key
        loop = runner.train_loop
        # In after_train_iter runner.iter does not count the iteration yet.
        train_done = runner.iter + (1 if phase is Phase.TRAIN and done > 0 else 0)
        epoch = runner.epoch + 1 if phase is Phase.TRAIN else runner.epoch
        iter_s = _mean_time(runner, Phase.TRAIN)
        self.folder.write_progress(JobProgress(
            phase, min(epoch, loop.max_epochs), loop.max_epochs, done, total, train_done, loop.max_iters,
            self.loss, iter_s, self._eta(runner, phase, done, total, train_done, iter_s),
        ))  # fmt: skip

    def _eta(self, runner: Any, phase: Phase, done: int, total: int, train_done: int,
             iter_s: float | None) -> float | None:
        if iter_s is None:
            return None
        loop = runner.train_loop
        eta = (loop.max_iters - train_done) * iter_s
        evals_left = remaining_evaluations(runner.epoch, loop.max_epochs, self.val_interval)
        if phase is not Phase.TRAIN:
            eta += (total - done) * (_mean_time(runner, phase) or 0.0)
            evals_left = max(evals_left - (1 if phase is Phase.TEST else 0), 0)
        return eta + evals_left * (self.eval_s or 0.0)

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


@HOOKS.register_module(name=CHECKPOINT_HOOK, force=True)
class JobCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` that saves a validated epoch after its validation, and records the digest
    of every checkpoint it saves in the job's folder (the job resumes only from a recorded checkpoint).

    mmengine saves in ``after_train_epoch``, before the epoch's validation updates the best score, so a resume
    from that checkpoint forgets the epoch's score (and keeps a stale ``best_ckpt``). This hook saves an epoch
    that is validated in ``after_val_epoch``, once the best record is up to date; other epochs as before. A job
    killed during a validation resumes from the epoch before and trains that epoch again.
    """

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

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict[str, Any]) -> None:
        # mmengine's order is: delete the oldest kept checkpoint, save, write ``last_checkpoint``. Killed in
        # between, the marker names a deleted file or one whose digest is not recorded yet: nothing to resume
        # from. Here: save, record the digest, point the marker at it, and only then delete, so that the marker
        # always names a recorded checkpoint (for a moment there is one checkpoint more on disk).
        dropped = self._keep(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                               backend_args=self.backend_args, **self.args)
        if not is_main_process():
            return
        folder = JobFolder(Path(runner.work_dir))
        folder.record_checkpoint(Path(self.last_ckpt))
        atomic_write_text(folder.last_checkpoint_marker, str(self.last_ckpt))
        for old in dropped:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)

    def _keep(self, runner: Any, step: int) -> list[int]:
        """Add ``step`` to the kept checkpoints (mmengine's bookkeeping, which a resume restores); returns the
        steps that fall out of ``max_keep_ckpts``."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return []  # keep all, or this step saved already (a best and a last checkpoint in one epoch)
        dropped = []
        if len(self.keep_ckpt_ids) == self.max_keep_ckpts:  # the deque's maxlen: append would drop it silently
            dropped.append(self.keep_ckpt_ids.popleft())
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        return dropped


class LastValidation(Hook):
    """Keeps the last validation's ``(epoch, metrics)``: the last epoch's need no second evaluation."""

    def __init__(self) -> None:
        self.epoch: int | None = None
        self.metrics: dict[str, Any] = {}

    def after_val_epoch(self, runner: Any, metrics: Any = None) -> None:
        self.epoch, self.metrics = runner.epoch, dict(metrics or {})


class TestScalars(Hook):
    """Sends the figures of the evaluation after training to the visualizer's backends (TensorBoard and
    ``scalars.json``) as ``test/<name>``: mmengine's LoggerHook sends validation figures there, but writes
    test figures to the text log only, so a job evaluated once, after training, would show none."""

    priority = "BELOW_NORMAL"

    def after_test_epoch(self, runner: Any, metrics: Any = None) -> None:
        scalars = {f"test/{k}": float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        if scalars:
            runner.visualizer.add_scalars(scalars, step=runner.epoch)
