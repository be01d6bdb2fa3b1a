"""Check a COCO-format dataset before a job starts: every image there, whole and of the json's size, every
annotation usable. One line per problem, named by file and annotation id; ``--skip-bad`` drops them instead.

What is checked, in each json a job reads (training and evaluation):

* every image file exists, its header decodes (:func:`dotamini10.read.probe_image`: headers only; a truncated
  PNG, JPEG, TIFF or BMP is found without decoding it) and gives the json's ``width`` and ``height``;
* every annotation has an id of its own, names a listed image and a listed category, and has a box of four
  finite numbers at least 1 px wide and high (MMDetection drops smaller ones without a word) that lies inside
  its image (a box reaching more than 1 px past an edge: edge conventions differ by one pixel). In the
  evaluation json, boxes under 1 px or past the edge are kept and counted in a note: the metric scores any box;
* the job's classes are the training json's categories in its order: MMDetection numbers labels in that order
  whatever the ids (a mismatch would train one class under another's name; never skipped).

A json whose ``area`` fields are far from their boxes' w x h (:data:`hsfpn.aitod_eval.AREA_FACTOR`) is one note
line: the evaluation's size ranges go by ``area`` (``--area-from-box`` scores w x h).

Notes:
    Speed: headers only, read by a thread pool; results cached in ``$HSFPN_CACHE/dataset-scan/`` (default
    ``$XDG_CACHE_HOME/hsfpn-toolkit``, as ``scripts/setup.sh``), one file per (json SHA-256, image folder). The
    file holds what the scan needs of the json (images, categories, annotation problems and counts) and each
    image's probe with the size and mtime it had. A rerun digests the json, stats every image and probes again
    only those whose size or mtime changed: the json is not parsed again.

    ``--skip-bad`` writes a copy of each json without the bad images (and their annotations) and the bad
    annotations to a folder of the run (``{stem}.{digest}.json``: another dataset gives another name, so the job's
    fingerprint follows the data), with ``skipped.json`` listing every dropped object and why; the job reads the
    copies.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotamini10.io import is_coco_id, is_number, read_json, read_json_if_valid, sha256_file, write_json
from dotamini10.read import ImageProbeError, probe_image

from .datasets import DataRootError, DatasetLayout
from .errors import PipelineError

CACHE_VERSION = 2  # 2: ids that are lists or objects are problems, not crashes
EDGE_TOLERANCE_PX = 1.0
_CHUNK = 64  # images per header-reading task
# What each problem means; images with an image-level problem are dropped whole under --skip-bad.
IMAGE_REASONS = ("missing", "truncated", "unreadable", "size_mismatch", "bad_image_entry", "duplicate_image_id")
ANNOTATION_REASONS = ("bad_annotation", "unknown_image", "unknown_category", "bad_box", "degenerate_box",
                      "outside_image", "duplicate_annotation_id")
# Not problems in an evaluation json: the AI-TOD metric scores any finite box (a note says how many).
KEPT_FOR_EVALUATION = ("degenerate_box", "outside_image")


class DatasetCheckError(PipelineError):
    """The dataset has problems and ``--skip-bad`` was not given; the message lists every one, a line each."""


@dataclass(frozen=True)
class DataProblem:
    """One problem of a dataset.

    Attributes:
        file: What to look at: the image (relative to the data root) or the json.
        reason: One of :data:`IMAGE_REASONS` or :data:`ANNOTATION_REASONS`.
        detail: What is wrong, in words.
        image_id: The image's id, for an image problem.
        ann_ids: The annotations concerned (an image's annotations, or the one bad annotation).
        positions: Where they sit in the json's lists (the image's position for an image problem, else the
            annotation's): what ``--skip-bad`` drops, duplicate ids included.
    """

    file: str
    reason: str
    detail: str
    image_id: int | None = None
    ann_ids: tuple[Any, ...] = ()
    positions: tuple[int, ...] = ()

    @property
    def whole_image(self) -> bool:
        return self.reason in IMAGE_REASONS

    def message(self) -> str:
        """``pics/train/003.png: missing (annotation ids 7, 8)``."""
        if not self.whole_image:
            return f"{self.file}: {self.detail}"
        if not self.ann_ids:
            return f"{self.file}: {self.detail} (no annotations)"
        ids = ", ".join(str(i) for i in self.ann_ids)
        return f"{self.file}: {self.detail} (annotation id{'s' if len(self.ann_ids) > 1 else ''} {ids})"

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> DataProblem:
        return cls(**{**record, "ann_ids": tuple(record["ann_ids"]), "positions": tuple(record["positions"])})


@dataclass
class SplitScan:
    """The scan of one json and its image folder.

    Attributes:
        ann: The json, relative to the data root.
        digest: SHA-256 of the json's bytes.
        images: Images listed.
        annotations: Annotations listed.
        categories: Category names in the json's order (MMDetection's label order).
        problems: Every problem, images first (json order), then annotations (json order).
        far_areas: Annotations whose ``area`` is far from their box's w x h.
        area_example: One of them: ``[annotation id, area, w, h]`` (empty when none).
        probed: Images whose header was read in this scan (the others came from the cache).
    """

    ann: str
    digest: str
    images: int
    annotations: int
    categories: list[str] = field(default_factory=list)
    problems: list[DataProblem] = field(default_factory=list)
    far_areas: int = 0
    area_example: list[Any] = field(default_factory=list)
    probed: int = 0

    def area_note(self) -> str | None:
        """One line when areas are far from w x h (what the AI-TOD size ranges test)."""
        from hsfpn.aitod_eval import far_area_note

        if not self.far_areas:
            return None
        return far_area_note(self.ann, self.far_areas, self.annotations, tuple(self.area_example))


# ---------------------------------------------------------------------------------------------
# The json: what the scan keeps of it, and the annotation checks (pure)
# ---------------------------------------------------------------------------------------------


@dataclass
class JsonIndex:
    """What the scan needs of a COCO json (and caches): its images, categories and annotation problems.

    Attributes:
        images: ``[id, file_name, width, height, annotation ids, position]`` per usable image entry, json order.
        categories: ``[id, name]`` per listed category, in json order.
        annotations: Annotations listed.
        problems: The json's own problems (bad image entries, annotations), in json order.
        far_areas: Annotations whose ``area`` is far from their box's w x h.
        area_example: One of them: ``[annotation id, area, w, h]``.
    """

    images: list[list[Any]]
    categories: list[list[Any]]
    annotations: int
    problems: list[DataProblem]
    far_areas: int = 0
    area_example: list[Any] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(images=self.images, categories=self.categories, annotations=self.annotations,
                    problems=[p.to_json() for p in self.problems], far_areas=self.far_areas,
                    area_example=self.area_example)

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> JsonIndex:
        return cls(record["images"], record["categories"], record["annotations"],
                   [DataProblem.from_json(p) for p in record["problems"]], record["far_areas"], record["area_example"])


def _list(coco: Any, key: str, path: str) -> list:
    value = coco.get(key) if isinstance(coco, dict) else None
    if not isinstance(value, list):
        raise DataRootError(f"{path}: not a COCO json (no '{key}' list)")
    return value


def index_coco(coco: Any, path: str) -> JsonIndex:
    """Index a decoded COCO json (``path`` names it in problems) and find its own problems (module notes).

    Raises:
        DataRootError: It is not a COCO json (no ``images``, ``annotations`` or ``categories`` list).
    """
    import numpy as np

    from hsfpn.aitod_eval import far_from_box

    images, anns, cats = (_list(coco, key, path) for key in ("images", "annotations", "categories"))
    problems: list[DataProblem] = []
    entries, by_id = _image_entries(images, path, problems)
    categories = [[c.get("id"), c.get("name")] for c in cats if isinstance(c, dict)]
    known_cats = {c[0] for c in categories if is_coco_id(c[0])}
    seen: set[Any] = set()
    sized: list[tuple[Any, float, float, float]] = []  # (id, area, w, h) of the usable annotations with an area
    for pos, ann in enumerate(anns):
        problem, image = _annotation_problem(ann, pos, path, by_id, known_cats, seen)
        if image is not None:
            image[4].append(ann["id"])  # an image's message names all of its annotations
        if problem is not None:
            problems.append(problem)
        elif is_number(area := ann.get("area")):
            sized.append((ann["id"], area, ann["bbox"][2], ann["bbox"][3]))
    values = np.array([s[1:] for s in sized], dtype=np.float64).reshape(-1, 3)
    far = np.flatnonzero(far_from_box(values[:, 0], values[:, 1], values[:, 2]))
    example = list(sized[int(far[0])]) if len(far) else []
    return JsonIndex(entries, categories, len(anns), problems, len(far), example)


def _image_entries(images: list, path: str,
                   problems: list[DataProblem]) -> tuple[list[list[Any]], dict[Any, list[Any]]]:
    entries, by_id = [], {}
    for pos, image in enumerate(images):
        ok = isinstance(image, dict) and isinstance(image.get("file_name"), str) and all(
            isinstance(image.get(k), int) and image[k] > 0 for k in ("width", "height"))
        if not ok or not is_coco_id(image.get("id")):
            problems.append(DataProblem(path, "bad_image_entry", f"image entry {pos}: expected an integer or text "
                                        "id, file_name and positive integer width and height", positions=(pos,)))
            continue
        if image["id"] in by_id:
            problems.append(DataProblem(path, "duplicate_image_id", f"image entry {pos}: id {image['id']} is "
                                        "listed before", image["id"], positions=(pos,)))
            continue
        entry = [image["id"], image["file_name"], image["width"], image["height"], [], pos]
        by_id[image["id"]] = entry
        entries.append(entry)
    return entries, by_id


def _annotation_problem(ann: Any, pos: int, path: str, by_id: dict, known_cats: set,
                        seen: set) -> tuple[DataProblem | None, list[Any] | None]:
    """The first problem of one annotation (None when it is fine), and its image's entry (None when unknown)."""
    if not isinstance(ann, dict) or not is_coco_id(ann.get("id")):
        return DataProblem(path, "bad_annotation", f"annotation {pos}: not an object with an integer or text id",
                           positions=(pos,)), None
    ann_id, image_id, category_id, box = ann["id"], ann.get("image_id"), ann.get("category_id"), ann.get("bbox")
    image = by_id.get(image_id) if is_coco_id(image_id) else None  # a list or an object is no key of any image
    found = None
    if ann_id in seen:
        found = ("duplicate_annotation_id", "the id is used by an earlier annotation")
    elif image is None:
        found = ("unknown_image", f"image_id {image_id!r} is not a listed image")
    elif not is_coco_id(category_id) or category_id not in known_cats:
        found = ("unknown_category", f"category_id {category_id!r} is not a listed category")
    else:
        found = _box_problem(box, image[2], image[3])
    seen.add(ann_id)
    if found is None:
        return None, image
    where = f"annotation id {ann_id}" + (f" (image {image[1]})" if image is not None else "")
    return DataProblem(path, found[0], f"{where}: {found[1]}", ann_ids=(ann_id,), positions=(pos,)), image


