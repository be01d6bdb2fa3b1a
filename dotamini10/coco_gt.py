"""Full-image COCO ground truth from a DOTA split: ``hsfpn-data coco-gt``.

Every valid object of the chosen classes becomes one annotation whose box is the horizontal box of its polygon,
clipped to the image, with ``area = w * h``; its difficult flag is kept (``difficult``), ``iscrowd`` is 0.
Objects partly outside the image are kept (clipped) and reported; objects wholly outside, invalid label lines
and labels without an image are reported and not annotated; images without a label file are kept with no
annotations. Image sizes come from the image headers (no decoding). Images get ids 1..N in name order and
categories ids 1..K in class order, so equal inputs give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .classes import DOTAMINI10_CLASSES, check_class_list
from .errors import DatasetError
from .io import write_json
from .problems import Problem
from .read import ImageProbeError, SplitSource, pair_files, probe_image, read_label_file


@dataclass
class CocoGtSummary:
    """What :func:`write_coco_gt` wrote and found.

    Attributes:
        out: The JSON written.
        images: Images in the file.
        annotations: Annotations written, per class.
        partly_outside: ``file:line`` of every kept object that reached outside its image.
        problems: Objects or files not annotated, with the reason (invalid lines, wholly outside, no image).
        other_classes: Valid objects of classes not asked for.
    """

    out: Path
    images: int = 0
    annotations: dict[str, int] = field(default_factory=dict)
    partly_outside: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    other_classes: int = 0


def split_source(dota_root: Path, split: str | None = None) -> SplitSource:
    """The ``images/`` and ``labelTxt/`` folders of a split folder, or of ``dota_root/split``.

    Raises:
        DatasetError: The folders are missing.
    """
    root = Path(dota_root) / split if split else Path(dota_root)
    images, labels = root / "images", root / "labelTxt"
    if not images.is_dir() or not labels.is_dir():
        where = f"--dota-root {dota_root}" + (f" --split {split}" if split else "")
        raise DatasetError(f"{where}: expected images/ and labelTxt/ in {root}")
    return SplitSource(split or root.name, images, labels)


def coco_ground_truth(source: SplitSource, classes: Sequence[str] = DOTAMINI10_CLASSES) -> tuple[dict, CocoGtSummary]:
    """Build the COCO dict of one split (rules in the module notes).

    Returns:
        ``(coco, summary)``; ``summary.out`` is unset.
    """
    classes = check_class_list(classes, name="--classes")
    category = {name: k + 1 for k, name in enumerate(classes)}
    summary = CocoGtSummary(out=Path(), annotations={c: 0 for c in classes})
    pairs, notes = pair_files(source)
    summary.problems += [Problem(str(p), 0, reason, detail) for p, reason, detail in notes]
    images, annotations = [], []
    for pair in pairs:
        if pair.image is None:
            summary.problems.append(Problem(str(pair.label), 0, "label_without_image", "not annotated"))
            continue
        try:
            info = probe_image(pair.image)
        except ImageProbeError as exc:
            summary.problems.append(Problem(str(pair.image), 0, exc.reason, exc.detail))
            continue
        image_id = len(images) + 1
        images.append(dict(id=image_id, file_name=pair.image.name, width=info.width, height=info.height))
        if pair.label is not None:
            annotations += _image_annotations(pair.label, image_id, (info.width, info.height), category,
                                              len(annotations), summary)
    coco = dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=k, name=name, supercategory="dota") for name, k in category.items()],
    )
    summary.images = len(images)
    return coco, summary


def _image_annotations(label: Path, image_id: int, size: tuple[int, int], category: dict[str, int],
                       first_id: int, summary: CocoGtSummary) -> list[dict]:
    parsed = read_label_file(label)
    summary.problems += parsed.problems
    width, height = size
    out = []
    for k, name in enumerate(parsed.categories):
        if parsed.invalid[k] is not None:
            continue
        if name not in category:
            summary.other_classes += 1
            continue
        line = int(parsed.lines[k])
        coords = parsed.coords[k]
        lo, hi = coords.min(axis=0), coords.max(axis=0)
        x1, y1 = max(float(lo[0]), 0.0), max(float(lo[1]), 0.0)
        x2, y2 = min(float(hi[0]), float(width)), min(float(hi[1]), float(height))
        if x2 <= x1 or y2 <= y1:
            summary.problems.append(Problem(str(label), line, "outside_image",
                                            "wholly outside the image: not annotated"))
            continue
        if lo[0] < 0 or lo[1] < 0 or hi[0] > width or hi[1] > height:
            summary.partly_outside.append(f"{label}:{line}")
        w, h = x2 - x1, y2 - y1
        out.append(dict(
            id=first_id + len(out) + 1, image_id=image_id, category_id=category[name],
            bbox=[x1, y1, w, h], area=w * h, iscrowd=0, difficult=int(parsed.difficult[k]),
            segmentation=[np.round(coords.reshape(-1), 3).tolist()],
        ))
        summary.annotations[name] += 1
    return out


def write_coco_gt(
    dota_root: Path, out: Path, *, classes: Sequence[str] = DOTAMINI10_CLASSES, split: str | None = None
) -> CocoGtSummary:
    """``hsfpn-data coco-gt``: write the full-image COCO ground truth of a DOTA split, atomically.

    Args:
        dota_root: A split folder (``images/`` + ``labelTxt/``), or a release root with ``split``.
        out: The JSON to write.
        classes: Classes to annotate, in category-id order. Defaults to the ten DOTAmini10 classes.
        split: Split folder name under a release root (``train``, ``val``).

    Returns:
        The summary (counts, partly-outside objects, problems).

    Raises:
        DatasetError: Missing folders or an unknown class.
    """
    coco, summary = coco_ground_truth(split_source(dota_root, split), classes)
    write_json(Path(out), coco)
    summary.out = Path(out)
    return summary
