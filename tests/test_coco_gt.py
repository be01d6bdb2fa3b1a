"""Full-image COCO ground truth (dotamini10.coco_gt): hand cases, the real DOTA sample, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dotamini10.coco_gt import write_coco_gt
from dotamini10.errors import DatasetError
from dotamini10.png import encode_png


def _split(tmp_path, labels: dict[str, str], size=(100, 80)):
    (tmp_path / "images").mkdir(parents=True)
    (tmp_path / "labelTxt").mkdir()
    for stem, text in labels.items():
        (tmp_path / "images" / f"{stem}.png").write_bytes(encode_png(np.zeros((size[1], size[0], 3), np.uint8)))
        (tmp_path / "labelTxt" / f"{stem}.txt").write_text(text, encoding="utf-8")
    return tmp_path


def test_boxes_are_clipped_horizontal_boxes_with_area_and_difficult(tmp_path):
    root = _split(tmp_path, {"A": (
        "imagesource:GoogleEarth\ngsd:0.1\n"
        "10 20 30 20 30 25 10 25 plane 0\n"            # inside: [10, 20, 20, 5], area 100
        "90 70 110 70 110 90 90 90 ship 1\n"           # partly outside 100 x 80: clipped to [90, 70, 10, 10]
        "15 5 25 10 15 15 5 10 small-vehicle 0\n"      # rotated square: its horizontal box [5, 5, 20, 10]
        "200 200 210 200 210 210 200 210 ship 0\n"     # wholly outside: reported, not annotated
        "1 1 2 2 3 3 plane\n"                          # malformed: reported
        "10 10 20 10 20 20 10 20 bridge 0\n"           # not a DOTAmini10 class: counted apart
    )})
    summary = write_coco_gt(root, tmp_path / "gt.json")
    coco = json.loads((tmp_path / "gt.json").read_text())
    assert coco["images"] == [{"id": 1, "file_name": "A.png", "width": 100, "height": 80}]
    got = [(a["category_id"], a["bbox"], a["area"], a["difficult"]) for a in coco["annotations"]]
    assert got == [(1, [10.0, 20.0, 20.0, 5.0], 100.0, 0), (4, [90.0, 70.0, 10.0, 10.0], 100.0, 1),
                   (2, [5.0, 5.0, 20.0, 10.0], 200.0, 0)]
    assert [a["id"] for a in coco["annotations"]] == [1, 2, 3]
    assert [c["name"] for c in coco["categories"]][:4] == ["plane", "small-vehicle", "large-vehicle", "ship"]
    assert summary.partly_outside == [f"{root / 'labelTxt' / 'A.txt'}:4"]
    assert sorted((p.line, p.reason) for p in summary.problems) == [(6, "outside_image"), (7, "token_count")]
    assert summary.other_classes == 1 and summary.annotations["ship"] == 1


def test_any_class_list_and_release_root(tmp_path):
    _split(tmp_path / "val", {"B": "10 10 20 10 20 20 10 20 bridge 0\n10 10 20 10 20 20 10 20 plane 0\n"})
    summary = write_coco_gt(tmp_path, tmp_path / "gt.json", classes=["bridge"], split="val")
    coco = json.loads((tmp_path / "gt.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["bridge"] and len(coco["annotations"]) == 1
    assert summary.other_classes == 1
    with pytest.raises(DatasetError, match="expected images/ and labelTxt/"):
        write_coco_gt(tmp_path, tmp_path / "x.json")
    with pytest.raises(DatasetError, match="not a DOTA class"):
        write_coco_gt(tmp_path, tmp_path / "x.json", classes=["cat"], split="val")


def test_real_dota_sample_every_valid_object_once_and_byte_identical(dota_sample, tmp_path):
    first = write_coco_gt(dota_sample, tmp_path / "a.json")
    write_coco_gt(dota_sample, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    coco = json.loads((tmp_path / "a.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == ["P0706.png", "P1888.png"]
    assert len(coco["annotations"]) == sum(first.annotations.values()) == 595
    for a in coco["annotations"]:
        image = coco["images"][a["image_id"] - 1]
        x, y, w, h = a["bbox"]
        assert 0 <= x and 0 <= y and x + w <= image["width"] and y + h <= image["height"] and w > 0 and h > 0
        assert a["area"] == pytest.approx(w * h)
    # five label files of the sample have no image
    assert sum(p.reason == "label_without_image" for p in first.problems) == 5
