"""Tests of the VisDrone-DET converter (dotamini10/visdrone.py), ``hsfpn-data convert visdrone``, and the ignore
areas it makes carried through a slice."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from cli import data_app
from dotamini10.errors import DatasetError
from dotamini10.slicing.build import SliceOptions, slice_coco
from dotamini10.visdrone import VISDRONE_CLASSES, convert_visdrone, parse_visdrone_line


def make_split(root: Path, labels: dict[str, str], sizes: dict[str, tuple[int, int]] | None = None) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    for stem, text in labels.items():
        width, height = (sizes or {}).get(stem, (200, 150))
        assert cv2.imwrite(str(root / "images" / f"{stem}.jpg"), np.full((height, width, 3), 90, np.uint8))
        (root / "annotations" / f"{stem}.txt").write_text(text, encoding="utf-8")
    return root


LABELS = {
    "0000001": "10,20,30,40,1,4,0,1\n"  # a car
               "50,60,8,12,1,1,0,0,\n"  # a pedestrian, with VisDrone's trailing comma
               "100,20,60,50,0,0,0,0\n"  # an ignored region
               "5,100,20,20,1,11,0,0\n"  # "others"
               "\n",
    "0000002": "1,1,10,10,0,6,1,2\n",  # score 0: ignored by VisDrone's evaluation
}


def test_parse_line():
    assert parse_visdrone_line("684,8,273,116,0,0,0,0", file="a.txt", number=1) == ([684, 8, 273, 116], 0, 0, 0, 0)
    assert parse_visdrone_line("  ", file="a.txt", number=2) is None
    with pytest.raises(DatasetError, match=r"a\.txt:3: expected 8 comma-separated numbers, got 6"):
        parse_visdrone_line("1,2,3,4,1,4", file="a.txt", number=3)
    with pytest.raises(DatasetError, match=r"a\.txt:4: category 12 is not a VisDrone-DET category"):
        parse_visdrone_line("1,2,3,4,1,12,0,0", file="a.txt", number=4)
    with pytest.raises(DatasetError, match=r"a\.txt:5: not a number"):
        parse_visdrone_line("1,2,x,4,1,4,0,0", file="a.txt", number=5)


def test_convert(tmp_path):
    root = make_split(tmp_path / "VisDrone2019-DET-val", LABELS, sizes={"0000002": (64, 48)})
    summary = convert_visdrone(root, tmp_path / "val.json")
    coco = json.loads((tmp_path / "val.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in coco["categories"]] == list(VISDRONE_CLASSES)
    assert [(im["file_name"], im["width"], im["height"]) for im in coco["images"]] == [
        ("0000001.jpg", 200, 150), ("0000002.jpg", 64, 48)]
    objects = [a for a in coco["annotations"] if not a["iscrowd"]]
    assert [(a["category_id"], a["bbox"], a["occlusion"]) for a in objects] == [(4, [10, 20, 30, 40], 1),
                                                                                 (1, [50, 60, 8, 12], 0)]
    crowd = [a for a in coco["annotations"] if a["iscrowd"]]
    assert len(crowd) == 3 * 10 and all(a["ignore"] == 1 for a in crowd)  # three regions, once per category
    assert {a["category_id"] for a in crowd if a["bbox"] == [100, 20, 60, 50]} == set(range(1, 11))
    assert (summary.images, summary.objects, summary.ignore_regions) == (2, 2, 3)
    assert summary.per_class["car"] == 1 and summary.per_class["pedestrian"] == 1


def test_convert_errors_name_the_file(tmp_path):
    root = make_split(tmp_path / "a", {"x": "1,2,3,4,1,4,0\n"})
    with pytest.raises(DatasetError, match=r"x\.txt:1: expected 8"):
        convert_visdrone(root, tmp_path / "a.json")
    root = make_split(tmp_path / "b", {"y": ""})
    (root / "annotations" / "z.txt").write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"z\.txt: annotation file without an image"):
        convert_visdrone(root, tmp_path / "b.json")
    with pytest.raises(DatasetError, match="a VisDrone-DET split has images/ and annotations/"):
        convert_visdrone(tmp_path / "nowhere", tmp_path / "c.json")


def test_unreadable_label_files_are_one_line(tmp_path):
    root = make_split(tmp_path / "a", {"x": ""})
    (root / "annotations" / "x.txt").write_bytes(b"1,2,3,4,1,4,0,0\n\xff\n")
    with pytest.raises(DatasetError) as latin:
        convert_visdrone(root, tmp_path / "a.json")
    assert str(latin.value) == f"{root / 'annotations' / 'x.txt'}: annotation file is not UTF-8 text (invalid start " \
                               "byte at byte 16)"
    (root / "annotations" / "x.txt").unlink()
    (root / "annotations" / "x.txt").mkdir()
    with pytest.raises(DatasetError) as folder:
        convert_visdrone(root, tmp_path / "a.json")
    assert str(folder.value) == f"{root / 'annotations' / 'x.txt'}: cannot read the annotation file (Is a directory)"
    assert not (tmp_path / "a.json").exists()


def test_ignore_areas_carried_through_a_slice(tmp_path):
    root = make_split(tmp_path / "split", {"0000001": LABELS["0000001"]})
    convert_visdrone(root, tmp_path / "train.json")
    slice_coco(tmp_path / "train.json", root / "images", tmp_path / "out", options=SliceOptions(window=128, stride=96))
    coco = json.loads((tmp_path / "out" / "annotations" / "train.json").read_text(encoding="utf-8"))
    first = next(im["id"] for im in coco["images"] if im["window"] == [0, 0])
    region = [a for a in coco["annotations"] if a["image_id"] == first and a["iscrowd"]]
    # The ignored region x 100..160 has 28 of its 60 px in window x 0..128 (0.47 < 0.7): kept, clipped, per category.
    assert len([a for a in region if a["bbox"] == [100, 20, 28, 50]]) == 10 and all(a["ignore"] == 1 for a in region)


def test_cli(tmp_path):
    root = make_split(tmp_path / "split", LABELS)
    result = CliRunner().invoke(data_app, ["convert", "visdrone", "--root", str(root), "--out", str(tmp_path / "o.json")])
    assert result.exit_code == 0, result.output
    assert "2 images, 2 objects" in result.output and "3 ignore areas" in result.output
    help_text = CliRunner().invoke(data_app, ["convert", "visdrone", "--help"]).output
    assert "ignore areas, not objects" in " ".join(help_text.split())
    bad = CliRunner().invoke(data_app, ["convert", "visdrone", "--root", str(tmp_path / "no"), "--out", "x.json"])
    assert bad.exit_code == 1 and "Traceback" not in bad.output