def _box_problem(box: Any, width: int, height: int) -> tuple[str, str] | None:
    if not (isinstance(box, list) and len(box) == 4 and all(map(is_number, box))) or box[2] < 0 or box[3] < 0:
        return "bad_box", f"bbox {box!r} is not [x, y, w, h] with finite w, h >= 0"
    x, y, w, h = box
    if w < 1 or h < 1:
        return "degenerate_box", f"bbox {box!r} is under 1 px wide or high"
    tol = EDGE_TOLERANCE_PX
    if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
        return "outside_image", f"bbox {box!r} reaches outside the {width} x {height} image"
    return None


# ---------------------------------------------------------------------------------------------
# The images: headers, in parallel, cached by size and mtime
# ---------------------------------------------------------------------------------------------


def cache_root() -> Path:
    """``$HSFPN_CACHE`` or ``$XDG_CACHE_HOME/hsfpn-toolkit`` (``~/.cache/hsfpn-toolkit``), as ``scripts/setup.sh``."""
    base = os.environ.get("HSFPN_CACHE")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hsfpn-toolkit"


def _probe(path: Path) -> list[Any]:
    """``[size, mtime_ns, width, height, reason, detail]`` of one image (reason None when it is whole)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return [None, None, 0, 0, "missing", "missing"]
    except OSError as exc:
        return [None, None, 0, 0, "unreadable", f"unreadable: {exc.strerror or exc}"]
    try:
        info = probe_image(path)
    except ImageProbeError as exc:
        reason = "truncated" if exc.reason == "truncated_image" else "unreadable"
        return [stat.st_size, stat.st_mtime_ns, 0, 0, reason, f"{reason}: {exc.detail}"]
    return [stat.st_size, stat.st_mtime_ns, info.width, info.height, None, ""]


def _unchanged(path: Path, cached: list[Any] | None) -> bool:
    if cached is None or cached[0] is None:
        return False
    try:
        stat = path.stat()
    except OSError:
        return False
    return [stat.st_size, stat.st_mtime_ns] == cached[:2]


def probe_images(folder: Path, names: Sequence[str], cached: dict[str, list[Any]],
                 workers: int | None = None) -> tuple[dict[str, list[Any]], int]:
    """Every image's probe (module notes: cached ones whose size and mtime did not change are kept).

    Returns:
        ``(probes by name, images probed now)``.
    """
    paths = {name: folder / name for name in names}
    keep = {n: cached[n] for n in names if _unchanged(paths[n], cached.get(n))}
    todo = [n for n in names if n not in keep]
    workers = workers or min(16, 4 * (os.cpu_count() or 1))
    # Chunks of images per task: a header read from the page cache takes tens of microseconds, about what handing
    # one task to a thread costs; a slow disk or network share is where the threads pay.
    chunks = [todo[k:k + _CHUNK] for k in range(0, len(todo), _CHUNK)]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(chunks) or 1))) as pool:
        done = pool.map(lambda chunk: [_probe(paths[n]) for n in chunk], chunks)
        fresh = dict(zip(todo, (probe for chunk in done for probe in chunk), strict=True))
    return {**keep, **fresh}, len(todo)


def _image_problem(entry: list[Any], probe: list[Any], rel: str) -> DataProblem | None:
    image_id, _, width, height, ann_ids, pos = entry
    if probe[4] is not None:
        reason, detail = probe[4], probe[5]
    elif (probe[2], probe[3]) != (width, height):
        reason, detail = "size_mismatch", f"{probe[2]} x {probe[3]} px, the json says {width} x {height}"
    else:
        return None
    return DataProblem(rel, reason, detail, image_id, tuple(ann_ids), (pos,))


# ---------------------------------------------------------------------------------------------
# One json, and a job's dataset
# ---------------------------------------------------------------------------------------------


def _cache_file(digest: str, folder: Path) -> Path:
    where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:8]
    return cache_root() / "dataset-scan" / f"{digest[:24]}-{where}.json"


def _digest(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise DataRootError(f"{path}: cannot read the json ({exc.strerror or exc})") from None


def _read_cache(cache_file: Path) -> tuple[JsonIndex, dict[str, list[Any]]] | None:
    """A json's cached index and image probes; None when absent, of another version or damaged (scan again)."""
    record = read_json_if_valid(cache_file)
    if not isinstance(record, dict) or record.get("version") != CACHE_VERSION or not isinstance(
            record.get("probes"), dict):
        return None
    try:
        return JsonIndex.from_json(record["index"]), record["probes"]
    except (KeyError, TypeError, ValueError, IndexError):  # edited by hand, or cut short by another writer
        return None


