"""The COCO json a slice reads, checked before any work starts.

The document's structure (``images``, ``annotations`` and ``categories`` lists; each image an integer or string
``id``, a ``file_name`` and positive integer ``width`` and ``height``; each category an integer ``id`` and a
``name``) is required: a defect there is one :class:`DatasetError` naming the file and the entry, and so are two
images whose windows would have the same names (one ``file_name`` listed twice, or ``a.jpg`` beside ``a.png``). An
annotation that cannot be used (no four-number ``bbox``, an image id or category id that is not one of the json's,
negative size) is a ``bad_annotation`` problem and the slice goes on; so are zero-area boxes (``degenerate_box``).
A box reaching outside its image is clipped to it (``outside_image``). ``iscrowd`` or ``ignore`` set makes an
annotation an ignore area, carried through as one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DatasetError
from ..io import is_coco_id, is_int, is_number, read_json
from ..problems import Problem
from .task import window_stem

#: Annotation flags carried from the input to every window copy of the annotation, when present.
CARRIED_FLAGS: tuple[str, ...] = ("iscrowd", "ignore")


@dataclass
class SourceAnnotation:
    """One input annotation and what the slice does with it.

    Attributes:
        ann_id: Its ``id``.
        category_id: Its ``category_id`` (None when unusable).
        flags: The :data:`CARRIED_FLAGS` it has, with their values.
        ignore: It is an ignore area (``iscrowd`` or ``ignore`` set).
        reason: Why it is unusable (a problem reason), None when usable.
        notes: Non-fatal problems (``outside_image``).
    """

    ann_id: Any
    category_id: int | None
    flags: dict[str, Any] = field(default_factory=dict)
    ignore: bool = False
    reason: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class SourceImage:
    """One input image with its annotations.

    Attributes:
        index: Its position in the json's ``images`` (the output order).
        image_id: Its ``id``.
        file_name: Its ``file_name`` (relative to ``--images``).
        width: Width from the json.
        height: Height from the json.
        path: The image file.
        annotations: Its annotations in json order.
        boxes: ``[x0, y0, x1, y1]`` of every annotation, clipped to the image (NaN rows for unusable ones),
            shape (N, 4).
    """

    index: int
    image_id: Any
    file_name: str
    width: int
    height: int
    path: Path
    annotations: list[SourceAnnotation] = field(default_factory=list)
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))

    @property
    def usable(self) -> np.ndarray:
        """Indices of the annotations the slice assigns to windows, shape (K,)."""
        return np.array([i for i, a in enumerate(self.annotations) if a.reason is None], dtype=np.int64)


@dataclass
class SliceSource:
    """A checked COCO json.

    Attributes:
        ann_path: The json.
        images_dir: The folder ``file_name`` is relative to.
        categories: The json's ``categories``, as given (the output carries them unchanged).
        images: Its images in json order.
        orphans: Annotations naming an image the json does not list.
    """

    ann_path: Path
    images_dir: Path
    categories: list[dict[str, Any]]
    images: list[SourceImage]
    orphans: list[SourceAnnotation] = field(default_factory=list)


def read_coco_source(ann_path: Path, images_dir: Path, problems: list[Problem]) -> SliceSource:
    """Read and check a COCO detection json.

    Args:
        ann_path: The json.
        images_dir: The folder its ``file_name`` entries are relative to.
        problems: Where annotation problems go (file: the json; detail: the annotation id).

    Returns:
        The source.

    Raises:
        DatasetError: The json is missing or unreadable, or its structure is not COCO's (see the module notes).
    """
    ann_path = Path(ann_path)
    data = read_json(ann_path, what="COCO annotation file", error=DatasetError)
    if not isinstance(data, dict):
        raise DatasetError(f"{ann_path}: expected a JSON object with images, annotations and categories")
    for key in ("images", "annotations", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{ann_path}: '{key}' is missing or not a list")
    categories = _categories(ann_path, data["categories"])
    images = _images(ann_path, data["images"], Path(images_dir))
    by_id = {image.image_id: image for image in images}
    orphans: list[SourceAnnotation] = []
    rows: dict[Any, list[np.ndarray]] = {image.image_id: [] for image in images}
    for index, ann in enumerate(data["annotations"]):
        image_id = ann.get("image_id") if isinstance(ann, dict) else None
        image = by_id.get(image_id) if is_coco_id(image_id) else None
        record, box = _annotation(ann_path, index, ann, image, categories, problems)
        if image is None:
            orphans.append(record)
            continue
        image.annotations.append(record)
        rows[image.image_id].append(box)
    for image in images:
        image.boxes = np.array(rows[image.image_id], dtype=np.float64).reshape(-1, 4)
    return SliceSource(ann_path, Path(images_dir), data["categories"], images, orphans)


def _categories(path: Path, entries: list[Any]) -> set[int]:
    ids: set[int] = set()
    for index, cat in enumerate(entries):
        if not isinstance(cat, dict) or not is_int(cat.get("id")) or not isinstance(cat.get("name"), str):
            raise DatasetError(f"{path}: categories[{index}] needs an integer 'id' and a string 'name'")
        if cat["id"] in ids:
            raise DatasetError(f"{path}: categories[{index}]: category id {cat['id']} is listed twice")
        ids.add(cat["id"])
    return ids


def _images(path: Path, entries: list[Any], images_dir: Path) -> list[SourceImage]:
    images: list[SourceImage] = []
    seen: set[Any] = set()
    stems: dict[str, tuple[Any, str]] = {}  # window name stem -> the (id, file_name) that gives it
    for index, entry in enumerate(entries):
        where = f"{path}: images[{index}]"
        if not (isinstance(entry, dict) and is_coco_id(entry.get("id"))
                and isinstance(entry.get("file_name"), str)):
            raise DatasetError(f"{where} needs an integer or string 'id' and a string 'file_name'")
        if entry["id"] in seen:
            raise DatasetError(f"{where}: image id {entry['id']} is listed twice")
        width, height = entry.get("width"), entry.get("height")
        if not (is_int(width) and is_int(height) and width > 0 and height > 0):
            raise DatasetError(f"{where} (id {entry['id']}): 'width' and 'height' must be positive integers, "
                               f"got {width!r}, {height!r}")
        name = entry["file_name"]
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise DatasetError(f"{where} (id {entry['id']}): file_name {name!r} must be relative to --images")
        _check_stem(where, entry["id"], name, stems)
        seen.add(entry["id"])
        images.append(SourceImage(index, entry["id"], name, width, height, images_dir / name))
    return images


def _check_stem(where: str, image_id: Any, name: str, stems: dict[str, tuple[Any, str]]) -> None:
    """Refuse a ``file_name`` whose windows would take another image's names (``a.jpg`` beside ``a.png``, or one
    file listed under two ids): one image's windows would overwrite the other's."""
    stem = window_stem(name)
    if stem in stems:
        other_id, other_name = stems[stem]
        if other_name == name:
            raise DatasetError(f"{where} (id {image_id}): file_name {name!r} is listed again, first as image id "
                               f"{other_id}; each file may be listed once")
        raise DatasetError(f"{where} (id {image_id}): file_name {name!r} and {other_name!r} (image id {other_id}) "
                           f"would give the same window names {stem}__*.png; rename one")
    stems[stem] = (image_id, name)


_NAN_BOX = np.full(4, np.nan)


def _annotation(path: Path, index: int, ann: Any, image: SourceImage | None, categories: set[int],
                problems: list[Problem]) -> tuple[SourceAnnotation, np.ndarray]:
    """The annotation's record and its box ``[x0, y0, x1, y1]`` clipped to its image (NaN when unusable)."""
    if not isinstance(ann, dict):
        problems.append(Problem(str(path), 0, "bad_annotation", f"annotations[{index}] is not an object"))
        return SourceAnnotation(None, None, reason="bad_annotation"), _NAN_BOX
    ann_id = ann.get("id", f"annotations[{index}]")
    flags = {k: ann[k] for k in CARRIED_FLAGS if k in ann}
    record = SourceAnnotation(ann_id, ann.get("category_id"), flags, ignore=any(bool(v) for v in flags.values()))

    def fail(reason: str, detail: str) -> tuple[SourceAnnotation, np.ndarray]:
        problems.append(Problem(str(path), 0, reason, f"annotation {ann_id}: {detail}"))
        record.reason = reason
        return record, _NAN_BOX

    box = ann.get("bbox")
    if not is_coco_id(ann.get("image_id")):
        return fail("bad_annotation", f"image_id {ann.get('image_id')!r:.80} is not an integer or a string")
    if image is None:
        return fail("bad_annotation", f"image_id {ann.get('image_id')!r} is not in 'images'")
    if not is_int(record.category_id) or record.category_id not in categories:
        return fail("bad_annotation", f"category_id {record.category_id!r} is not in 'categories'")
    if not (isinstance(box, list) and len(box) == 4 and all(is_number(v) for v in box)):
        return fail("bad_annotation", f"bbox {box!r:.80} is not four numbers")
    x, y, w, h = (float(v) for v in box)
    if w < 0 or h < 0:
        return fail("bad_annotation", f"bbox {box} has a negative size")
    if w * h == 0:
        return fail("degenerate_box", f"bbox {box} has zero area")
    clipped = np.array([max(x, 0.0), max(y, 0.0), min(x + w, image.width), min(y + h, image.height)])
    if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
        return fail("outside_image", f"bbox {box} lies outside the {image.width} x {image.height} image")
    if (clipped != [x, y, x + w, y + h]).any():
        problems.append(Problem(str(path), 0, "outside_image", f"annotation {ann_id}: bbox {box} clipped to the "
                                f"{image.width} x {image.height} image"))
        record.notes.append("outside_image")
    return record, clipped
