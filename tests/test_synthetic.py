"""Tests of the synthetic DOTA release generator (dotamini10/synthetic.py)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dotamini10.synthetic import (
    CLASS_LOOKS,
    MIN_SCENE_SIDE,
    DEFAULT_SCENES,
    DOTA_V1_CLASSES,
    SceneSpec,
    format_label_file,
    generate_synthetic_dota,
    make_scene,
    place_objects,
    render_background,
    rotated_rectangle,
    sample_power_law,
    window_borders,
)

# A DOTA object line: 8 coordinates, a category, a difficult flag.
OBJECT_LINE = re.compile(r"^(-?\d+(?:\.\d+)?(?: -?\d+(?:\.\d+)?){7}) ([a-z-]+) ([01])$")
SMALL_SCENES = (
    SceneSpec("A", "train", 1300, 1100, 80),
    SceneSpec("B", "val", 1100, 1000, 60),
)


def _read_labels(path: Path) -> tuple[list[str], list[tuple[np.ndarray, str, int]]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    objects = []
    for line in lines[2:]:
        match = OBJECT_LINE.match(line)
        assert match, f"{path}: not a DOTA object line: {line!r}"
        coords = np.array([float(v) for v in match.group(1).split()]).reshape(4, 2)
        objects.append((coords, match.group(2), int(match.group(3))))
    return lines[:2], objects


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> Path:
    """The default release (seed 0), generated once for the module."""
    return generate_synthetic_dota(tmp_path_factory.mktemp("syn") / "dota", seed=0)


def test_window_borders_hand_computed():
    # 2,000 px: windows start at 0, 768 and 976 (flush), so they start/end at 768, 976, 1024, 1792.
    assert window_borders(2000) == [768, 976, 1024, 1792]
    # 1,500 px: windows at 0 and 476 (flush).
    assert window_borders(1500) == [476, 1024]
    # An image no larger than a window has no interior borders.
    assert window_borders(1024) == []
    assert window_borders(700) == []


def test_rotated_rectangle_hand_computed():
    corners = rotated_rectangle(10.0, 20.0, 8.0, 4.0, 0.0)
    np.testing.assert_allclose(corners, [[6, 18], [14, 18], [14, 22], [6, 22]])
    # A quarter turn swaps the extents: the long side now runs along y.
    turned = rotated_rectangle(10.0, 20.0, 8.0, 4.0, math.pi / 2)
    np.testing.assert_allclose(turned, [[12, 16], [12, 24], [8, 24], [8, 16]], atol=1e-9)


@settings(max_examples=50, deadline=None)
@given(
    low=st.floats(1.0, 50.0),
    span=st.floats(0.0, 200.0),
    alpha=st.floats(0.0, 4.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_power_law_stays_in_range(low, span, alpha, seed):
    values = sample_power_law(np.random.default_rng(seed), low, low + span, alpha, 64)
    assert values.shape == (64,)
    assert np.all(values >= low * (1 - 1e-12)) and np.all(values <= (low + span) * (1 + 1e-12))


@settings(max_examples=60, deadline=None)
@given(
    width=st.integers(MIN_SCENE_SIDE, 1600),
    height=st.integers(MIN_SCENE_SIDE, 1600),
    n_objects=st.integers(0, 60),
    seed=st.integers(0, 2**32 - 1),
)
@example(width=200, height=200, n_objects=1, seed=139379)  # a 200 px object in a 200 px scene once crashed
@example(width=MIN_SCENE_SIDE, height=MIN_SCENE_SIDE, n_objects=15, seed=0)
def test_placed_objects_fit_and_do_not_overlap(width, height, n_objects, seed):
    objects = place_objects(width, height, n_objects, np.random.default_rng(seed))
    assert len(objects) <= max(n_objects, len(DOTA_V1_CLASSES))
    boxes = []
    for obj in objects:
        corners = np.array(obj.polygon).reshape(4, 2)
        (x0, y0), (x1, y1) = corners.min(axis=0), corners.max(axis=0)
        assert x0 >= 0 and y0 >= 0 and x1 <= width - 1 and y1 <= height - 1
        boxes.append((x0, y0, x1, y1))
    # Placement reserves each object's horizontal box, so no two boxes overlap.
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_the_smallest_scene_holds_a_small_object_and_smaller_ones_are_refused():
    # Storage tanks are the generator's smallest objects: one fits a MIN_SCENE_SIDE scene in some draw.
    placed = [place_objects(MIN_SCENE_SIDE, MIN_SCENE_SIDE, 15, np.random.default_rng(s)) for s in range(20)]
    assert any(objects for objects in placed)
    with pytest.raises(ValueError, match="at least 32 px, got 31 x 500"):
        place_objects(MIN_SCENE_SIDE - 1, 500, 5, np.random.default_rng(0))
    with pytest.raises(ValueError, match="n_objects must be >= 0"):
        place_objects(500, 500, -1, np.random.default_rng(0))


def test_power_law_matches_its_cdf():
    # p(x) ~ x^-2 on [6, 20]: CDF(x) = (1/6 - 1/x) / (1/6 - 1/20); CDF(10) = 4/7 ~ 0.571 (uniform would be 2/7).
    values = sample_power_law(np.random.default_rng(0), 6.0, 20.0, 2.0, 20000)
    assert abs(np.mean(values < 10.0) - 4 / 7) < 0.015
    # alpha 1 is log-uniform: the median is the geometric mean sqrt(6 * 20).
    log_uniform = sample_power_law(np.random.default_rng(1), 6.0, 20.0, 1.0, 20000)
    assert abs(np.median(log_uniform) - math.sqrt(120)) < 0.2


def test_release_layout_and_labels_parse(release):
    for spec in DEFAULT_SCENES:
        image_path = release / spec.split / "images" / f"{spec.name}.png"
        label_path = release / spec.split / "labelTxt" / f"{spec.name}.txt"
        image = cv2.imread(str(image_path), cv2.IMREAD_UNCHANGED)
        assert image.shape == (spec.height, spec.width, 3) and image.dtype == np.uint8
        header, objects = _read_labels(label_path)
        assert header == [f"imagesource:{spec.source}", f"gsd:{spec.gsd}"]
        assert len(objects) >= 0.8 * spec.n_objects
        for coords, category, _ in objects:
            assert category in DOTA_V1_CLASSES
            # Inside the image, so the builder reports no outside_image problem for the clean sample.
            assert coords.min() >= 0 and np.all(coords.max(axis=0) <= [spec.width - 1, spec.height - 1])
    splits = sorted(p.name for p in release.iterdir())
    assert splits == ["train", "val"]
    assert not list(release.rglob("*.tmp")), "atomic writes leave no temporary files"


def test_all_fifteen_classes_in_every_scene_and_sizes_in_range(release):
    difficult = 0
    total = 0
    for spec in DEFAULT_SCENES:
        _, objects = _read_labels(release / spec.split / "labelTxt" / f"{spec.name}.txt")
        assert {c for _, c, _ in objects} == set(DOTA_V1_CLASSES), spec.name
        for coords, category, flag in objects:
            low, high = CLASS_LOOKS[category].length
            length = np.linalg.norm(coords[1] - coords[0])
            # 0.1 px rounding of each corner moves a side by at most ~0.15 px.
            assert low - 0.2 <= length <= high + 0.2, (category, length)
            difficult += flag
            total += 1
    assert 0 < difficult < total


def test_sizes_are_calibrated_to_dotamini10_after_rescaling(release):
    # AI-TOD measures s = sqrt(w * h) of the horizontal box. The sample is drawn at source scale so that the
    # recipe's rescale (0.5-1.0, mean 0.75) leaves a share below 16 px near the paper's 17.3%, with a long tail
    # of larger objects: tiny objects are common, but not all objects are tiny.
    sizes = []
    for spec in DEFAULT_SCENES:
        _, objects = _read_labels(release / spec.split / "labelTxt" / f"{spec.name}.txt")
        for coords, _, _ in objects:
            w, h = coords.max(axis=0) - coords.min(axis=0)
            sizes.append(math.sqrt(w * h))
    rescaled = 0.75 * np.array(sizes)
    assert 0.08 < np.mean(rescaled < 16) < 0.30
    assert np.mean(rescaled > 32) > 0.2
    assert np.mean(0.5 * np.array(sizes) < 16) > 0.2  # at the smallest factor, tiny objects are a large share


def test_some_objects_cross_window_borders(release):
    crossing = 0
    for spec in DEFAULT_SCENES:
        _, objects = _read_labels(release / spec.split / "labelTxt" / f"{spec.name}.txt")
        xs, ys = window_borders(spec.width), window_borders(spec.height)
        for coords, _, _ in objects:
            (x0, y0), (x1, y1) = coords.min(axis=0), coords.max(axis=0)
            if any(x0 < v < x1 for v in xs) or any(y0 < v < y1 for v in ys):
                crossing += 1
    assert crossing >= 40


def test_every_object_is_drawn():
    # The background is the first thing drawn from the generator, so a copy of the rng reproduces it; each
    # object's footprint must then differ visibly from the bare background.
    rng = np.random.default_rng(7)
    background = render_background(1400, 1200, np.random.default_rng(7))
    image, objects = make_scene(1400, 1200, n_objects=150, rng=rng)
    assert len(objects) >= 120
    changed = np.abs(image.astype(np.int16) - background).max(axis=2) > 0
    for obj in objects:
        mask = np.zeros(image.shape[:2], dtype=np.uint8)
        cv2.fillPoly(mask, [np.round(np.array(obj.polygon).reshape(4, 2)).astype(np.int32)], 1)
        inside = mask.astype(bool)
        diff = np.abs(image[inside].astype(np.int16) - background[inside]).mean()
        assert diff > 8, (obj.category, diff)
    # Nothing is drawn away from the objects (anti-aliasing touches at most a 2 px fringe).
    footprint = np.zeros(image.shape[:2], dtype=np.uint8)
    for obj in objects:
        cv2.fillPoly(footprint, [np.round(np.array(obj.polygon).reshape(4, 2)).astype(np.int32)], 1)
    footprint = cv2.dilate(footprint, np.ones((5, 5), np.uint8)).astype(bool)
    assert not changed[~footprint].any()


def test_deterministic_bytes(tmp_path):
    first = generate_synthetic_dota(tmp_path / "a", seed=3, scenes=SMALL_SCENES)
    second = generate_synthetic_dota(tmp_path / "b", seed=3, scenes=SMALL_SCENES)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert [str(p) for p in files] == [
        "train/images/A.png", "train/labelTxt/A.txt", "val/images/B.png", "val/labelTxt/B.txt",
    ]
    for rel in files:
        assert (first / rel).read_bytes() == (second / rel).read_bytes(), rel
    other = generate_synthetic_dota(tmp_path / "c", seed=4, scenes=SMALL_SCENES)
    assert (other / "train/labelTxt/A.txt").read_bytes() != (first / "train/labelTxt/A.txt").read_bytes()


def test_scene_depends_only_on_seed_and_position(tmp_path):
    # Scene i uses rng([seed, i]): dropping a later scene leaves the earlier ones unchanged.
    both = generate_synthetic_dota(tmp_path / "both", seed=1, scenes=SMALL_SCENES)
    first_only = generate_synthetic_dota(tmp_path / "one", seed=1, scenes=SMALL_SCENES[:1])
    assert (both / "train/images/A.png").read_bytes() == (first_only / "train/images/A.png").read_bytes()
    assert not (first_only / "val").exists()


def test_format_label_file_exact():
    from dotamini10.synthetic import SyntheticObject

    text = format_label_file(
        [SyntheticObject((1.0, 2.0, 3.5, 2.0, 3.5, 4.25, 1.0, 4.0), "small-vehicle", 1)], source="GF", gsd=0.5
    )
    assert text == "imagesource:GF\ngsd:0.5\n1.0 2.0 3.5 2.0 3.5 4.2 1.0 4.0 small-vehicle 1\n"


def test_rejects_bad_scene_lists(tmp_path):
    with pytest.raises(ValueError, match="unique"):
        generate_synthetic_dota(tmp_path, scenes=(SMALL_SCENES[0], SMALL_SCENES[0]))
    with pytest.raises(ValueError, match="split"):
        generate_synthetic_dota(tmp_path, scenes=(SceneSpec("C", "test", 1100, 1100, 10),))
