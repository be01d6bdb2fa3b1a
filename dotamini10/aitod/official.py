"""The official AI-TOD windowing of an xView tif, as ``generate_aitod_imgs.py`` does it through wwtool.

The script calls ``wwtool.split_image(img, subsize=800, gap=200)`` (mode ``keep_all``, ``expand_boundary``):

* starts along an axis of length L are ``0, 600, 1200, ...`` below L; only the **last** one is replaced by
  ``L - 800`` (when ``L - last <= 800``, always true with these sizes) and then raised to 0 if negative. This is
  not the builder's rule (:func:`dotamini10.split.window_starts`), which steps up to the flush start: here, when
  ``L mod 600`` lies in (0, 200), the second-to-last window still starts at its multiple of 600 and runs past the
  edge, and the flush one starts before it; for 600 < L <= 800 both starts are 0.
* a window is an 800 x 800 zero image with the part inside the tif copied to its top-left corner.
* the array is in skimage's RGB order and goes to ``cv2.imwrite``, which takes it as BGR: the stored PNG has red
  and blue swapped against the tif. The later re-read and re-write with OpenCV change nothing.

Decoded with OpenCV (BGR), the tif's array therefore *is* the stored PNG's channel order: the builder encodes it
as it comes (``colors="official"``), or converts it to the tif's true colours (``colors="true"``).
"""

from __future__ import annotations

import numpy as np

from ..worker import crop_window

SUBSIZE = 800
GAP = 200
#: ``official``: the pixels the official generation stores (red and blue swapped); ``true``: the tif's colours.
COLOR_MODES: tuple[str, ...] = ("official", "true")


def official_starts(length: int, *, subsize: int = SUBSIZE, gap: int = GAP) -> list[int]:
    """Window starts along one axis, in wwtool's order (``keep_all`` mode).

    Args:
        length: The axis length, px (>= 1).
        subsize: Window size. Defaults to 800.
        gap: Overlap of neighbouring windows. Defaults to 200.

    Returns:
        The starts; the last may be smaller than the one before it or equal to it (both 0 when
        ``subsize - gap < length <= subsize``).

    >>> official_starts(1300)
    [0, 600, 500]
    >>> official_starts(700)
    [0, 0]
    """
    starts = list(range(0, length, subsize - gap))
    if length - starts[-1] <= subsize:
        starts[-1] = length - subsize
    starts[-1] = max(starts[-1], 0)
    return starts


def official_origins(width: int, height: int) -> set[tuple[int, int]]:
    """Every window origin ``(x, y)`` the official rule cuts from a ``width`` x ``height`` tif."""
    return {(x, y) for x in official_starts(width) for y in official_starts(height)}


def official_window(image: np.ndarray, x: int, y: int, *, subsize: int = SUBSIZE) -> np.ndarray:
    """The window at ``(x, y)``: ``subsize`` square, zero where it runs past the image (a view when it does not).

    Args:
        image: The tif's pixels, shape (H, W, 3), uint8, in any channel order (the window keeps it).
        x: Left edge, inside the image.
        y: Top edge, inside the image.
        subsize: Window size. Defaults to 800.

    Returns:
        Pixels, shape (subsize, subsize, 3).
    """
    return crop_window(image, np.array([x, y, x + subsize, y + subsize]), pad_value=0)
