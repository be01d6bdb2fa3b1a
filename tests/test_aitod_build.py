"""Tests of the AI-TOD builder (dotamini10/aitod) and ``hsfpn-data build-aitod``, on synthetic xView tifs made here.

The official rule is transcribed below from wwtool's ``split_image`` and ``generate_aitod_imgs.py`` as a plain
reference (``wwtool_split``), independent of the builder's code, and every window the builder writes is compared
with it pixel for pixel after decoding with OpenCV, as the official files would be read.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli import data_app
from dotamini10.aitod.build import AitodOptions, AitodSummary, build_aitod
from dotamini10.aitod.lists import XviewWindow, parse_list_text, parse_window_name
from dotamini10.aitod.official import official_starts
from dotamini10.aitod.tasks import CopyTask, run_copy
from dotamini10.aitod.verify import SplitCheck, verify_json
from dotamini10.aitod.synthetic import DEFAULT_TIFS, write_synthetic_aitod, write_tif
from dotamini10.build_record import read_build_record
from dotamini10.datacard import write_report_and_card
from dotamini10.errors import DatasetError
from dotamini10.stats import compute_stats
from pipelines.datasets import aitod_layout


def wwtool_split(img: np.ndarray, subsize: int = 800, gap: int = 200) -> dict[tuple[int, int], np.ndarray]:
    """wwtool.split_image(img, subsize, gap, mode='keep_all', expand_boundary=True), read from its source."""
    height, width = img.shape[:2]
    starts = {}
    for axis, length in (("x", width), ("y", height)):
        s = np.arange(0, length, subsize - gap)
        s[-1] = length - subsize if length - s[-1] <= subsize else s[-1]
        s[-1] = np.maximum(s[-1], 0)
        starts[axis] = s
    windows = {}
    for sx in starts["x"]:
        for sy in starts["y"]:
            ex, ey = min(sx + subsize, width), min(sy + subsize, height)
            sub = np.zeros((subsize, subsize, 3), dtype=np.uint8)  # wwtool.generate_image(color=(0, 0, 0))
            sub[0:ey - sy, 0:ex - sx, ...] = img[sy:ey, sx:ex, ...]
            windows[(int(sx), int(sy))] = sub
    return windows


def read_rgb(path: Path) -> np.ndarray:
    """The tif as skimage.io.imread gives it (RGB), decoded with Pillow: independent of the builder's OpenCV."""
    from PIL import Image

    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def official_file_pixels(rgb_window: np.ndarray) -> np.ndarray:
    """What cv2.imread returns for the official PNG: cv2.imwrite took the RGB array as BGR, so it reads it back
    as the same array."""
    return rgb_window


def tiff_compression(path: Path) -> int:
    """Tag 259 (Compression) of a little- or big-endian TIFF's first directory."""
    data = path.read_bytes()
    endian = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(endian + "I", data[4:8])
    (count,) = struct.unpack(endian + "H", data[ifd:ifd + 2])
    for i in range(count):
        tag, kind, _, value = struct.unpack(endian + "HHIH", data[ifd + 2 + 12 * i: ifd + 12 + 12 * i])
        if tag == 259:
            return value
    return 1


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_synthetic_aitod(tmp_path_factory.mktemp("aitod_src"), seed=3)


@pytest.fixture(scope="module")
def built(source, tmp_path_factory):
    out = tmp_path_factory.mktemp("aitod_out") / "AI-TOD"
    summary = build_aitod(out, xview=source.xview, aitod=source.aitod, lists=source.lists, workers=1)
    return out, summary


# -- the official rule, by hand and against the transcription -----------------------------------------------------


def test_official_starts_by_hand():
    assert official_starts(600) == [0]
    assert official_starts(700) == [0, 0]  # 600 < L <= 800: the flush start is clamped to 0 and repeats
    assert official_starts(800) == [0, 0]
    assert official_starts(1000) == [0, 200]
    assert official_starts(1200) == [0, 400]
    assert official_starts(1300) == [0, 600, 500]  # 1,300 mod 600 = 100: 600 still cut, padded; flush one before it
    assert official_starts(3000) == [0, 600, 1200, 1800, 2200]
    # Names of the published lists: 1908__2585_2477 comes from a 3,385 x 3,277 tif, 389__600_1801 from height 2,601.
    assert 2585 in official_starts(3385) and 2477 in official_starts(3277)
    assert official_starts(2601) == [0, 600, 1200, 1800, 1801]


