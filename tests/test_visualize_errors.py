"""Tests of pipelines.visualize.error_view and `hsfpn-repro visualize errors`: counts a reader can check, totals equal
to the AI-TOD evaluator (and pycocotools), the ranking, and figures of the expected size that show a 5 px object."""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from typer.testing import CliRunner

import cli
from dotamini10.png import encode_png
from hsfpn.aitod_eval import AITODEval, AITODParams, Detections, GroundTruth
from pipelines.visualize import VisualizeError
from pipelines.visualize.error_view import (
    Crop,
    ErrorViewOptions,
    Scenes,
    choose_crops,
    match_detections,
    rank_images,
    render_error_views,
)
from pipelines.visualize.figure import FN_COLOR, FP_COLOR, TP_COLOR


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])
    return width, height


def png_pixels(path: Path) -> np.ndarray:
    import cv2

    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def colour_pixels(pixels: np.ndarray, colour: str) -> int:
    rgb = np.array([int(colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(pixels.astype(int) - rgb).sum(axis=2) <= 12).sum())


def write_scene(folder: Path, name: str, size: tuple[int, int], seed: int = 0) -> None:
    """A gray textured image (so that figures are not blank) with a few bright squares."""
    rng = np.random.default_rng(seed)
    height, width = size
    image = np.clip(rng.normal(90, 12, (height, width, 3)), 0, 255).astype(np.uint8)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(encode_png(image, channels="rgb"))


def coco(images: list[tuple[int, str]], anns: list[dict]) -> dict:
    out = []
    for j, a in enumerate(anns):
        x, y, w, h = a["bbox"]
        out.append({"id": j + 1, "image_id": a.get("image_id", images[0][0]), "category_id": 1, "bbox": [x, y, w, h],
                    "area": w * h, "iscrowd": a.get("iscrowd", 0)})  # fmt: skip
    return {"images": [{"id": i, "file_name": n} for i, n in images],
            "categories": [{"id": 1, "name": "vehicle"}], "annotations": out}  # fmt: skip


def det(bbox: list[float], score: float, image_id: int = 1) -> dict:
    return {"image_id": image_id, "category_id": 1, "bbox": bbox, "score": score}


# The hand case: a duplicate detection, a box below the IoU threshold, a miss (5 px) and a crowd box.
HAND_GT = [
    {"bbox": [20, 20, 10, 10]},                    # g0: found by d0; d1 is its duplicate
    {"bbox": [60, 60, 10, 10]},                    # g1: d2 overlaps it at IoU 25 / 175 = 0.14 < 0.5
    {"bbox": [120, 40, 5, 5]},                     # g2: a 5 px object nobody finds
    {"bbox": [100, 120, 60, 60], "iscrowd": 1},    # g3: a crowd region
]  # fmt: skip
HAND_DETS = [
    det([20, 20, 10, 10], 0.9),    # d0: TP
    det([21, 20, 10, 10], 0.8),    # d1: FP (g0 is taken)
    det([65, 65, 10, 10], 0.7),    # d2: FP (IoU too low); g1 is then a miss
    det([110, 130, 10, 10], 0.6),  # d3: inside the crowd region: ignored
    det([5, 150, 10, 10], 0.1),    # d4: below the score threshold 0.3: dropped before matching
]  # fmt: skip


@pytest.fixture()
def hand_case(tmp_path: Path) -> dict[str, Path]:
    write_scene(tmp_path / "images", "scene.png", (200, 200))
    (tmp_path / "gt.json").write_text(json.dumps(coco([(1, "scene.png")], HAND_GT)), encoding="utf-8")
    (tmp_path / "dets.json").write_text(json.dumps(HAND_DETS), encoding="utf-8")
    return {"root": tmp_path, "ann": tmp_path / "gt.json", "dets": tmp_path / "dets.json",
            "images": tmp_path / "images", "out": tmp_path / "out"}  # fmt: skip


def read_counts(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def test_hand_case_counts(hand_case: dict[str, Path]):
    result = render_error_views(hand_case["ann"], [hand_case["dets"]], hand_case["images"], hand_case["out"])
    (row,) = read_counts(result.counts_csv)
    # all: TP d0; FP d1, d2; FN g1, g2; the crowd region and d3 count neither way; d4 is below the score.
    assert (row["tp"], row["fp"], row["fn"]) == ("1", "2", "2")
    # very tiny [0, 64]: only g2 (area 25) is in range: a miss; every detection (area 100) is outside: ignored.
    assert (row["tp_verytiny"], row["fp_verytiny"], row["fn_verytiny"]) == ("0", "0", "1")
    # tiny [64, 256]: g0 and g1 (area 100) are in range; the detections too.
    assert (row["tp_tiny"], row["fp_tiny"], row["fn_tiny"]) == ("1", "2", "1")
    assert (row["tp_small"], row["fp_small"], row["fn_small"]) == ("0", "0", "0")
    assert row["image"] == "scene.png" and row["rank"] == "1" and row["figure"] == "001_scene.png"
    summary = json.loads(result.summary_json.read_text(encoding="utf-8"))
    assert summary["detectors"][0]["detections"] == 5 and summary["detectors"][0]["kept_at_score"] == 4
    assert summary["detectors"][0]["totals"]["all"]["recall"] == pytest.approx(1 / 3)


def test_hand_case_figure_size_colours_and_determinism(hand_case: dict[str, Path]):
    result = render_error_views(hand_case["ann"], [hand_case["dets"]], hand_case["images"], hand_case["out"])
    (figure,) = result.figures
    # One 6 in block + 0.5 + 0.25 in margins at 100 dpi; height 1.4 (titles, two-line legend) + 6.0 (a square
    # image 6 in wide) + 0.3 + one row of crops (1.5 + 0.2) + 0.25 = 9.65 in.
    assert png_size(figure) == (675, 965)
    pixels = png_pixels(figure)
    assert pixels.std() > 20  # not blank
    for colour in (TP_COLOR, FP_COLOR, FN_COLOR):
        assert colour_pixels(pixels, colour) > 30, colour
    again = render_error_views(hand_case["ann"], [hand_case["dets"]], hand_case["images"], hand_case["root"] / "again")
    assert again.figures[0].read_bytes() == figure.read_bytes()
    assert again.counts_csv.read_bytes() == result.counts_csv.read_bytes()
    assert png_size(result.totals_png) == (1100, 380)


def test_a_5px_object_is_visible_in_a_large_scene(tmp_path: Path):
    # 2,000 px scene: on the overview (600 px wide) the object is 1.5 px; its crop (48 px shown 144 px wide)
    # draws it 15 px wide, a red outline of about 4 x 15 x 2 px.
    write_scene(tmp_path / "images", "big.png", (2000, 2000))
    gt = coco([(1, "big.png")], [{"bbox": [1400, 700, 5, 5]}])
    (tmp_path / "gt.json").write_text(json.dumps(gt), encoding="utf-8")
    (tmp_path / "dets.json").write_text("[]", encoding="utf-8")
    result = render_error_views(tmp_path / "gt.json", [tmp_path / "dets.json"], tmp_path / "images", tmp_path / "out")
    red = colour_pixels(png_pixels(result.figures[0]), FN_COLOR)
    assert red >= 80


def test_crops_cover_each_object_once_and_stay_inside():
    boxes = np.array([[10, 10, 5, 5], [14, 12, 4, 4], [190, 190, 8, 8], [100, 100, 40, 40]], dtype=float)
    crops = choose_crops(boxes, 200, 200, max_crops=8, min_side=48)
    # The second box sits well inside the first crop; the corner box's crop is pushed inside the image;
    # the 40 px box gets 3 x 40 = 120 px.
    assert crops == [Crop(0, 0, 48), Crop(152, 152, 48), Crop(60, 60, 120)]
    assert choose_crops(boxes, 200, 200, max_crops=1, min_side=48) == [Crop(0, 0, 48)]


# ---------------------------------------------------------------------------------------------
# totals equal the evaluator's, on random cases
# ---------------------------------------------------------------------------------------------


@st.composite
def scenes(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    images = [(3 * i + 1, f"{i}.png") for i in range(draw(st.integers(1, 4)))]
    ids = [i for i, _ in images]
    coord = st.integers(0, 30).map(float)
    size = st.sampled_from([2.0, 4.0, 6.0, 9.0, 12.0, 20.0, 40.0])
    anns = [{"bbox": [draw(coord), draw(coord), draw(size), draw(size)], "image_id": draw(st.sampled_from(ids)),
             "iscrowd": int(draw(st.integers(0, 8)) == 0)} for _ in range(draw(st.integers(0, 10)))]  # fmt: skip
    dets = []
    for _ in range(draw(st.integers(1, 15))):
        score = draw(st.sampled_from([0.05, 0.2, 0.3, 0.6, 0.9]))
        if anns and draw(st.booleans()):
            a = draw(st.sampled_from(anns))
            x, y, w, h = a["bbox"]
            dets.append(det([x + draw(st.sampled_from([-1.0, 0.0, 1.0])), y, w, h], score, a["image_id"]))
        else:
            dets.append(det([draw(coord), draw(coord), draw(size), draw(size)], score, draw(st.sampled_from(ids))))
    return coco(images, anns), dets


def matched(gt_dict: dict, dets: list[dict], options: ErrorViewOptions):
    gt = GroundTruth.from_coco(gt_dict)
    scenes_ = Scenes(gt=gt, file_names=tuple(im["file_name"] for im in gt_dict["images"]), source=Path("gt.json"))
    return gt, match_detections(scenes_, Detections.from_coco(dets, gt), "A", Path("dets.json"), options)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenes(), area=st.sampled_from(["all", "verytiny", "tiny", "small"]), score=st.sampled_from([0.0, 0.3]))
def test_totals_equal_the_evaluators_recall(case: tuple[dict, list[dict]], area: str, score: float):
    gt_dict, dets = case
    gt, errors = matched(gt_dict, dets, ErrorViewOptions(score=score, area=area))
    kept = [d for d in dets if d["score"] >= score]
    # The evaluator as `hsfpn-repro eval` runs it (AI-TOD's parameters), on the detections above the score.
    ev = AITODEval(gt, Detections.from_coco(kept, gt))
    ev.evaluate()
    ev.accumulate()
    t = errors.totals(area)
    a = ev.params.area_labels.index(area)
    expected = -1.0 if t["tp"] + t["fn"] == 0 else t["tp"] / (t["tp"] + t["fn"])
    assert ev.recall[0, 0, a, -1] == pytest.approx(expected, abs=1e-12)  # IoU 0.5, max_dets 1500


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=scenes(), area=st.sampled_from(["all", "tiny"]))
def test_per_image_counts_equal_pycocotools(case: tuple[dict, list[dict]], area: str):
    gt_dict, dets = case
    gt, errors = matched(gt_dict, dets, ErrorViewOptions(score=0.0, area=area))
    params = AITODParams()
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt_dict)
        coco_gt.createIndex()
        ref = COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(dets)), "bbox")
        ref.params.maxDets = list(params.max_dets)
        ref.params.areaRng = [list(r) for r in params.area_rngs]
        ref.params.areaRngLbl = list(params.area_labels)
        ref.evaluate()
    a, n_img = params.area_labels.index(area), len(ref.params.imgIds)
    tp, fp, fn = (np.zeros(n_img, dtype=int) for _ in range(3))
    for i, rec in enumerate(ref.evalImgs[a * n_img:(a + 1) * n_img]):  # one category: area-major blocks
        if rec is None:
            continue
        dt_ignored, dt_matched = rec["dtIgnore"][0], rec["dtMatches"][0] > 0
        tp[i] = int((dt_matched & ~dt_ignored).sum())
        fp[i] = int((~dt_matched & ~dt_ignored).sum())
        fn[i] = int((~rec["gtIgnore"].astype(bool)).sum()) - tp[i]
    assert [c.tolist() for c in errors.counts[area]] == [tp.tolist(), fp.tolist(), fn.tolist()]


