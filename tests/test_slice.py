"""Tests of the COCO slicer (dotamini10/slicing) and ``hsfpn-data slice``: hand cases a reader can check, the
outputs' independence of workers and interruptions, and equality with SAHI's ``slice_coco`` rules where they
coincide (square windows, images at least a window large, integer boxes)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import data_app
from dotamini10.errors import DatasetError
from dotamini10.slicing import task as slice_task
from dotamini10.slicing.build import SliceOptions, slice_coco

SMALL = SliceOptions(window=128, stride=96)


def write_image(path: Path, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A PNG of gradients and noise; returns its pixels in BGR (OpenCV's) order."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([xx % 256, yy % 256, (xx + 2 * yy) % 256], axis=-1) + rng.integers(0, 9, (height, width, 3))
    image = image.clip(0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return image


def write_coco(path: Path, images: list[dict], annotations: list[dict], categories=None) -> Path:
    categories = categories or [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}),
                    encoding="utf-8")
    return path


def ann(ann_id: int, image_id: int, box: list[float], category: int = 1, **extra) -> dict:
    return {"id": ann_id, "image_id": image_id, "category_id": category, "bbox": box, **extra}


@pytest.fixture
def scene(tmp_path) -> tuple[Path, Path, np.ndarray]:
    """A 300 x 200 image; windows of 128 with stride 96 start at x 0, 96, 172 and y 0, 72."""
    pixels = write_image(tmp_path / "imgs" / "a.png", 300, 200)
    annotations = [
        ann(1, 1, [120, 50, 20, 10]),  # 8/20 inside window x0=0: dropped there, whole in x0=96
        ann(2, 1, [100, 20, 40, 10], category=2),  # 28/40 = 0.7 inside window x0=0: kept there, clipped
        ann(3, 1, [110, 100, 90, 20], iscrowd=1, ignore=1),  # an ignore area: kept, clipped, wherever it overlaps
        ann(4, 1, [0, 0, 220, 190]),  # too big: at most 128 x 128 / (220 x 190) = 0.39 in any window
        ann(5, 1, [10, 10, 5]),  # bad bbox
        ann(6, 1, [10, 10, 0, 5]),  # zero area
        ann(7, 1, [290, 190, 20, 20]),  # reaches outside the image: clipped to 10 x 10
        ann(8, 9, [1, 1, 2, 2]),  # an image that is not listed
    ]
    images = [{"id": 1, "file_name": "a.png", "width": 300, "height": 200},
              {"id": 2, "file_name": "gone.png", "width": 300, "height": 200}]
    return write_coco(tmp_path / "train.json", images, annotations), tmp_path / "imgs", pixels


def load(out: Path, split: str = "train") -> tuple[dict, list[dict]]:
    coco = json.loads((out / "annotations" / f"{split}.json").read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in
            (out / "slicing" / split / "manifest.jsonl").read_text(encoding="utf-8").splitlines()]
    return coco, rows


def boxes_in(coco: dict, file_name: str) -> dict[int, dict]:
    image_id = next(im["id"] for im in coco["images"] if im["file_name"] == file_name)
    return {a["source_annotation"]: a for a in coco["annotations"] if a["image_id"] == image_id}


def test_hand_cases(scene, tmp_path):
    ann_path, images, pixels = scene
    out = tmp_path / "out"
    summary = slice_coco(ann_path, images, out, options=SMALL)
    coco, rows = load(out)
    names = [im["file_name"] for im in coco["images"]]
    assert names == [f"a__1__{x}___{y}.png" for y in (0, 72) for x in (0, 96, 172)]
    left, middle = boxes_in(coco, "a__1__0___0.png"), boxes_in(coco, "a__1__96___0.png")
    assert 1 not in left and middle[1]["bbox"] == [24, 50, 20, 10] and middle[1]["truncated"] is False
    assert left[2]["bbox"] == [100, 20, 28, 10] and left[2]["truncated"] is True and left[2]["category_id"] == 2
    assert left[2]["area"] == 280 and left[2]["segmentation"] == [[100, 20, 128, 20, 128, 30, 100, 30]]
    # The ignore area: 18 of its 90 px width in window x0=0 (0.2 < 0.7) and still carried, with its flags.
    assert left[3]["bbox"] == [110, 100, 18, 20] and (left[3]["iscrowd"], left[3]["ignore"]) == (1, 1)
    assert left[2]["iscrowd"] == 0 and "ignore" not in left[2]
    fates = {r["annotation"]: r for r in rows}
    assert fates[1]["status"] == "kept" and fates[1]["windows"] == ["a__1__96___0.png"]
    assert (fates[4]["status"], fates[4]["reason"]) == ("dropped", "iof_below_threshold")
    assert fates[4]["best_iof"] == round(128 * 128 / (220 * 190), 4)
    assert (fates[5]["status"], fates[5]["reason"]) == ("invalid", "bad_annotation")
    assert (fates[6]["status"], fates[6]["reason"]) == ("invalid", "degenerate_box")
    assert fates[7]["status"] == "kept" and fates[7]["problems"] == ["outside_image"]
    assert boxes_in(coco, "a__1__172___72.png")[7]["bbox"] == [118, 118, 10, 10]
    assert fates[8]["image"] is None and fates[8]["reason"] == "bad_annotation"
    assert len(rows) == 8  # every input annotation accounted for
    assert summary.problems == {"bad_annotation": 2, "degenerate_box": 1, "missing_image": 1, "outside_image": 1}
    assert summary.counts["source_annotations"] == {"total": 8, "kept": 4, "dropped": 1, "invalid": 3}
    stored = cv2.imread(str(out / "images" / "train" / "a__1__172___72.png"))
    assert np.array_equal(stored, pixels[72:200, 172:300])


def test_iof_threshold_is_inclusive(scene, tmp_path):
    ann_path, images, _ = scene
    stricter = slice_coco(ann_path, images, tmp_path / "o", options=SliceOptions(window=128, stride=96, iof=0.71))
    coco, _ = load(tmp_path / "o")
    assert 2 not in boxes_in(coco, "a__1__0___0.png")  # 0.7 < 0.71: dropped in that window
    assert stricter.counts["source_annotations"]["kept"] == 4  # still kept whole in window x0=96


def test_scales_and_padding(tmp_path):
    pixels = write_image(tmp_path / "imgs" / "b.png", 200, 100)
    ann_path = write_coco(tmp_path / "val.json", [{"id": 1, "file_name": "b.png", "width": 200, "height": 100}],
                          [ann(1, 1, [20, 20, 40, 20])])
    slice_coco(ann_path, tmp_path / "imgs", tmp_path / "out",
               options=SliceOptions(window=128, stride=96, scales=(1.0, 0.5)))
    coco, _ = load(tmp_path / "out", "val")
    assert [(im["file_name"], im["scale"], im["window"]) for im in coco["images"]] == [
        ("b__0.5__0___0.png", 0.5, [0, 0]), ("b__1__0___0.png", 1.0, [0, 0]), ("b__1__72___0.png", 1.0, [72, 0])]
    assert boxes_in(coco, "b__0.5__0___0.png")[1]["bbox"] == [10, 10, 20, 10]
    half = cv2.imread(str(tmp_path / "out" / "images" / "val" / "b__0.5__0___0.png"))
    assert half.shape == (128, 128, 3) and not half[50:, :].any() and not half[:, 100:].any()  # padded with 0
    whole = cv2.imread(str(tmp_path / "out" / "images" / "val" / "b__1__0___0.png"))
    assert np.array_equal(whole[:100], pixels[:, :128]) and not whole[100:].any()


def test_drop_empty(tmp_path):
    write_image(tmp_path / "imgs" / "c.png", 300, 128)
    ann_path = write_coco(tmp_path / "t.json", [{"id": 1, "file_name": "c.png", "width": 300, "height": 128}],
                          [ann(1, 1, [5, 5, 10, 10]), ann(2, 1, [200, 5, 10, 10], iscrowd=1)])
    summary = slice_coco(ann_path, tmp_path / "imgs", tmp_path / "out",
                         options=SliceOptions(window=128, stride=96, drop_empty=True))
    coco, _ = load(tmp_path / "out", "t")
    assert [im["file_name"] for im in coco["images"]] == ["c__1__0___0.png"]  # an ignore area alone is not an object
    assert summary.counts["windows_considered"] == 3 and summary.counts["windows"] == 1


def test_workers_and_interruption_do_not_change_outputs(tmp_path, monkeypatch):
    images = [{"id": i, "file_name": f"s{i}.png", "width": 260, "height": 180} for i in range(1, 4)]
    rng = np.random.default_rng(0)
    anns = [ann(k + 1, int(rng.integers(1, 4)), [float(v) for v in rng.integers(0, 160, 2)] + [12.0, 9.0])
            for k in range(40)]
    for im in images:
        write_image(tmp_path / "imgs" / im["file_name"], 260, 180, seed=im["id"])
    ann_path = write_coco(tmp_path / "train.json", images, anns)
    slice_coco(ann_path, tmp_path / "imgs", tmp_path / "one", options=SMALL)
    slice_coco(ann_path, tmp_path / "imgs", tmp_path / "two", options=SMALL, workers=2)

    calls = {"n": 0}
    real = slice_task.run_slice

    def interrupted(task):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr("dotamini10.slicing.build.run_slice", interrupted)
    with pytest.raises(KeyboardInterrupt):
        slice_coco(ann_path, tmp_path / "imgs", tmp_path / "resumed", options=SMALL)
    monkeypatch.setattr("dotamini10.slicing.build.run_slice", real)
    summary = slice_coco(ann_path, tmp_path / "imgs", tmp_path / "resumed", options=SMALL, resume=True)
    assert summary.resumed_images == 1
    for other in ("two", "resumed"):
        for path in sorted((tmp_path / "one").rglob("*")):
            if path.is_file() and path.name != "slice.json":
                assert (tmp_path / other / path.relative_to(tmp_path / "one")).read_bytes() == path.read_bytes()
    again = slice_coco(ann_path, tmp_path / "imgs", tmp_path / "resumed", options=SMALL, resume=True)
    assert again.already_complete


def test_bad_documents_are_one_line(tmp_path):
    (tmp_path / "imgs").mkdir()
    (tmp_path / "a.json").write_text('{"images": [', encoding="utf-8")
    with pytest.raises(DatasetError, match=r"a\.json: COCO annotation file is not valid JSON"):
        slice_coco(tmp_path / "a.json", tmp_path / "imgs", tmp_path / "out")
    write_coco(tmp_path / "b.json", [{"id": 1, "file_name": "x.png", "width": 0, "height": 5}], [])
    with pytest.raises(DatasetError, match=r"b\.json: images\[0\] \(id 1\): 'width' and 'height' must be positive"):
        slice_coco(tmp_path / "b.json", tmp_path / "imgs", tmp_path / "out")
    write_coco(tmp_path / "c.json", [{"id": 1, "file_name": "../x.png", "width": 5, "height": 5}], [])
    with pytest.raises(DatasetError, match="must be relative to --images"):
        slice_coco(tmp_path / "c.json", tmp_path / "imgs", tmp_path / "out")
    with pytest.raises(DatasetError, match="--window/--stride"):
        slice_coco(tmp_path / "c.json", tmp_path / "imgs", tmp_path / "out", options=SliceOptions(stride=2000))


def test_images_whose_windows_would_share_names_are_refused(tmp_path):
    # a.jpg and a.png would both give a__1__0___0.png: one image's windows would overwrite the other's.
    write_image(tmp_path / "imgs" / "a.jpg", 150, 150)
    write_image(tmp_path / "imgs" / "a.png", 150, 150, seed=1)
    both = [{"id": 7, "file_name": "a.jpg", "width": 150, "height": 150},
            {"id": 9, "file_name": "a.png", "width": 150, "height": 150}]
    write_coco(tmp_path / "s.json", both, [])
    with pytest.raises(DatasetError) as stems:
        slice_coco(tmp_path / "s.json", tmp_path / "imgs", tmp_path / "out", options=SMALL)
    assert str(stems.value) == (f"{tmp_path / 's.json'}: images[1] (id 9): file_name 'a.png' and 'a.jpg' (image id "
                                "7) would give the same window names a__*.png; rename one")
    twice = [both[0], {**both[0], "id": 8}]
    write_coco(tmp_path / "t.json", twice, [])
    with pytest.raises(DatasetError) as listed:
        slice_coco(tmp_path / "t.json", tmp_path / "imgs", tmp_path / "out", options=SMALL)
    assert str(listed.value) == (f"{tmp_path / 't.json'}: images[1] (id 8): file_name 'a.jpg' is listed again, "
                                 "first as image id 7; each file may be listed once")
    assert not (tmp_path / "out").exists()  # refused before any work
    # The same stem in two folders gives different names (the folders are kept).
    write_image(tmp_path / "imgs" / "d" / "a.png", 150, 150)
    write_coco(tmp_path / "u.json", [both[1], {**both[1], "id": 10, "file_name": "d/a.png"}], [])
    summary = slice_coco(tmp_path / "u.json", tmp_path / "imgs", tmp_path / "out", options=SMALL)
    assert summary.counts["windows"] == 8
    coco, _ = load(tmp_path / "out", "u")
    assert [im["file_name"] for im in coco["images"]][::4] == ["a__1__0___0.png", "d/a__1__0___0.png"]


def test_scales_that_share_a_name_are_refused(tmp_path):
    with pytest.raises(DatasetError, match=r"--scales: 0\.5 and 0\.5000001 would give the same window names "
                                           r"\(__0\.5__\)"):
        SliceOptions(scales=(1.0, 0.5000001, 0.5)).check()
    assert SliceOptions(scales=(0.5, 0.500001)).check().to_dict()["scales"] == [0.5, 0.500001]


def test_ids_that_are_not_integers_or_strings(tmp_path):
    write_image(tmp_path / "imgs" / "a.png", 150, 150)
    write_coco(tmp_path / "l.json", [{"id": [1], "file_name": "a.png", "width": 150, "height": 150}], [])
    with pytest.raises(DatasetError) as listed:
        slice_coco(tmp_path / "l.json", tmp_path / "imgs", tmp_path / "out", options=SMALL)
    assert str(listed.value) == (f"{tmp_path / 'l.json'}: images[0] needs an integer or string 'id' and a string "
                                 "'file_name'")
    image = {"id": "a", "file_name": "a.png", "width": 150, "height": 150}  # a string id is COCO's too
    anns = [ann(1, [1], [1, 1, 5, 5]), ann(2, {"id": 1}, [1, 1, 5, 5]), ann(3, "a", [1, 1, 5, 5], category=[1]),
            ann(4, "a", [1, 1, 5, 5], category={"id": 1}), ann(5, "a", [1, 1, 5, 5])]
    summary = slice_coco(write_coco(tmp_path / "t.json", [image], anns), tmp_path / "imgs", tmp_path / "out",
                         options=SMALL)
    problems = [json.loads(line) for line in
                (tmp_path / "out" / "slicing" / "t" / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [p["detail"] for p in problems] == [
        "annotation 1: image_id [1] is not an integer or a string",
        "annotation 2: image_id {'id': 1} is not an integer or a string",
        "annotation 3: category_id [1] is not in 'categories'",
        "annotation 4: category_id {'id': 1} is not in 'categories'",
    ]
    assert summary.problems == {"bad_annotation": 4}
    assert summary.counts["source_annotations"] == {"total": 5, "kept": 1, "dropped": 0, "invalid": 4}


def test_undecodable_and_wrong_size_images(tmp_path):
    write_image(tmp_path / "imgs" / "ok.png", 150, 150)
    (tmp_path / "imgs" / "bad.png").write_bytes(b"not an image")
    images = [{"id": 1, "file_name": "ok.png", "width": 160, "height": 150},
              {"id": 2, "file_name": "bad.png", "width": 150, "height": 150}]
    ann_path = write_coco(tmp_path / "t.json", images, [ann(1, 1, [1, 1, 5, 5]), ann(2, 2, [1, 1, 5, 5])])
    calls = []
    summary = slice_coco(ann_path, tmp_path / "imgs", tmp_path / "out", options=SMALL,
                         progress=lambda done, total: calls.append((done, total)))
    assert summary.problems == {"size_mismatch": 1, "unreadable_image": 1}
    # Each image plans 2 x 2 windows (128 with stride 96 over 150 or 160 px); neither cuts one, the bar still ends.
    assert calls == [(0, 8), (4, 8), (8, 8)] and summary.counts["windows_considered"] == 0
    _, rows = load(tmp_path / "out", "t")
    assert [(r["status"], r["reason"]) for r in rows] == [("invalid", "size_mismatch"),
                                                          ("invalid", "unreadable_image")]


# -- equality with SAHI where the rules coincide -------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.tuples(st.integers(64, 200), st.integers(64, 200)),
    boxes=st.lists(st.tuples(st.floats(0, 0.99), st.floats(0, 0.99), st.integers(1, 40), st.integers(1, 40)),
                   min_size=1, max_size=60),
    iof=st.sampled_from([0.1, 0.5, 0.7, 1.0]),
)
def test_same_windows_and_boxes_as_sahi(tmp_path_factory, size, boxes, iof):
    from sahi.slicing import get_slice_bboxes, process_coco_annotations
    from sahi.utils.coco import CocoAnnotation

    width, height = size
    # Integer boxes inside the image (SAHI's integer areas are then exact), placed anywhere in it.
    boxes = [(x, y, min(w, width - x), min(h, height - y))
             for x, y, w, h in ((int(fx * (width - 1)), int(fy * (height - 1)), w, h) for fx, fy, w, h in boxes)]
    root = tmp_path_factory.mktemp("sahi")
    write_image(root / "imgs" / "s.png", width, height)
    ann_path = write_coco(root / "t.json", [{"id": 1, "file_name": "s.png", "width": width, "height": height}],
                          [ann(k + 1, 1, [float(v) for v in b]) for k, b in enumerate(boxes)])
    slice_coco(ann_path, root / "imgs", root / "out", options=SliceOptions(window=64, stride=48, iof=iof))
    coco, _ = load(root / "out", "t")

    windows = get_slice_bboxes(height, width, slice_height=64, slice_width=64, overlap_height_ratio=0.25,
                               overlap_width_ratio=0.25)
    assert [im["window"] for im in coco["images"]] == [w[:2] for w in windows]
    sources = [CocoAnnotation.from_coco_bbox(list(b), 1, "car") for b in boxes]
    for image, window in zip(coco["images"], windows, strict=True):
        theirs = sorted((a.bbox, a.category_id) for a in process_coco_annotations(sources, window, iof))
        ours = sorted((a["bbox"], a["category_id"]) for a in coco["annotations"] if a["image_id"] == image["id"])
        assert [([float(v) for v in b], c) for b, c in theirs] == ours, window


# -- the command ----------------------------------------------------------------------------------------------------


def test_cli(scene, tmp_path):
    ann_path, images, _ = scene
    args = ["slice", "--ann", str(ann_path), "--images", str(images), "--out", str(tmp_path / "out"),
            "--window", "128", "--stride", "96", "--quiet", "--workers", "1"]
    result = CliRunner().invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "train: 1 of 2 images -> 6 windows" in result.output and "missing_image 1" in result.output
    again = CliRunner().invoke(data_app, args)
    assert again.exit_code == 1 and "already holds a build" in again.output
    bad = CliRunner().invoke(data_app, [*args, "--scales", "1,x", "--overwrite"])
    assert bad.exit_code == 1 and "--scales: expected comma-separated numbers" in bad.output
    help_text = CliRunner().invoke(data_app, ["slice", "--help"]).output
    for option in ("--ann", "--images", "--window", "--stride", "--scales", "--iof", "--workers", "--resume"):
        assert option in help_text


def test_commands_load_no_torch(scene, tmp_path):
    # slice (two workers forked from the command) and convert visdrone, with torch and OpenMMLab refused.
    from no_torch import run_data_commands

    ann_path, images, _ = scene
    visdrone = tmp_path / "vd"
    (visdrone / "images").mkdir(parents=True)
    (visdrone / "annotations").mkdir()
    assert cv2.imwrite(str(visdrone / "images" / "a.jpg"), np.zeros((40, 60, 3), np.uint8))
    (visdrone / "annotations" / "a.txt").write_text("1,2,10,10,1,4,0,0\n", encoding="utf-8")
    result = run_data_commands(
        ["slice", "--ann", str(ann_path), "--images", str(images), "--out", str(tmp_path / "out"), "--window",
         "128", "--stride", "96", "--workers", "2", "--quiet"],
        ["convert", "visdrone", "--root", str(visdrone), "--out", str(tmp_path / "vd.json")],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    assert (tmp_path / "out" / "annotations" / "train.json").is_file() and (tmp_path / "vd.json").is_file()
