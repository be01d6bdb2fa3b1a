"""The tasks workers run: a batch of windows of one image at one scale (``run_unit``), the one-off decoding of
an image that several workers share (``run_prepare``) and the checksum of a source image (``run_hash``).

Notes:
    A worker keeps at most one decoded source image and one resized copy of it (``_ImageCache``), so its memory
    stays at about two copies of the current image plus one window, and consecutive units of the same image
    (the pool hands them out in image order) decode it once per worker. When the builder shares an image
    between workers, ``run_prepare`` decodes (and resizes) it once straight into a memory-mapped ``.npy`` file
    and the units map that file instead of decoding, each waiting only for the rows of its next window
    (``SharedRows``). Everything a unit writes is determined by its task, never by worker state or timing:
    results are the same for any number of workers.
"""

from __future__ import annotations

import os
import struct
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .augment import augment_window, draw_augment
from .read import ImageProbeError, decode_image
from .scale import resize_image
from .seeding import rng_for
from .png import encode_png_parts
from .split import ObjectSet, assign_objects, horizontal_box, to_quadrilateral
from .io import atomic_write_bytes, atomic_write_text
from .write import dota_lines, sha256_bytes, sha256_file

# Workers keep pixels in the PNG files' own channel order: no BGR conversion when decoding or encoding.
CHANNELS = "rgb"
TIMING_KEYS: tuple[str, ...] = (
    "hash", "decode", "resize", "intersect", "wait", "augment", "encode", "labels", "write"
)


@dataclass(frozen=True)
class UnitSettings:
    """Options every unit needs (output-affecting ones come from ``BuildOptions``)."""

    out_dir: Path
    seed: int
    crop_size: int
    iof_threshold: float
    pad_value: int
    drop_empty_train: bool
    aug_copies: int
    flip_prob: float
    hsv_gains: tuple[float, float, float]
    interpolation: str
    png_compression: int
    coord_decimals: int


@dataclass
class UnitTask:
    """One batch of windows of one image at one scale.

    Attributes:
        split: Output split.
        stem: Source image name.
        image_path: The source image.
        image_size: Header size ``(width, height)`` of the source.
        factor: Scale factor.
        tag: The factor as written in names.
        scaled_size: ``(width, height)`` after scaling.
        windows: ``[x0, y0, x1, y1]`` rows of this batch, shape (B, 4), in scaled coordinates.
        first_window: Index of the batch's first window among the image's windows at this factor.
        geoms: Candidate objects as scaled shapely polygons, shape (N,).
        object_ids: Index of each candidate in the source label file's object list, shape (N,).
        categories: Category of each candidate.
        difficult: Source difficult flag of each candidate, shape (N,).
        augment: Whether each candidate's class triggers augmented copies, shape (N,).
        settings: Shared options.
        pixels_path: The scaled image as an ``.npy`` file that ``run_prepare`` fills while the unit runs, when
            several workers share the image; None to decode the source in this worker.
    """

    split: str
    stem: str
    image_path: Path
    image_size: tuple[int, int]
    factor: float
    tag: str
    scaled_size: tuple[int, int]
    windows: np.ndarray
    first_window: int
    geoms: np.ndarray
    object_ids: np.ndarray
    categories: list[str]
    difficult: np.ndarray
    augment: np.ndarray
    settings: UnitSettings
    pixels_path: Path | None = None

    @property
    def key(self) -> str:
        """Identifier of the unit, used for its resume record."""
        return f"{self.tag}_{self.first_window}_{self.first_window + len(self.windows)}"