def test_cli_counts_totals_equal_eval_command(hand_case: dict[str, Path]):
    out = hand_case["out"]
    result = CliRunner().invoke(cli.repro_app, ["visualize", "errors", "--ann", str(hand_case["ann"]),
                                                "--dets", str(hand_case["dets"]), "--images", str(hand_case["images"]),
                                                "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "dets: TP 1  FP 2  FN 2 on 1 images" in result.output
    rows = read_counts(out / "counts.csv")
    tp, fn = sum(int(r["tp"]) for r in rows), sum(int(r["fn"]) for r in rows)
    # `hsfpn-repro eval` on the detections above the score: AR1500 averages recall over IoU 0.5:0.95; at 0.5
    # alone it is TP / (TP + FN); here IoU(d0, g0) = 1, so every threshold finds it and AR1500 = 1 / 3.
    kept = [d for d in HAND_DETS if d["score"] >= 0.3]
    (hand_case["root"] / "kept.json").write_text(json.dumps(kept), encoding="utf-8")
    evaluated = CliRunner().invoke(cli.repro_app, ["eval", "--ann", str(hand_case["ann"]), "--dets",
                                                   str(hand_case["root"] / "kept.json"), "--out",
                                                   str(hand_case["root"] / "report.json")])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads((hand_case["root"] / "report.json").read_text(encoding="utf-8"))
    assert report["AR1500"] == pytest.approx(tp / (tp + fn))


# ---------------------------------------------------------------------------------------------
# two detectors: ranking and side-by-side panels
# ---------------------------------------------------------------------------------------------


def test_two_detectors_rank_by_the_difference_in_misses(tmp_path: Path):
    images = [(1, "a.png"), (2, "b.png"), (3, "c.png")]
    for _, name in images:
        write_scene(tmp_path / "images", name, (120, 160))
    anns = [{"bbox": [10 + 20 * j, 10, 8, 8], "image_id": i} for i in (1, 2, 3) for j in range(4)]
    (tmp_path / "gt.json").write_text(json.dumps(coco(images, anns)), encoding="utf-8")
    # First detector: finds everything on image 1, nothing on image 2, half of image 3. Second: everything.
    first = [det(a["bbox"], 0.9, a["image_id"]) for a in anns if a["image_id"] == 1]
    first += [det(a["bbox"], 0.9, 3) for a in anns if a["image_id"] == 3][:2]
    second = [det(a["bbox"], 0.9, a["image_id"]) for a in anns]
    (tmp_path / "fpn.json").write_text(json.dumps(first), encoding="utf-8")
    (tmp_path / "hsfpn.json").write_text(json.dumps(second), encoding="utf-8")
    result = render_error_views(tmp_path / "gt.json", [tmp_path / "fpn.json", tmp_path / "hsfpn.json"],
                                tmp_path / "images", tmp_path / "out", labels=["FPN", "HS-FPN"])  # fmt: skip
    rows = read_counts(result.counts_csv)
    # Misses FPN - HS-FPN: image b 4, image c 2, image a 0.
    assert [(r["rank"], r["image"], r["detector"], r["fn"], r["fn_difference"]) for r in rows] == [
        ("1", "b.png", "FPN", "4", "4"), ("1", "b.png", "HS-FPN", "0", "4"),
        ("2", "c.png", "FPN", "2", "2"), ("2", "c.png", "HS-FPN", "0", "2"),
        ("3", "a.png", "FPN", "0", "0"), ("3", "a.png", "HS-FPN", "0", "0"),
    ]  # fmt: skip
    assert [p.name for p in result.figures] == ["001_b.png", "002_c.png", "003_a.png"]
    # Two 6 in blocks with a 0.6 in gap and 0.5 + 0.25 in margins.
    assert png_size(result.figures[0])[0] == 1335
    assert result.totals == {"FPN": {"tp": 6, "fp": 0, "fn": 6}, "HS-FPN": {"tp": 12, "fp": 0, "fn": 0}}


def test_rank_ties_break_by_signed_difference_then_misses_then_id():
    class Fake:
        def __init__(self, fn: list[int]):
            self.counts = {"all": (np.zeros(len(fn)), np.zeros(len(fn)), np.asarray(fn))}

    # Differences: +2, -2, +2, 0; the +2s come before the -2; among them, more misses first.
    order = rank_images([Fake([3, 0, 2, 5]), Fake([1, 2, 0, 5])], "all", np.array([10, 11, 12, 13]))
    assert order.tolist() == [0, 2, 1, 3]


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_missing_image_is_reported_and_counts_still_written(hand_case: dict[str, Path]):
    (hand_case["images"] / "scene.png").unlink()
    result = render_error_views(hand_case["ann"], [hand_case["dets"]], hand_case["images"], hand_case["out"])
    assert result.figures == () and len(result.problems) == 1 and "image file not found" in result.problems[0]
    assert read_counts(result.counts_csv)[0]["figure"] == ""


@pytest.mark.parametrize(("extra", "message"), [
    (["--iou", "0"], "--iou must be in (0, 1]"),
    (["--area", "huge"], "--area must be one of"),
    (["--labels", "A,A"], "--labels: need 1 distinct names"),
])  # fmt: skip
def test_cli_bad_options_exit_1_with_one_line(hand_case: dict[str, Path], extra: list[str], message: str):
    result = CliRunner().invoke(cli.repro_app, ["visualize", "errors", "--ann", str(hand_case["ann"]), "--dets",
                                                str(hand_case["dets"]), "--images", str(hand_case["images"]),
                                                "--out", str(hand_case["out"]), "--quiet", *extra])  # fmt: skip
    assert result.exit_code == 1
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_three_detection_files_and_bad_detections_are_one_line_errors(hand_case: dict[str, Path]):
    with pytest.raises(VisualizeError, match="one or two detection files"):
        render_error_views(hand_case["ann"], [hand_case["dets"]] * 3, hand_case["images"], hand_case["out"])
    bad = hand_case["root"] / "bad.json"
    bad.write_text(json.dumps([det([0, 0, 5, 5], 0.5, image_id=99)]), encoding="utf-8")
    result = CliRunner().invoke(cli.repro_app, ["visualize", "errors", "--ann", str(hand_case["ann"]), "--dets",
                                                str(bad), "--images", str(hand_case["images"]), "--out",
                                                str(hand_case["out"]), "--quiet"])  # fmt: skip
    assert result.exit_code == 1
    assert "detection 0: image_id 99 is not a listed image" in result.output


def test_help_lists_the_visualize_commands():
    result = CliRunner().invoke(cli.repro_app, ["visualize", "--help"])
    assert result.exit_code == 0 and "errors" in result.output and "frequencies" in result.output
    result = CliRunner().invoke(cli.repro_app, ["visualize", "errors", "--help"])
    assert result.exit_code == 0 and "--max-images" in result.output


def test_options_reject_negative_counts():
    with pytest.raises(VisualizeError, match="--max-images must be >= 0"):
        ErrorViewOptions(max_images=-1)
    with pytest.raises(VisualizeError, match="--crop-side must be >= 8"):
        ErrorViewOptions(crop_side=4)