def _write_cache(cache_file: Path, index: JsonIndex, probes: dict[str, list[Any]]) -> None:
    try:
        write_json(cache_file, dict(version=CACHE_VERSION, index=index.to_json(), probes=probes))
    except OSError:  # a read-only home or cache: the next scan reads the headers again, nothing else is lost
        pass


def scan_split(root: Path, ann: str, images: str, *, workers: int | None = None) -> SplitScan:
    """Check one json and its image folder (module notes).

    Args:
        root: The data root.
        ann: The json, relative to ``root`` (or absolute).
        images: The folder its ``file_name`` entries are relative to, relative to ``root``.
        workers: Threads reading headers; None: four per core, at most 16.

    Raises:
        DataRootError: The json cannot be read or is not a COCO json.
    """
    path, folder = Path(root) / ann, Path(root) / images
    digest = _digest(path)
    cache_file = _cache_file(digest, folder)
    cached = _read_cache(cache_file)
    if cached is None:
        coco = read_json(path, what="COCO annotations", error=DataRootError)
        cached = index_coco(coco, ann), {}
    index, known = cached
    names = [entry[1] for entry in index.images]
    probes, probed = probe_images(folder, names, known, workers)
    if probed:
        _write_cache(cache_file, index, probes)
    rel = images.rstrip("/") + "/"
    found = [p for e in index.images if (p := _image_problem(e, probes[e[1]], rel + e[1])) is not None]
    return SplitScan(ann, digest, len(index.images), index.annotations, [str(c[1]) for c in index.categories],
                     found + index.problems, index.far_areas, index.area_example, probed)


