"""VisDrone-DET text annotations to one COCO json (``hsfpn-data convert visdrone``).

A VisDrone-DET split (``VisDrone2019-DET-train/``) holds ``images/{name}.jpg`` and ``annotations/{name}.txt``, one
object per line: ``left,top,width,height,score,category,truncation,occlusion``. Categories 1-10 are the objects
(pedestrian ... motor); 0 marks an "ignored region" and 11 "others", and VisDrone's own evaluation ignores both, as
it ignores a line whose score is 0.

Such lines become **ignore areas, not objects**: annotations with ``iscrowd`` 1 and ``ignore`` 1, written once for
each of the ten categories, so that COCO evaluation (crowd regions are matched per category) and MMDetection
(``iscrowd`` becomes an ignore flag) both ignore detections there whatever their class. Objects keep their
category id (1-10), and every annotation carries ``truncation`` and ``occlusion``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DatasetError
from .io import write_json
from .read import IMAGE_SUFFIXES, ImageProbeError, probe_image

#: VisDrone-DET's object categories, ids 1..10.
VISDRONE_CLASSES: tuple[str, ...] = (
    "pedestrian", "people", "bicycle", "car", "van", "truck", "tricycle", "awning-tricycle", "bus", "motor",
)
#: Categories that are not objects: 0 "ignored regions", 11 "others".
IGNORED_CATEGORIES: dict[int, str] = {0: "ignored region", 11: "others"}


@dataclass(frozen=True)
class VisDroneSummary:
    """What a conversion wrote.

    Attributes:
        out: The json.
        images: Images.
        objects: Object annotations.
        ignore_regions: Ignore areas of the input (each written once per category).
        per_class: Objects per category name.
    """

    out: Path
    images: int
    objects: int
    ignore_regions: int
    per_class: dict[str, int]


def parse_visdrone_line(line: str, *, file: str, number: int) -> tuple[list[float], int, int, int, int] | None:
    """One annotation line: ``(bbox [x, y, w, h], score, category, truncation, occlusion)``; None for a blank line.

    Raises:
        DatasetError: ``file:number: ...`` for a line without 8 numbers (a trailing comma is allowed), a negative
            size or an unknown category.
    """
    text = line.strip().rstrip(",")
    if not text:
        return None
    fields = [f.strip() for f in text.split(",")]
    if len(fields) != 8:
        raise DatasetError(f"{file}:{number}: expected 8 comma-separated numbers, got {len(fields)}")
    try:
        x, y, w, h = (float(v) for v in fields[:4])
        score, category, truncation, occlusion = (int(v) for v in fields[4:])
    except ValueError:
        raise DatasetError(f"{file}:{number}: not a number in {text!r:.80}") from None
    if w < 0 or h < 0:
        raise DatasetError(f"{file}:{number}: negative box size {w} x {h}")
    if not 0 <= category <= 11:
        raise DatasetError(f"{file}:{number}: category {category} is not a VisDrone-DET category (0-11)")
    return [x, y, w, h], score, category, truncation, occlusion


def convert_visdrone(root: Path, out: Path) -> VisDroneSummary:
    """Convert one VisDrone-DET split to a COCO json (rules in the module notes).

    Args:
        root: The split folder, holding ``images/`` and ``annotations/``.
        out: The json to write (atomically); ``file_name`` entries are relative to ``root/images``.

    Returns:
        The summary.

    Raises:
        DatasetError: A folder is missing, an image has no annotation file or the reverse, an image header or an
            annotation file is unreadable, or a line is malformed (file and line named).
    """
    root = Path(root)
    images_dir, labels_dir = root / "images", root / "annotations"
    for folder in (images_dir, labels_dir):
        if not folder.is_dir():
            raise DatasetError(f"--root: {folder} not found (a VisDrone-DET split has images/ and annotations/)")
    images = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    labels = {p.stem: p for p in labels_dir.glob("*.txt")}
    orphans = sorted(set(labels) - {p.stem for p in images})
    if orphans:
        raise DatasetError(f"{labels[orphans[0]]}: annotation file without an image in {images_dir} "
                           f"({len(orphans)} such files)")
    coco_images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    regions = 0
    per_class = dict.fromkeys(VISDRONE_CLASSES, 0)
    for image_id, path in enumerate(images, start=1):
        label = labels.get(path.stem)
        if label is None:
            raise DatasetError(f"{path}: image without an annotation file {labels_dir / (path.stem + '.txt')}")
        try:
            info = probe_image(path)
        except ImageProbeError as exc:
            raise DatasetError(f"{path}: {exc.reason}: {exc.detail}") from None
        coco_images.append({"id": image_id, "file_name": path.name, "width": info.width, "height": info.height})
        for number, line in enumerate(_read_label(label).splitlines(), start=1):
            parsed = parse_visdrone_line(line, file=str(label), number=number)
            if parsed is None:
                continue
            box, score, category, truncation, occlusion = parsed
            extra = {"truncation": truncation, "occlusion": occlusion}
            if category in IGNORED_CATEGORIES or score == 0:
                regions += 1
                for cat_id in range(1, len(VISDRONE_CLASSES) + 1):
                    annotations.append(_entry(len(annotations) + 1, image_id, cat_id, box, crowd=True, **extra))
                continue
            per_class[VISDRONE_CLASSES[category - 1]] += 1
            annotations.append(_entry(len(annotations) + 1, image_id, category, box, crowd=False, **extra))
    categories = [{"id": i + 1, "name": name, "supercategory": "visdrone"} for i, name in enumerate(VISDRONE_CLASSES)]
    write_json(out, {"images": coco_images, "annotations": annotations, "categories": categories})
    return VisDroneSummary(Path(out), len(coco_images), sum(per_class.values()), regions, per_class)


def _read_label(path: Path) -> str:
    """A label file's text; a file that is unreadable or not UTF-8 is a one-line error naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: annotation file is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read the annotation file ({exc.strerror or exc})") from None


def _entry(ann_id: int, image_id: int, category_id: int, box: list[float], *, crowd: bool,
           **extra: int) -> dict[str, Any]:
    x, y, w, h = box
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": box, "area": w * h,
            "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]], "iscrowd": int(crowd), "ignore": int(crowd),
            **extra}