@dataclass
class UnitResult:
    """What a unit produced.

    Attributes:
        split: Output split.
        stem: Source image name.
        key: The task's ``key``.
        windows: One JSON-ready record per written image (original windows and augmented copies).
        problems: ``(reason, detail)`` for a source image that failed to decode.
        timings: Seconds spent per stage (``TIMING_KEYS``).
        processed: Number of windows considered (written or dropped as empty).
        peak_rss_mb: Peak resident memory of the process that ran the unit, in MiB (runtime information).
        best_iof: Per source object (label file index), the largest area fraction it has inside any window of
            the unit, rounded to 4 decimals (the manifest reports it for dropped objects).
        aborted: The shared pixels the unit was reading failed to decode: the builder deletes the windows it
            wrote and reports the image's problem instead (never persisted).
    """

    split: str
    stem: str
    key: str
    windows: list[dict[str, object]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))
    processed: int = 0
    peak_rss_mb: float = 0.0
    best_iof: dict[int, float] = field(default_factory=dict)
    aborted: bool = False

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (timings are not kept: they are not part of any output)."""
        return {
            "split": self.split,
            "stem": self.stem,
            "key": self.key,
            "windows": self.windows,
            "problems": [list(p) for p in self.problems],
            "processed": self.processed,
            "best_iof": sorted([k, v] for k, v in self.best_iof.items()),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> UnitResult:
        """Inverse of ``to_dict``."""
        return cls(
            split=data["split"],
            stem=data["stem"],
            key=data["key"],
            windows=data["windows"],
            problems=[tuple(p) for p in data["problems"]],
            processed=data["processed"],
            best_iof={int(k): v for k, v in data["best_iof"]},
        )


@contextmanager
def timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[key]`` (also when it raises)."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[key] += time.perf_counter() - start


class _ImageCache:
    """The current source image and one resized copy of it (at most two images per worker), or a memory map
    of a shared scaled image with the count of its rows decoded so far."""

    def __init__(self) -> None:
        self.path: Path | None = None
        self.source: np.ndarray | None = None
        self.error: ImageProbeError | None = None
        self.scaled_size: tuple[int, int] | None = None
        self.scaled: np.ndarray | None = None
        self.rows: SharedRows | None = None

    def get(self, task: UnitTask, timings: dict[str, float]) -> np.ndarray:
        if task.pixels_path is not None:
            if self.path != task.pixels_path:
                # A memory map of the shared scaled image: pages are read on demand and shared by all workers.
                self._forget()
                with timed(timings, "wait"):
                    self.rows = SharedRows.open(task.pixels_path)
                    self.scaled = np.load(task.pixels_path, mmap_mode="r")
                self.scaled_size = tuple(task.scaled_size)
                self.path = task.pixels_path
            return self.scaled
        if self.path != task.image_path:
            # Drop the previous image before decoding the next one, so two sources never coexist.
            self._forget()
            with timed(timings, "decode"):
                try:
                    self.source = _decode_checked(task.image_path, task.image_size)
                except ImageProbeError as exc:
                    self.error = exc
            self.path = task.image_path
        if self.error is not None:
            raise self.error
        if self.scaled_size != tuple(task.scaled_size):
            self.scaled = None
            with timed(timings, "resize"):
                self.scaled = resize_image(self.source, task.scaled_size, interpolation=task.settings.interpolation)
            self.scaled_size = tuple(task.scaled_size)
        return self.scaled

    def wait_rows(self, rows: int, timings: dict[str, float]) -> bool:
        """Block until the first ``rows`` rows of a shared image are decoded; False if its decoding failed."""
        if self.rows is None:
            return True
        with timed(timings, "wait"):
            return self.rows.wait(rows)

    def _forget(self) -> None:
        if self.rows is not None:
            self.rows.close()
        self.path = self.source = self.error = self.scaled = self.scaled_size = self.rows = None


class SharedRows:
    """How many rows of a shared image are decoded: one signed 64-bit count in a small file beside the pixels.

    The preparing worker writes it after every band of rows (-1 when decoding failed); units poll it before
    reading a window's rows, so they start on the top of an image while its bottom is still being decoded.
    The count travels through ``pwrite``/``pread``, whose locks in the kernel order it after the pixel stores
    on every architecture, which a plain store into shared memory would not.
    """

    FAILED = -1
    POLL_SECONDS = 0.002

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.ready = 0

    @staticmethod
    def path_for(pixels_path: Path) -> Path:
        """The count's file for a pixels file."""
        return pixels_path.with_name(pixels_path.name + ".rows")

    @classmethod
    def create(cls, pixels_path: Path) -> None:
        """Write the count at 0 rows (atomically). The builder does it before submitting the image's tasks, so
        the file exists whatever happens to the preparing worker and no unit waits for it to appear."""
        atomic_write_bytes(cls.path_for(pixels_path), struct.pack("<q", 0))

    @classmethod
    def open(cls, pixels_path: Path, *, write: bool = False) -> SharedRows:
        """Open the count of a shared image, to publish (the preparing worker) or to wait on (units)."""
        return cls(os.open(cls.path_for(pixels_path), os.O_WRONLY if write else os.O_RDONLY))

    def publish(self, rows: int) -> None:
        """Announce ``rows`` decoded rows (or ``FAILED``)."""
        os.pwrite(self.fd, struct.pack("<q", rows), 0)

    def wait(self, rows: int) -> bool:
        """Block until at least ``rows`` rows are decoded; False if decoding failed."""
        while self.ready < rows:
            (self.ready,) = struct.unpack("<q", os.pread(self.fd, 8, 0))
            if self.ready == self.FAILED:
                return False
            if self.ready < rows:
                time.sleep(self.POLL_SECONDS)
        return True

    def close(self) -> None:
        """Release the file descriptor."""
        os.close(self.fd)