def check_label_order(scan: SplitScan, classes: Sequence[str]) -> None:
    """Fail when the job's classes are not the training json's categories in its order (module notes).

    Raises:
        DataRootError: The order differs; the message gives both.
    """
    wanted = set(classes)
    order = [name for name in scan.categories if name in wanted]
    if order != list(classes):
        raise DataRootError(
            f"{scan.ann}: the json lists the categories as {order}, the job names them {list(classes)}: MMDetection "
            "numbers labels in the json's order, so labels would carry other classes' names; reorder the json's "
            "categories"
        )


@dataclass
class DatasetCheck:
    """What a job's dataset check found and did.

    Attributes:
        layout: The layout the job reads (copies without the bad objects under ``--skip-bad``).
        scans: One scan per json (the evaluation json once when it is the training json).
        kept: Evaluation boxes that are degenerate or reach past their image: kept, the metric scores any box.
        skipped: Where the dropped objects are recorded (``--skip-bad`` with problems), else None.
    """

    layout: DatasetLayout
    scans: list[SplitScan]
    kept: list[DataProblem] = field(default_factory=list)
    skipped: Path | None = None

    @property
    def problems(self) -> list[DataProblem]:
        return [p for scan in self.scans for p in scan.problems]

    def notes(self, area_from_box: bool = False) -> list[str]:
        """One line per json checked, one per area note (the evaluation json's, which the metric reads)."""
        lines = []
        for scan in self.scans:
            counts = Counter(p.reason for p in scan.problems)
            found = ", ".join(f"{n} {r.replace('_', ' ')}" for r, n in sorted(counts.items())) or "no problem"
            cached = f"{scan.images - scan.probed:,} from the cache" if scan.probed < scan.images else "none cached"
            lines.append(f"data check {scan.ann}: {scan.images:,} images ({cached}), {scan.annotations:,} "
                         f"annotations: {found}")
        evaluation = self.scans[-1]
        if self.kept:
            lines.append(f"{evaluation.ann}: {len(self.kept):,} box(es) under 1 px or past their image's edge kept "
                         f"for the evaluation, which scores any box ({self.kept[0].detail})")
        if not area_from_box and (note := evaluation.area_note()) is not None:
            lines.append(note)
        if self.problems:
            done = f"dropped, recorded in {self.skipped}" if self.skipped else "to drop (a real run records them)"
            lines.append(f"--skip-bad: {len(self.problems):,} problem(s) {done}")
        return lines


