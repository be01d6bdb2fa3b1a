"""DOTA Task2 evaluation (hsfpn.dota_eval): hand-computed APs, the devkit's recall-level quirk, and equality
with a reference written from dota_evaluation_task2.py's documented semantics on random data."""

from __future__ import annotations

import numpy as np
import pytest

from dotamini10.merge import MergeError
from hsfpn.dota_eval import DotaEvalError, evaluate_task2, evaluate_task2_files, truth_from_label_text, voc07_ap


def _write(folder, files: dict[str, str]):
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _box_line(x1, y1, x2, y2, cls, difficult=0):
    return f"{x1} {y1} {x2} {y1} {x2} {y2} {x1} {y2} {cls} {difficult}"


def test_hand_computed_ap_with_difficult_and_double_match(tmp_path):
    labels = _write(tmp_path / "labels", {"A.txt": "imagesource:GoogleEarth\ngsd:0.2\n"
                                          + _box_line(0, 0, 9, 9, "plane") + "\n"
                                          + _box_line(20, 20, 29, 29, "plane", 1) + "\n"})
    # By score: a miss (FP), the plane (TP), the difficult one (neither), the plane again (FP).
    dets = _write(tmp_path / "dets", {"Task2_plane.txt": "A 0.95 100 100 109 109\nA 0.9 0 0 9 9\n"
                                      "A 0.8 20 20 29 29\nA 0.7 0 0 9 10\n"})
    report = evaluate_task2(dets, labels, ["plane"])
    # tp 0 1 1 1, fp 1 1 1 2 -> recall 0 1 1 1, precision 0 .5 .5 .333: every level's best precision is 0.5.
    assert report["per_class"] == {"plane": pytest.approx(0.5)}
    assert report["counts"]["plane"] == dict(ground_truth=1, detections=4, true_positives=1,
                                             ignored_outside_imageset=0)


def test_recall_levels_are_the_devkits_floats():
    # numpy.arange(0, 1.1, 0.1)[3] is 0.30000000000000004: a recall of exactly 0.3 does not reach it.
    recall = np.array([0.1, 0.2, 0.3])
    precision = np.ones(3)
    assert voc07_ap(recall, precision) == pytest.approx(3 / 11)


def test_ground_truth_is_points_one_and_three_truncated():
    truth = truth_from_label_text("gsd:0.1\n\n10.9 20.5 30 20.5 30.7 40.2 10.9 40.2 ship\n", file="x.txt")
    assert truth.boxes.tolist() == [[10, 20, 30, 40]] and truth.difficult.tolist() == [False]
    with pytest.raises(DotaEvalError, match=r"x.txt:1: expected"):
        truth_from_label_text("1 2 3 4 ship\n", file="x.txt")


