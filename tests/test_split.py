"""Tests of dotamini10.split: window positions and object assignment, checked by hand and against shapely."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from dotamini10.errors import DatasetError
from dotamini10.split import (
    ObjectSet,
    assign_objects,
    get_windows,
    horizontal_box,
    polygon_rings,
    to_quadrilateral,
    window_starts,
)


def _objects(*coords) -> ObjectSet:
    return ObjectSet.from_geoms(shapely.polygons(np.array(coords, dtype=np.float64)))


def _box(x0, y0, x1, y1):
    # DOTA order, clockwise on screen: top-left, top-right, bottom-right, bottom-left.
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_windows_of_a_2000_by_1500_image():
    # x: 0, 768, then the last window moved back to end at 2000 -> 976. y: 0, then 1500 - 1024 = 476.
    windows = get_windows(2000, 1500)
    expected = [
        [0, 0, 1024, 1024], [768, 0, 1792, 1024], [976, 0, 2000, 1024],
        [0, 476, 1024, 1500], [768, 476, 1792, 1500], [976, 476, 2000, 1500],
    ]
    assert windows.tolist() == expected


def test_image_smaller_than_a_window_gets_one_padded_window():
    assert get_windows(500, 300).tolist() == [[0, 0, 1024, 1024]]
    assert window_starts(1024).tolist() == [0]


def test_axis_that_is_a_whole_number_of_strides_gets_no_duplicate_window():
    # 1792 - 1024 = 768 = one stride: the flush window is the second regular one.
    assert window_starts(1792).tolist() == [0, 768]
    assert window_starts(1793).tolist() == [0, 768, 769]


def test_window_options_are_checked():
    with pytest.raises(DatasetError, match="crop_size/stride"):
        window_starts(100, crop_size=0)


@settings(max_examples=200, deadline=None)
@given(length=st.integers(1, 6000), crop=st.integers(16, 1100), overlap_frac=st.floats(0.0, 0.9))
def test_windows_cover_every_pixel_and_end_flush(length, crop, overlap_frac):
    stride = max(1, int(crop * (1 - overlap_frac)))
    starts = window_starts(length, crop_size=crop, stride=stride)
    assert starts[0] == 0
    assert starts[-1] == max(length - crop, 0)
    assert np.all(np.diff(starts) > 0)
    assert np.all(np.diff(starts) <= stride)  # gaps never exceed a stride, so nothing is skipped
    covered = np.zeros(max(length, crop), dtype=bool)
    for s in starts:
        covered[s : s + crop] = True
    assert covered[:length].all()


def test_object_cut_at_iof_0_69_is_dropped_and_at_0_71_kept_and_clipped():
    window = np.array([0, 0, 1024, 1024])
    # 100 x 10 boxes straddling the right edge x = 1024: 69 px inside -> iof 0.69; 71 px inside -> 0.71.
    objects = _objects(_box(955, 100, 1055, 110), _box(953, 200, 1053, 210))
    kept = assign_objects(objects, window, iof_threshold=0.7)
    assert kept.indices.tolist() == [1]
    assert kept.iof.tolist() == pytest.approx([0.71])
    assert kept.truncated.tolist() == [True]
    (ring,) = kept.rings[0]
    assert sorted(map(tuple, ring.tolist())) == [(953.0, 200.0), (953.0, 210.0), (1024.0, 200.0), (1024.0, 210.0)]
    assert horizontal_box(kept.rings[0]).tolist() == [953.0, 200.0, 71.0, 10.0]


def test_iof_exactly_at_the_threshold_is_kept():
    objects = _objects(_box(954, 0, 1054, 10))  # 70 of 100 px inside
    kept = assign_objects(objects, np.array([0, 0, 1024, 1024]), iof_threshold=0.7)
    assert kept.indices.tolist() == [0]


def test_objects_inside_keep_their_vertices_and_order_in_window_coordinates():
    # A rotated quadrilateral labelled starting from its bottom vertex (DOTA's first vertex marks the head).
    quad = [[820, 900], [800, 880], [820, 860], [840, 880]]
    kept = assign_objects(_objects(quad), np.array([768, 476, 1792, 1500]))
    assert kept.truncated.tolist() == [False]
    assert kept.rings[0][0].tolist() == [[52, 424], [32, 404], [52, 384], [72, 404]]


def test_objects_outside_the_window_are_ignored():
    kept = assign_objects(_objects(_box(2000, 2000, 2010, 2010)), np.array([0, 0, 1024, 1024]))
    assert len(kept) == 0


def test_clipped_rings_run_clockwise_on_screen():
    kept = assign_objects(_objects(_box(1000, 10, 1030, 40)), np.array([0, 0, 1024, 1024]), iof_threshold=0.5)
    (ring,) = kept.rings[0]
    x, y = ring[:, 0], ring[:, 1]
    assert np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) > 0


@settings(max_examples=60, deadline=None)
@given(
    boxes=st.lists(
        st.tuples(st.floats(-50, 350), st.floats(-50, 350), st.floats(1, 120), st.floats(1, 120), st.floats(0, 3.1)),
        min_size=1,
        max_size=25,
    ),
    threshold=st.sampled_from([0.3, 0.5, 0.7, 1.0]),
)
def test_fast_path_agrees_with_shapely_for_every_object(boxes, threshold):
    # Rotated rectangles anywhere around a 256 px window: the bounding-box prefilter must change nothing.
    coords = []
    for cx, cy, w, h, angle in boxes:
        c, s = np.cos(angle), np.sin(angle)
        corners = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
        coords.append(corners @ np.array([[c, s], [-s, c]]) + [cx, cy])
    objects = ObjectSet.from_geoms(shapely.polygons(np.array(coords)))
    window = np.array([64, 32, 320, 288])
    kept = assign_objects(objects, window, iof_threshold=threshold)
    box = shapely.box(*window)
    iof = shapely.area(shapely.intersection(objects.geoms, box)) / objects.areas
    expected = np.flatnonzero(iof >= threshold - 1e-9)
    assert kept.indices.tolist() == expected.tolist()
    assert np.allclose(kept.iof, iof[expected])
    assert kept.touched.tolist() == np.flatnonzero(iof > 0).tolist()
    assert np.allclose(kept.touched_iof, iof[kept.touched])
    for idx, rings, trunc in zip(kept.indices, kept.rings, kept.truncated, strict=True):
        area = sum(shapely.Polygon(r).area for r in rings)
        assert area == pytest.approx(iof[idx] * objects.areas[idx], rel=1e-9, abs=1e-9)
        points = np.concatenate(rings)
        assert points.min() >= -1e-9 and points.max() <= 256 + 1e-9
        assert trunc == (iof[idx] < 1 - 1e-9)


def test_to_quadrilateral_keeps_quads_and_fits_a_rectangle_around_clipped_outlines():
    quad = np.array([[0.0, 0.0], [4.0, 0.0], [4.0, 2.0], [0.0, 2.0]])
    assert to_quadrilateral([quad]) is quad
    # A diamond clipped at x = 10 has five vertices; its minimum rectangle is 4 points covering it.
    diamond = shapely.Polygon([(5, 0), (15, 10), (5, 20), (-5, 10)])
    clipped = polygon_rings(shapely.intersection(diamond, shapely.box(-10, -10, 10, 30)))
    assert len(clipped[0]) == 5
    rect = to_quadrilateral(clipped)
    assert rect.shape == (4, 2)
    assert shapely.Polygon(rect).buffer(1e-6).contains(shapely.Polygon(clipped[0]))


def test_multipart_intersections_give_one_ring_per_part():
    # A U shape whose arms leave the window separately: the clip has two parts.
    u_shape = shapely.Polygon([(0, 0), (30, 0), (30, 50), (20, 50), (20, 10), (10, 10), (10, 50), (0, 50)])
    objects = ObjectSet.from_geoms(np.array([u_shape], dtype=object))
    kept = assign_objects(objects, np.array([-10, 20, 100, 120]), iof_threshold=0.1)
    assert len(kept.rings[0]) == 2
    assert horizontal_box(kept.rings[0]).tolist() == [10.0, 0.0, 30.0, 30.0]
