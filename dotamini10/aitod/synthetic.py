"""A small AI-TOD-shaped source made from a seed: xView-like tifs, the four lists, AI-TOD_wo_xview and its jsons.

For tests, benchmarks and the demo data card; nothing in it comes from AI-TOD or xView. Layout under ``root``:
``xview/train_images/{id}.tif``, ``lists/aitod_xview_{split}.txt``, ``aitod/images/{split}/*.png`` and
``aitod/annotations/aitod_{split}_v1.json`` (train, val, trainval, test: the release's names).

Each tif's every official window goes to one split (train, val or test; train and val windows are also in
trainval, as in AI-TOD), and each split gets a few 800 x 800 AI-TOD_wo_xview images. Every image holds a few
tiny boxes (4-24 px) inside it, with the AI-TOD classes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classes import AITOD_CLASSES
from ..errors import DatasetError
from ..io import atomic_write_bytes, atomic_write_text
from .lists import LIST_NAME, SPLITS
from .official import SUBSIZE, official_origins

#: (xview id, width, height, split, LZW-compressed) of the default tifs: one smaller than a window, one whose
#: width puts the flush window before the one beside it (1,300 = 2 x 600 + 100), one plain.
DEFAULT_TIFS: tuple[tuple[str, int, int, str, bool], ...] = (
    ("11", 700, 650, "val", False),
    ("12", 1300, 1000, "train", True),
    ("13", 1500, 1200, "test", False),
)


@dataclass(frozen=True)
class SyntheticAitod:
    """Paths of a synthetic source.

    Attributes:
        root: Its root.
        xview: The ``--xview`` folder.
        aitod: The ``--aitod`` folder.
        lists: The ``--lists`` folder.
        rgb: Per xView id, the tif's pixels in RGB order (what skimage would read).
    """

    root: Path
    xview: Path
    aitod: Path
    lists: Path
    rgb: dict[str, np.ndarray]


def tif_pixels(width: int, height: int, seed: int) -> np.ndarray:
    """RGB pixels of a synthetic tif: gradients (different in each channel) plus noise, shape (H, W, 3), uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx * 255 // max(width, 1), yy * 255 // max(height, 1), (xx // 3 + yy // 5) % 256], axis=-1)
    return (image + rng.integers(0, 24, image.shape)).clip(0, 255).astype(np.uint8)


def write_tif(path: Path, rgb: np.ndarray, *, lzw: bool = False) -> None:
    """Write RGB pixels as a 3-channel 8-bit TIFF, uncompressed or LZW (OpenCV's encoder, which takes BGR),
    atomically."""
    import cv2

    compression = 5 if lzw else 1  # TIFF's codes: 1 none, 5 LZW
    _write_encoded(path, ".tif", np.ascontiguousarray(rgb[..., ::-1]), [cv2.IMWRITE_TIFF_COMPRESSION, compression])


def _write_encoded(path: Path, suffix: str, pixels: np.ndarray, params: list[int]) -> None:
    """Encode with OpenCV (the bytes ``cv2.imwrite`` writes) and write them atomically."""
    import cv2

    ok, data = cv2.imencode(suffix, pixels, params)
    if not ok:
        raise OSError(f"{path}: OpenCV could not encode the {suffix[1:].upper()}")
    atomic_write_bytes(path, data.tobytes())


def write_synthetic_aitod(
    root: Path, *, seed: int = 0, tifs: tuple[tuple[str, int, int, str, bool], ...] = DEFAULT_TIFS,
    wo_xview_per_split: int = 2, boxes_per_image: int = 3,
) -> SyntheticAitod:
    """Write a synthetic AI-TOD source under ``root``.

    Args:
        root: Output folder (created).
        seed: Seed of every pixel and box.
        tifs: ``(xview_id, width, height, split, lzw)`` per tif; the split is train, val or test.
        wo_xview_per_split: AI-TOD_wo_xview images per split of train, val, test (trainval gets train's and val's).
        boxes_per_image: Boxes per image in the jsons.

    Returns:
        The paths (and each tif's RGB pixels).

    Raises:
        DatasetError: A folder or file cannot be written (named). Every file is written atomically, so a failed
            run leaves no half-written file under its final name.
    """
    try:
        return _write_source(Path(root), seed, tifs, wo_xview_per_split, boxes_per_image)
    except OSError as exc:
        raise DatasetError(f"writing the synthetic AI-TOD source failed: {exc}") from None


def _write_source(root: Path, seed: int, tifs: tuple[tuple[str, int, int, str, bool], ...], wo_xview_per_split: int,
                  boxes_per_image: int) -> SyntheticAitod:
    tif_dir, lists_dir, aitod = root / "xview" / "train_images", root / "lists", root / "aitod"
    for folder in (tif_dir, lists_dir, aitod / "annotations", *[aitod / "images" / s for s in SPLITS]):
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names: dict[str, list[str]] = {split: [] for split in SPLITS}
    rgb: dict[str, np.ndarray] = {}
    for index, (xview_id, width, height, split, lzw) in enumerate(tifs):
        rgb[xview_id] = tif_pixels(width, height, seed * 1000 + index)
        write_tif(tif_dir / f"{xview_id}.tif", rgb[xview_id], lzw=lzw)
        windows = [f"{xview_id}__{x}_{y}.png" for x, y in sorted(official_origins(width, height))]
        for target in _with_trainval(split):
            names[target] += windows
    for split in SPLITS:
        atomic_write_text(lists_dir / LIST_NAME.format(split=split), repr(names[split]))
    for split in ("train", "val", "test"):
        for k in range(wo_xview_per_split):
            name = f"{split}_{k:04d}.png"
            pixels = tif_pixels(SUBSIZE, SUBSIZE, seed * 1000 + 500 + len(names[split]))
            for target in _with_trainval(split):
                _write_encoded(aitod / "images" / target / name, ".png", pixels, [])
                names[target].append(name)
    for split in SPLITS:
        _write_json(aitod / "annotations" / f"aitod_{split}_v1.json", sorted(names[split]), rng, boxes_per_image)
    return SyntheticAitod(root, root / "xview", aitod, lists_dir, rgb)


def _with_trainval(split: str) -> tuple[str, ...]:
    return (split, "trainval") if split in ("train", "val") else (split,)


def _write_json(path: Path, names: list[str], rng: np.random.Generator, boxes_per_image: int) -> None:
    images, annotations = [], []
    for image_id, name in enumerate(names, start=1):
        images.append({"id": image_id, "file_name": name, "width": SUBSIZE, "height": SUBSIZE})
        for _ in range(boxes_per_image):
            w, h = (float(v) for v in rng.integers(4, 25, size=2))
            x, y = float(rng.integers(0, SUBSIZE - int(w))), float(rng.integers(0, SUBSIZE - int(h)))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(rng.integers(1, len(AITOD_CLASSES) + 1)), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": 0, "ignore": 0,
                                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{"id": i + 1, "name": name, "supercategory": "mark"} for i, name in enumerate(AITOD_CLASSES)]
    document = {"images": images, "annotations": annotations, "categories": categories}
    atomic_write_text(path, json.dumps(document))  # json.dumps's spacing: the bytes earlier versions wrote