_CACHE = _ImageCache()


def reset_cache() -> None:
    """Forget the cached image of this process (the builder calls it around in-process runs)."""
    global _CACHE
    _CACHE = _ImageCache()


@dataclass
class PrepareTask:
    """Decode and scale one image once for all workers that share it.

    Attributes:
        split: Output split.
        stem: Source image name.
        image_path: The source image.
        image_size: Header size ``(width, height)``.
        scaled_size: ``(width, height)`` after scaling.
        interpolation: Resizing filter.
        pixels_path: Where to write the scaled pixels (``.npy``).
    """

    split: str
    stem: str
    image_path: Path
    image_size: tuple[int, int]
    scaled_size: tuple[int, int]
    interpolation: str
    pixels_path: Path


@dataclass
class PrepareResult:
    """What ``run_prepare`` did: ``problems`` is non-empty when the source could not be decoded."""

    pixels_path: Path
    problems: list[tuple[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIMING_KEYS, 0.0))
    peak_rss_mb: float = 0.0


def create_shared(task: PrepareTask) -> None:
    """Create the (sparse) pixels file of a shared image and its row count at 0.

    The builder calls it before submitting the image's tasks: units may then map the file at once and wait on
    the count, whichever worker starts first, and a preparing worker that fails can only leave the count
    short or ``FAILED``, never missing.
    """
    width, height = task.scaled_size
    pixels = np.lib.format.open_memmap(task.pixels_path, mode="w+", dtype=np.uint8, shape=(height, width, 3))
    del pixels
    SharedRows.create(task.pixels_path)


def remove_shared(task: PrepareTask) -> None:
    """Delete a shared image's pixels file and row count (the builder, once no task of the image is left)."""
    task.pixels_path.unlink(missing_ok=True)
    SharedRows.path_for(task.pixels_path).unlink(missing_ok=True)


def run_prepare(task: PrepareTask) -> PrepareResult:
    """Decode (and scale) an image into the shared pixels file made by ``create_shared``, publishing progress.

    An image kept at its size is decoded straight into the memory map, band by band, and the row count
    follows each band, so units split its top while its bottom is decoded. A resized image is published
    whole once resized. The count ends at the height, or at ``SharedRows.FAILED`` on any failure.

    Args:
        task: The image to share.

    Returns:
        The ``PrepareResult``; the worker keeps no copy of the pixels afterwards.
    """
    result = PrepareResult(task.pixels_path)
    t = result.timings
    rows = SharedRows.open(task.pixels_path, write=True)
    height = task.scaled_size[1]
    done = False
    try:
        pixels = np.load(task.pixels_path, mmap_mode="r+")
        try:
            if tuple(task.scaled_size) == tuple(task.image_size):
                with timed(t, "decode"):
                    _decode_checked(task.image_path, task.image_size, out=pixels, on_rows=rows.publish)
            else:
                with timed(t, "decode"):
                    source = _decode_checked(task.image_path, task.image_size)
                with timed(t, "resize"):
                    resize_image(source, task.scaled_size, interpolation=task.interpolation, out=pixels)
                del source
        except ImageProbeError as exc:
            result.problems.append((exc.reason, exc.detail))
            return result
        finally:
            del pixels
        rows.publish(height)
        done = True
        return result
    finally:
        if not done:
            rows.publish(SharedRows.FAILED)
        rows.close()
        result.peak_rss_mb = peak_rss_mb()


def _decode_checked(
    path: Path, size: tuple[int, int], *, out: np.ndarray | None = None, on_rows: Callable[[int], None] | None = None
) -> np.ndarray:
    image = decode_image(path, out=out, on_rows=on_rows, channels=CHANNELS)
    if (image.shape[1], image.shape[0]) != tuple(size):
        raise ImageProbeError(
            "unreadable_image",
            f"decoded size {image.shape[1]} x {image.shape[0]} differs from the header's {size[0]} x {size[1]}",
        )
    return image


