"""The last stage of the builder: the dataset's index files, assembled from the finished image records.

One function per output: the COCO document of each split (``annotations/{split}.json``, whose entries index
the window images and labels the workers wrote), ``manifest.jsonl`` (the fate of every source object),
``problems.jsonl`` and ``build.json`` (recipe, source, checksums of every input and output, counts). Images are
taken in build order and their windows in output order, so the files do not depend on how the work was
scheduled or resumed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .build_record import BuildRecord
from .io import atomic_write_text, json_text, jsonl_text
from .options import BuildOptions
from .problems import Problem, ProblemLog
from .resume import ImageRecord
from .sources import FATES, ObjectStatus, SourceImage, SourceObject
from .write import coco_document, sha256_bytes

logger = logging.getLogger(__name__)

Records = dict[tuple[str, str], ImageRecord]


@dataclass
class BuildInfo:
    """What ``build.json`` records besides counts and checksums."""

    version: str
    seed: int
    options: BuildOptions
    source: dict[str, object]
    workers: int


class _Checksums:
    """The sha256 of every output file and every input file, by path (relative to the output or DOTA root)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        self.outputs: dict[str, str] = {}
        self.inputs: dict[str, str] = {}

    def write(self, rel: str, text: str) -> None:
        """Write a text output atomically and record its checksum."""
        atomic_write_text(self.out_dir / rel, text)
        self.outputs[rel] = sha256_bytes(text.encode("utf-8"))


@dataclass
class _CocoSplit:
    """The COCO images and annotations of one split, numbered in the order they are added."""

    category_ids: dict[str, int]
    images: list[dict[str, object]] = field(default_factory=list)
    annotations: list[dict[str, object]] = field(default_factory=list)
    per_class: Counter = field(default_factory=Counter)

    def add(self, source: str, window: dict[str, object]) -> None:
        """One written image (``worker.UnitResult.windows`` record) of source image ``source``."""
        image_id = len(self.images) + 1
        self.images.append({
            "id": image_id,
            "file_name": f"{window['name']}.png",
            "width": window["width"],
            "height": window["height"],
            "source": source,
            "scale": window["scale"],
            "window": window["window"],
            "aug_copy": window["aug_copy"],
        })
        for obj in window["objects"]:
            self.annotations.append({
                "id": len(self.annotations) + 1,
                "image_id": image_id,
                "category_id": self.category_ids[obj["category"]],
                "bbox": obj["bbox"],
                "area": obj["area"],
                "segmentation": obj["segmentation"],
                "iscrowd": 0,
                "truncated": obj["truncated"],
                "difficult": obj["difficult"],
            })
            self.per_class[obj["category"]] += 1


def assemble(out_dir: Path, images: Sequence[SourceImage], records: Records, problems: ProblemLog,
             info: BuildInfo) -> dict[str, dict[str, object]]:
    """Write every index file of the dataset.

    Args:
        out_dir: The output folder, holding the window images and labels.
        images: The source images, in build order.
        records: The finished image records by ``(split, stem)``.
        problems: The input problems so far; decode failures recorded by the workers are added.
        info: Recipe, source and runtime for ``build.json``.

    Returns:
        ``build.json``'s per-split counts.
    """
    checksums = _Checksums(out_dir)
    manifest: list[dict[str, object]] = []
    counts = {}
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    for split in info.source["splits"]:
        part = [im for im in images if im.split == split]
        counts[split] = _write_split(split, part, records, problems, info.options, checksums, manifest)
    checksums.write("manifest.jsonl", jsonl_text(manifest))
    checksums.write("problems.jsonl", jsonl_text(p.to_dict() for p in problems.problems))
    write_build_json(out_dir, info, counts, problems, checksums)
    return counts


