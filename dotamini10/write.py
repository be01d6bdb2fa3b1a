"""Stage 6: the dataset's formats: DOTA text labels, COCO documents and checksums.

Notes:
    Files are written through :mod:`dotamini10.io` (atomic writes, deterministic JSON), so a killed build never
    leaves a half-written output under its final name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from .io import sha256_file  # noqa: F401  (its home is io, which needs no numpy; imported from here too)


def format_number(value: float, decimals: int = 2) -> str:
    """A coordinate as text: rounded to ``decimals`` places, without trailing zeros (``12``, ``12.5``)."""
    text = f"{round(float(value), decimals) + 0.0:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def dota_lines(
    quads: Sequence[np.ndarray], categories: Sequence[str], difficult: Sequence[int], *, decimals: int = 2
) -> str:
    """DOTA label text: one ``x1 y1 ... x4 y4 category difficult`` line per object.

    Args:
        quads: Per object, vertices of shape (4, 2).
        categories: Per object, the category name.
        difficult: Per object, the source difficult flag.
        decimals: Coordinate decimals. Defaults to 2.

    Returns:
        The file content (empty string for no objects), each line ending in a newline.
    """
    lines = []
    for quad, category, diff in zip(quads, categories, difficult, strict=True):
        coords = " ".join(format_number(v, decimals) for v in np.asarray(quad).ravel())
        lines.append(f"{coords} {category} {int(diff)}\n")
    return "".join(lines)


def sha256_bytes(data: bytes | Sequence[bytes | memoryview]) -> str:
    """Hex sha256 of ``data``, or of its pieces joined."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    for piece in data:
        digest.update(piece)
    return digest.hexdigest()


def coco_document(
    categories: Sequence[str], images: list[dict[str, object]], annotations: list[dict[str, object]]
) -> dict[str, object]:
    """Assemble a COCO detection document.

    Args:
        categories: Class names; category id = position + 1.
        images: Image entries (``id``, ``file_name``, ``width``, ``height`` and the builder's extra keys).
        annotations: Annotation entries (``id``, ``image_id``, ``category_id``, ``bbox``, ...).

    Returns:
        ``{"info", "images", "annotations", "categories"}``.
    """
    return {
        "info": {"description": "DOTAmini10 built by hsfpn-toolkit", "version": "1.0"},
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "dota"} for i, name in enumerate(categories)],
    }
