"""The last step of an AI-TOD build: the annotation jsons against the output folder.

Every image a json names must exist under ``images/{split}/`` with the json's width and height (read from the
file's header), and every annotation must name one of the json's images and its box lie inside that image. The
same pass counts each split's images, instances, instances per class and object sizes (s = sqrt(w * h) of the box,
AI-TOD's measure).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..problems import Problem
from ..read import ImageProbeError, probe_image
from ..io import is_coco_id, is_int, is_number
from .lists import SPLITS

# Box coordinates within this of an image edge count as inside it (float text of the jsons).
EDGE_TOLERANCE = 1e-6


@dataclass
class SplitCheck:
    """What one json's verification found.

    Attributes:
        split: The json's split (None when its name holds none: its images are looked for in every split).
        json: The json's path relative to the output root.
        images: Images it names.
        instances: Annotations it holds.
        per_class: Annotations per category name, in category id order.
        size_sum: Sum of s = sqrt(w * h) over its boxes.
        missing: Images not in the output.
        size_mismatches: Images whose header size differs from the json's.
        boxes_outside: Annotation boxes reaching outside their image.
        annotations_without_image: Annotations whose ``image_id`` names no image of the json.
        parsed: False when the json could not be read as a COCO document (nothing else is then known).
    """

    split: str | None
    json: str
    images: int = 0
    instances: int = 0
    per_class: dict[str, int] = field(default_factory=dict)
    size_sum: float = 0.0
    missing: int = 0
    size_mismatches: int = 0
    boxes_outside: int = 0
    annotations_without_image: int = 0
    parsed: bool = True

    @property
    def complete(self) -> bool:
        """Every named image is present at its size and every box lies inside its image."""
        return self.parsed and not (self.missing or self.size_mismatches or self.boxes_outside
                                    or self.annotations_without_image)

    def to_dict(self) -> dict[str, Any]:
        """``build.json``'s view of the check."""
        mean = self.size_sum / self.instances if self.instances else None
        return {"json": self.json, "images": self.images, "instances": self.instances,
                "instances_per_class": self.per_class, "mean_size": None if mean is None else round(mean, 4),
                "missing": self.missing, "size_mismatches": self.size_mismatches,
                "boxes_outside": self.boxes_outside, "annotations_without_image": self.annotations_without_image,
                "parsed": self.parsed}


def verify_json(path: Path, split: str | None, out_dir: Path, provided: set[str], problems: list[Problem]) -> SplitCheck:
    """Check one annotation json against the output folder.

    Args:
        path: The json as copied into ``out_dir/annotations/``.
        split: Its split (its images are in ``out_dir/images/{split}/``); None looks in every split's folder.
        out_dir: The output root.
        provided: The images some input provides for this split (AI-TOD_wo_xview files and listed windows): a
            missing image outside this set is reported as ``image_not_provided``, one inside as ``image_missing``.
        problems: Where the findings go, one per image or box, naming the json and the image.

    Returns:
        The check's counts.
    """
    rel = path.relative_to(out_dir).as_posix()
    check = SplitCheck(split, rel)
    document = _read_document(path, rel, problems)
    if document is None:
        check.parsed = False
        return check
    categories = {c["id"]: c["name"] for c in sorted(document["categories"], key=lambda c: c["id"])}
    check.per_class = dict.fromkeys(categories.values(), 0)
    folders = [out_dir / "images" / s for s in ([split] if split else SPLITS)]
    sizes: dict[Any, tuple[int, int]] = {}
    for image in document["images"]:
        check.images += 1
        sizes[image["id"]] = (image["width"], image["height"])
        _check_image(image, folders, provided, rel, check, problems)
    names = {image["id"]: image["file_name"] for image in document["images"]}
    per_class: Counter = Counter()
    for ann in document["annotations"]:
        check.instances += 1
        per_class[categories.get(ann["category_id"], str(ann["category_id"]))] += 1
        x, y, w, h = ann["bbox"]
        check.size_sum += math.sqrt(max(w, 0) * max(h, 0))
        if ann["image_id"] not in sizes:
            check.annotations_without_image += 1
            problems.append(Problem(rel, 0, "annotation_without_image", f"annotation {ann.get('id')}: image_id "
                                    f"{ann['image_id']!r} names no image of this json"))
            continue
        width, height = sizes[ann["image_id"]]
        tol = EDGE_TOLERANCE
        if x < -tol or y < -tol or x + w > width + tol or y + h > height + tol:
            check.boxes_outside += 1
            problems.append(Problem(rel, 0, "box_outside_image", f"annotation {ann.get('id')}: bbox {ann['bbox']} on "
                                    f"{names.get(ann['image_id'])} ({width} x {height})"))
    check.per_class = {**check.per_class, **per_class}
    return check


def _check_image(image: dict[str, Any], folders: list[Path], provided: set[str], rel: str, check: SplitCheck,
                 problems: list[Problem]) -> None:
    name = image["file_name"]
    found = next((folder / name for folder in folders if (folder / name).is_file()), None)
    if found is None:
        check.missing += 1
        reason = "image_missing" if name in provided else "image_not_provided"
        problems.append(Problem(rel, 0, reason, name))
        return
    try:
        info = probe_image(found)
    except ImageProbeError as exc:
        check.size_mismatches += 1
        problems.append(Problem(rel, 0, "size_mismatch", f"{name}: {exc.reason}: {exc.detail}"))
        return
    if (info.width, info.height) != (image["width"], image["height"]):
        check.size_mismatches += 1
        problems.append(Problem(rel, 0, "size_mismatch", f"{name} is {info.width} x {info.height}, the json says "
                                f"{image['width']} x {image['height']}"))


def _read_document(path: Path, rel: str, problems: list[Problem]) -> dict[str, Any] | None:
    """The COCO document, its entries checked for the fields the verification reads; None after a problem."""
    try:
        with open(path, "rb") as f:
            document = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        problems.append(Problem(rel, 0, "unparsable_json", str(exc).splitlines()[0][:200]))
        return None
    error = _shape_error(document)
    if error is not None:
        problems.append(Problem(rel, 0, "unparsable_json", error))
        return None
    return document


def _shape_error(document: Any) -> str | None:
    if not isinstance(document, dict):
        return "not a JSON object"
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            return f"'{key}' is missing or not a list"
    for index, cat in enumerate(document["categories"]):
        if not isinstance(cat, dict) or not is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            return f"categories[{index}] needs an integer 'id' and a string 'name'"
    for index, image in enumerate(document["images"]):
        if not (isinstance(image, dict) and is_coco_id(image.get("id")) and isinstance(image.get("file_name"), str)
                and is_int(image.get("width")) and is_int(image.get("height"))):
            return (f"images[{index}] needs an integer or string 'id', a string 'file_name' and integer 'width' and "
                    "'height'")
    for index, ann in enumerate(document["annotations"]):
        box = ann.get("bbox") if isinstance(ann, dict) else None
        if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)
                and is_coco_id(ann.get("image_id")) and is_int(ann.get("category_id"))):
            return (f"annotations[{index}] needs an integer or string 'image_id', an integer 'category_id' and a "
                    "'bbox' of four numbers")
    return None
