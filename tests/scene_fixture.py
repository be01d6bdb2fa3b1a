"""A synthetic full scene for the detection chain's tests: bright axis-aligned objects of the ten DOTAmini10
classes on a dark ground, many of them across the borders of the 1,024 / 768 windows, with its DOTA label file;
and the oracle detector's config and checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dotamini10.classes import DOTAMINI10_CLASSES
from dotamini10.png import encode_png

SCENE_SIZE = (2600, 2200)  # windows at x 0, 768, 1536, 1576 (flush) and y 0, 768, 1176 (flush)
BORDERS = (768, 1024, 1176, 1536, 1576, 1792, 2200)  # window edges the objects are placed across


def scene_objects(seed: int = 0, size: tuple[int, int] = SCENE_SIZE) -> list[tuple[int, int, int, int, str, int]]:
    """Non-overlapping boxes ``(x1, y1, x2, y2, class, difficult)`` with integer corners, a third of them across
    a window border, every class present."""
    rng = np.random.default_rng(seed)
    width, height = size
    taken = np.zeros((height, width), dtype=bool)
    objects = []
    for k in range(180):
        w, h = (int(v) for v in rng.integers(8, 61, 2))
        if k % 3 == 0:  # across a vertical or horizontal window border
            border = int(rng.choice([b for b in BORDERS if b < (width if k % 2 else height) - 64]))
            along = int(rng.integers(4, (height if k % 2 else width) - 64))
            x1, y1 = (border - w // 2, along) if k % 2 else (along, border - h // 2)
        else:
            x1, y1 = int(rng.integers(1, width - w - 1)), int(rng.integers(1, height - h - 1))
        x2, y2 = x1 + w, y1 + h
        if taken[max(y1 - 3, 0):y2 + 3, max(x1 - 3, 0):x2 + 3].any():
            continue
        taken[y1:y2, x1:x2] = True
        objects.append((x1, y1, x2, y2, DOTAMINI10_CLASSES[len(objects) % 10], int(rng.random() < 0.1)))
    return objects


def write_scene(root: Path, *, seed: int = 0, size: tuple[int, int] = SCENE_SIZE, name: str = "S1") -> tuple[Path, Path, tuple[str, ...]]:
    """Write ``root/images/{name}.png`` and ``root/labelTxt/{name}.txt``; returns (image, label folder, classes)."""
    width, height = size
    image = np.full((height, width, 3), 20, dtype=np.uint8)
    lines = ["imagesource:synthetic", "gsd:0.2"]
    for x1, y1, x2, y2, cls, difficult in scene_objects(seed, size):
        image[y1:y2, x1:x2] = (200, 220, 240)
        lines.append(f"{x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2} {cls} {difficult}")
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    path = root / "images" / f"{name}.png"
    path.write_bytes(encode_png(image))
    (root / "labelTxt" / f"{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, root / "labelTxt", DOTAMINI10_CLASSES


def oracle_config(folder: Path, label_dir: Path, classes, *, checkpoint_classes=None, test_scale=768) -> tuple[Path, Path]:
    """The oracle's config file and a checkpoint (its class rows and the class names in its meta)."""
    import torch

    config = folder / "oracle_config.py"
    config.write_text(
        "custom_imports = dict(imports=['pipelines.oracle'], allow_failed_imports=False)\n"
        "default_scope = 'mmdet'\n"
        f"model = dict(type='OracleDetector', label_dir={str(label_dir)!r}, classes={list(classes)!r},\n"
        "             data_preprocessor=dict(type='DetDataPreprocessor', mean=[0, 0, 0], std=[1, 1, 1],\n"
        "                                    bgr_to_rgb=False, pad_size_divisor=1))\n"
        f"test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=({test_scale}, {test_scale}), "
        "keep_ratio=True),\n"
        "                 dict(type='PackDetInputs', meta_keys=('img_id', 'ori_shape', 'img_shape', 'scale_factor'))]\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n",
        encoding="utf-8",
    )
    names = list(checkpoint_classes if checkpoint_classes is not None else classes)
    checkpoint = folder / "oracle.pth"
    torch.save(dict(state_dict={"cls_weight": torch.zeros(len(names), 1)},
                    meta=dict(dataset_meta=dict(classes=names))), checkpoint)
    return config, checkpoint
