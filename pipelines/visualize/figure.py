"""Shared figure plumbing of the analysis figures: colours, deterministic PNG / CSV writing and image reading.

Figures are drawn on a bare ``matplotlib.figure.Figure`` (no pyplot state) with the Agg backend and saved
without the software-version metadata, so equal inputs give byte-identical PNG files; every file is written
through :func:`dotamini10.io.atomic_path`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import atomic_path, atomic_write_text

from . import VisualizeError

#: The paper's colours (Figures 16-17): true positives green, false positives blue, misses red.
TP_COLOR = "#00c853"
FP_COLOR = "#2962ff"
FN_COLOR = "#ff1744"
#: Crowd regions, objects outside the area range and the detections on them: counted neither way.
IGNORED_COLOR = "#bdbdbd"
#: Outline and number of a zoomed crop on the overview.
CROP_COLOR = "#ffd600"

DPI = 100


def new_figure(width_in: float, height_in: float) -> Any:
    """A bare Agg figure of ``width_in`` x ``height_in`` inches at :data:`DPI` (no pyplot state)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    return Figure(figsize=(width_in, height_in), dpi=DPI)


def save_png(figure: Any, path: Path) -> Path:
    """Save ``figure`` as a deterministic PNG at ``path`` (atomically, creating the folder); returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        # Software=None drops the version string; Agg writes no time stamp, so bytes depend on content only.
        figure.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})
    return path


def write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    """Write a CSV table (``\\n`` line ends, floats as Python prints them) atomically; returns ``path``."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(Path(path), buffer.getvalue(), make_parents=True)
    return Path(path)


def read_rgb(path: Path) -> np.ndarray:
    """Decode an image as (H, W, 3) uint8 RGB with the toolkit's decoder.

    Raises:
        VisualizeError: The file is missing or cannot be decoded (one line naming the file).
    """
    from dotamini10.read import ImageProbeError, decode_image

    path = Path(path)
    if not path.is_file():
        raise VisualizeError(f"{path}: image file not found")
    try:
        return decode_image(path, channels="rgb")
    except ImageProbeError as exc:
        raise VisualizeError(f"{path}: unreadable image ({exc.detail})") from None


def to_gray(rgb: np.ndarray) -> np.ndarray:
    """Gray values ``0.299 R + 0.587 G + 0.114 B`` (ITU-R BT.601 luma, OpenCV's weights) as float64, unrounded.

    Args:
        rgb: (H, W, 3) RGB pixels, or (H, W) gray ones (returned as float64).

    Returns:
        (H, W) float64.
    """
    if rgb.ndim == 2:
        return rgb.astype(np.float64)
    x = rgb.astype(np.float64)
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


def downscale(rgb: np.ndarray, max_side: int) -> np.ndarray:
    """``rgb`` shrunk (area interpolation) so that its longer side is at most ``max_side``; unchanged if smaller."""
    height, width = rgb.shape[:2]
    if max(height, width) <= max_side:
        return rgb
    import cv2

    factor = max_side / max(height, width)
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