@dataclass(frozen=True)
class HashTask:
    """Checksum one source image: the only place the builder computes it (``build.json`` lists it).

    A task of its own, so that it runs beside the image's decode (a shared image's decode is the critical path of
    its windows) and is done exactly once, whatever the image's fate: split, not decodable or without windows.
    """

    split: str
    stem: str
    image_path: Path


@dataclass(frozen=True)
class HashResult:
    """The checksum of a ``HashTask``'s image and the seconds it took."""

    split: str
    stem: str
    input_sha256: str
    seconds: float


def run_hash(task: HashTask) -> HashResult:
    """sha256 of a source image, read in chunks (constant memory)."""
    seconds = {"hash": 0.0}
    with timed(seconds, "hash"):
        digest = sha256_file(task.image_path)
    return HashResult(task.split, task.stem, digest, seconds["hash"])


def crop_window(image: np.ndarray, window: np.ndarray, *, pad_value: int = 0) -> np.ndarray:
    """Pixels of one window, padded bottom/right with ``pad_value`` where it reaches past the image.

    Args:
        image: Pixels, shape (H, W, 3).
        window: ``[x0, y0, x1, y1]`` with x0, y0 inside the image.
        pad_value: Fill value of the padding. Defaults to 0.

    Returns:
        Pixels, shape (y1 - y0, x1 - x0, 3); a view of ``image`` when no padding is needed.
    """
    x0, y0, x1, y1 = (int(v) for v in window)
    height, width = image.shape[:2]
    if x1 <= width and y1 <= height:
        return image[y0:y1, x0:x1]
    out = np.full((y1 - y0, x1 - x0, image.shape[2]), pad_value, dtype=image.dtype)
    part = image[y0:min(y1, height), x0:min(x1, width)]
    out[: part.shape[0], : part.shape[1]] = part
    return out


def run_unit(task: UnitTask) -> UnitResult:
    """Split, augment and write one batch of windows.

    Args:
        task: The unit.

    Returns:
        The ``UnitResult``; a source that cannot be decoded gives no windows and one problem.
    """
    result = UnitResult(task.split, task.stem, task.key)
    try:
        _run(task, result)
    finally:
        result.peak_rss_mb = peak_rss_mb()
    return result


def peak_rss_mb() -> float:
    """Peak resident memory of this process, MiB."""
    # VmHWM is this process's own high-water mark; ru_maxrss would also carry the peak of a process this one
    # was exec'd from.
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _run(task: UnitTask, result: UnitResult) -> None:
    s = task.settings
    t = result.timings
    try:
        image = _CACHE.get(task, t)
    except ImageProbeError as exc:
        result.problems.append((exc.reason, exc.detail))
        return
    objects = ObjectSet.from_geoms(task.geoms)
    best_iof = np.zeros(len(objects))  # per candidate, its largest area fraction in a window of the unit
    height = image.shape[0]
    for window in task.windows:
        result.processed += 1
        with timed(t, "intersect"):
            kept = assign_objects(objects, window, iof_threshold=s.iof_threshold)
            best_iof[kept.touched] = np.maximum(best_iof[kept.touched], kept.touched_iof)
        if task.split == "train" and s.drop_empty_train and len(kept) == 0:
            continue
        if not _CACHE.wait_rows(min(int(window[3]), height), t):
            result.aborted = True  # the shared decode failed: the builder discards this unit
            return
        x0, y0 = int(window[0]), int(window[1])
        name = f"{task.stem}__{task.tag}__{x0}___{y0}"
        pixels = crop_window(image, window, pad_value=s.pad_value)
        valid = (min(int(window[2]), image.shape[1]) - x0, min(int(window[3]), image.shape[0]) - y0)
        result.windows.append(_write_window(task, name, (x0, y0), 0, pixels, kept.indices, kept.rings,
                                            kept.truncated, t))
        if task.split != "train" or s.aug_copies <= 0 or not task.augment[kept.indices].any():
            continue
        for copy in range(1, s.aug_copies + 1):
            with timed(t, "augment"):
                params = draw_augment(rng_for(s.seed, "augment", task.split, name, copy), flip_prob=s.flip_prob,
                                      hsv_h=s.hsv_gains[0], hsv_s=s.hsv_gains[1], hsv_v=s.hsv_gains[2])
                aug_pixels, aug_rings = augment_window(pixels, kept.rings, params, valid_size=valid,
                                                       channels=CHANNELS)
            result.windows.append(_write_window(task, f"{name}__aug{copy}", (x0, y0), copy, aug_pixels,
                                                kept.indices, aug_rings, kept.truncated, t,
                                                flips=[params.hflip, params.vflip]))
    result.best_iof = {
        int(task.object_ids[i]): round(float(best_iof[i]), 4) for i in np.flatnonzero(best_iof > 0).tolist()
    }


