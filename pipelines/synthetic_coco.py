"""A seeded synthetic tiny-object dataset in COCO format, for the smoke preset of the table runners.

Each image is a dark, mildly noisy background with a few bright, high-contrast objects of two classes:
filled squares (``box``, red) and filled discs (``disc``, green), 8-24 px by default, never overlapping.
They are easy on purpose: a short CPU schedule must learn them, so that a smoke run shows the whole
pipeline (training, evaluation, tables) working, not anything about the paper.

Layout written (the DOTAmini10 convention, see :mod:`pipelines.datasets`)::

    root/annotations/train.json   root/annotations/test.json
    root/images/train/000000.png  root/images/test/000000.png   (file_name = "000000.png")
    root/synthetic.json           (the spec that produced the set; a matching spec reuses it)

The same spec (seed included) gives byte-identical files: each image draws from its own generator
seeded by ``(seed, split, index)``.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import atomic_write_bytes, write_json

from .datasets import DatasetLayout, coco_split_layout
from .errors import PipelineError
from .presets import SyntheticSpec

CLASSES: tuple[str, ...] = ("box", "disc")
# BGR colours as OpenCV writes them: red boxes, green discs, both far from the dark background.
_COLOURS = {"box": (40, 40, 230), "disc": (60, 220, 60)}
_SPLITS = {"train": 0, "test": 1}


def place_footprints(
    rng: np.random.Generator, image_size: int, count: int, size_range: tuple[int, int], max_tries: int = 200
) -> list[tuple[int, int, int, int]]:
    """Non-overlapping square footprints ``(x, y, w, h)`` inside the image, in pixels.

    Args:
        rng: The image's random generator.
        image_size: Image side in pixels.
        count: Objects wanted; fewer are returned when the image is too crowded after ``max_tries``.
        size_range: Inclusive range of object sides.
        max_tries: Placement attempts per object.

    Returns:
        Footprints with a 2 px gap between any two (so their boxes never touch).
    """
    lo, hi = size_range
    boxes: list[tuple[int, int, int, int]] = []
    for _ in range(count):
        for _ in range(max_tries):
            side = int(rng.integers(lo, hi + 1))
            x = int(rng.integers(0, image_size - side + 1))
            y = int(rng.integers(0, image_size - side + 1))
            if all(
                x + side + 2 <= bx or bx + bw + 2 <= x or y + side + 2 <= by or by + bh + 2 <= y
                for bx, by, bw, bh in boxes
            ):
                boxes.append((x, y, side, side))
                break
    return boxes


def draw_image(
    rng: np.random.Generator, spec: SyntheticSpec
) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One synthetic image and its objects.

    Args:
        rng: The image's random generator.
        spec: Dataset shape.

    Returns:
        ``(image, objects)``: a ``(S, S, 3)`` uint8 BGR image and a list of ``(class index, (x, y, w, h))``
        whose boxes are the exact pixel extents of the drawn shapes.
    """
    size = spec.image_size
    image = rng.integers(10, 50, size=(size, size, 3), dtype=np.uint8)
    count = int(rng.integers(spec.objects_per_image[0], spec.objects_per_image[1] + 1))
    objects = []
    yy, xx = np.mgrid[0:size, 0:size]
    for x, y, w, h in place_footprints(rng, size, count, spec.object_size):
        cls = int(rng.integers(0, len(CLASSES)))
        colour = np.array(_COLOURS[CLASSES[cls]], dtype=np.uint8)
        if CLASSES[cls] == "box":
            image[y : y + h, x : x + w] = colour
        else:
            # Pixel centres within the inscribed circle: the disc touches all four sides of its box.
            r = w / 2.0
            inside = (xx + 0.5 - (x + r)) ** 2 + (yy + 0.5 - (y + r)) ** 2 <= r * r
            image[inside] = colour
        objects.append((cls, (x, y, w, h)))
    return image, objects


def _split_coco(spec: SyntheticSpec, split: str, count: int) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    import cv2

    images, annotations, files = [], [], []
    for index in range(count):
        rng = np.random.default_rng([spec.seed, _SPLITS[split], index])
        image, objects = draw_image(rng, spec)
        name = f"{index:06d}.png"
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise PipelineError(f"synthetic dataset: PNG encoding failed for {split}/{name}")
        files.append((name, encoded.tobytes()))
        image_id = index + 1
        images.append(dict(id=image_id, file_name=name, width=spec.image_size, height=spec.image_size))
        for cls, (x, y, w, h) in objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=cls + 1,
                    bbox=[x, y, w, h],
                    area=w * h,
                    iscrowd=0,
                )
            )
    coco = dict(
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=name) for i, name in enumerate(CLASSES)],
    )
    return coco, files


def write_synthetic_coco(root: Path, spec: SyntheticSpec) -> DatasetLayout:
    """Write the synthetic dataset under ``root`` (reusing it when ``root/synthetic.json`` matches ``spec``).

    Args:
        root: Output folder.
        spec: Dataset shape and seed.

    Returns:
        The dataset's layout (train split ``train``, evaluation split ``test``).

    Raises:
        PipelineError: The spec cannot produce a dataset (e.g. objects larger than the image).
    """
    if spec.num_train < 1 or spec.num_test < 1:
        raise PipelineError(f"synthetic dataset needs >= 1 train and test image, got {spec.num_train}/{spec.num_test}")
    lo, hi = spec.object_size
    if not 1 <= lo <= hi <= spec.image_size:
        raise PipelineError(f"synthetic object_size {spec.object_size} must lie within 1..{spec.image_size}")
    if not 0 <= spec.objects_per_image[0] <= spec.objects_per_image[1]:
        raise PipelineError(f"synthetic objects_per_image {spec.objects_per_image} is not a range")
    root = Path(root)
    marker = root / "synthetic.json"
    wanted = json.dumps(dict(asdict(spec), classes=list(CLASSES)), sort_keys=True)
    if marker.is_file() and marker.read_text(encoding="utf-8") == wanted:
        return coco_split_layout(root, "synthetic", CLASSES, train_split="train", test_split="test")
    marker.unlink(missing_ok=True)
    for split, count in (("train", spec.num_train), ("test", spec.num_test)):
        coco, files = _split_coco(spec, split, count)
        for name, data in files:
            atomic_write_bytes(root / "images" / split / name, data, make_parents=True)
        write_json(root / "annotations" / f"{split}.json", coco)
    # Written last: its presence means every file above is complete.
    atomic_write_bytes(marker, wanted.encode("utf-8"), make_parents=True)
    return coco_split_layout(root, "synthetic", CLASSES, train_split="train", test_split="test")
