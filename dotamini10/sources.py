"""Stages 1-2 of the builder: the source images and their objects, read, validated and filtered.

Every object line of every label file becomes one :class:`SourceObject` whose :class:`ObjectStatus` says what
the build does with it; the manifest reports each one, so nothing is lost. A polygon that reaches outside its
image is clipped to it and reported (``outside_image``); it stays usable unless nothing is left. Images without
a label file, and images whose label file cannot be read, are reported and skipped: their windows would teach a
detector that their objects are background.
"""

from __future__ import annotations

import enum
import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetError
from .io import atomic_write_text
from .problems import Problem, ProblemLog
from .read import (
    ImageProbeError,
    LabelFile,
    SourcePair,
    SplitSource,
    outside_image,
    pair_files,
    probe_image,
    read_label_file,
)
from .write import sha256_file

logger = logging.getLogger(__name__)


class ObjectStatus(enum.Enum):
    """The fate of a source object, as the manifest reports it.

    ``CANDIDATE`` is the one status that is not a fate: a valid object of a selected class, which the windows
    make ``KEPT`` (inside one well enough) or ``DROPPED``, or ``INVALID`` when its image fails to decode.
    """

    KEPT = "kept"
    FILTERED = "filtered"
    DROPPED = "dropped"
    INVALID = "invalid"
    CANDIDATE = "candidate"


#: The statuses a finished build reports, in the order of ``build.json``'s counts.
FATES: tuple[ObjectStatus, ...] = (ObjectStatus.KEPT, ObjectStatus.FILTERED, ObjectStatus.DROPPED,
                                   ObjectStatus.INVALID)


@dataclass(slots=True)
class SourceObject:
    """One object line of a label file.

    Attributes:
        line: 1-based line number in the label file.
        category: Category name as written (``""`` when the line failed to parse).
        difficult: The source difficult flag.
        status: What the build does with it.
        reason: Why it is ``INVALID`` (a problem reason) or ``FILTERED`` (``class_not_selected``); None otherwise.
        notes: Non-fatal problems of a usable object (``outside_image``).
    """

    line: int
    category: str
    difficult: int
    status: ObjectStatus = ObjectStatus.CANDIDATE
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SourceImage:
    """One source image (or orphan label file) of one split, after reading and validation.

    Attributes:
        split: Output split.
        stem: The image's name without suffix.
        image_rel: Image path relative to the DOTA root; None for a label file without image.
        label_rel: Label file path relative to the DOTA root.
        image_path: The image file; None for a label file without image.
        label_sha256: Checksum of the label file.
        objects: Every object line of the label file, in line order.
        size: ``(width, height)`` from the image header; None when the image cannot be used.
        candidates: Index into ``objects`` of every ``CANDIDATE``, shape (C,).
        geoms: The candidates' polygons in image coordinates (clipped to the image), shapely, shape (C,).
    """

    split: str
    stem: str
    image_rel: str | None
    label_rel: str
    image_path: Path | None
    label_sha256: str
    objects: list[SourceObject]
    size: tuple[int, int] | None = None
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    geoms: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    @property
    def key(self) -> tuple[str, str]:
        """``(split, stem)``: unique within a build."""
        return self.split, self.stem


def read_sources(
    root: Path, splits: Sequence[SplitSource], classes: Sequence[str], problems: ProblemLog
) -> tuple[list[SourceImage], list[list[object]]]:
    """Read, validate and filter every label file of ``splits`` and probe its image.

    Args:
        root: The DOTA root; paths in problems and records are relative to it.
        splits: The splits found under ``root`` (``read.find_splits``).
        classes: The classes kept; other valid objects are ``FILTERED``.
        problems: Where every input problem goes (in strict mode the first one raises).

    Returns:
        ``(images, input_stats)``: one ``SourceImage`` per label file, in split and name order, and
        ``[path, size, mtime_ns]`` of every input file read, sorted (a resumed build checks they are unchanged).
    """
    selected = set(classes)
    images: list[SourceImage] = []
    stats: list[list[object]] = []
    for source in splits:
        pairs, notes = pair_files(source)
        for path, reason, detail in notes:
            problems.add(Problem(_rel(root, path), 0, reason, detail))
        for pair in pairs:
            if pair.label is None:
                problems.add(Problem(_rel(root, pair.image), 0, "image_without_label",
                                     f"no {pair.stem}.txt in {_rel(root, source.labels)}"))
                continue
            for path in (pair.label, pair.image):
                if path is not None:
                    st = path.stat()
                    stats.append([_rel(root, path), st.st_size, st.st_mtime_ns])
            images.append(_read_image(root, source, pair, selected, problems))
    return images, sorted(stats)


