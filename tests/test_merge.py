"""The merge of window detections (dotamini10.merge): exact hand cases, the sequential greedy loop as reference
(hypothesis), DOTA_devkit's ResultMerge (mergebyrec) semantics, and the Task2 file round trip."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dotamini10.merge import (
    DEVKIT_OPTIONS,
    MatchMetric,
    MergeError,
    MergeMethod,
    MergeOptions,
    ResultTable,
    match_pairs,
    merge_detections,
    merge_result_folder,
    parse_window_name,
    read_task2,
    size_levels,
    task2_files,
    windows_to_images,
    _descending,
)
from dotamini10.split import get_windows


def reference_greedy(boxes, scores, labels, images, *, threshold, metric="iou", inclusive=False, agnostic=False):
    """The documented rule, one box at a time: visit by descending score (ties in input order), keep a box
    unless a kept box of its image (and class) matches it with a value strictly above the threshold."""
    order = sorted(range(len(boxes)), key=lambda k: (-scores[k], k))
    add = 1.0 if inclusive else 0.0
    kept: list[int] = []
    for k in order:
        x1, y1, x2, y2 = boxes[k]
        suppressed = False
        for m in kept:
            if images[m] != images[k] or (not agnostic and labels[m] != labels[k]):
                continue
            a1, b1, a2, b2 = boxes[m]
            iw = max(min(x2, a2) - max(x1, a1) + add, 0.0)
            ih = max(min(y2, b2) - max(y1, b1) + add, 0.0)
            inter = iw * ih
            area_k = (x2 - x1 + add) * (y2 - y1 + add)
            area_m = (a2 - a1 + add) * (b2 - b1 + add)
            den = area_k + area_m - inter if metric == "iou" else min(area_k, area_m)
            if den > 0 and inter / den > threshold:
                suppressed = True
                break
        if not suppressed:
            kept.append(k)
    return kept


# ---------------------------------------------------------------------------------------------------------------
# Exact cases a reader can check
# ---------------------------------------------------------------------------------------------------------------


def test_box_seen_in_two_overlapping_windows_gives_one_full_image_box():
    # A 2,000 px wide image has windows at x = 0 and 768 (1024 / 768); the box [800, 100, 840, 130] lies in
    # both. The first window reports it at its own coordinates, the second at x - 768.
    table = ResultTable(
        classes=["plane"], names=["P1__1__0___0", "P1__1__768___0"],
        images=np.array([0, 1]), labels=np.array([0, 0]), scores=np.array([0.9, 0.8]),
        boxes=np.array([[800.0, 100.0, 840.0, 130.0], [32.0, 100.0, 72.0, 130.0]]),
    )
    full = windows_to_images(table)
    assert full.names == ["P1"]
    np.testing.assert_array_equal(full.boxes, [[800, 100, 840, 130], [800, 100, 840, 130]])
    merged = merge_detections(full.boxes, full.scores, full.labels, full.images)
    assert merged.index.tolist() == [0]
    np.testing.assert_array_equal(merged.boxes, [[800, 100, 840, 130]])


def test_box_found_at_scale_half_maps_back():
    # At rate 0.5 the window at (512, 256) holding [10, 20, 30, 40] means [(10 + 512) / 0.5, ...] in the image.
    name = parse_window_name("P7__0.5__512___256")
    assert (name.image, name.rate, name.left, name.up) == ("P7", 0.5, 512, 256)
    table = ResultTable(["ship"], ["P7__0.5__512___256"], np.array([0]), np.array([0]), np.array([0.7]),
                        np.array([[10.0, 20.0, 30.0, 40.0]]))
    np.testing.assert_array_equal(windows_to_images(table).boxes, [[1044.0, 552.0, 1084.0, 592.0]])


def test_window_at_the_flush_edge():
    # 2,000 px: windows start at 0, 768 and 2000 - 1024 = 976 (moved back to end at the edge, not at 1536).
    assert get_windows(2000, 1024)[:, 0].tolist() == [0, 768, 976]
    table = ResultTable(["ship"], ["E__1__976___0"], np.array([0]), np.array([0]), np.array([0.5]),
                        np.array([[1000.0, 5.0, 1024.0, 25.0]]))  # touching the window's right edge
    np.testing.assert_array_equal(windows_to_images(table).boxes, [[1976.0, 5.0, 2000.0, 25.0]])


def test_nmm_merges_into_the_kept_box():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 12.0], [50.0, 50.0, 60.0, 60.0]])
    merged = merge_detections(boxes, np.array([0.9, 0.6, 0.5]), options=MergeOptions(method=MergeMethod.NMM))
    assert merged.index.tolist() == [0, 2]
    np.testing.assert_array_equal(merged.boxes, [[0, 0, 11, 12], [50, 50, 60, 60]])
    np.testing.assert_array_equal(merged.scores, [0.9, 0.5])


def test_ios_suppresses_a_clipped_copy_that_iou_keeps():
    # A window border cut the object to its left 40%: IoU 0.4 keeps both, IoS (40 / 40 = 1) keeps one.
    boxes = np.array([[0.0, 0.0, 100.0, 20.0], [0.0, 0.0, 40.0, 20.0]])
    scores = np.array([0.9, 0.8])
    assert merge_detections(boxes, scores).index.tolist() == [0, 1]
    assert merge_detections(boxes, scores, options=MergeOptions(metric=MatchMetric.IOS)).index.tolist() == [0]


def test_threshold_is_strict_and_ties_keep_input_order():
    # IoU exactly 0.5 ([0, 10] x [0, 10] vs [0, 10] x [0, 20]: 100 / 200) does not suppress at 0.5.
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 20.0]])
    assert merge_detections(boxes, np.array([0.9, 0.8])).index.tolist() == [0, 1]
    assert merge_detections(boxes, np.array([0.9, 0.8]), options=MergeOptions(threshold=0.49)).index.tolist() == [0]
    # Equal scores: the earlier box wins, whichever it is.
    same = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.5]])
    assert merge_detections(same, np.array([0.5, 0.5])).index.tolist() == [0]
    assert merge_detections(same[::-1], np.array([0.5, 0.5])).index.tolist() == [0]


def test_cap_per_image_and_order_by_image_then_score():
    boxes = np.array([[i * 20.0, 0.0, i * 20.0 + 10, 10.0] for i in range(5)])
    scores = np.array([0.1, 0.5, 0.3, 0.9, 0.2])
    images = np.array([1, 0, 1, 0, 1])
    merged = merge_detections(boxes, scores, images=images, options=MergeOptions(max_per_image=2))
    assert merged.index.tolist() == [3, 1, 2, 4]  # image 0: 0.9, 0.5; image 1: 0.3, 0.2 (0.1 dropped)


def test_classes_are_merged_apart_unless_agnostic():
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    scores, labels = np.array([0.9, 0.8]), np.array([0, 1])
    assert merge_detections(boxes, scores, labels).index.tolist() == [0, 1]
    agnostic = MergeOptions(class_agnostic=True)
    assert merge_detections(boxes, scores, labels, options=agnostic).index.tolist() == [0]


def test_pixel_inclusive_areas():
    # Boxes one pixel apart do not overlap, but with +1 areas they do: [0, 9] and [10, 19] share nothing,
    # [0, 10] and [10, 20] share a 1-pixel column: (1 * 11) / (11 * 11 + 11 * 11 - 11) = 1 / 21.
    boxes = np.array([[0.0, 0.0, 10.0, 10.0], [10.0, 0.0, 20.0, 10.0]])
    i, j = match_pairs(boxes, np.zeros(2, dtype=np.int64), threshold=0.04, pixel_inclusive=True)
    assert (i.tolist(), j.tolist()) in (([0], [1]), ([1], [0]))
    assert len(match_pairs(boxes, np.zeros(2, dtype=np.int64), threshold=0.05, pixel_inclusive=True)[0]) == 0
    assert len(match_pairs(boxes, np.zeros(2, dtype=np.int64), threshold=0.0)[0]) == 0


def test_size_levels_are_exact_at_powers_of_two():
    boxes = np.array([[0, 0, 16, 1], [0, 0, 16.000001, 1], [0, 0, 32, 32], [0, 0, 0, 0], [0, 0, 64, 3]], float)
    assert size_levels(boxes, 16.0).tolist() == [0, 1, 1, 0, 2]


def test_bad_inputs_are_domain_errors():
    with pytest.raises(MergeError, match="x2 < x1"):
        merge_detections(np.array([[5.0, 0.0, 1.0, 1.0]]), np.array([0.5]))
    with pytest.raises(MergeError, match="differ in length"):
        merge_detections(np.zeros((2, 4)), np.zeros(3))
    with pytest.raises(MergeError, match="threshold"):
        MergeOptions(threshold=1.5)
    with pytest.raises(MergeError, match="not of the form"):
        parse_window_name("P0001")


# ---------------------------------------------------------------------------------------------------------------
# The vectorised merge equals the sequential loop
# ---------------------------------------------------------------------------------------------------------------


@st.composite
def detection_sets(draw):
    n = draw(st.integers(0, 60))
    spread = draw(st.sampled_from([30.0, 200.0, 2000.0]))
    size = draw(st.sampled_from([3.0, 20.0, 150.0]))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    xy = rng.uniform(-spread / 10, spread, (n, 2))
    wh = rng.uniform(0, size, (n, 2)) * (rng.random((n, 1)) < 0.95)  # a few zero-area boxes
    boxes = np.round(np.concatenate([xy, xy + wh], axis=1), draw(st.sampled_from([0, 1, 6])))
    duplicates = rng.random(n) < 0.3  # window duplicates: a copy of an earlier box, slightly moved
    for k in np.flatnonzero(duplicates)[1:] if n else []:
        boxes[k] = boxes[rng.integers(0, k)] + rng.normal(0, 1.0, 4) * draw(st.sampled_from([0.0, 1.0]))
        boxes[k, 2:] = np.maximum(boxes[k, 2:], boxes[k, :2])
    scores = np.round(rng.random(n), draw(st.sampled_from([1, 6])))  # 1 decimal: many ties
    labels = rng.integers(0, draw(st.integers(1, 3)), n)
    images = rng.integers(0, draw(st.integers(1, 2)), n)
    return boxes, scores, labels, images


@settings(max_examples=150, deadline=None)
@given(
    data=detection_sets(),
    threshold=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.95]),
    metric=st.sampled_from(["iou", "ios"]),
    inclusive=st.booleans(),
    agnostic=st.booleans(),
)
def test_merge_equals_the_sequential_greedy_loop(data, threshold, metric, inclusive, agnostic):
    boxes, scores, labels, images = data
    options = MergeOptions(threshold=threshold, metric=MatchMetric(metric), pixel_inclusive=inclusive,
                           class_agnostic=agnostic)
    merged = merge_detections(boxes, scores, labels, images, options=options)
    expected = reference_greedy(boxes, scores, labels, images, threshold=threshold, metric=metric,
                                inclusive=inclusive, agnostic=agnostic)
    # Same set, listed by image then by the visiting order.
    expected = sorted(expected, key=lambda k: (images[k], -scores[k], k))
    assert merged.index.tolist() == expected


def test_nmm_union_matches_the_sequential_loop():
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 200, (300, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 30, (300, 2))], axis=1)
    scores = rng.random(300)
    merged = merge_detections(boxes, scores, options=MergeOptions(method=MergeMethod.NMM, threshold=0.3))
    kept = reference_greedy(boxes, scores, np.zeros(300), np.zeros(300), threshold=0.3)
    assert sorted(merged.index.tolist()) == sorted(kept)
    # Each suppressed box joins the first kept box (by score) that matches it.
    union = {k: boxes[k].copy() for k in kept}
    order = sorted(kept, key=lambda k: -scores[k])
    for k in set(range(300)) - set(kept):
        for m in order:
            if scores[m] > scores[k] and _iou(boxes[m], boxes[k]) > 0.3:
                union[m] = np.concatenate([np.minimum(union[m][:2], boxes[k][:2]), np.maximum(union[m][2:], boxes[k][2:])])
                break
    for k, box in zip(merged.index.tolist(), merged.boxes, strict=True):
        np.testing.assert_array_equal(box, union[k])


def _iou(a, b):
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0)
    inter = iw * ih
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


# ---------------------------------------------------------------------------------------------------------------
# DOTA_devkit's ResultMerge (mergebyrec), box for box
# ---------------------------------------------------------------------------------------------------------------


def devkit_mergebyrec(lines: list[str]) -> dict[str, list[tuple[float, ...]]]:
    """ResultMerge's documented behaviour on one class file: parse ``__left___up`` and the rate with its
    regexes, map ``(v + offset) / rate``, then per image py_cpu_nms at 0.1 (``+ 1`` areas, suppress when
    IoU > 0.1), by descending score. Returns image -> kept (score, x1, y1, x2, y2) in keep order."""
    per_image: dict[str, list[tuple[float, ...]]] = {}
    for line in lines:
        tokens = line.split(" ")
        name = tokens[0]
        x, y = (int(v) for v in re.findall(r"\d+", re.findall(r"__\d+___\d+", name)[0]))
        rate = float(re.findall(r"__([\d+\.]+)__\d+___", name)[0])
        coords = [float(v) for v in tokens[2:]]
        box = [(coords[0] + x) / rate, (coords[1] + y) / rate, (coords[2] + x) / rate, (coords[3] + y) / rate]
        per_image.setdefault(name.split("__")[0], []).append((float(tokens[1]), *box))
    out = {}
    for image, dets in per_image.items():
        order = sorted(range(len(dets)), key=lambda k: -dets[k][0])
        keep = []
        while order:
            i = order.pop(0)
            keep.append(i)
            rest = []
            for j in order:
                a, b = dets[i], dets[j]
                w = max(0.0, min(a[3], b[3]) - max(a[1], b[1]) + 1)
                h = max(0.0, min(a[4], b[4]) - max(a[2], b[2]) + 1)
                inter = w * h
                union = (a[3] - a[1] + 1) * (a[4] - a[2] + 1) + (b[3] - b[1] + 1) * (b[4] - b[2] + 1) - inter
                if inter / union <= 0.1:
                    rest.append(j)
            order = rest
        out[image] = [dets[k] for k in keep]
    return out


def _window_results(rng, n_images=3, per_image=120):
    lines = []
    for img in range(n_images):
        for _ in range(per_image):
            rate = float(rng.choice([0.5, 1.0]))
            left, up = int(rng.choice([0, 768, 976])), int(rng.choice([0, 768]))
            x, y = (float(v) for v in rng.uniform(0, 1000, 2))
            w, h = (float(v) for v in rng.uniform(2, 60, 2))
            score = float(rng.random())
            lines.append(f"I{img}__{rate:g}__{left}___{up} {score!r} {x!r} {y!r} {x + w!r} {y + h!r}")
    rng.shuffle(lines)
    return lines


def test_devkit_mode_reproduces_mergebyrec_box_for_box(tmp_path):
    rng = np.random.default_rng(11)
    src, dst = tmp_path / "windows", tmp_path / "full"
    src.mkdir()
    expected = {}
    for name in ("plane", "ship"):
        lines = _window_results(rng)
        (src / f"Task2_{name}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        expected[name] = devkit_mergebyrec(lines)
    summary = merge_result_folder(src, dst, options=DEVKIT_OPTIONS)
    assert summary.boxes_in == 720 and summary.images == 3
    assert sorted(p.name for p in dst.iterdir()) == ["Task2_plane.txt", "Task2_ship.txt"]
    for name, per_image in expected.items():
        got: dict[str, list[tuple[float, ...]]] = {}
        for line in (dst / f"Task2_{name}.txt").read_text(encoding="utf-8").splitlines():
            image, *values = line.split()
            got.setdefault(image, []).append(tuple(float(v) for v in values))
        assert list(got) == sorted(per_image)  # images in name order
        for image, dets in per_image.items():
            np.testing.assert_allclose(np.array(got[image]), np.array(dets), atol=1e-3, rtol=0)
    assert summary.boxes_out == sum(len(d) for e in expected.values() for d in e.values())


def test_task2_reading_errors_name_file_and_line(tmp_path):
    (tmp_path / "Task2_ship.txt").write_text("A__1__0___0 0.5 1 2 3 4\n\nA__1__0___0 0.4 1 2 3\n", encoding="utf-8")
    with pytest.raises(MergeError, match=r"Task2_ship.txt:3: expected 'image score x1 y1 x2 y2', got 5 tokens"):
        read_task2(task2_files(tmp_path))
    (tmp_path / "Task2_ship.txt").write_text("A__1__0___0 0.5 1 2 x 4\n", encoding="utf-8")
    with pytest.raises(MergeError, match=r"Task2_ship.txt:1: score and coordinates must be numbers"):
        read_task2(task2_files(tmp_path))
    with pytest.raises(MergeError, match="results folder not found"):
        task2_files(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MergeError, match="no Task2_"):
        task2_files(tmp_path / "empty")
    with pytest.raises(MergeError, match="must differ"):
        merge_result_folder(tmp_path, tmp_path)


def test_merge_and_its_command_do_not_load_torch():
    # hsfpn-data must stay light: the merge is numpy only.
    import subprocess
    import sys

    code = "import sys, dotamini10.merge, dotamini10.coco_gt; assert 'torch' not in sys.modules, 'torch loaded'"
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, cwd=repo).returncode == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([0.0, -0.0, 0.1, 0.25, 0.5, 0.9, 1.0]) | st.floats(0, 1), max_size=60))
def test_descending_order_equals_the_stable_sort_ties_in_input_order(values):
    values = np.array(values, dtype=np.float64)
    assert np.array_equal(_descending(values), np.argsort(-values, kind="stable"))
