"""What ``detect`` is asked and what it reports: its options, its errors and each image's outcome.

Light on purpose (no torch, no OpenMMLab): the command line takes its defaults from :class:`DetectOptions`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotamini10.merge import MergeOptions
from dotamini10.scale import INTERPOLATIONS

from ..errors import PipelineError

MAX_SIDE = 20_000
PREVIEW_SIDE = 2048


class DetectError(PipelineError):
    """``detect`` cannot run: a bad config or checkpoint, options out of range, a checkpoint that does not fit."""


class ImageError(PipelineError):
    """One image cannot be detected (missing, unreadable, truncated, too large); the others go on."""


class Status(enum.Enum):
    """What happened to one image in a run."""

    DONE = "done"
    RESUMED = "skipped (finished before)"
    FAILED = "failed"


@dataclass(frozen=True)
class DetectOptions:
    """How scenes are cut, run and merged.

    Args:
        scales: Factors the scene is run at (each as the builder scales). Defaults to ``(1.0,)``.
        window: Window side in pixels. Defaults to 1024.
        stride: Window step. Defaults to 768.
        score: Drop detections scoring below this. Defaults to 0.05.
        batch: Windows per model call. Defaults to 1: on a CPU, batches make the convolutions slower (measured
            in ``benchmarks/bench_detect.py``); on a GPU a larger batch pays.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        workers: Model processes on a CPU, one torch thread each (``model_pool`` notes: results do not depend
            on it). None: one per core, at most 8. Ignored on a GPU, where the model runs in this process.
        merge: The merge; defaults to class-wise NMS at IoU 0.5 with at most 10,000 detections per image.
        interpolation: The builder's resizing filter. Defaults to ``area``.
        pad_value: Padding of windows past a small image's edge. Defaults to 0 (the builder's).
        max_side: Largest side accepted at any scale. Defaults to 20,000.
        preview_side: Longest side of the previews. Defaults to 2048.
        preview_score: The previews draw the detections scoring at least this. Defaults to 0.3.
    """

    scales: tuple[float, ...] = (1.0,)
    window: int = 1024
    stride: int = 768
    score: float = 0.05
    batch: int = 1
    device: str = "cpu"
    workers: int | None = None
    merge: MergeOptions = MergeOptions(max_per_image=10_000)
    interpolation: str = "area"
    pad_value: int = 0
    max_side: int = MAX_SIDE
    preview_side: int = PREVIEW_SIDE
    preview_score: float = 0.3

    def __post_init__(self) -> None:
        if not self.scales or any(not s > 0 for s in self.scales):
            raise DetectError(f"--scales: expected positive factors, got {list(self.scales)}")
        if self.window < 32 or not 0 < self.stride <= self.window:
            raise DetectError(f"--window/--stride: expected window >= 32 and 0 < stride <= window, got "
                              f"{self.window}, {self.stride}")
        if self.batch < 1:
            raise DetectError(f"--batch: expected at least 1, got {self.batch}")
        if self.workers is not None and self.workers < 1:
            raise DetectError(f"--workers: expected at least 1, got {self.workers}")
        if not 0.0 <= self.preview_score <= 1.0:
            raise DetectError(f"--preview-score: expected a score in [0, 1], got {self.preview_score}")
        if self.interpolation not in INTERPOLATIONS:
            raise DetectError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}")

    @property
    def model_workers(self) -> int:
        """The model processes this run uses."""
        from .model_pool import default_workers

        return default_workers(self.device) if self.workers is None else self.workers

    def to_json(self) -> dict[str, Any]:
        """The options that decide the outputs (batch, device and workers do not)."""
        return dict(scales=list(self.scales), window=self.window, stride=self.stride, score=self.score,
                    merge=self.merge.to_json(), interpolation=self.interpolation, pad_value=self.pad_value,
                    max_side=self.max_side)


@dataclass
class ImageOutcome:
    """One image's fate.

    Attributes:
        path: The image as given.
        name: Its name without suffix (the per-image file's name, the Task2 image field).
        status: Done, resumed or failed.
        windows: Windows run.
        detections: Detections kept.
        error: The one-line reason of a failure.
    """

    path: Path
    name: str
    status: Status
    windows: int = 0
    detections: int = 0
    error: str = ""


@dataclass
class DetectSummary:
    """A run's result: every image's outcome, the files written, what the outputs left out (``notes``, one line
    each) and the throughput."""

    out: Path
    classes: tuple[str, ...]
    outcomes: list[ImageOutcome] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0
