"""Stage 3: the scale factor(s) of each source image and the resizing of pixels and polygons.

Notes:
    ``random`` mode draws one factor per image, uniform in ``scale_range`` and rounded to ``decimals`` places,
    from a generator keyed by (seed, split, image name): the factor of an image does not depend on which
    other images the build sees. ``fixed`` mode renders every image at each factor of ``scales``.
    The output size is ``round(width * factor)`` x ``round(height * factor)``; polygons are scaled by the exact
    per-axis ratios ``new_width / width`` and ``new_height / height`` so that labels and pixels agree.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import DatasetError
from .seeding import rng_for

SCALE_MODES: tuple[str, ...] = ("random", "fixed")
INTERPOLATIONS: dict[str, int] = {"area": 3, "cubic": 2, "linear": 1, "nearest": 0}  # cv2.INTER_* values


def draw_scale_factor(
    seed: int, split: str, stem: str, *, scale_range: tuple[float, float] = (0.5, 1.0), decimals: int = 4
) -> float:
    """One random factor for one image.

    Args:
        seed: The build seed.
        split: The split the image belongs to.
        stem: The image name without suffix.
        scale_range: Inclusive bounds ``(low, high)``. Defaults to ``(0.5, 1.0)`` (the paper's range).
        decimals: Decimal places the factor is rounded to (it appears in output names). Defaults to 4.

    Returns:
        The factor, in ``[low, high]``.
    """
    low, high = scale_range
    value = rng_for(seed, "scale", split, stem).uniform(low, high)
    return float(min(max(round(value, decimals), low), high))


def image_factors(
    mode: str,
    seed: int,
    split: str,
    stem: str,
    *,
    scales: Sequence[float] = (0.5, 1.0),
    scale_range: tuple[float, float] = (0.5, 1.0),
    decimals: int = 4,
) -> list[float]:
    """The factors one image is rendered at.

    Args:
        mode: ``"random"`` (one drawn factor) or ``"fixed"`` (every factor of ``scales``).
        seed: The build seed.
        split: The image's split.
        stem: The image name without suffix.
        scales: Factors of ``fixed`` mode. Defaults to ``(0.5, 1.0)``.
        scale_range: Range of ``random`` mode. Defaults to ``(0.5, 1.0)``.
        decimals: Rounding of random factors. Defaults to 4.

    Returns:
        Sorted distinct factors.
    """
    if mode == "random":
        return [draw_scale_factor(seed, split, stem, scale_range=scale_range, decimals=decimals)]
    if mode == "fixed":
        return sorted(set(float(s) for s in scales))
    raise DatasetError(f"scale_mode: expected one of {', '.join(SCALE_MODES)}, got {mode!r}")


def check_scale_options(mode: str, scales: Sequence[float], scale_range: tuple[float, float]) -> None:
    """Reject impossible scale options with a message naming the option.

    Raises:
        DatasetError: For an unknown mode, a non-positive or empty ``scales`` or a reversed/non-positive range.
    """
    if mode not in SCALE_MODES:
        raise DatasetError(f"--scale-mode: expected one of {', '.join(SCALE_MODES)}, got {mode!r}")
    if mode == "fixed" and (not scales or any(not (s > 0) for s in scales)):
        raise DatasetError(f"--scales: expected positive factors, got {list(scales)}")
    low, high = scale_range
    if mode == "random" and not (0 < low <= high):
        raise DatasetError(f"--scale-range: expected 0 < low <= high, got {low}, {high}")


def scaled_size(width: int, height: int, factor: float) -> tuple[int, int]:
    """Output size of a ``width`` x ``height`` image at ``factor`` (at least 1 px per axis)."""
    return max(1, int(round(width * factor))), max(1, int(round(height * factor)))


def factor_tag(factor: float) -> str:
    """The factor as written in output names: ``1``, ``0.5``, ``0.7342``."""
    text = f"{factor:.6f}".rstrip("0").rstrip(".")
    return text or "0"


def scale_coords(coords: np.ndarray, sx: float, sy: float) -> np.ndarray:
    """Scale polygon vertices per axis without touching the caller's array.

    Args:
        coords: Vertices, shape (..., 2).
        sx: Horizontal ratio.
        sy: Vertical ratio.

    Returns:
        New array, same shape.
    """
    return np.asarray(coords, dtype=np.float64) * np.array([sx, sy])


def resize_image(
    image: np.ndarray, size: tuple[int, int], *, interpolation: str = "area", out: np.ndarray | None = None
) -> np.ndarray:
    """Resize pixels to ``size``; returns ``image`` itself when the size is unchanged and ``out`` is None.

    Args:
        image: Pixels, shape (H, W, 3).
        size: Target ``(width, height)``.
        interpolation: One of ``INTERPOLATIONS``. Defaults to ``"area"``, which averages source pixels when
            shrinking and so does not alias tiny objects away (DOTA_devkit uses cubic).
        out: Where to write the result, shape (size[1], size[0], 3) and ``image``'s dtype; None allocates.

    Returns:
        Pixels, shape (size[1], size[0], 3) (``out`` when given).
    """
    import cv2

    if interpolation not in INTERPOLATIONS:
        raise DatasetError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {interpolation!r}")
    if (image.shape[1], image.shape[0]) == tuple(size):
        if out is None:
            return image
        out[...] = image
        return out
    if out is None:
        return cv2.resize(image, tuple(size), interpolation=INTERPOLATIONS[interpolation])
    result = cv2.resize(image, tuple(size), dst=out, interpolation=INTERPOLATIONS[interpolation])
    if result is not out and not np.shares_memory(result, out):  # OpenCV allocated instead of writing in place
        out[...] = result
    return out
