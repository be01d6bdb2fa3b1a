"""Stage 1: read and validate DOTA label files and images without trusting either.

Label files hold optional ``imagesource:``/``gsd:`` header lines, then one object per line:
``x1 y1 x2 y2 x3 y3 x4 y4 category [difficult]``. Images are png, jpg, tif or bmp, up to 20,000 x 20,000 px.

Notes:
    * ``probe_image`` reads only the file header and the container structure (PNG chunks, JPEG end marker,
      TIFF strip/tile extents, BMP pixel-array size), so validating a 20k x 20k image costs a few reads, not a
      1.2 GB decode. It reports truncated files; corrupt compressed data is found when the builder decodes.
    * ``decode_image`` always returns 3-channel 8-bit BGR: grayscale is replicated to three channels, an alpha
      channel is dropped (not composited), 16-bit samples are scaled linearly from 0..65535 to 0..255 and
      floating-point samples are taken as 0..1. EXIF orientation is ignored on purpose: DOTA coordinates refer to
      the stored pixel grid, which is also what the header reports.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import DOTA_ALL_CLASSES
from .problems import Problem

IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
HEADER_KEYS: tuple[str, ...] = ("imagesource", "gsd")


# ---------------------------------------------------------------------------------------------------------------
# Label files
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class LabelFile:
    """The parsed content of one label file.

    Attributes:
        path: The label file.
        header: Header values by key (``imagesource``, ``gsd``), as written.
        lines: 1-based line number of every object line, shape (N,).
        coords: Polygon vertices, shape (N, 4, 2), float64 (NaN for lines that failed to parse).
        categories: Category name per object (``""`` when the line failed to parse).
        difficult: Difficult flag per object, shape (N,), int64 (0 when missing).
        invalid: Reason code of the problem that makes each object unusable, ``None`` for valid objects.
        problems: Problems found, in line order.
    """

    path: Path
    header: dict[str, str] = field(default_factory=dict)
    lines: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    coords: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 2)))
    categories: list[str] = field(default_factory=list)
    difficult: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    invalid: list[str | None] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.categories)


def label_lines(text: str, header: dict[str, str] | None = None) -> Iterator[tuple[int, list[str]]]:
    """The object lines of a DOTA label file's text: ``(1-based line number, tokens)``.

    The one reader of the format's lines: a leading byte-order mark, blank lines and the ``imagesource:`` /
    ``gsd:`` header lines are not objects (headers go into ``header`` when given, key lower-cased). Every other
    line is yielded, whatever its tokens; the callers decide what a valid object is.
    """
    for number, raw in enumerate(text.lstrip("\ufeff").splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in HEADER_KEYS and " " not in key.strip():
            if header is not None:
                header[key.strip().lower()] = value.strip()
            continue
        yield number, line.split()


def parse_label_text(text: str, *, file: str, path: Path | None = None) -> LabelFile:
    """Parse and validate the text of one DOTA label file.

    Args:
        text: The file content.
        file: Name used in problem records (usually the path relative to the DOTA root).
        path: The file itself, stored in the result. Defaults to ``Path(file)``.

    Returns:
        A ``LabelFile`` with one entry per object line, valid or not; invalid entries carry their reason in
        ``invalid`` and a matching ``Problem`` in ``problems``.

    Notes:
        Blank lines and the ``imagesource:``/``gsd:`` headers are not objects. Every other line is one source
        object, so the manifest can account for it. The polygon checks (zero area, crossing edges) run for all
        parsed lines at once with shapely.
    """
    import shapely

    result = LabelFile(path=path if path is not None else Path(file))
    rows: list[tuple[int, list[float], str, int]] = []
    reasons: list[str | None] = []
    problems: dict[int, Problem] = {}
    for number, tokens in label_lines(text, header=result.header):
        reason, detail, coords, category, difficult = None, "", [float("nan")] * 8, "", 0
        # The category sits at index 8 and is not a number; anything else means coordinates are missing
        # or extra, whatever the total.
        if len(tokens) not in (9, 10) or _is_finite_number(tokens[8]):
            reason = "token_count"
            detail = f"{len(tokens)} tokens, expected 8 coordinates, a category and an optional difficult flag"
        else:
            try:
                coords = [float(t) for t in tokens[:8]]
                if not all(np.isfinite(coords)):
                    raise ValueError("not finite")
            except ValueError:
                bad = next(t for t in tokens[:8] if not _is_finite_number(t))
                reason, detail, coords = "non_numeric", f"coordinate {bad!r}", [float("nan")] * 8
            category = tokens[8]
            if reason is None and category not in DOTA_ALL_CLASSES:
                reason, detail = "unknown_category", repr(category)
            if reason is None and len(tokens) == 10:
                try:
                    difficult = int(tokens[9])
                except ValueError:
                    reason, detail = "non_numeric", f"difficult flag {tokens[9]!r}"
        rows.append((number, coords, category, difficult))
        reasons.append(reason)
        if reason is not None:
            problems[number] = Problem(file, number, reason, detail)

    if rows:
        result.lines = np.array([r[0] for r in rows], dtype=np.int64)
        result.coords = np.array([r[1] for r in rows], dtype=np.float64).reshape(-1, 4, 2)
        result.categories = [r[2] for r in rows]
        result.difficult = np.array([r[3] for r in rows], dtype=np.int64)
        # Geometry checks only for lines that parsed; shapely works on the whole file at once.
        parsed = np.array([r is None for r in reasons])
        if parsed.any():
            polys = shapely.polygons(result.coords[parsed])
            # Hull area, not polygon area: a bow tie's signed halves cancel to zero, yet it is not degenerate.
            areas = shapely.area(shapely.convex_hull(polys))
            valid = shapely.is_valid(polys)
            for idx, area, ok in zip(np.flatnonzero(parsed), areas, valid, strict=True):
                number = int(result.lines[idx])
                if area <= 0.0:
                    reasons[idx] = "degenerate_polygon"
                    problems[number] = Problem(file, number, "degenerate_polygon", "zero area")
                elif not ok:
                    reasons[idx] = "self_intersecting"
                    why = shapely.is_valid_reason(shapely.polygons(result.coords[idx]))
                    problems[number] = Problem(file, number, "self_intersecting", why)
    result.invalid = reasons
    result.problems = [problems[n] for n in sorted(problems)]
    return result


def read_label_file(path: Path, *, file: str | None = None) -> LabelFile:
    """Read and validate one DOTA label file.

    Args:
        path: The label file.
        file: Name used in problem records. Defaults to ``str(path)``.

    Returns:
        The parsed ``LabelFile``; a file that is not UTF-8 text yields no objects and one
        ``unreadable_label`` problem.
    """
    name = file if file is not None else str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        result = LabelFile(path=path)
        result.problems = [Problem(name, 0, "unreadable_label", type(exc).__name__ + ": " + str(exc)[:120])]
        return result
    return parse_label_text(text, file=name, path=path)


def _is_finite_number(token: str) -> bool:
    try:
        return bool(np.isfinite(float(token)))
    except ValueError:
        return False


def outside_image(coords: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which polygons have a vertex outside the image rectangle [0, width] x [0, height].

    Args:
        coords: Vertices, shape (N, K, 2); NaN rows count as inside (they are already invalid).
        width: Image width in pixels.
        height: Image height in pixels.

    Returns:
        Boolean mask, shape (N,).
    """
    x, y = coords[..., 0], coords[..., 1]
    with np.errstate(invalid="ignore"):
        out = (x < 0) | (x > width) | (y < 0) | (y > height)
    return out.any(axis=-1)


