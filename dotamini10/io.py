"""The toolkit's file I/O: atomic writes, deterministic JSON, JSON reading with one-line errors, folder locks.

Every package writes through here (``dotamini10``, ``hsfpn``, ``pipelines``): the module imports only the
standard library, so the metric and the job runner can write a report without loading the dataset builder.

Notes:
    A file is written to a temporary name in its destination folder and renamed over the target
    (``os.replace``), so a killed process never leaves a half-written file under its final name. Stray temporary
    files (``.<name>.<pid>.tmp``) are removed by :func:`remove_temporaries` when a job resumes.
    JSON is written with insertion key order (or sorted keys, on request) and fixed separators, so equal content
    gives equal bytes.

Example:
    >>> from pathlib import Path
    >>> write_json(Path("/tmp/report.json"), {"AP": 0.5}, indent=2)  # doctest: +SKIP
    >>> read_json(Path("/tmp/report.json"), what="report")  # doctest: +SKIP
    {'AP': 0.5}
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

TMP_SUFFIX = ".tmp"
# The progress callback of every command that counts its work (windows, images, figures): progress(done, total).
ProgressFn = Callable[[int, int], None]


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

    Raises:
        OSError: The writer's or the rename's; one that names no file (a full disk) is raised again naming
            ``path``, so that every message says where the write failed.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None:  # a failed write names no file ("[Errno 28] No space left on device"): name it
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes | Sequence[bytes | memoryview], *, make_parents: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename.

    Args:
        path: Destination.
        data: File content, or its pieces in order (written without joining them into one copy first).
        make_parents: Create the destination folder first. Defaults to False (the folder must exist).
    """
    path = Path(path)
    if make_parents:
        path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        if isinstance(data, (bytes, bytearray, memoryview)):
            f.write(data)
        else:
            f.writelines(data)


def atomic_write_text(path: Path, text: str, *, make_parents: bool = False) -> None:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    atomic_write_bytes(path, text.encode("utf-8"), make_parents=make_parents)


def remove_temporaries(folder: Path) -> int:
    """Delete temporary files left by a killed writer anywhere under ``folder``; returns how many."""
    count = 0
    if folder.is_dir():
        for path in folder.rglob(f".*{TMP_SUFFIX}"):
            path.unlink(missing_ok=True)
            count += 1
    return count


def json_text(obj: object, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Deterministic JSON: insertion (or sorted) key order, fixed separators, non-ASCII kept, trailing newline.

    Raises:
        ValueError: ``obj`` holds NaN or infinity, which JSON cannot represent.
    """
    separators = (",", ": ") if indent is not None else (",", ":")
    text = json.dumps(obj, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys,
                      allow_nan=False)
    return text + "\n"


def jsonl_text(records: Iterable[object]) -> str:
    """One compact JSON document per line."""
    return "".join(json_text(r) for r in records)


def is_int(value: Any) -> bool:
    """A JSON integer (``true`` and ``false`` are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite JSON number (``true`` and ``false`` are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_coco_id(value: Any) -> bool:
    """An id a COCO json may use: an integer or a string (a list or an object cannot key a lookup)."""
    return is_int(value) or isinstance(value, str)


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks (constant memory)."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def write_json(path: Path, obj: object, *, indent: int | None = None, sort_keys: bool = False) -> None:
    """Write ``obj`` as deterministic JSON (:func:`json_text`), atomically, creating the folder if needed."""
    atomic_write_text(path, json_text(obj, indent=indent, sort_keys=sort_keys), make_parents=True)


def read_json(path: Path, *, what: str = "JSON", error: type[Exception] = ValueError) -> Any:
    """Read a JSON file, turning every usual failure into one line that names the file (and line).

    Args:
        path: The file.
        what: What the file holds, for messages: "detections" gives "detections file not found" and
            "detections is not valid JSON (line 3 column 1: ...)".
        error: The exception type to raise, so that each package raises its own domain error (which the
            command line prints as one line). Defaults to ``ValueError``.

    Returns:
        The decoded JSON value.

    Raises:
        error: The file is missing, a folder, unreadable, not UTF-8, empty or not valid JSON.
    """
    path = Path(path)
    file = what if what.endswith("file") else f"{what} file"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {file} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: {what} path is a directory, expected a JSON file") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: {what} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {file} ({exc.strerror or exc})") from None
    if not text.strip():
        raise error(f"{path}: {file} is empty")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: {what} is not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None


def read_json_if_valid(path: Path) -> Any | None:
    """The JSON value of ``path``, or None when it is missing or unreadable: for bookkeeping files that a killed
    process may have left out (they are written atomically, so a present file is whole)."""
    try:
        return read_json(path)
    except ValueError:
        return None


@contextlib.contextmanager
def folder_lock(folder: Path, *, what: str, error: type[Exception]) -> Iterator[None]:
    """Hold ``folder`` (created if missing) for this run: a second run on it fails at once with one line.

    Two runs writing one folder would interleave their writes (two trainings resuming one checkpoint, two builds
    assembling one manifest). The lock is the kernel's ``flock`` on the folder itself, so no file is added to
    the outputs, and it goes when its holder ends, however it ends: an interrupted run leaves nothing to clean
    up and the next run resumes. Processes forked while it is held hold it with this one.

    Args:
        folder: The output folder.
        what: What the folder is, for the message (``"build output"``, ``"job folder"``).
        error: The exception raised when another run holds it, or when it cannot be created or opened.
    """
    try:
        import fcntl
    except ImportError:  # not POSIX: runs are not guarded
        yield
        return
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
    except OSError as exc:
        raise error(f"{folder}: cannot open this {what} ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(f"{folder}: another run is using this {what}; wait for it to end or stop it") from None
        yield
    finally:
        os.close(fd)
