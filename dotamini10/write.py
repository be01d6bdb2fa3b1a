"""Stage 6: writers for PNG windows, DOTA text labels, COCO JSON, JSON lines and checksums (all atomic).

Notes:
    Every file is written to a temporary name in its destination folder and renamed over the target
    (``os.replace``), so a killed build never leaves a half-written output under its final name. Stray temporary
    files (``.<name>.<pid>.tmp``) are removed by ``remove_temporaries`` when a build resumes.
    JSON is written with a fixed key order and separators, so equal content gives equal bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` for any writer, renamed over ``path`` when the block succeeds.

    The one atomic-write mechanism of the toolkit (dataset files, reports, figures, checkpoints): the caller
    writes the yielded path (``write_bytes``, ``torch.save``, ``savefig``); on an error the temporary file is
    removed and ``path`` keeps its old content, so no reader ever sees half a file under the final name.

    Args:
        path: Destination; its folder must exist.

    Yields:
        The temporary path ``.<name>.<pid>.tmp`` in the same folder (same filesystem, so the rename is atomic).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes | Sequence[bytes | memoryview]) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: Destination; its folder must exist.
        data: File content, or its pieces in order (written without joining them into one copy first).
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            f.writelines(data)


def atomic_write_text(path: Path, text: str) -> None:
    """``atomic_write_bytes`` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"))


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by a killed writer anywhere under ``folder``; returns how many."""
    count = 0
    if folder.is_dir():
        for path in folder.rglob(f".*{TMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            count += 1
    return count


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


def json_text(obj: object, *, indent: int | None = None) -> str:
    """Deterministic JSON: insertion key order, fixed separators, non-ASCII kept, trailing newline."""
    separators = (",", ": ") if indent is not None else (",", ":")
    return json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators, allow_nan=False) + "\n"


def write_json(path: Path, obj: object, *, indent: int | None = None) -> None:
    """Write ``obj`` as deterministic JSON, atomically."""
    atomic_write_text(path, json_text(obj, indent=indent))


def jsonl_text(records: Iterable[object]) -> str:
    """One compact JSON document per line."""
    return "".join(json_text(r) for r in records)


def write_jsonl(path: Path, records: Iterable[object]) -> None:
    """Write ``records`` as JSON lines, atomically."""
    atomic_write_text(path, jsonl_text(records))


def sha256_bytes(data: bytes | Sequence[bytes | memoryview]) -> str:
    """Hex sha256 of ``data``, or of its pieces joined."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    for piece in data:
        digest.update(piece)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


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