@settings(max_examples=300, deadline=None)
@given(length=st.integers(1, 6000))
def test_official_starts_equal_wwtool(length):
    image = np.zeros((1, length, 3), dtype=np.uint8)
    assert sorted({x for x, _ in wwtool_split(image)}) == sorted(set(official_starts(length)))


def test_window_names_and_lists():
    assert parse_window_name("1205__600_0.png") == XviewWindow("1205", 600, 0)
    assert parse_window_name("1205__600_0.jpg") is None and parse_window_name("a__1_2.png") is None
    windows, problems = parse_list_text("['1__0_0.png', '1__0_0.png', 'bad.png', 3]", file="l.txt")
    assert windows == [XviewWindow("1", 0, 0)]
    assert [(p.reason, p.detail) for p in problems] == [("bad_list_entry", "entry 2: 'bad.png'"),
                                                        ("bad_list_entry", "entry 3: 3")]
    assert parse_list_text("['1__0_0.png',", file="l.txt")[1][0].reason == "unparsable_list"
    assert parse_list_text("{'a': 1}", file="l.txt")[1][0].detail == "holds a dict, not a list"
    assert parse_list_text("__import__('os')", file="l.txt")[0] == []  # a literal only: no code runs


# -- the build ----------------------------------------------------------------------------------------------------


def test_every_window_equals_the_official_pixels(source, built):
    out, summary = built
    assert summary.complete and summary.failure_line() == ""
    lzw = [xid for xid, *_, compressed in DEFAULT_TIFS if compressed]
    assert lzw and tiff_compression(source.xview / "train_images" / f"{lzw[0]}.tif") == 5
    checked = 0
    for xview_id, width, height, split, _ in DEFAULT_TIFS:
        rgb = read_rgb(source.xview / "train_images" / f"{xview_id}.tif")
        assert rgb.shape == (height, width, 3) and np.array_equal(rgb, source.rgb[xview_id])
        oracle = wwtool_split(rgb)
        for (x, y), window in oracle.items():
            for folder in (split, "trainval") if split != "test" else ("test",):
                stored = cv2.imread(str(out / "images" / folder / f"{xview_id}__{x}_{y}.png"), cv2.IMREAD_UNCHANGED)
                assert stored.shape == (800, 800, 3)
                assert np.array_equal(stored, official_file_pixels(window)), (xview_id, x, y)
                checked += 1
    assert checked == summary.windows_written == 2 * (1 + 3 * 2) + 3 * 2  # 700: (0, 0) once; 1300 x 1000; 1500 x 1200
    # The swap is real: the stored file's red channel is the tif's blue.
    stored = cv2.imread(str(out / "images" / "test" / "13__0_0.png"), cv2.IMREAD_UNCHANGED)
    assert not np.array_equal(stored[..., ::-1], source.rgb["13"][:800, :800])


def test_true_colors_are_the_tifs_colors(source, tmp_path):
    out = tmp_path / "true"
    summary = build_aitod(out, xview=source.xview, aitod=source.aitod, lists=source.lists,
                          options=AitodOptions(colors="true"))
    assert summary.complete
    for xview_id, *_ in DEFAULT_TIFS:
        folder = "test" if xview_id == "13" else "trainval"
        for (x, y), window in wwtool_split(source.rgb[xview_id]).items():
            stored = cv2.imread(str(out / "images" / folder / f"{xview_id}__{x}_{y}.png"), cv2.IMREAD_UNCHANGED)
            assert np.array_equal(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB), window)
    assert read_build_record(out).colors == "true"