def _rel(root: Path, path: Path) -> str:
    return path.relative_to(root).as_posix()


def _read_image(root: Path, source: SplitSource, pair: SourcePair, selected: set[str],
                problems: ProblemLog) -> SourceImage:
    label_rel = _rel(root, pair.label)
    image = SourceImage(
        split=source.name, stem=pair.stem, image_rel=_rel(root, pair.image) if pair.image else None,
        label_rel=label_rel, image_path=pair.image, label_sha256=sha256_file(pair.label), objects=[],
    )
    label = read_label_file(pair.label, file=label_rel)
    problems.extend(label.problems)
    image.objects = [
        SourceObject(line, category, difficult, reason=invalid)
        for line, category, difficult, invalid in zip(label.lines.tolist(), label.categories,
                                                      label.difficult.tolist(), label.invalid, strict=True)
    ]
    image.size, file_problem = _check_image(root, source, pair, label, problems)
    if file_problem is not None:
        for obj in image.objects:
            obj.status, obj.reason = ObjectStatus.INVALID, obj.reason or file_problem
        return image
    geoms = _clip_to_image(image, label, problems)
    for obj in image.objects:
        if obj.reason is not None:
            obj.status = ObjectStatus.INVALID
        elif obj.category not in selected:
            obj.status, obj.reason = ObjectStatus.FILTERED, "class_not_selected"
    image.candidates = np.array([i for i, o in enumerate(image.objects) if o.status is ObjectStatus.CANDIDATE],
                                dtype=np.int64)
    if len(image.candidates):
        image.geoms = geoms[image.candidates]
    return image


def _check_image(root: Path, source: SplitSource, pair: SourcePair, label: LabelFile,
                 problems: ProblemLog) -> tuple[tuple[int, int] | None, str | None]:
    """``(size, None)`` for a usable image, ``(None, reason)`` for one whose objects are all invalid."""
    if pair.image is None:
        problems.add(Problem(_rel(root, pair.label), 0, "label_without_image",
                             f"no {pair.stem}.png/.jpg/.tif/.bmp in {_rel(root, source.images)}"))
        return None, "label_without_image"
    try:
        info = probe_image(pair.image)
    except ImageProbeError as exc:
        problems.add(Problem(_rel(root, pair.image), 0, exc.reason, exc.detail))
        return None, exc.reason
    if any(p.reason == "unreadable_label" for p in label.problems):
        # Unknown annotations: the image can be neither a positive nor a negative example.
        return None, "unreadable_label"
    return (info.width, info.height), None


def _clip_to_image(image: SourceImage, label: LabelFile, problems: ProblemLog) -> np.ndarray:
    """Every valid object's polygon, clipped to the image; objects reaching outside it are reported."""
    import shapely

    width, height = image.size
    valid = np.array([o.reason is None for o in image.objects], dtype=bool)
    geoms = np.empty(len(image.objects), dtype=object)
    if not valid.any():
        return geoms
    geoms[valid] = shapely.polygons(label.coords[valid])
    out = outside_image(label.coords, width, height) & valid
    if out.any():
        frame = shapely.box(0, 0, width, height)
        # Clockwise on screen is counter-clockwise in shapely's y-up terms (DOTA vertex order).
        geoms[out] = shapely.orient_polygons(shapely.intersection(geoms[out], frame), exterior_cw=False)
        for idx in np.flatnonzero(out).tolist():
            obj = image.objects[idx]
            problems.add(Problem(image.label_rel, obj.line, "outside_image", f"image is {width} x {height}"))
            if shapely.area(geoms[idx]) <= 0:
                obj.reason = "outside_image"  # nothing of it is inside the image
            else:
                obj.notes.append("outside_image")
    return geoms


def synthetic_source(work: Path, seed: int) -> Path:
    """The synthetic DOTA sample of ``seed``, generated once under ``work`` (a resumed build reuses it).

    Raises:
        DatasetError: The generator cannot be imported.
    """
    target = work / "synthetic_source"
    marker = work / "synthetic_source.done"
    if marker.is_file() and target.is_dir():
        return target
    try:
        from .synthetic import generate_synthetic_dota
    except ImportError as exc:
        raise DatasetError(f"--dota-root not given and the synthetic sample generator is unavailable ({exc})") from None
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    logger.info("generating the synthetic DOTA sample (seed %d) in %s", seed, target)
    generate_synthetic_dota(target, seed=seed)
    atomic_write_text(marker, str(seed))
    return target
