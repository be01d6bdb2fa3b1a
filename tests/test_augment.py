"""Tests of dotamini10.augment: exact label transforms under flips, and pixels that follow them."""

from __future__ import annotations

import numpy as np
import pytest

from dotamini10.augment import AugmentParams, augment_window, draw_augment, flip_points, hsv_jitter
from dotamini10.seeding import rng_for
from dotamini10.split import horizontal_box

BOX = np.array([[10.0, 20.0], [40.0, 20.0], [40.0, 30.0], [10.0, 30.0]])  # clockwise on screen


def _clockwise(ring: np.ndarray) -> bool:
    x, y = ring[:, 0], ring[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) > 0


def test_horizontal_flip_of_a_box_in_a_100_by_50_frame():
    # x -> 100 - x: corners (90,20) (60,20) (60,30) (90,30); the first vertex stays first, the rest reversed.
    out = flip_points(BOX, 100, 50, hflip=True, vflip=False)
    assert out.tolist() == [[90, 20], [90, 30], [60, 30], [60, 20]]
    assert _clockwise(out)


def test_vertical_and_double_flips():
    assert flip_points(BOX, 100, 50, hflip=False, vflip=True).tolist() == [[10, 30], [10, 20], [40, 20], [40, 30]]
    # Both flips are a half turn: orientation is kept, no reordering.
    assert flip_points(BOX, 100, 50, hflip=True, vflip=True).tolist() == [[90, 30], [60, 30], [60, 20], [90, 20]]
    assert flip_points(BOX, 100, 50, hflip=False, vflip=False).tolist() == BOX.tolist()


def test_flipping_twice_gives_back_the_labels():
    once = flip_points(BOX, 100, 50, hflip=True, vflip=False)
    assert flip_points(once, 100, 50, hflip=True, vflip=False).tolist() == BOX.tolist()


@pytest.mark.parametrize(("hflip", "vflip"), [(False, False), (True, False), (False, True), (True, True)])
def test_pixels_follow_the_labels(hflip, vflip):
    # A pure red box (it survives the HSV round trip exactly) on black, gains 1: after the flips, the red pixels
    # are exactly those inside the transformed label box.
    image = np.zeros((50, 100, 3), np.uint8)
    image[20:30, 10:40] = (0, 0, 255)
    params = AugmentParams(hflip=hflip, vflip=vflip, hsv_gains=(1.0, 1.0, 1.0))
    out, rings = augment_window(image, [[BOX]], params)
    x, y, w, h = horizontal_box(rings[0]).astype(int)
    expected = np.zeros((50, 100), bool)
    expected[y : y + h, x : x + w] = True
    assert ((out[..., 2] == 255) == expected).all()
    assert image[20, 10].tolist() == [0, 0, 255]  # the input is not modified


def test_padding_is_not_jittered():
    image = np.full((8, 8, 3), 100, np.uint8)
    image[:, 5:] = 0  # padding right of x = 5
    params = AugmentParams(hflip=False, vflip=False, hsv_gains=(1.0, 1.0, 1.5))
    out, _ = augment_window(image, [], params, valid_size=(5, 8))
    assert (out[:, 5:] == 0).all()
    assert (out[:, :5] == 150).all()  # gray: value x 1.5


def test_hsv_jitter_scales_value_and_saturates():
    image = np.full((2, 2, 3), 200, np.uint8)
    assert (hsv_jitter(image, (1.0, 1.0, 2.0)) == 255).all()
    assert (hsv_jitter(image, (1.0, 1.0, 0.5)) == 100).all()


def test_draws_are_seeded_and_within_gains():
    a = draw_augment(rng_for(7, "augment", "train", "P1__1__0___0", 1))
    b = draw_augment(rng_for(7, "augment", "train", "P1__1__0___0", 1))
    assert a == b
    draws = [draw_augment(rng_for(0, "copy", i)) for i in range(400)]
    gains = np.array([d.hsv_gains for d in draws])
    assert (np.abs(gains - 1) <= np.array([0.015, 0.7, 0.4]) + 1e-12).all()
    assert 0.4 < np.mean([d.hflip for d in draws]) < 0.6
    assert all(not d.hflip and not d.vflip for d in (draw_augment(rng_for(0, i), flip_prob=0.0) for i in range(20)))


def test_hsv_jitter_gives_the_same_pixels_in_either_channel_order():
    from dotamini10.augment import hsv_jitter

    bgr = np.random.default_rng(2).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    gains = (1.01, 0.5, 1.3)
    from_bgr = hsv_jitter(bgr, gains)
    from_rgb = hsv_jitter(np.ascontiguousarray(bgr[:, :, ::-1]), gains, channels="rgb")
    assert np.array_equal(from_rgb[:, :, ::-1], from_bgr)
    assert not np.array_equal(from_bgr, bgr)
