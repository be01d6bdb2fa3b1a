"""Where a running job is: the record its process writes (``progress.json``) and the runner reads.

The job process (rank 0) rewrites the record atomically while it trains and evaluates, at most about once a
second and at every change of phase (:meth:`pipelines.job_folder.JobFolder.write_progress`). The runner reads it
to report the epoch and iteration out of the total, the latest loss, iterations per second, the job's ETA and,
while it runs, the evaluation. The module imports only the standard library: the runner reads the record without
loading torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Phase(StrEnum):
    """What the job process is doing."""

    TRAIN = "train"
    VAL = "val"  # validation between epochs (``--val-interval``)
    TEST = "test"  # the final evaluation


@dataclass(frozen=True)
class JobProgress:
    """A job's position, as its process last wrote it.

    Args:
        phase: Training, validating or testing.
        epoch: The epoch being trained (1-based); during an evaluation, the last epoch trained.
        max_epochs: Epochs of the schedule.
        iter: Iterations done in this epoch (training) or batches done (evaluation).
        iters: Iterations of one epoch (training) or batches of the evaluation.
        train_iter: Training iterations done in all, over every attempt.
        train_iters: Training iterations of the whole schedule.
        loss: The latest logged training loss.
        iter_s: Mean seconds per training iteration over the last few.
        eta_s: Seconds the job needs to finish (training, then the evaluations still to come).
    """

    phase: Phase
    epoch: int
    max_epochs: int
    iter: int
    iters: int
    train_iter: int
    train_iters: int
    loss: float | None = None
    iter_s: float | None = None
    eta_s: float | None = None

    def describe(self) -> str:
        """One line: ``epoch 3/12 iter 50/120 loss 0.8123 2.10 it/s`` or ``evaluating 12/40 (test)``."""
        if self.phase is not Phase.TRAIN:
            return f"evaluating {self.iter}/{self.iters} ({self.phase}, after epoch {self.epoch}/{self.max_epochs})"
        text = f"epoch {self.epoch}/{self.max_epochs} iter {self.iter}/{self.iters}"
        if self.loss is not None:
            text += f" loss {self.loss:.4f}"
        if self.iter_s:
            text += f" {1.0 / self.iter_s:.2f} it/s"
        return text

    @property
    def fraction(self) -> float:
        """Share of the training iterations done, in [0, 1]."""
        return min(self.train_iter / self.train_iters, 1.0) if self.train_iters else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: Any) -> JobProgress | None:
        """The progress in a decoded ``progress.json``, or ``None`` when it is not one."""
        if not isinstance(record, dict):
            return None
        try:
            values = {f.name: record[f.name] for f in dataclasses.fields(cls) if f.name in record}
            values["phase"] = Phase(values["phase"])
            return cls(**values)
        except (KeyError, TypeError, ValueError):
            return None


def remaining_evaluations(epochs_done: int, max_epochs: int, val_interval: int) -> int:
    """Evaluations a job still runs after ``epochs_done`` epochs.

    With validation (``val_interval > 0``) mmengine validates every ``val_interval`` epochs and at the last one,
    whose figures the job reports; without it the job tests once after training.
    """
    if val_interval <= 0:
        return 1
    later = range(epochs_done + 1, max_epochs + 1)
    return sum(1 for e in later if e % val_interval == 0 or e == max_epochs)
