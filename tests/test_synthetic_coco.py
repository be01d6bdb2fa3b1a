"""The seeded synthetic smoke dataset: exact boxes, determinism, layout and reuse."""

from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import PipelineError
from pipelines.presets import SyntheticSpec
from pipelines.synthetic_coco import CLASSES, draw_image, place_footprints, write_synthetic_coco

SMALL = SyntheticSpec(num_train=3, num_test=2, image_size=64, objects_per_image=(2, 4), object_size=(8, 12), seed=7)


def _digest(root):
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_layout_and_coco_fields(tmp_path):
    layout = write_synthetic_coco(tmp_path, SMALL)
    assert (layout.train_ann, layout.train_img) == ("annotations/train.json", "images/train/")
    assert (layout.test_ann, layout.test_img) == ("annotations/test.json", "images/test/")
    coco = json.loads((tmp_path / "annotations" / "train.json").read_text())
    assert [c["name"] for c in coco["categories"]] == list(CLASSES)
    assert [im["file_name"] for im in coco["images"]] == ["000000.png", "000001.png", "000002.png"]
    for ann in coco["annotations"]:
        x, y, w, h = ann["bbox"]
        assert ann["area"] == w * h and 8 <= w == h <= 12 and 0 <= x <= 64 - w and 0 <= y <= 64 - h
    test = json.loads((tmp_path / "annotations" / "test.json").read_text())
    assert len(test["images"]) == 2 and (tmp_path / "images" / "test" / "000001.png").is_file()


def test_boxes_are_the_exact_extent_of_the_drawn_shapes(tmp_path):
    write_synthetic_coco(tmp_path, SMALL)
    coco = json.loads((tmp_path / "annotations" / "train.json").read_text())
    image = cv2.imread(str(tmp_path / "images" / "train" / "000000.png"))
    bright = image.max(axis=2) > 100  # background is below 50, objects far above
    for ann in [a for a in coco["annotations"] if a["image_id"] == 1]:
        x, y, w, h = ann["bbox"]
        patch = bright[y : y + h, x : x + w]
        assert patch[:, 0].any() and patch[:, -1].any() and patch[0].any() and patch[-1].any()
        ring = bright[max(y - 1, 0) : y + h + 1, max(x - 1, 0) : x + w + 1].sum()
        assert ring == patch.sum()  # nothing bright just outside the box


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    write_synthetic_coco(tmp_path / "a", SMALL)
    write_synthetic_coco(tmp_path / "b", SMALL)
    write_synthetic_coco(tmp_path / "c", SyntheticSpec(**{**SMALL.__dict__, "seed": 8}))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_matching_spec_is_reused_and_other_spec_rewritten(tmp_path):
    write_synthetic_coco(tmp_path, SMALL)
    image = tmp_path / "images" / "train" / "000000.png"
    mtime = image.stat().st_mtime_ns
    write_synthetic_coco(tmp_path, SMALL)
    assert image.stat().st_mtime_ns == mtime
    write_synthetic_coco(tmp_path, SyntheticSpec(**{**SMALL.__dict__, "num_train": 4}))
    assert (tmp_path / "images" / "train" / "000003.png").is_file()


@pytest.mark.parametrize(
    "spec",
    [
        SyntheticSpec(num_train=0),  # an empty split cannot train or evaluate
        SyntheticSpec(image_size=16, object_size=(8, 24)),  # objects larger than the image
        SyntheticSpec(objects_per_image=(5, 2)),  # not a range
    ],
)
def test_invalid_specs_are_rejected(tmp_path, spec):
    with pytest.raises(PipelineError, match="synthetic"):
        write_synthetic_coco(tmp_path, spec)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(16, 96), st.integers(0, 12))
def test_placed_objects_never_touch_and_stay_inside(seed, size, count):
    rng = np.random.default_rng(seed)
    boxes = place_footprints(rng, size, count, (4, min(12, size)))
    assert len(boxes) <= count
    for i, (x, y, w, h) in enumerate(boxes):
        assert 0 <= x and x + w <= size and 0 <= y and y + h <= size
        for bx, by, bw, bh in boxes[i + 1 :]:
            assert x + w + 2 <= bx or bx + bw + 2 <= x or y + h + 2 <= by or by + bh + 2 <= y


def test_draw_image_is_deterministic_per_generator():
    a_img, a_obj = draw_image(np.random.default_rng([1, 0, 5]), SMALL)
    b_img, b_obj = draw_image(np.random.default_rng([1, 0, 5]), SMALL)
    assert a_obj == b_obj and np.array_equal(a_img, b_img) and a_img.shape == (64, 64, 3)