def _label_records(
    task: UnitTask, indices: np.ndarray, rings: list[list[np.ndarray]], truncated: np.ndarray, d: int
) -> tuple[list[dict[str, object]], np.ndarray]:
    """Per kept object its annotation record and its DOTA quadrilateral, shape (K, 4, 2), rounded to ``d``.

    Outlines that are one quadrilateral (all but the objects a window clips into another shape) are rounded
    and boxed together; the rest go through ``to_quadrilateral`` one by one. The values are the same either
    way: the vertices are rounded, the quadrilateral and the box are computed from the rounded vertices and
    rounded again.
    """
    count = len(rings)
    quads = np.zeros((count, 4, 2))
    boxes = np.zeros((count, 4))
    segmentation: list[list[list[float]]] = [[] for _ in range(count)]
    simple = [k for k, parts in enumerate(rings) if len(parts) == 1 and len(parts[0]) == 4]
    if simple:
        vertices = np.round(np.stack([rings[k][0] for k in simple]), d) + 0.0
        quads[simple] = np.round(vertices, d) + 0.0
        low, high = vertices.min(axis=1), vertices.max(axis=1)
        boxes[simple] = np.round(np.concatenate([low, high - low], axis=1), d) + 0.0
        for k, flat in zip(simple, vertices.reshape(len(simple), 8).tolist(), strict=True):
            segmentation[k] = [flat]
    for k in sorted(set(range(count)) - set(simple)):
        parts = [np.round(p, d) + 0.0 for p in rings[k]]
        quads[k] = np.round(to_quadrilateral(parts), d) + 0.0
        boxes[k] = np.round(horizontal_box(parts), d) + 0.0
        segmentation[k] = [p.ravel().tolist() for p in parts]
    objects = []
    for k, (idx, trunc, box) in enumerate(zip(indices.tolist(), truncated.tolist(), boxes.tolist(), strict=True)):
        objects.append({
            "object": int(task.object_ids[idx]),
            "category": task.categories[idx],
            "difficult": int(task.difficult[idx]),
            "truncated": bool(trunc),
            "bbox": box,
            "area": round(box[2] * box[3], 4),
            "segmentation": segmentation[k],
        })
    return objects, quads


def _write_window(
    task: UnitTask,
    name: str,
    origin: tuple[int, int],
    copy: int,
    pixels: np.ndarray,
    indices: np.ndarray,
    rings: list[list[np.ndarray]],
    truncated: np.ndarray,
    t: dict[str, float],
    flips: list[bool] | None = None,
) -> dict[str, object]:
    s = task.settings
    d = s.coord_decimals
    with timed(t, "encode"):
        png = encode_png_parts(pixels, compression=s.png_compression, channels=CHANNELS)
    with timed(t, "labels"):
        objects, quads = _label_records(task, indices, rings, truncated, d)
        text = dota_lines(quads, [o["category"] for o in objects], [o["difficult"] for o in objects], decimals=d)
    with timed(t, "write"):
        atomic_write_bytes(s.out_dir / "images" / task.split / f"{name}.png", png)
        atomic_write_text(s.out_dir / "labelTxt" / task.split / f"{name}.txt", text)
        png_sha256, txt_sha256 = sha256_bytes(png), sha256_bytes(text.encode("utf-8"))
    record = {
        "name": name,
        "window": list(origin),
        "width": int(pixels.shape[1]),
        "height": int(pixels.shape[0]),
        "scale": task.factor,
        "aug_copy": copy,
        "png_sha256": png_sha256,
        "txt_sha256": txt_sha256,
        "objects": objects,
    }
    if flips is not None:
        record["flips"] = flips
    return record
