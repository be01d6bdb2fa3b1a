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