def check_dataset(layout: DatasetLayout, *, skip_bad: bool = False, out: Path | None = None,
                  workers: int | None = None) -> DatasetCheck:
    """Check a job's dataset before the job starts (module notes).

    Args:
        layout: The dataset.
        skip_bad: Drop the bad images and annotations instead of stopping.
        out: Where ``--skip-bad`` writes the copies and ``skipped.json``; None (a dry run): nothing is written
            and the layout stays as it is.
        workers: Header-reading threads.

    Raises:
        DatasetCheckError: Problems, without ``skip_bad``: every one listed, a line each.
        DataRootError: An unreadable json, or classes that are not the training json's label order.
    """
    pairs = [(layout.train_ann, layout.train_img), (layout.test_ann, layout.test_img)]
    scans = [scan_split(layout.root, a, i, workers=workers) for a, i in dict.fromkeys(pairs)]
    check_label_order(scans[0], layout.classes)
    check = DatasetCheck(layout, scans)
    if len(scans) == 2:  # MMDetection drops such training boxes without a word; the metric scores them as they are
        evaluation = scans[1]
        check.kept = [p for p in evaluation.problems if p.reason in KEPT_FOR_EVALUATION]
        evaluation.problems = [p for p in evaluation.problems if p.reason not in KEPT_FOR_EVALUATION]
    if not check.problems:
        return check
    if not skip_bad:
        lines = [p.message() for p in check.problems]
        raise DatasetCheckError(f"{len(lines):,} problem(s) in the dataset at {layout.root} (--skip-bad drops them "
                                "and records them):\n  " + "\n  ".join(lines))
    if out is not None:
        check.layout, check.skipped = write_clean_copies(layout, scans, Path(out))
    return check


