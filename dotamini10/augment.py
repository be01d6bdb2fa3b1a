"""Stage 5: extra training copies of windows that hold rare classes (HSV jitter and random flips).

Notes:
    Each copy draws its own parameters from a generator keyed by (seed, split, window name, copy index), so a
    copy is the same whichever worker makes it. HSV gains follow the usual multiplicative scheme: each of hue,
    saturation and value is multiplied by a factor uniform in [1 - gain, 1 + gain] (hue wraps around, the
    others saturate). The jitter is applied to the image part of a window only; padding keeps its value.
    A flip maps a coordinate x to ``width - x`` (pixel i covers [i, i + 1) and moves to width - 1 - i), so
    labels follow the pixels exactly. A single flip mirrors the vertex order; the vertices after the first are
    reversed so that outlines stay clockwise on screen and the first vertex stays the same corner.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AugmentParams:
    """The random choices of one augmented copy.

    Attributes:
        hflip: Mirror left-right.
        vflip: Mirror top-bottom.
        hsv_gains: Multipliers for hue, saturation and value, shape (3,).
    """

    hflip: bool
    vflip: bool
    hsv_gains: tuple[float, float, float]


def draw_augment(
    rng: np.random.Generator,
    *,
    flip_prob: float = 0.5,
    hsv_h: float = 0.015,
    hsv_s: float = 0.7,
    hsv_v: float = 0.4,
) -> AugmentParams:
    """Draw the parameters of one copy.

    Args:
        rng: Generator for this copy (see ``seeding.rng_for``).
        flip_prob: Probability of each flip, drawn independently. Defaults to 0.5.
        hsv_h: Hue gain. Defaults to 0.015.
        hsv_s: Saturation gain. Defaults to 0.7.
        hsv_v: Value gain. Defaults to 0.4.

    Returns:
        The ``AugmentParams``.
    """
    gains = rng.uniform(-1.0, 1.0, size=3) * np.array([hsv_h, hsv_s, hsv_v]) + 1.0
    hflip, vflip = (rng.random(2) < flip_prob).tolist()
    return AugmentParams(bool(hflip), bool(vflip), (float(gains[0]), float(gains[1]), float(gains[2])))


def hsv_jitter(image: np.ndarray, gains: tuple[float, float, float], *, channels: str = "bgr") -> np.ndarray:
    """Multiply hue, saturation and value of pixels by ``gains`` (new array).

    Args:
        image: Pixels, shape (H, W, 3), uint8.
        gains: Hue, saturation and value multipliers.
        channels: ``"bgr"`` or ``"rgb"``: the order of ``image``'s channels, kept in the result. The same
            pixel gives the same result in either order.

    Returns:
        Pixels, same shape and dtype.
    """
    import cv2

    if image.size == 0:
        return image.copy()
    levels = np.arange(256, dtype=np.float64)
    # OpenCV's 8-bit hue runs 0..179; lookup tables keep the per-pixel work to three table reads.
    lut_h = (np.round(levels * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(np.round(levels * gains[1]), 0, 255).astype(np.uint8)
    lut_v = np.clip(np.round(levels * gains[2]), 0, 255).astype(np.uint8)
    to_hsv, from_hsv = {
        "bgr": (cv2.COLOR_BGR2HSV, cv2.COLOR_HSV2BGR), "rgb": (cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB)
    }[channels]
    h, s, v = cv2.split(cv2.cvtColor(image, to_hsv))
    hsv = cv2.merge((cv2.LUT(h, lut_h), cv2.LUT(s, lut_s), cv2.LUT(v, lut_v)))
    return cv2.cvtColor(hsv, from_hsv)


def flip_points(points: np.ndarray, width: float, height: float, *, hflip: bool, vflip: bool) -> np.ndarray:
    """Mirror polygon vertices inside a ``width`` x ``height`` frame (new array).

    Args:
        points: One outline, shape (M, 2).
        width: Frame width.
        height: Frame height.
        hflip: Mirror left-right (x -> width - x).
        vflip: Mirror top-bottom (y -> height - y).

    Returns:
        Vertices, shape (M, 2); after a single flip the order is ``[p0, p(M-1), ..., p1]`` (see module notes).
    """
    out = np.array(points, dtype=np.float64, copy=True)
    if hflip:
        out[:, 0] = width - out[:, 0]
    if vflip:
        out[:, 1] = height - out[:, 1]
    if hflip != vflip and len(out) > 1:
        out = np.concatenate([out[:1], out[:0:-1]])
    return out


def augment_window(
    image: np.ndarray,
    rings: list[list[np.ndarray]],
    params: AugmentParams,
    *,
    valid_size: tuple[int, int] | None = None,
    channels: str = "bgr",
) -> tuple[np.ndarray, list[list[np.ndarray]]]:
    """Apply one copy's jitter and flips to a window and its labels.

    Args:
        image: The window, shape (S, S, 3), uint8 in ``channels`` order (not modified).
        rings: Per object, its outline parts in window coordinates.
        params: The copy's parameters.
        valid_size: ``(width, height)`` of the image part of the window; the rest is padding and is not
            jittered. Defaults to the whole window.
        channels: ``"bgr"`` (default) or ``"rgb"``, as for ``hsv_jitter``.

    Returns:
        ``(image, rings)`` of the copy.
    """
    height, width = image.shape[:2]
    vw, vh = valid_size if valid_size is not None else (width, height)
    out = image.copy()
    out[:vh, :vw] = hsv_jitter(image[:vh, :vw], params.hsv_gains, channels=channels)
    if params.hflip:
        out = out[:, ::-1]
    if params.vflip:
        out = out[::-1]
    new_rings = [
        [flip_points(r, width, height, hflip=params.hflip, vflip=params.vflip) for r in parts] for parts in rings
    ]
    return np.ascontiguousarray(out), new_rings