def devkit_voc_eval(dets: list[tuple[str, float, list[float]]], gts: dict[str, list], classname: str) -> float:
    """voc_eval of dota_evaluation_task2.py as documented: GT [int(float(x1)), int(float(y1)), int(float(x3)),
    int(float(y3))], detections by descending score, +1 IoU, match when > 0.5 with the best GT, difficult
    neither, second match FP, VOC07 11-point AP at numpy.arange(0, 1.1, 0.1)."""
    recs = {img: [o for o in objs if o[0] == classname] for img, objs in gts.items()}
    det_flags = {img: [False] * len(r) for img, r in recs.items()}
    npos = sum(1 for r in recs.values() for o in r if not o[2])
    order = sorted(range(len(dets)), key=lambda k: -dets[k][1])
    tp, fp = [], []
    for k in order:
        img, _, bb = dets[k]
        best, jmax = -np.inf, -1
        for j, (_, g, _) in enumerate(recs[img]):
            iw = max(min(g[2], bb[2]) - max(g[0], bb[0]) + 1.0, 0.0)
            ih = max(min(g[3], bb[3]) - max(g[1], bb[1]) + 1.0, 0.0)
            inter = iw * ih
            uni = (bb[2] - bb[0] + 1.0) * (bb[3] - bb[1] + 1.0) + (g[2] - g[0] + 1.0) * (g[3] - g[1] + 1.0) - inter
            if inter / uni > best:
                best, jmax = inter / uni, j
        t = f = 0.0
        if best > 0.5:
            if not recs[img][jmax][2]:
                if not det_flags[img][jmax]:
                    t, det_flags[img][jmax] = 1.0, True
                else:
                    f = 1.0
        else:
            f = 1.0
        tp.append(t)
        fp.append(f)
    tp, fp = np.cumsum(tp), np.cumsum(fp)
    rec = tp / float(npos)
    prec = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):
        ap += (np.max(prec[rec >= t]) if np.sum(rec >= t) else 0.0) / 11.0
    return ap


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_devkit_on_random_scenes(tmp_path, seed):
    rng = np.random.default_rng(seed)
    classes = ["plane", "ship", "small-vehicle"]
    gts, label_files = {}, {}
    for i in range(4):
        objs, lines = [], []
        for _ in range(int(rng.integers(5, 30))):
            x, y = (float(v) for v in rng.uniform(0, 500, 2))
            w, h = (float(v) for v in rng.uniform(4, 60, 2))
            cls, difficult = str(rng.choice(classes)), int(rng.random() < 0.15)
            pts = [round(x, 1), round(y, 1), round(x + w, 1), round(y, 1), round(x + w, 1), round(y + h, 1),
                   round(x, 1), round(y + h, 1)]
            lines.append(" ".join(str(v) for v in pts) + f" {cls} {difficult}")
            objs.append((cls, [int(float(pts[0])), int(float(pts[1])), int(float(pts[4])), int(float(pts[5]))],
                         bool(difficult)))
        gts[f"I{i}"], label_files[f"I{i}.txt"] = objs, "\n".join(lines) + "\n"
    labels = _write(tmp_path / "labels", label_files)
    det_files, expected = {}, {}
    for cls in classes:
        dets = []
        for img, objs in gts.items():
            for _, g, _ in objs:  # noisy copies of every object (any class: wrong-class ones are FPs)
                for _ in range(int(rng.integers(0, 3))):
                    box = [float(v) for v in np.array(g) + rng.normal(0, 4, 4)]
                    dets.append((img, float(rng.random()), box))
        det_files[f"Task2_{cls}.txt"] = "".join(f"{img} {s!r} " + " ".join(repr(v) for v in b) + "\n"
                                                for img, s, b in dets)
        expected[cls] = devkit_voc_eval(dets, gts, cls)
    report = evaluate_task2(_write(tmp_path / "dets", det_files), labels, classes)
    for cls in classes:
        assert report["per_class"][cls] == pytest.approx(expected[cls], abs=1e-6)
    assert report["mAP"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)


def test_imageset_missing_files_and_errors(tmp_path):
    labels = _write(tmp_path / "labels", {"A.txt": _box_line(0, 0, 9, 9, "plane") + "\n",
                                          "B.txt": _box_line(0, 0, 9, 9, "plane") + "\n"})
    dets = _write(tmp_path / "dets", {"Task2_plane.txt": "A 0.9 0 0 9 9\nB 0.8 0 0 9 9\n"})
    _write(tmp_path, {"set.txt": "A\n\n"})
    report = evaluate_task2_files(dets, labels, ["plane", "ship"], imageset_file=tmp_path / "set.txt",
                                  out=tmp_path / "r.json")
    assert report["images"] == 1 and report["per_class"] == {"plane": 1.0, "ship": 0.0}
    assert report["counts"]["plane"]["ignored_outside_imageset"] == 1 and report["missing_files"] == ["ship"]
    assert (tmp_path / "r.json").is_file()
    _write(tmp_path, {"bad.txt": "C\n"})
    with pytest.raises(DotaEvalError, match="C.txt: label file of image-set entry 'C' not found"):
        evaluate_task2_files(dets, labels, ["plane"], imageset_file=tmp_path / "bad.txt")
    _write(dets, {"Task2_plane.txt": "A 0.9 0 0 9\n"})
    with pytest.raises(MergeError, match=r"Task2_plane.txt:1"):
        evaluate_task2(dets, labels, ["plane"])
    with pytest.raises(DotaEvalError, match="label folder not found"):
        evaluate_task2(dets, tmp_path / "none", ["plane"])


