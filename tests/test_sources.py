"""Tests of dotamini10.sources: one record per object line, with the status the build gives it."""

from __future__ import annotations

import shapely

from test_build import box, make_split

from dotamini10.problems import ProblemLog
from dotamini10.read import find_splits
from dotamini10.sources import ObjectStatus, read_sources

SELECTED = ("plane", "ship")


def _read(root):
    problems = ProblemLog()
    images, stats = read_sources(root, find_splits(root), SELECTED, problems)
    return {im.stem: im for im in images}, problems, stats


def test_every_object_line_gets_one_record_with_its_status(tmp_path):
    root = make_split(tmp_path / "src", {"a": (100, 80)}, {"a": [
        box(10, 10, 30, 20, "plane"),  # line 3: a candidate
        box(40, 40, 50, 50, "bridge"),  # 4: a DOTA class that is not selected
        "1 2 3 plane 0",  # 5: not 8 coordinates
        box(90, 70, 110, 90, "ship"),  # 6: a quarter inside the 100 x 80 image: clipped, still usable
        box(120, 10, 130, 20, "ship"),  # 7: wholly outside: nothing left
    ]})
    images, problems, stats = _read(root)
    a = images["a"]
    assert [(o.line, o.category, o.status, o.reason, o.notes) for o in a.objects] == [
        (3, "plane", ObjectStatus.CANDIDATE, None, []),
        (4, "bridge", ObjectStatus.FILTERED, "class_not_selected", []),
        (5, "", ObjectStatus.INVALID, "token_count", []),
        (6, "ship", ObjectStatus.CANDIDATE, None, ["outside_image"]),
        (7, "ship", ObjectStatus.INVALID, "outside_image", []),
    ]
    assert a.size == (100, 80) and a.candidates.tolist() == [0, 3]
    assert shapely.area(a.geoms).tolist() == [200.0, 100.0]  # 20 x 10, and the 10 x 10 part inside
    assert problems.counts() == {"outside_image": 2, "token_count": 1}
    assert [s[0] for s in stats] == ["images/a.png", "labelTxt/a.txt"]


def test_objects_of_unusable_files_are_all_invalid_for_the_file_s_reason(tmp_path):
    root = make_split(tmp_path / "src", {"b": (100, 80), "lonely": (50, 50)},
                      {"b": [box(1, 1, 9, 9, "plane")], "c": [box(1, 1, 9, 9, "plane"), "1 2 plane"]})
    (root / "labelTxt" / "b.txt").write_bytes(b"\xff\xfe 1 2 3")
    images, problems, _ = _read(root)
    assert set(images) == {"b", "c"}  # lonely.png has no label file: reported, not read
    assert images["b"].size is None and images["b"].objects == []
    c = images["c"]
    assert c.image_path is None and c.size is None and len(c.candidates) == 0
    # The malformed line keeps its own reason; the other one takes the file's.
    assert [(o.status, o.reason) for o in c.objects] == [(ObjectStatus.INVALID, "label_without_image"),
                                                       (ObjectStatus.INVALID, "token_count")]
    assert problems.counts() == {"image_without_label": 1, "label_without_image": 1, "token_count": 1,
                                 "unreadable_label": 1}
