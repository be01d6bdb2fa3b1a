"""The recipe of a DOTAmini10 build: every option that affects its outputs, checked in one place."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from .classes import AUGMENT_CLASSES, DOTAMINI10_CLASSES, check_class_list
from .errors import DatasetError


@dataclass(frozen=True)
class BuildOptions:
    """Every option that affects the outputs (all recorded in ``build.json``).

    Attributes:
        classes: Classes kept, in output id order. Defaults to the ten DOTAmini10 classes (Table 7 order).
        scale_mode: ``"random"`` (one factor per image drawn from ``scale_range``) or ``"fixed"`` (every factor
            of ``scales``). Defaults to ``"random"``.
        scales: Factors of ``fixed`` mode. Defaults to (0.5, 1.0).
        scale_range: Bounds of ``random`` mode. Defaults to (0.5, 1.0), the paper's range.
        scale_decimals: Rounding of random factors. Defaults to 4.
        interpolation: Resizing filter (``area``, ``cubic``, ``linear``, ``nearest``). Defaults to ``area``.
        crop_size: Window size. Defaults to 1024.
        stride: Window step. Defaults to 768 (overlap 256).
        iof_threshold: Minimum area fraction of an object inside a window. Defaults to 0.7.
        pad_value: Gray value padding images smaller than a window. Defaults to 0.
        drop_empty_train: Drop train windows without objects (val keeps all). Defaults to True.
        aug_copies: Augmented copies per train window holding an ``aug_classes`` object. Defaults to 1: the
            paper does not give the number; one copy roughly doubles those classes, which matches the
            train/val ratio of basketball-court in its Table 7 (7.7 against about 4 for unaugmented classes).
        aug_classes: Classes that trigger augmentation. Defaults to basketball-court, baseball-diamond,
            helicopter.
        flip_prob: Probability of each of the horizontal and vertical flips. Defaults to 0.5.
        hsv_gains: Hue, saturation, value gains of the jitter. Defaults to (0.015, 0.7, 0.4).
        png_compression: Deflate level (ISA-L, 0-3) of the PNG windows. Defaults to 1.
        coord_decimals: Decimals of output coordinates. Defaults to 2.
        strict: Stop at the first input problem. Defaults to False.
    """

    classes: tuple[str, ...] = DOTAMINI10_CLASSES
    scale_mode: str = "random"
    scales: tuple[float, ...] = (0.5, 1.0)
    scale_range: tuple[float, float] = (0.5, 1.0)
    scale_decimals: int = 4
    interpolation: str = "area"
    crop_size: int = 1024
    stride: int = 768
    iof_threshold: float = 0.7
    pad_value: int = 0
    drop_empty_train: bool = True
    aug_copies: int = 1
    aug_classes: tuple[str, ...] = AUGMENT_CLASSES
    flip_prob: float = 0.5
    hsv_gains: tuple[float, float, float] = (0.015, 0.7, 0.4)
    png_compression: int = 1
    coord_decimals: int = 2
    strict: bool = False

    def check(self) -> BuildOptions:
        """Validate every option; returns ``self``.

        Raises:
            DatasetError: Naming the first invalid option and its value.
        """
        # Imported here: the command line reads the defaults above without loading numpy.
        from .png import PNG_LEVELS
        from .scale import INTERPOLATIONS, check_scale_options

        check_class_list(self.classes, name="classes")
        check_class_list(self.aug_classes, name="aug_classes")
        check_scale_options(self.scale_mode, self.scales, self.scale_range)
        if self.interpolation not in INTERPOLATIONS:
            raise DatasetError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.crop_size <= 0 or not 0 < self.stride <= self.crop_size:
            raise DatasetError(f"crop_size/stride: expected 0 < stride <= crop_size, got {self.crop_size}, {self.stride}")
        if not 0.0 < self.iof_threshold <= 1.0:
            raise DatasetError(f"iof_threshold: expected a value in (0, 1], got {self.iof_threshold}")
        if not 0 <= self.pad_value <= 255:
            raise DatasetError(f"pad_value: expected 0..255, got {self.pad_value}")
        if self.aug_copies < 0:
            raise DatasetError(f"aug_copies: expected >= 0, got {self.aug_copies}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise DatasetError(f"flip_prob: expected a probability, got {self.flip_prob}")
        if len(self.hsv_gains) != 3 or any(not 0.0 <= g <= 1.0 for g in self.hsv_gains):
            raise DatasetError(f"hsv_gains: expected three gains in [0, 1], got {self.hsv_gains}")
        if self.png_compression not in PNG_LEVELS:
            raise DatasetError(f"png_compression: expected 0..3, got {self.png_compression}")
        if not 0 <= self.coord_decimals <= 6:
            raise DatasetError(f"coord_decimals: expected 0..6, got {self.coord_decimals}")
        return self

    def to_dict(self) -> dict[str, object]:
        """JSON-ready options (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))