def _write_split(split: str, images: list[SourceImage], records: Records, problems: ProblemLog,
                 options: BuildOptions, checksums: _Checksums, manifest: list[dict[str, object]]) -> dict[str, object]:
    """Write ``annotations/{split}.json``, add the split's manifest rows; returns the split's counts."""
    coco = _CocoSplit({name: i + 1 for i, name in enumerate(options.classes)})
    rows: list[dict[str, object]] = []
    source_images = 0
    for image in images:
        record = records.get(image.key)
        checksums.inputs[image.label_rel] = image.label_sha256
        if record is not None and record.input_sha256:
            checksums.inputs[image.image_rel] = record.input_sha256
        decode_problem = _decode_problem(image, record, problems)
        source_images += image.size is not None and decode_problem is None
        for window in record.windows if record is not None else []:
            coco.add(image.stem, window)
            checksums.outputs[f"images/{split}/{window['name']}.png"] = window["png_sha256"]
            checksums.outputs[f"labelTxt/{split}/{window['name']}.txt"] = window["txt_sha256"]
        rows.extend(manifest_rows(image, record, decode_problem))
    _remove_strays(checksums.out_dir, split, {im["file_name"].removesuffix(".png") for im in coco.images})
    checksums.write(f"annotations/{split}.json", json_text(coco_document(options.classes, coco.images,
                                                                         coco.annotations)))
    manifest.extend(rows)
    fates = Counter(row["status"] for row in rows)
    return {
        "images": len(coco.images),
        "augmented_images": sum(1 for im in coco.images if im["aug_copy"]),
        "instances": len(coco.annotations),
        "source_images": source_images,
        "source_objects": {"total": len(rows), **{fate.value: fates[fate.value] for fate in FATES}},
        "instances_per_class": {name: coco.per_class[name] for name in options.classes},
    }


def _decode_problem(image: SourceImage, record: ImageRecord | None, problems: ProblemLog) -> str | None:
    """Report the image's decode problems (found by the workers); returns the first reason, None if decoded."""
    first = None
    for reason, detail in record.problems if record is not None else []:
        problems.add(Problem(image.image_rel, 0, reason, detail))
        first = first or reason
    return first


def manifest_rows(image: SourceImage, record: ImageRecord | None, decode_problem: str | None) -> list[dict[str, object]]:
    """One manifest row per object of ``image``, with its fate.

    Args:
        image: The source image.
        record: Its finished record; None when no task ran for it (a label file without image).
        decode_problem: Why the image could not be decoded, if it could not: its candidates are invalid.

    Returns:
        The rows, in label-file order.
    """
    kept_in: dict[int, list[str]] = {}
    for window in record.windows if record is not None else []:
        for obj in window["objects"]:
            kept_in.setdefault(obj["object"], []).append(window["name"])
    best_iof = record.best_iof if record is not None else {}
    rows = []
    for idx, obj in enumerate(image.objects):
        status, reason, extra = _fate(obj, idx, kept_in, best_iof, decode_problem)
        rows.append({
            "split": image.split,
            "image": image.stem,
            "label": image.label_rel,
            "line": obj.line,
            "category": obj.category,
            "status": status.value,
            "reason": reason,
            "windows": kept_in.get(idx, []),
            "problems": obj.notes,
            **extra,
        })
    return rows


def _fate(obj: SourceObject, idx: int, kept_in: dict[int, list[str]], best_iof: dict[int, float],
          decode_problem: str | None) -> tuple[ObjectStatus, str | None, dict[str, object]]:
    """The final status and reason of a source object (a candidate's depends on the windows)."""
    if obj.status is not ObjectStatus.CANDIDATE:
        return obj.status, obj.reason, {}
    if decode_problem is not None:
        return ObjectStatus.INVALID, decode_problem, {}
    if idx in kept_in:
        return ObjectStatus.KEPT, None, {}
    return ObjectStatus.DROPPED, "iof_below_threshold", {"best_iof": best_iof.get(idx, 0.0)}


def _remove_strays(out_dir: Path, split: str, names: set[str]) -> None:
    """Delete window files of ``split`` that this build did not write (left by an earlier, other build)."""
    for sub, suffix in (("images", ".png"), ("labelTxt", ".txt")):
        folder = out_dir / sub / split
        for path in sorted(folder.iterdir()) if folder.is_dir() else []:
            if path.name.endswith(suffix) and path.name.removesuffix(suffix) not in names:
                logger.warning("removing %s: not part of this build", path)
                path.unlink()


def write_build_json(out_dir: Path, info: BuildInfo, counts: dict[str, dict[str, object]], problems: ProblemLog,
                     checksums: _Checksums) -> None:
    """``build.json``: recipe, source, runtime, counts, problem counts and every checksum (paths sorted)."""
    BuildRecord(
        toolkit_version=info.version,
        seed=info.seed,
        options=info.options.to_dict(),
        source=info.source,
        runtime={"workers": info.workers},
        counts=counts,
        problems=problems.counts(),
        inputs=dict(sorted(checksums.inputs.items())),
        outputs=dict(sorted(checksums.outputs.items())),
    ).write(out_dir)