def clean_coco(coco: dict[str, Any], problems: Iterable[DataProblem]) -> dict[str, Any]:
    """A copy of a COCO json without the problems' images (with all their annotations) and annotations."""
    problems = list(problems)
    images = {pos for p in problems if p.whole_image for pos in p.positions}
    anns = {pos for p in problems if not p.whole_image for pos in p.positions}
    dropped_ids = {coco["images"][pos].get("id") for pos in images if isinstance(coco["images"][pos], dict)}
    kept_ids = {i.get("id") for k, i in enumerate(coco["images"]) if k not in images}
    keep_ann = [a for k, a in enumerate(coco["annotations"]) if k not in anns
                and not (a.get("image_id") in dropped_ids and a.get("image_id") not in kept_ids)]
    return dict(coco, images=[i for k, i in enumerate(coco["images"]) if k not in images], annotations=keep_ann)


def write_clean_copies(layout: DatasetLayout, scans: list[SplitScan], out: Path) -> tuple[DatasetLayout, Path]:
    """Write each json that has problems without them, and ``skipped.json``; returns the layout reading the copies
    (absolute paths) and the record's path."""
    copies = {}
    for scan in scans:
        if scan.problems:
            coco = read_json(layout.root / scan.ann, what="COCO annotations", error=DataRootError)
            copy = out / f"{Path(scan.ann).stem}.{scan.digest[:12]}.json"
            write_json(copy, clean_coco(coco, scan.problems))
            copies[scan.ann] = str(copy.resolve())
    record = out / "skipped.json"
    write_json(record, {scan.ann: [p.to_json() for p in scan.problems] for scan in scans if scan.problems}, indent=1)
    layout = dataclasses.replace(layout, train_ann=copies.get(layout.train_ann, layout.train_ann),
                                 test_ann=copies.get(layout.test_ann, layout.test_ann))
    return layout, record


__all__ = ("DataProblem", "DatasetCheck", "DatasetCheckError", "SplitScan", "check_dataset", "clean_coco",
           "scan_split")
