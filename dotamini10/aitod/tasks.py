"""What an AI-TOD build's workers do: cut every listed window of one tif (:func:`run_cut`), and copy a batch of
AI-TOD_wo_xview images (:func:`run_copy`).

Notes:
    A tif is read once into memory, checksummed from those bytes and decoded once for all of its windows; each
    window is encoded once and written to every split folder that lists it. Everything a task writes depends on
    the task alone, so the outputs are the same for any number of workers. Bad input never raises: it comes back
    as ``(reason, detail)`` problems naming the window or file, and the other windows go on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..io import atomic_path, atomic_write_bytes
from ..png import encode_png_parts
from ..read import ImageProbeError, probe_image
from ..worker import peak_rss_mb, timed
from ..write import sha256_bytes
from .lists import XviewWindow
from .official import official_origins, official_window

TIMING_KEYS: tuple[str, ...] = ("read", "decode", "encode", "write", "copy")


@dataclass(frozen=True)
class CutWindow:
    """One window to cut: its origin and the splits listing it (sorted)."""

    x: int
    y: int
    splits: tuple[str, ...]


@dataclass(frozen=True)
class CutTask:
    """Every listed window of one tif.

    Attributes:
        xview_id: The tif's name without suffix.
        tif: The tif; None when no file of that name exists (every window is then a problem).
        windows: The windows, sorted by origin.
        out_dir: The output root (windows go to ``images/{split}/``).
        colors: ``official`` (red and blue swapped, as the official generation stores them) or ``true``.
        png_compression: ISA-L deflate level of the PNGs.
    """

    xview_id: str
    tif: Path | None
    windows: tuple[CutWindow, ...]
    out_dir: Path
    colors: str = "official"
    png_compression: int = 1

    @property
    def key(self) -> str:
        """The task's resume record name."""
        return f"cut_{self.xview_id}"


