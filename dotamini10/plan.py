"""Stage 3 and the cutting of work: each usable image's scale factors and windows, cut into units for workers.

Notes:
    Work is cut into units of (image, scale, batch of windows). An image holding at least one worker's share of
    the build's windows is cut into several batches so that one image alone keeps every worker busy; such an
    image is decoded and resized once by a ``PrepareTask`` into ``.work/pixels/*.npy``, which the workers
    memory-map (they read only the rows their windows need, and the pages are shared). The batches run while
    it decodes: each waits for the rows of its next window (``worker.SharedRows``), so the top of a large image
    is being split while its bottom is decoded. Other images are decoded by the one worker that takes them.
    Memory per worker is thus about two copies of the current image at most (OpenCV's decoder, used for other
    formats than 8-bit PNG, briefly holds a second copy), plus one window. Every image file is checksummed once,
    by its own ``HashTask``. Cutting never changes an output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .options import BuildOptions
from .scale import factor_tag, image_factors, scaled_size
from .sources import SourceImage
from .split import get_windows
from .worker import HashTask, PrepareTask, UnitSettings, UnitTask


@dataclass
class ImagePlan:
    """The tasks of one source image.

    Attributes:
        image: The source image.
        checksum: The task that checksums its file; None for a label file without image.
        units: Its units in output order (by factor, then window), none when the image gives no windows.
        prepares: By factor tag, the one-off decode of a scale that several workers share.
    """

    image: SourceImage
    checksum: HashTask | None
    units: list[UnitTask] = field(default_factory=list)
    prepares: dict[str, PrepareTask] = field(default_factory=dict)

    @property
    def windows(self) -> int:
        """Windows of all its units."""
        return sum(len(u.windows) for u in self.units)


@dataclass(frozen=True)
class _Scaled:
    """One image at one factor, before it is cut into units."""

    plan: ImagePlan
    factor: float
    size: tuple[int, int]
    windows: np.ndarray


def unit_settings(options: BuildOptions, out_dir: Path, seed: int) -> UnitSettings:
    """The options every unit needs, from the build's."""
    return UnitSettings(
        out_dir=out_dir.resolve(), seed=seed, crop_size=options.crop_size, iof_threshold=options.iof_threshold,
        pad_value=options.pad_value, drop_empty_train=options.drop_empty_train, aug_copies=options.aug_copies,
        flip_prob=options.flip_prob, hsv_gains=tuple(options.hsv_gains), interpolation=options.interpolation,
        png_compression=options.png_compression, coord_decimals=options.coord_decimals,
    )


def plan_units(
    images: Sequence[SourceImage], options: BuildOptions, settings: UnitSettings, workers: int, *,
    pixels_dir: Path | None = None,
) -> list[ImagePlan]:
    """Choose every usable image's factors and windows and cut them into units (see the module notes).

    Args:
        images: The source images, in build order.
        options: The build options (scales, windows, classes that trigger augmentation).
        settings: What every unit carries (its ``seed`` draws the random factors).
        workers: Worker processes; with one, no image is cut.
        pixels_dir: Folder of the shared pixel files; None never shares an image.

    Returns:
        One plan per image, in the order of ``images``.

    Notes:
        An image is cut only when it holds at least one worker's fair share of all windows
        (``share = windows * workers / total >= 1``); it then gets ``4 * min(share, workers)`` units, so a
        single image keeps every worker busy and the last units to finish are short.
    """
    plans = [ImagePlan(im, HashTask(im.split, im.stem, im.image_path) if im.image_path else None) for im in images]
    scaled = [s for plan in plans if _usable(plan.image, options) for s in _scales(plan, options, settings.seed)]
    total = sum(len(s.windows) for s in scaled)
    for item in scaled:
        share = len(item.windows) * workers / max(total, 1)
        count = min(len(item.windows), math.ceil(4 * min(share, workers))) if workers > 1 and share >= 1 else 1
        _cut(item, count, options, settings, pixels_dir)
    return plans


def _usable(image: SourceImage, options: BuildOptions) -> bool:
    # Train images without a candidate give no windows when empty train windows are dropped.
    has_objects = len(image.candidates) > 0
    return image.size is not None and (has_objects or not (image.split == "train" and options.drop_empty_train))


def _scales(plan: ImagePlan, options: BuildOptions, seed: int) -> list[_Scaled]:
    image = plan.image
    width, height = image.size
    factors = image_factors(options.scale_mode, seed, image.split, image.stem, scales=options.scales,
                            scale_range=options.scale_range, decimals=options.scale_decimals)
    scaled = []
    for factor in factors:
        size = scaled_size(width, height, factor)
        scaled.append(_Scaled(plan, factor, size, get_windows(*size, crop_size=options.crop_size,
                                                              stride=options.stride)))
    return scaled


def _cut(item: _Scaled, count: int, options: BuildOptions, settings: UnitSettings, pixels_dir: Path | None) -> None:
    """Add ``count`` units of ``item``'s windows to its plan (and the shared decode when there are several)."""
    import shapely

    plan, image = item.plan, item.plan.image
    (width, height), (sw, sh) = image.size, item.size
    cand = image.candidates
    objects = [image.objects[i] for i in cand.tolist()]
    categories = [o.category for o in objects]
    difficult = np.array([o.difficult for o in objects], dtype=np.int64)
    aug_classes = set(options.aug_classes)
    augment = np.array([c in aug_classes for c in categories], dtype=bool)
    ratio = np.array([sw / width, sh / height])
    geoms = shapely.transform(image.geoms, lambda c, r=ratio: c * r) if len(cand) else image.geoms
    tag = factor_tag(item.factor)
    pixels = None
    if count > 1 and pixels_dir is not None:
        pixels = pixels_dir / f"{image.split}__{image.stem}__{tag}.npy"
        plan.prepares[tag] = PrepareTask(
            split=image.split, stem=image.stem, image_path=image.image_path, image_size=(width, height),
            scaled_size=(sw, sh), interpolation=options.interpolation, pixels_path=pixels,
        )
    bounds = shapely.bounds(geoms).reshape(-1, 4)
    n = len(item.windows)
    batch = math.ceil(n / count)
    for start in range(0, n, batch):
        part = item.windows[start:start + batch]
        # A unit carries only the objects that touch its windows' extent (the same strict overlap test as
        # ``assign_objects``): the rest could never be assigned there, and every object costs pickling and
        # geometry set-up per unit. Relative order is kept, so the outputs do not change.
        x0, y0 = part[:, 0].min(), part[:, 1].min()
        x1, y1 = part[:, 2].max(), part[:, 3].max()
        near = np.flatnonzero((bounds[:, 0] < x1) & (bounds[:, 2] > x0) & (bounds[:, 1] < y1) & (bounds[:, 3] > y0))
        plan.units.append(UnitTask(
            split=image.split, stem=image.stem, image_path=image.image_path, image_size=(width, height),
            factor=item.factor, tag=tag, scaled_size=(sw, sh), windows=part, first_window=start,
            geoms=geoms[near], object_ids=cand[near], categories=[categories[i] for i in near.tolist()],
            difficult=difficult[near], augment=augment[near], settings=settings, pixels_path=pixels,
        ))