def test_layout_copies_record_and_table_data_root(source, built):
    out, summary = built
    for split in ("train", "val", "trainval", "test"):
        for path in (source.aitod / "images" / split).iterdir():
            assert (out / "images" / split / path.name).read_bytes() == path.read_bytes()
    for path in (source.aitod / "annotations").iterdir():
        assert (out / "annotations" / path.name).read_bytes() == path.read_bytes()
    record = read_build_record(out)
    assert record.dataset == "aitod" and record.complete is True and record.colors == "official"
    assert record.annotations == {s: f"annotations/aitod_{s}_v1.json" for s in ("train", "val", "trainval", "test")}
    produced = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    assert produced == set(record.outputs) | {"build.json"} and not (out / ".work").exists()
    assert record.totals["images"] == record.counts["trainval"]["images"] + record.counts["test"]["images"]
    assert record.totals["published_images"] == 28_036 and record.totals["published_instances"] == 700_621
    layout = aitod_layout(out)  # what hsfpn-repro table1/2/3 --data-root resolves
    assert (layout.train_ann, layout.train_img) == ("annotations/aitod_trainval_v1.json", "images/trainval/")
    assert (layout.test_ann, layout.test_img) == ("annotations/aitod_test_v1.json", "images/test/")


def test_outputs_do_not_depend_on_workers(source, built, tmp_path):
    out, _ = built
    again = tmp_path / "two"
    build_aitod(again, xview=source.xview, aitod=source.aitod, lists=source.lists, workers=2)
    first, second = read_build_record(out), read_build_record(again)
    assert first.outputs == second.outputs and first.counts == second.counts


def test_stats_and_card_of_an_aitod_build(built, tmp_path):
    out, _ = built
    stats = compute_stats(out)
    assert list(stats.splits) == ["train", "val", "trainval", "test"]
    assert stats.overall.images == stats.splits["trainval"].images + stats.splits["test"].images
    run = write_report_and_card(out, out_dir=tmp_path / "stats", data_card=tmp_path / "AI-TOD.md")
    card = (tmp_path / "AI-TOD.md").read_text(encoding="utf-8")
    assert "CC BY-NC-SA 4.0" in card and "may not be redistributed" in card
    assert "red and blue are swapped" in card and "| complete | yes" in card
    assert f"| images | {stats.overall.images:,} | 28,036 |" in card and "| mean size sqrt(w x h), px |" in card
    view = json.loads((tmp_path / "stats" / "stats.json").read_text(encoding="utf-8"))
    assert view["all"]["paper_images"] == 28_036 and view["all"]["paper_mean_size"] == 12.8
    assert view["splits"]["train"]["paper_instances"] is None  # nothing per split is published
    assert run.card_files[0].name == "AI-TOD.md"


# -- bad input, incomplete builds and resume -----------------------------------------------------------------------