@dataclass
class TaskResult:
    """What a task did.

    Attributes:
        key: The task's key.
        files: Per written file (path relative to the output root), its sha256.
        inputs: Per input file read (``xview/{name}`` or ``aitod/{rel}``), its sha256.
        problems: ``[file, reason, detail]`` of every problem; ``file`` is the input (or window) concerned.
        timings: Seconds per stage (``TIMING_KEYS``); not part of any output.
        peak_rss_mb: Peak resident memory of the process that ran it.
    """

    key: str
    files: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)
    problems: list[list[str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))
    peak_rss_mb: float = 0.0

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form for the resume record (timings and memory are runtime facts, not kept)."""
        return {"key": self.key, "files": self.files, "inputs": self.inputs, "problems": self.problems}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> TaskResult:
        """Inverse of :meth:`to_dict`."""
        return cls(data["key"], data["files"], data["inputs"], data["problems"])


def run_cut(task: CutTask) -> TaskResult:
    """Cut, encode and write every window of one tif.

    Returns:
        The written windows' checksums and the tif's, and a problem for a missing, unreadable, truncated or
        non-RGB tif (no window written) or for a window outside the tif or off the official grid (that window
        not written).
    """
    result = TaskResult(task.key)
    try:
        image = _decode_tif(task, result)
        if image is not None:
            _cut_windows(task, image, result)
    finally:
        result.peak_rss_mb = peak_rss_mb()
    return result


def _decode_tif(task: CutTask, result: TaskResult) -> np.ndarray | None:
    """The tif's pixels in OpenCV's BGR order (the stored PNG's order, see ``official``), or None after a problem."""
    import cv2

    names = ", ".join(_window_name(task.xview_id, w) for w in task.windows[:3])
    more = f" and {len(task.windows) - 3} more" if len(task.windows) > 3 else ""
    if task.tif is None:
        result.problems.append([f"{task.xview_id}.tif", "missing_tif", f"needed for {names}{more}"])
        return None
    label = task.tif.name
    t = result.timings
    try:
        probe_image(task.tif)  # a truncated strip or tile is reported here, not decoded as garbage
        with timed(t, "read"):
            data, digest = read_hashed(task.tif)
            result.inputs[f"xview/{label}"] = digest
    except ImageProbeError as exc:
        result.problems.append([label, exc.reason, exc.detail])
        return None
    except OSError as exc:
        result.problems.append([label, "unreadable_image", f"{type(exc).__name__}: {exc}"])
        return None
    with timed(t, "decode"):
        # IMREAD_UNCHANGED: no conversion that could hide a non-RGB tif; 3-channel data comes back as BGR.
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    del data
    if image is None:
        result.problems.append([label, "unreadable_image", "OpenCV could not decode the file"])
        return None
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        layout = f"{image.shape[2] if image.ndim == 3 else 1}-channel {image.dtype}"
        result.problems.append([label, "unsupported_pixels", f"{layout}; the official generation needs RGB uint8"])
        return None
    return image


def read_hashed(path: Path, *, chunk: int = 1 << 20) -> tuple[bytearray, str]:
    """A file's bytes and their sha256, hashing each chunk as it is read (while it is still in the CPU's cache:
    a third faster than hashing the whole file after reading it, measured on a 27 MB tif)."""
    size = path.stat().st_size
    data = bytearray(size)
    view = memoryview(data)
    digest = hashlib.sha256()
    done = 0
    with open(path, "rb", buffering=0) as f:
        while done < size:
            count = f.readinto(view[done:done + chunk])
            if not count:
                raise OSError(f"{path}: file shrank while being read ({done} of {size} bytes)")
            digest.update(view[done:done + count])
            done += count
    return data, digest.hexdigest()


def _cut_windows(task: CutTask, image: np.ndarray, result: TaskResult) -> None:
    height, width = image.shape[:2]
    grid = official_origins(width, height)
    channels = "rgb" if task.colors == "official" else "bgr"  # "rgb": write the array's order as it is
    t = result.timings
    for window in task.windows:
        name = _window_name(task.xview_id, window)
        if not (0 <= window.x < width and 0 <= window.y < height):
            result.problems.append([name, "window_outside_tif", f"{task.tif.name} is {width} x {height}"])
            continue
        if (window.x, window.y) not in grid:
            result.problems.append([name, "window_off_grid", f"{task.tif.name} is {width} x {height}"])
            continue
        with timed(t, "encode"):
            parts = encode_png_parts(official_window(image, window.x, window.y), compression=task.png_compression,
                                     channels=channels)
            digest = sha256_bytes(parts)
        with timed(t, "write"):
            for split in window.splits:
                rel = f"images/{split}/{name}"
                atomic_write_bytes(task.out_dir / rel, parts)
                result.files[rel] = digest


def _window_name(xview_id: str, window: CutWindow) -> str:
    return XviewWindow(xview_id, window.x, window.y).name


@dataclass(frozen=True)
class CopyTask:
    """A batch of AI-TOD_wo_xview images of one split, carried over unchanged.

    Attributes:
        split: The split (source ``images/{split}/`` and output ``images/{split}/``).
        names: File names, sorted.
        aitod_root: The AI-TOD_wo_xview root.
        out_dir: The output root.
        batch: The batch's index within its split.
    """

    split: str
    names: tuple[str, ...]
    aitod_root: Path
    out_dir: Path
    batch: int

    @property
    def key(self) -> str:
        """The task's resume record name."""
        return f"copy_{self.split}_{self.batch:05d}"


def run_copy(task: CopyTask) -> TaskResult:
    """Copy each image byte for byte (atomically), checksumming the bytes as they pass.

    Returns:
        The copies' checksums (equal to the inputs'), and a problem for a file that cannot be read. Whether a
        copy is the image its json describes is the verification's call.

    Raises:
        OSError: Writing a copy failed (a full disk, a read-only folder): the output's fault, not the input's.
    """
    result = TaskResult(task.key)
    try:
        for name in task.names:
            rel = f"images/{task.split}/{name}"
            with timed(result.timings, "copy"):
                try:
                    digest = copy_file(task.aitod_root / rel, task.out_dir / rel)
                except UnreadableSource as exc:  # bad input; a failed write is an OSError and stops the build
                    result.problems.append([f"aitod/{rel}", "unreadable_image", exc.detail])
                    continue
            result.files[rel] = result.inputs[f"aitod/{rel}"] = digest
    finally:
        result.peak_rss_mb = peak_rss_mb()
    return result


class UnreadableSource(Exception):
    """Reading the source of :func:`copy_file` failed: bad input, which a build records as a problem.

    Attributes:
        detail: What failed (``FileNotFoundError: ...``).
    """

    def __init__(self, exc: OSError) -> None:
        self.detail = f"{type(exc).__name__}: {exc}"
        super().__init__(self.detail)


def copy_file(source: Path, target: Path) -> str:
    """Copy ``source`` to ``target`` atomically; returns its sha256, read from the same bytes.

    Raises:
        UnreadableSource: ``source`` cannot be opened or read (``target`` keeps its old content, if any).
        OSError: Writing ``target`` failed.
    """
    digest = hashlib.sha256()
    try:
        src = open(source, "rb")
    except OSError as exc:
        raise UnreadableSource(exc) from None
    with src, atomic_path(target) as tmp, open(tmp, "wb") as dst:
        while chunk := _read_chunk(src):
            digest.update(chunk)
            dst.write(chunk)
    return digest.hexdigest()


def _read_chunk(src: BinaryIO) -> bytes:
    try:
        return src.read(1 << 20)
    except OSError as exc:
        raise UnreadableSource(exc) from None