# ---------------------------------------------------------------------------------------------------------------
# Images: header probing and decoding
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageInfo:
    """What an image header says.

    Attributes:
        width: Width in pixels.
        height: Height in pixels.
        format: ``"png"``, ``"jpeg"``, ``"tiff"`` or ``"bmp"``.
    """

    width: int
    height: int
    format: str


class ImageProbeError(Exception):
    """An image failed its header check; ``reason`` is a ``problems.REASONS`` key."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def probe_image(path: Path) -> ImageInfo:
    """Read an image's size from its header and check that the file is not truncated, without decoding.

    Args:
        path: A png, jpg/jpeg, tif/tiff or bmp file (the format is taken from the content, not the suffix).

    Returns:
        The header's ``ImageInfo``.

    Raises:
        ImageProbeError: ``unreadable_image`` for an unknown format or a corrupt header, ``truncated_image``
            when the file ends before the data its header announces.
    """
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(64)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _probe_png(f, size)
            if head.startswith(b"\xff\xd8"):
                return _probe_jpeg(f, size)
            if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
                return _probe_tiff(f, size)
            if head.startswith(b"BM"):
                return _probe_bmp(head, size)
    except (OSError, struct.error) as exc:
        raise ImageProbeError("unreadable_image", f"{type(exc).__name__}: {exc}") from None
    raise ImageProbeError("unreadable_image", "not a png, jpeg, tiff or bmp file")


def _check_size(width: int, height: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageProbeError("unreadable_image", f"header gives size {width} x {height}")


def _probe_png(f, size: int) -> ImageInfo:
    # Walk the chunk list by seeking over chunk bodies: cheap even for a 1 GB file.
    f.seek(8)
    width = height = None
    while True:
        start = f.tell()
        header = f.read(8)
        if len(header) < 8:
            raise ImageProbeError("truncated_image", f"PNG ends at byte {start} without an IEND chunk")
        length, kind = struct.unpack(">I4s", header)
        if kind == b"IHDR":
            width, height = struct.unpack(">II", f.read(8))
            _check_size(width, height)
            f.seek(start + 8)
        if width is None:
            raise ImageProbeError("unreadable_image", "PNG does not start with an IHDR chunk")
        end = start + 12 + length
        if end > size:
            raise ImageProbeError("truncated_image", f"PNG chunk {kind!r} ends at byte {end}, file has {size}")
        if kind == b"IEND":
            return ImageInfo(width, height, "png")
        f.seek(end)


_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _probe_jpeg(f, size: int) -> ImageInfo:
    f.seek(2)
    width = height = None
    while True:
        byte = f.read(1)
        if not byte:
            raise ImageProbeError("truncated_image", "JPEG ends inside its header segments")
        if byte != b"\xff":
            raise ImageProbeError("unreadable_image", f"JPEG marker expected at byte {f.tell() - 1}")
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            raise ImageProbeError("truncated_image", "JPEG ends inside its header segments")
        code = marker[0]
        if code in (0xD8, 0x01) or 0xD0 <= code <= 0xD7:
            continue
        (length,) = struct.unpack(">H", f.read(2))
        if code in _JPEG_SOF:
            _, height, width = struct.unpack(">BHH", f.read(5))
            _check_size(width, height)
        if code == 0xDA:  # start of scan: entropy-coded data follows, the file must end with EOI
            break
        f.seek(f.tell() + length - 2 - (5 if code in _JPEG_SOF else 0))
    if width is None:
        raise ImageProbeError("unreadable_image", "JPEG has no frame header (SOF)")
    f.seek(max(0, size - 64))
    tail = f.read().rstrip(b"\x00\r\n ")
    if not tail.endswith(b"\xff\xd9"):
        raise ImageProbeError("truncated_image", "JPEG does not end with an end-of-image marker")
    return ImageInfo(width, height, "jpeg")


_TIFF_TYPES = {1: "B", 3: "H", 4: "I", 16: "Q"}


def _probe_tiff(f, size: int) -> ImageInfo:
    f.seek(0)
    head = f.read(16)
    endian = "<" if head[:2] == b"II" else ">"
    big = head[2:4] in (b"+\x00", b"\x00+")
    if big:
        (ifd,) = struct.unpack(endian + "Q", head[8:16])
        count_fmt, entry_size, value_size = "Q", 20, 8
    else:
        (ifd,) = struct.unpack(endian + "I", head[4:8])
        count_fmt, entry_size, value_size = "H", 12, 4
    if ifd + 2 > size:
        raise ImageProbeError("truncated_image", f"TIFF directory offset {ifd} beyond the file ({size} bytes)")
    f.seek(ifd)
    (count,) = struct.unpack(endian + count_fmt, f.read(struct.calcsize(count_fmt)))
    entries = f.read(count * entry_size)
    if len(entries) < count * entry_size:
        raise ImageProbeError("truncated_image", "TIFF ends inside its first directory")
    tags: dict[int, list[int]] = {}
    for i in range(count):
        raw = entries[i * entry_size : (i + 1) * entry_size]
        tag, kind = struct.unpack(endian + "HH", raw[:4])
        if tag not in (256, 257, 273, 279, 324, 325) or kind not in _TIFF_TYPES:
            continue
        (n,) = struct.unpack(endian + ("Q" if big else "I"), raw[4 : 4 + value_size])
        fmt = endian + f"{n}{_TIFF_TYPES[kind]}"
        nbytes = struct.calcsize(fmt)
        payload = raw[4 + value_size :]
        if nbytes > value_size:
            (offset,) = struct.unpack(endian + ("Q" if big else "I"), payload)
            if offset + nbytes > size:
                raise ImageProbeError("truncated_image", f"TIFF tag {tag} data lies beyond the file")
            here = f.tell()
            f.seek(offset)
            payload = f.read(nbytes)
            f.seek(here)
        tags[tag] = list(struct.unpack(fmt, payload[:nbytes]))
    if 256 not in tags or 257 not in tags:
        raise ImageProbeError("unreadable_image", "TIFF directory has no image width/length")
    width, height = tags[256][0], tags[257][0]
    _check_size(width, height)
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):
        if offsets_tag in tags and counts_tag in tags:
            end = max(o + c for o, c in zip(tags[offsets_tag], tags[counts_tag], strict=False))
            if end > size:
                raise ImageProbeError("truncated_image", f"TIFF image data ends at byte {end}, file has {size}")
    return ImageInfo(width, height, "tiff")


def _probe_bmp(head: bytes, size: int) -> ImageInfo:
    offset, dib = struct.unpack("<II", head[10:18])
    if dib == 12:
        width, height, _, bpp = struct.unpack("<HHHH", head[18:26])
        compression = 0
    else:
        width, height, _, bpp, compression = struct.unpack("<iiHHI", head[18:34])
    height = abs(height)
    _check_size(width, height)
    if compression == 0:  # uncompressed rows padded to 4 bytes: the pixel array size is known exactly
        end = offset + ((bpp * width + 31) // 32) * 4 * height
        if end > size:
            raise ImageProbeError("truncated_image", f"BMP pixel data ends at byte {end}, file has {size}")
    return ImageInfo(width, height, "bmp")


def decode_image(
    path: Path,
    *,
    out: np.ndarray | None = None,
    on_rows: Callable[[int], None] | None = None,
    channels: str = "bgr",
) -> np.ndarray:
    """Decode an image into 3-channel 8-bit pixels: 8-bit RGB PNGs with ``png.decode_png``, the rest with OpenCV.

    Args:
        path: The image file.
        out: Where to put the pixels, shape (H, W, 3) uint8 of the decoded size (a memory map shared with
            other workers, for one); None allocates.
        on_rows: Passed to ``png.decode_png``: told how many rows of ``out`` are final as they complete (other
            decoders report nothing; the caller knows the image is complete when this returns).
        channels: ``"bgr"`` (OpenCV's order, the default) or ``"rgb"``.

    Returns:
        Pixels, shape (H, W, 3), uint8 (conversions in the module notes); ``out`` when given.

    Raises:
        ImageProbeError: ``unreadable_image`` when OpenCV cannot decode the file, its pixel type is not
            8/16-bit integer or floating point with 1, 3 or 4 channels, or its size differs from ``out``'s.
    """
    import cv2

    from .png import PngFallback, decode_png

    if channels not in ("bgr", "rgb"):  # a caller's mistake, not an unreadable image
        raise ValueError(f"channels: expected 'bgr' or 'rgb', got {channels!r}")
    try:
        return decode_png(path, out=out, on_rows=on_rows, channels=channels)
    except PngFallback:
        pass  # not a PNG, another pixel format, AVG/PAETH rows or a malformed file: OpenCV decides
    except ValueError as exc:  # ``out`` does not fit the PNG's header
        raise ImageProbeError("unreadable_image", str(exc)) from None
    # IMREAD_UNCHANGED keeps 16-bit depth and the stored orientation; IMREAD_COLOR would silently
    # truncate 16-bit data to its high byte after an EXIF rotation.
    image = cv2.imread(os.fspath(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageProbeError("unreadable_image", "OpenCV could not decode the file")
    image = to_bgr8(image)
    if channels == "rgb":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if out is None:
        return image
    if out.shape != image.shape:
        raise ImageProbeError(
            "unreadable_image", f"decoded size {image.shape[1]} x {image.shape[0]} differs from the expected "
            f"{out.shape[1]} x {out.shape[0]}"
        )
    out[...] = image
    return out


def to_bgr8(image: np.ndarray) -> np.ndarray:
    """Convert decoded pixels of any supported layout to 3-channel 8-bit BGR (rules in the module notes).

    Args:
        image: Pixels, shape (H, W) or (H, W, C) with C in {1, 3, 4}; uint8, uint16 or floating point.

    Returns:
        Pixels, shape (H, W, 3), uint8; ``image`` itself when it already is one.

    Raises:
        ImageProbeError: ``unreadable_image`` for other layouts or dtypes.
    """
    import cv2

    if image.dtype == np.uint16:
        # (v + 128) // 257 rounds v * 255 / 65535 to the nearest integer without floating point.
        image = ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif image.dtype.kind == "f":
        image = np.clip(np.nan_to_num(image) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageProbeError("unreadable_image", f"unsupported pixel type {image.dtype}")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ImageProbeError("unreadable_image", f"unsupported pixel layout {image.shape}")


# ---------------------------------------------------------------------------------------------------------------
# Release layout
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SplitSource:
    """One split of a DOTA release: its image and label folders."""

    name: str
    images: Path
    labels: Path


def find_splits(dota_root: Path, *, splits: Iterable[str] = ("train", "val")) -> list[SplitSource]:
    """Locate the splits of a DOTA release root, or treat a single split folder as ``train``.

    Args:
        dota_root: A release root (``train/`` and/or ``val/``, each with ``images/`` and ``labelTxt/``) or one
            split folder (``images/`` + ``labelTxt/``).
        splits: Split names to look for under a release root. Defaults to ``("train", "val")``.

    Returns:
        The splits found, in the order of ``splits``.

    Raises:
        DatasetError: When ``dota_root`` is missing or has neither layout.
    """
    from .errors import DatasetError

    if not dota_root.is_dir():
        raise DatasetError(f"--dota-root: {dota_root} is not a directory")
    if (dota_root / "labelTxt").is_dir() and (dota_root / "images").is_dir():
        return [SplitSource("train", dota_root / "images", dota_root / "labelTxt")]
    found = [
        SplitSource(name, dota_root / name / "images", dota_root / name / "labelTxt")
        for name in splits
        if (dota_root / name / "images").is_dir() and (dota_root / name / "labelTxt").is_dir()
    ]
    if not found:
        raise DatasetError(
            f"--dota-root: {dota_root} has neither train/ or val/ with images/ and labelTxt/, "
            "nor images/ and labelTxt/ itself"
        )
    return found


@dataclass(frozen=True)
class SourcePair:
    """An image/label pair of one split (either side may be missing)."""

    stem: str
    image: Path | None
    label: Path | None


def pair_files(source: SplitSource) -> tuple[list[SourcePair], list[tuple[Path, str, str]]]:
    """Match images to label files by file stem, sorted by stem.

    Args:
        source: The split's folders.

    Returns:
        ``(pairs, notes)``: every stem with its image and label path (None where missing), and
        ``(path, reason, detail)`` notes for duplicate image names (the first by sorted file name is used).
    """
    images: dict[str, Path] = {}
    notes: list[tuple[Path, str, str]] = []
    for path in sorted(source.images.iterdir()):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        if path.stem in images:
            notes.append((path, "duplicate_image", f"{images[path.stem].name} is used"))
            continue
        images[path.stem] = path
    labels = {p.stem: p for p in sorted(source.labels.iterdir()) if p.is_file() and p.suffix.lower() == ".txt"}
    pairs = [SourcePair(stem, images.get(stem), labels.get(stem)) for stem in sorted(images.keys() | labels.keys())]
    return pairs, notes