def test_rotated_polygons_are_scored_against_their_enclosing_boxes(tmp_path):
    # A diamond and a rotated rectangle: their enclosing boxes are [0, 0, 20, 20] and [30, 0, 46, 12]. The
    # devkit's points 1 and 3 would give [10, 0, 10, 20] (a 1 px wide box, IoU 21 / 441 with the detection) and
    # [34, 0, 42, 12] (IoU 117 / 221 = 0.53 > 0.5 by luck): one true positive, ranked second, AP 6 x 0.5 / 11.
    labels = _write(tmp_path / "labels", {"A.txt": "10 0 20 10 10 20 0 10 plane 0\n"
                                                   "34 0 46 4 42 12 30 8 plane 0\n"})
    dets = _write(tmp_path / "dets", {"Task2_plane.txt": "A 0.9 0 0 20 20\nA 0.8 30 0 46 12\n"})
    report = evaluate_task2(dets, labels, ["plane"])
    assert report["per_class"] == {"plane": 1.0}
    assert (report["objects"], report["rotated_polygons"]) == (2, 2)
    truth = truth_from_label_text("10 0 20 10 10 20 0 10 plane\n0 0 9 0 9 9 0 9 plane\n", file="x.txt")
    assert truth.boxes.tolist() == [[0, 0, 20, 20], [0, 0, 9, 9]] and truth.rotated.tolist() == [True, False]


def test_axis_aligned_polygons_starting_elsewhere_still_give_their_box():
    # The same square listed from its bottom-right corner: points 1 and 3 would give xmin > xmax.
    truth = truth_from_label_text("9 9 0 9 0 0 9 0 ship\n", file="x.txt")
    assert truth.boxes.tolist() == [[0, 0, 9, 9]] and truth.rotated.tolist() == [False]


def test_the_real_oriented_sample_counts_every_polygon_as_rotated(dota_sample, tmp_path):
    # P0706's labelTxt holds 536 oriented polygons (ship, harbor), P1888's 64; the image set is the two label
    # files with an image in images/ beside labelTxt/, the five others are left out and named.
    dets = _write(tmp_path / "dets", {"Task2_ship.txt": ""})
    report = evaluate_task2_files(dets, dota_sample / "labelTxt", ["ship", "harbor"])
    assert (report["images"], report["objects"], report["rotated_polygons"]) == (2, 600, 600)
    assert report["imageset"]["left_out_label_files"] == ["P0770", "P1088", "P1234", "P2598", "P2709"]
    # Detections equal to the enclosing boxes of P0706's ships score AP 1.0.
    truth = truth_from_label_text((dota_sample / "labelTxt" / "P0706.txt").read_text(), file="P0706.txt")
    ships = [b for b, c in zip(truth.boxes.tolist(), truth.classes) if c == "ship"]
    _write(dets, {"Task2_ship.txt": "".join(f"P0706 0.9 {x1} {y1} {x2} {y2}\n" for x1, y1, x2, y2 in ships)})
    report = evaluate_task2_files(dets, dota_sample / "labelTxt", ["ship"], imageset_file=None,
                                  run_images=["P0706"])
    counts = report["counts"]["ship"]  # 531 ships, 6 of them difficult (neither matched nor counted)
    assert report["per_class"]["ship"] == 1.0 and (len(ships), counts["ground_truth"]) == (531, 525)
    assert counts["true_positives"] == 525
    assert report["imageset"]["source"] == "the detect run"


def test_eval_cli_names_the_image_set_and_the_oriented_polygons(dota_sample, tmp_path):
    from typer.testing import CliRunner

    from cli import repro_app

    dets = _write(tmp_path / "dets", {"Task2_ship.txt": "P0706 0.9 0 0 10 10\n"})
    result = CliRunner().invoke(repro_app, ["eval", "--protocol", "dota", "--dets", str(dets), "--ann",
                                            str(dota_sample / "labelTxt"), "--classes", "ship,harbor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (f"image set: 2 image(s), the label files with an image in {dota_sample / 'images'}; 5 label "
                        "file(s) of --ann left out (P0770, P1088, P1234, P2598, P2709); --imageset chooses others")
    assert lines[1].startswith("600 of 600 ground-truth polygons are not axis-aligned (oriented labels): each is "
                               "scored as its enclosing axis-aligned box")
