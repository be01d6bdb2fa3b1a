"""Tests of dotamini10.scale: seeded factors, output sizes, names and resizing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dotamini10.errors import DatasetError
from dotamini10.scale import (
    check_scale_options,
    draw_scale_factor,
    factor_tag,
    image_factors,
    resize_image,
    scale_coords,
    scaled_size,
)


@given(seed=st.integers(0, 2**31), stem=st.text(min_size=1, max_size=12))
def test_random_factor_is_in_range_rounded_and_reproducible(seed, stem):
    factor = draw_scale_factor(seed, "train", stem)
    assert 0.5 <= factor <= 1.0
    assert round(factor, 4) == factor
    assert draw_scale_factor(seed, "train", stem) == factor


def test_factor_depends_on_the_image_not_on_the_order_images_are_seen():
    first = [draw_scale_factor(3, "train", s) for s in ("P0001", "P0002", "P0003")]
    second = [draw_scale_factor(3, "train", s) for s in ("P0003", "P0002", "P0001")][::-1]
    assert first == second
    assert len(set(first)) == 3  # different images get different factors
    assert draw_scale_factor(4, "train", "P0001") != first[0]


def test_factors_cover_the_range_roughly_uniformly():
    factors = np.array([draw_scale_factor(0, "train", f"P{i:04d}") for i in range(2000)])
    assert factors.min() < 0.51 and factors.max() > 0.99
    assert abs(factors.mean() - 0.75) < 0.01


def test_modes():
    assert image_factors("fixed", 0, "train", "a", scales=(1.0, 0.5, 1.0)) == [0.5, 1.0]
    (factor,) = image_factors("random", 0, "train", "a", scale_range=(0.8, 0.8))
    assert factor == 0.8
    with pytest.raises(DatasetError, match="scale_mode"):
        image_factors("zoom", 0, "train", "a")


@pytest.mark.parametrize(
    ("mode", "scales", "bounds", "match"),
    [
        ("zoom", (1.0,), (0.5, 1.0), "--scale-mode"),
        ("fixed", (), (0.5, 1.0), "--scales"),
        ("fixed", (0.5, 0.0), (0.5, 1.0), "--scales"),
        ("random", (1.0,), (1.0, 0.5), "--scale-range"),
        ("random", (1.0,), (0.0, 0.5), "--scale-range"),
    ],
)
def test_bad_scale_options_name_the_option(mode, scales, bounds, match):
    with pytest.raises(DatasetError, match=match):
        check_scale_options(mode, scales, bounds)


def test_sizes_and_tags():
    assert scaled_size(2000, 1500, 0.5) == (1000, 750)
    assert scaled_size(1111, 1182, 0.5546) == (616, 656)  # 616.16 and 655.54 rounded
    assert scaled_size(3, 3, 0.01) == (1, 1)
    assert [factor_tag(f) for f in (1.0, 0.5, 0.7342, 0.75)] == ["1", "0.5", "0.7342", "0.75"]


def test_scale_coords_scales_per_axis_without_touching_the_input():
    coords = np.array([[10.0, 20.0], [30.0, 40.0]])
    out = scale_coords(coords, 0.5, 0.25)
    assert out.tolist() == [[5.0, 5.0], [15.0, 10.0]]
    assert coords.tolist() == [[10.0, 20.0], [30.0, 40.0]]


def test_resize_keeps_unchanged_images_and_averages_when_shrinking():
    image = np.zeros((4, 4, 3), np.uint8)
    image[::2, ::2] = 200  # one bright pixel per 2 x 2 block
    assert resize_image(image, (4, 4)) is image
    small = resize_image(image, (2, 2), interpolation="area")
    assert small.shape == (2, 2, 3)
    assert (small == 50).all()  # area averaging: 200 / 4
    with pytest.raises(DatasetError, match="interpolation"):
        resize_image(image, (2, 2), interpolation="lanczos9")