def broken_source(root: Path, source) -> Path:
    """The synthetic source with a missing tif (11), a truncated LZW tif (12) and a damaged val list."""
    shutil.copytree(source.root, root)
    (root / "xview" / "train_images" / "11.tif").unlink()
    tif = root / "xview" / "train_images" / "12.tif"
    tif.write_bytes(tif.read_bytes()[: tif.stat().st_size // 2])
    return root


def test_bad_inputs_are_one_line_each_and_the_rest_is_built(source, tmp_path):
    root = broken_source(tmp_path / "src", source)
    (root / "lists" / "aitod_xview_test.txt").write_text(
        (root / "lists" / "aitod_xview_test.txt").read_text(encoding="utf-8")[:-1] + ", '13__5000_0.png', "
        "'13__300_0.png']", encoding="utf-8")
    out = tmp_path / "out"
    summary = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists")
    assert not summary.complete
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    by_reason = {}
    for p in problems:
        by_reason.setdefault(p["reason"], []).append(p)
    assert by_reason["missing_tif"][0]["file"] == "11.tif"
    assert by_reason["truncated_image"][0]["file"] == "12.tif"
    assert [p["file"] for p in by_reason["window_outside_tif"]] == ["13__5000_0.png"]
    assert [p["file"] for p in by_reason["window_off_grid"]] == ["13__300_0.png"]
    # 11 (1 window, in val and trainval) and 12 (6 windows, in train and trainval) are missing where listed.
    missing = {c.split: c.missing for c in summary.checks}
    assert missing == {"train": 6, "val": 1, "trainval": 7, "test": 0}
    assert summary.failure_line().startswith("14 images missing, see ")
    assert (out / "images" / "test" / "13__0_0.png").is_file()  # the rest is built
    assert (out / ".work").is_dir()  # kept for --resume


def test_resume_fills_the_holes(source, tmp_path):
    root = broken_source(tmp_path / "src", source)
    out = tmp_path / "out"
    first = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists")
    assert not first.complete
    for name in ("11.tif", "12.tif"):
        shutil.copy(source.xview / "train_images" / name, root / "xview" / "train_images" / name)
    again = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists", resume=True)
    assert again.complete and not (out / ".work").exists()
    # Tif 13 and the four splits' copy batches (up to 64 images each) were done; 11 and 12 met a problem and ran again.
    assert again.resumed_tasks == 1 + 4
    done = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists", resume=True)
    assert done.already_complete and done.complete


def test_json_problems(source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(source.root, root)
    (root / "aitod" / "annotations" / "aitod_val_v1.json").write_text("{oops", encoding="utf-8")
    test_json = root / "aitod" / "annotations" / "aitod_test_v1.json"
    document = json.loads(test_json.read_text(encoding="utf-8"))
    document["images"].append({"id": 999, "file_name": "nobody.png", "width": 800, "height": 800})
    document["annotations"][0]["bbox"] = [790.0, 10.0, 20.0, 5.0]
    test_json.write_text(json.dumps(document), encoding="utf-8")
    out = tmp_path / "out"
    summary = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists")
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    reasons = {(p["file"], p["reason"]) for p in problems}
    assert ("annotations/aitod_val_v1.json", "unparsable_json") in reasons
    assert ("annotations/aitod_test_v1.json", "image_not_provided") in reasons
    assert ("annotations/aitod_test_v1.json", "box_outside_image") in reasons
    assert not summary.complete
    assert summary.failure_line().startswith("1 images missing, 1 boxes outside their image, 1 annotation jsons "
                                             "unreadable")


def test_unreadable_copies_are_problems_and_failed_writes_stop_the_build(source, tmp_path):
    out = tmp_path / "out"
    (out / "images" / "train").mkdir(parents=True)
    (out / "images" / "train" / "train_0001.png").mkdir()  # no file can be written under this name
    task = CopyTask("train", ("nobody.png", "train_0000.png"), source.aitod, out, 0)
    result = run_copy(task)
    missing = source.aitod / "images" / "train" / "nobody.png"
    assert result.problems == [["aitod/images/train/nobody.png", "unreadable_image",
                                f"FileNotFoundError: [Errno 2] No such file or directory: '{missing}'"]]
    assert list(result.files) == ["images/train/train_0000.png"]
    with pytest.raises(IsADirectoryError) as failed:  # the output's fault: not recorded against the source
        run_copy(CopyTask("train", ("train_0001.png",), source.aitod, out, 1))
    assert failed.value.filename2 == str(out / "images" / "train" / "train_0001.png")  # os.replace(tmp, target)
    with pytest.raises(DatasetError, match=r"^writing outputs failed: .*train_0001\.png"):
        build_aitod(out, xview=source.xview, aitod=source.aitod, lists=source.lists, resume=True)


def verify_document(out: Path, document: dict) -> tuple[SplitCheck, list[tuple]]:
    """verify_json of ``document`` as out/annotations/aitod_test_v1.json: the check and its problems as tuples."""
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "images" / "test").mkdir(parents=True, exist_ok=True)
    path = out / "annotations" / "aitod_test_v1.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    problems = []
    check = verify_json(path, "test", out, set(), problems)
    return check, [(p.file, p.line, p.reason, p.detail) for p in problems]


def test_ids_that_are_not_integers_or_strings_make_a_json_unparsable(tmp_path):
    cats = [{"id": 1, "name": "ship"}]
    image = {"id": 1, "file_name": "a.png", "width": 8, "height": 8}
    box = {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]}
    cases = {
        "images[0] needs an integer or string 'id', a string 'file_name' and integer 'width' and 'height'":
            {"images": [{**image, "id": [1]}], "annotations": [], "categories": cats},
        "annotations[0] needs an integer or string 'image_id', an integer 'category_id' and a 'bbox' of four numbers":
            {"images": [image], "annotations": [{**box, "image_id": {"id": 1}}], "categories": cats},
        "annotations[1] needs an integer or string 'image_id', an integer 'category_id' and a 'bbox' of four "
        "numbers": {"images": [image], "annotations": [box, {**box, "category_id": [1]}], "categories": cats},
    }
    for detail, document in cases.items():
        check, problems = verify_document(tmp_path / "out", document)
        assert problems == [("annotations/aitod_test_v1.json", None, "unparsable_json", detail)]
        assert not check.parsed and not check.complete
    # String image ids are COCO's too.
    write_png = cv2.imwrite(str(tmp_path / "out" / "images" / "test" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    check, problems = verify_document(tmp_path / "out", {"images": [{**image, "id": "a"}], "annotations": [
        {**box, "image_id": "a"}], "categories": cats})
    assert write_png and problems == [] and check.complete and (check.images, check.instances) == (1, 1)


def test_an_annotation_naming_no_image_is_reported(tmp_path):
    out = tmp_path / "out"
    (out / "images" / "test").mkdir(parents=True)
    assert cv2.imwrite(str(out / "images" / "test" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    document = {"images": [{"id": 1, "file_name": "a.png", "width": 8, "height": 8}],
                "annotations": [{"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 2, 2]},
                                {"id": 6, "image_id": 2, "category_id": 1, "bbox": [1000, 1, 4, 9]}],
                "categories": [{"id": 1, "name": "ship"}]}
    check, problems = verify_document(out, document)
    assert problems == [("annotations/aitod_test_v1.json", None, "annotation_without_image",
                         "annotation 6: image_id 2 names no image of this json")]
    assert (check.instances, check.boxes_outside, check.annotations_without_image) == (2, 0, 1)
    assert not check.complete and check.to_dict()["annotations_without_image"] == 1
    assert AitodSummary(out, complete=False, checks=[check]).failure_line() == (
        f"1 annotations naming no image, see {out / 'problems.jsonl'}")


def test_an_unreadable_annotation_json_is_a_problem(source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(source.root, root)
    val = root / "aitod" / "annotations" / "aitod_val_v1.json"
    val.unlink()
    val.mkdir()  # globbed as a json, cannot be read as one
    out = tmp_path / "out"
    summary = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists")
    problems = [json.loads(line) for line in (out / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    assert problems == [{"file": "aitod/annotations/aitod_val_v1.json", "line": None, "reason": "unparsable_json",
                         "detail": f"cannot be read (IsADirectoryError: [Errno 21] Is a directory: '{val}')"}]
    assert not summary.complete and summary.failure_line().startswith("1 annotation jsons unreadable, see ")
    assert [c.split for c in summary.checks if not c.parsed] == ["val"]


def test_fresh_build_refuses_a_used_folder_and_bad_options(source, built):
    out, _ = built
    with pytest.raises(DatasetError, match="already holds a build"):
        build_aitod(out, xview=source.xview, aitod=source.aitod, lists=source.lists)
    with pytest.raises(DatasetError, match="--colors: expected one of official, true"):
        build_aitod(out, xview=source.xview, aitod=source.aitod, lists=source.lists,
                    options=AitodOptions(colors="rgb"))
    with pytest.raises(DatasetError, match="--xview: .* is not a folder"):
        build_aitod(out, xview=out / "nowhere", aitod=source.aitod, lists=source.lists)


def test_non_rgb_tif_is_reported(source, tmp_path):
    root = tmp_path / "src"
    shutil.copytree(source.root, root)
    gray = source.rgb["11"][..., 0]
    assert cv2.imwrite(str(root / "xview" / "train_images" / "11.tif"), gray)
    out = tmp_path / "out"
    summary = build_aitod(out, xview=root / "xview", aitod=root / "aitod", lists=root / "lists")
    assert summary.problems.get("unsupported_pixels") == 1 and not summary.complete


# -- the command ----------------------------------------------------------------------------------------------------


def test_cli_exit_codes(source, tmp_path):
    args = ["build-aitod", "--xview", str(source.xview), "--aitod", str(source.aitod), "--lists",
            str(source.lists), "--quiet", "--workers", "1"]
    ok = CliRunner().invoke(data_app, [*args, "--out", str(tmp_path / "ok")])
    assert ok.exit_code == 0, ok.output
    assert "AI-TOD (trainval + test):" in ok.output and "(published 28,036)" in ok.output
    root = broken_source(tmp_path / "src", source)
    bad = CliRunner().invoke(data_app, ["build-aitod", "--xview", str(root / "xview"), "--aitod",
                                        str(root / "aitod"), "--lists", str(root / "lists"), "--quiet",
                                        "--workers", "1", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 1
    assert "incomplete: 14 images missing, see " in bad.output and "Traceback" not in bad.output
    usage = CliRunner().invoke(data_app, [*args, "--out", str(tmp_path / "c"), "--colors", "bgr"])
    assert usage.exit_code == 1 and "--colors: expected one of official, true" in usage.output


def test_cli_help():
    result = CliRunner().invoke(data_app, ["build-aitod", "--help"])
    assert result.exit_code == 0
    for option in ("--xview", "--aitod", "--lists", "--out", "--workers", "--resume", "--colors"):
        assert option in result.output


def test_cli_synthetic_source_builds(tmp_path):
    made = CliRunner().invoke(data_app, ["synthetic-aitod", "--out", str(tmp_path / "src"), "--seed", "2"])
    assert made.exit_code == 0, made.output
    assert "xview/train_images/12.tif: 1,300 x 1,000 px" in made.output
    built = CliRunner().invoke(data_app, ["build-aitod", "--xview", str(tmp_path / "src" / "xview"), "--aitod",
                                          str(tmp_path / "src" / "aitod"), "--lists", str(tmp_path / "src" / "lists"),
                                          "--out", str(tmp_path / "out"), "--quiet", "--workers", "1"])
    assert built.exit_code == 0, built.output


def test_cli_synthetic_source_errors_are_one_line(tmp_path):
    (tmp_path / "file").write_text("", encoding="utf-8")
    result = CliRunner().invoke(data_app, ["synthetic-aitod", "--out", str(tmp_path / "file")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    assert (f"error: writing the synthetic AI-TOD source failed: [Errno 20] Not a directory: '{tmp_path / 'file'}"
            in result.output)


def test_synthetic_source_writes_are_atomic(tmp_path, monkeypatch):
    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("dotamini10.io.os.replace", full_disk)
    with pytest.raises(DatasetError) as failed:
        write_synthetic_aitod(tmp_path / "src")
    tif = tmp_path / "src" / "xview" / "train_images" / "11.tif"
    assert str(failed.value) == (f"writing the synthetic AI-TOD source failed: [Errno 28] No space left on device: "
                                 f"'{tif}'")
    assert [p for p in (tmp_path / "src").rglob("*") if not p.is_dir()] == []  # nothing half-written left behind


def test_write_tif_roundtrip(tmp_path):
    rgb = np.arange(30 * 20 * 3, dtype=np.uint8).reshape(20, 30, 3)
    write_tif(tmp_path / "a.tif", rgb, lzw=True)
    assert tiff_compression(tmp_path / "a.tif") == 5
    assert np.array_equal(cv2.imread(str(tmp_path / "a.tif"), cv2.IMREAD_UNCHANGED)[..., ::-1], rgb)


def test_commands_load_no_torch(source, tmp_path):
    # build-aitod (two workers forked from the command) and stats on its output, with torch and OpenMMLab refused.
    from no_torch import run_data_commands

    out = tmp_path / "AI-TOD"
    result = run_data_commands(
        ["build-aitod", "--xview", str(source.xview), "--aitod", str(source.aitod), "--lists", str(source.lists),
         "--out", str(out), "--workers", "2", "--quiet"],
        ["stats", str(out)],
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "loaded: []"
    assert (out / "stats" / "AI-TOD.md").is_file()


def test_each_tif_is_decoded_once(source, tmp_path, monkeypatch):
    decoded = []
    real = cv2.imdecode

    def counting(buf, flags):
        decoded.append(len(buf))
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", counting)
    summary = build_aitod(tmp_path / "out", xview=source.xview, aitod=source.aitod, lists=source.lists, workers=1)
    assert summary.complete and summary.windows_written == 20
    sizes = sorted((source.xview / "train_images" / f"{xview_id}.tif").stat().st_size for xview_id, *_ in DEFAULT_TIFS)
    assert sorted(decoded) == sizes  # one decode per tif for all of its windows, in every split
