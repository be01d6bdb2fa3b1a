"""Tests of hsfpn.aitod_eval: hand-computed cases, equality with pycocotools (AI-TOD params), bad input."""

from __future__ import annotations

import contextlib
import copy
import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import hsfpn.aitod_eval as aitod_eval
from hsfpn.aitod_eval import (
    REPORT_KEYS,
    AITODEval,
    AITODInputError,
    AITODParams,
    AITODStateError,
    Detections,
    GroundTruth,
    evaluate_files,
)
from hsfpn.errors import HSFPNError

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def coco_gt(anns: list[dict], images: tuple[int, ...] = (1,), cats: tuple[int, ...] = (1,)) -> dict:
    """A COCO ground truth; each ann needs bbox and may give image_id / category_id / area / iscrowd / id."""
    out = []
    for j, a in enumerate(anns):
        x, y, w, h = a["bbox"]
        out.append({"id": a.get("id", j + 1), "image_id": a.get("image_id", images[0]),
                    "category_id": a.get("category_id", cats[0]), "bbox": [x, y, w, h],
                    "area": a.get("area", w * h), "iscrowd": a.get("iscrowd", 0), **a.get("extra", {})})  # fmt: skip
    return {"images": [{"id": i} for i in images], "categories": [{"id": c, "name": f"c{c}"} for c in cats],
            "annotations": out}  # fmt: skip


def det(bbox: list[float], score: float, image_id: int = 1, category_id: int = 1) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def ours(gt_dict: dict, dets: list[dict], params: AITODParams | None = None, **kw) -> AITODEval:
    gt = GroundTruth.from_coco(gt_dict)
    ev = AITODEval(gt, Detections.from_coco(dets, gt), params, **kw)
    ev.run()
    return ev


def reference(gt_dict: dict, dets: list[dict], params: AITODParams, img_ids: list[int] | None = None) -> COCOeval:
    """pycocotools 2.0.11 configured with the given (AI-TOD) parameters, on deep copies (it mutates its input)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt_dict)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.params.iouThrs = np.asarray(params.iou_thrs)
        ev.params.recThrs = np.asarray(params.rec_thrs)
        ev.params.maxDets = list(params.max_dets)
        ev.params.areaRng = [list(r) for r in params.area_rngs]
        ev.params.areaRngLbl = list(params.area_labels)
        if img_ids is not None:
            ev.params.imgIds = img_ids
        ev.evaluate()
        ev.accumulate()
    return ev


def reference_stats(ev: COCOeval) -> dict[str, float]:
    """Our report keys read through pycocotools' own summarize().

    Its summarize() hard-codes labels 'small' / 'medium' / 'large' and AP at maxDets 100, so it is run three
    times with relabelled area ranges and a reordered maxDets list (the arrays stay as accumulated).
    """
    p = ev.params
    labels, max_dets = list(p.areaRngLbl), list(p.maxDets)
    out = {}

    def summarize(area_labels: list[str], dets: list[int]) -> np.ndarray:
        p.areaRngLbl, p.maxDets = area_labels, dets
        with contextlib.redirect_stdout(io.StringIO()):
            ev.summarize()
        return ev.stats

    # stats[0] reads maxDets=100: listing 1500 at the slot where 100 was makes it read the 1500 slice.
    s = summarize(["all", "small", "medium", "x", "y"], [1500, 300, 100])
    out.update(AP=s[0], APvt=s[3], APt=s[4], ARvt=s[9], ARt=s[10])
    s = summarize(["all", "x", "y", "small", "medium"], max_dets)
    out.update(AP50=s[1], AP75=s[2], APs=s[3], APm=s[4], AR100=s[6], AR300=s[7], AR1500=s[8], ARs=s[9], ARm=s[10])
    p.areaRngLbl, p.maxDets = labels, max_dets
    return {k: float(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# cases a reader can compute by hand
# ---------------------------------------------------------------------------------------------

# Recall points 0.00, 0.01, ..., 0.50 reached by a recall of exactly 1/2.
HALF = sum(r <= 0.5 for r in AITODParams().rec_thrs)


def test_perfect_detection_gives_one_everywhere_defined():
    ev = ours(coco_gt([{"bbox": [0, 0, 8, 8]}]), [det([0, 0, 8, 8], 0.9)])
    stats = ev.stats_as_dict()
    # Precision is 1 / (1 + eps), as pycocotools computes it. The 8x8 box has area 64: very tiny [0, 64] and tiny [64, 256] both include it (inclusive ends).
    for key in ("AP", "AP50", "AP75", "APvt", "APt", "AR100", "AR300", "AR1500", "ARvt", "ARt"):
        assert stats[key] == pytest.approx(1.0), key
    # No small or medium ground truth: undefined, reported as -1.
    for key in ("APs", "APm", "ARs", "ARm"):
        assert stats[key] == -1.0, key


def test_false_positive_ranked_first_halves_precision():
    # GT 10x10. The TP covers 10 x 7.2 of it: IoU 72/100 = 0.72, a match at thresholds 0.50..0.70 (5 of 10).
    # A higher-scored FP elsewhere comes first: at each matched threshold precision is 1/2 at recall 1.
    gt = coco_gt([{"bbox": [10, 10, 10, 10]}])
    ev = ours(gt, [det([10, 10, 10, 7.2], 0.6), det([50, 50, 9, 9], 0.9)])
    stats = ev.stats_as_dict()
    assert stats["AP50"] == pytest.approx(0.5)
    assert stats["AP75"] == 0.0
    assert stats["AP"] == pytest.approx(5 * 0.5 / 10)
    assert stats["AR1500"] == pytest.approx(5 / 10)
    assert stats["APt"] == pytest.approx(0.25)  # area 100 is tiny; the FP (area 81) is tiny too
    assert stats["APvt"] == -1.0


def test_two_of_three_found_precision_curve():
    # Three GTs; ranked dets: TP, FP, TP. Recall 1/3 at precision 1, 2/3 at precision 2/3, never 1.
    # Interpolated precision: 1 for recall points <= 1/3 (34 points: 0.00..0.33), 2/3 for 0.34..0.66 (33 points),
    # 0 for 0.67..1.00 (34 points). AP50 = (34 * 1 + 33 * 2/3) / 101.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [20, 0, 10, 10]}, {"bbox": [40, 0, 10, 10]}])
    dets = [det([0, 0, 10, 10], 0.9), det([70, 70, 10, 10], 0.8), det([20, 0, 10, 10], 0.7)]
    ev = ours(gt, dets)
    assert ev.stats_as_dict()["AP50"] == pytest.approx((34 + 33 * 2 / 3) / 101)
    assert ev.stats_as_dict()["AR1500"] == pytest.approx(2 / 3)


def test_area_range_ends_are_inclusive_and_use_the_area_field():
    # area 256 is both tiny and small; the box itself is 4x4 (16 px): the range test reads `area`, not w*h.
    ev = ours(coco_gt([{"bbox": [0, 0, 4, 4], "area": 256}]), [det([0, 0, 4, 4], 1.0)])
    stats = ev.stats_as_dict()
    assert stats["APt"] == pytest.approx(1.0) and stats["APs"] == pytest.approx(1.0)
    assert stats["APvt"] == -1.0 and stats["APm"] == -1.0


def test_crowd_region_makes_detections_inside_it_ignored():
    # A crowd region 100x100 and one normal GT. A det inside the crowd has crowd-IoU = inter / area(det) = 1:
    # it is matched to the (ignored) crowd and ignored, so it is not a false positive, and crowd regions may
    # absorb several detections.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [100, 100, 100, 100], "iscrowd": 1}])
    dets = [det([120, 120, 5, 5], 0.95), det([150, 150, 5, 5], 0.9), det([0, 0, 10, 10], 0.5)]
    stats = ours(gt, dets).stats_as_dict()
    assert stats["AP"] == pytest.approx(1.0)
    # Without the crowd flag the region is a normal (medium) GT that both small dets miss (IoU 25/10000): ranked
    # FP, FP, TP, so precision is 1/3 at recall 1/2 and 0 beyond; the recall points <= 0.5 are 0.00..0.50.
    gt["annotations"][1]["iscrowd"] = 0
    stats = ours(gt, dets).stats_as_dict()
    assert HALF == 51
    assert stats["AP50"] == pytest.approx(HALF / 101 / 3)
    assert stats["AP"] == pytest.approx(HALF / 101 / 3)


def test_iscrowd_true_is_the_same_as_one():
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [100, 100, 100, 100], "iscrowd": True}])
    dets = [det([120, 120, 5, 5], 0.95), det([0, 0, 10, 10], 0.5)]
    as_bool = ours(gt, dets)
    gt["annotations"][1]["iscrowd"] = 1
    assert np.array_equal(as_bool.precision, ours(gt, dets).precision)
    assert as_bool.stats_as_dict()["AP"] == pytest.approx(1.0)


def test_ignore_field_has_no_effect_as_in_pycocotools():
    # pycocotools overwrites `ignore` with `iscrowd` before matching: an annotation marked ignore=1 counts.
    gt = coco_gt([{"bbox": [0, 0, 10, 10], "extra": {"ignore": 1}}, {"bbox": [50, 50, 10, 10]}])
    stats = ours(gt, [det([50, 50, 10, 10], 0.9)]).stats_as_dict()
    assert stats["AR1500"] == 0.5


def test_max_dets_truncates_by_score_per_image_and_category():
    # 100 higher-scored false positives push the only TP to rank 101 in its image: AR100 = 0, AR300 = 1.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}])
    dets = [det([200 + 3 * i, 300, 2, 2], 0.9) for i in range(100)] + [det([0, 0, 10, 10], 0.1)]
    stats = ours(gt, dets).stats_as_dict()
    assert stats["AR100"] == 0.0
    assert stats["AR300"] == pytest.approx(1.0) and stats["AR1500"] == pytest.approx(1.0)
    # Same false positives in another category do not compete for the 100 slots.
    gt2 = coco_gt([{"bbox": [0, 0, 10, 10]}], cats=(1, 2))
    stats = ours(gt2, [{**d, "category_id": 2} for d in dets[:-1]] + dets[-1:]).stats_as_dict()
    assert stats["AR100"] == pytest.approx(1.0)


def test_score_ties_keep_input_order():
    # Equal scores: the ranking is stable, so the input order decides whether the TP comes before the FP.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}])
    tp, fp = det([0, 0, 10, 10], 0.5), det([50, 50, 10, 10], 0.5)
    assert ours(gt, [tp, fp]).stats_as_dict()["AP"] == pytest.approx(1.0)
    assert ours(gt, [fp, tp]).stats_as_dict()["AP"] == pytest.approx(0.5)


def test_greedy_matching_gives_each_detection_its_best_free_ground_truth():
    # g1 = 10x10, g2 = 10x7 inside it. d1 (top score) = g1: IoU 1 with g1, 0.7 with g2 -> takes g1.
    # d2 = 10x9.9: IoU 0.99 with g1 (taken) and 70/99 = 0.707 with g2 -> takes g2 at thresholds 0.50..0.70 only.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [0, 0, 10, 7]}])
    stats = ours(gt, [det([0, 0, 10, 10], 0.9), det([0, 0, 10, 9.9], 0.8)]).stats_as_dict()
    # 5 thresholds with both found (precision 1 everywhere), 5 with d2 a FP after d1 (1 up to recall 1/2).
    assert stats["AR1500"] == pytest.approx((5 * 1 + 5 * 0.5) / 10)
    assert stats["AP"] == pytest.approx((5 * 1 + 5 * HALF / 101) / 10)
    assert stats["AP50"] == pytest.approx(1.0) and stats["AP75"] == pytest.approx(HALF / 101)


def test_equal_iou_goes_to_the_later_ground_truth():
    # d1 = [2, 0, 10, 10] overlaps g1 = [0, 0, 10, 10] and g2 = [4, 0, 10, 10] equally (80 / 120 = 2/3).
    # pycocotools keeps the last of equal IoUs, so d1 takes g2 and d2 (= g1 exactly, IoU(d2, g2) = 0.43) takes g1:
    # at thresholds 0.50..0.65 both are found. At 0.70..0.95 d1 is a FP ranked before d2's match of g1.
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [4, 0, 10, 10]}])
    dets = [det([2, 0, 10, 10], 0.9), det([0, 0, 10, 10], 0.8)]
    stats = ours(gt, dets).stats_as_dict()
    assert stats["AP"] == pytest.approx((4 * 1 + 6 * 0.5 * HALF / 101) / 10)
    assert stats["AR1500"] == pytest.approx((4 * 1 + 6 * 0.5) / 10)
    assert reference_stats(reference(gt, dets, AITODParams()))["AP"] == pytest.approx(stats["AP"])


def test_images_without_detections_and_detections_without_ground_truth():
    gt = coco_gt([{"bbox": [0, 0, 10, 10], "image_id": 1}, {"bbox": [0, 0, 10, 10], "image_id": 2}],
                 images=(1, 2, 3))  # fmt: skip
    # Image 2 has no detection (recall 1/2); image 3 has no ground truth and one higher-scored FP.
    stats = ours(gt, [det([0, 0, 10, 10], 0.5, image_id=1), det([5, 5, 5, 5], 0.9, image_id=3)]).stats_as_dict()
    assert stats["AR1500"] == 0.5
    assert stats["AP50"] == pytest.approx(HALF * 0.5 / 101)


def test_category_absent_from_ground_truth_is_undefined_not_zero():
    gt = coco_gt([{"bbox": [0, 0, 10, 10], "category_id": 1}], cats=(1, 2))
    ev = ours(gt, [det([0, 0, 10, 10], 0.9), det([0, 0, 10, 10], 0.9, category_id=2)])
    assert ev.stats_as_dict()["AP"] == pytest.approx(1.0)  # the mean skips category 2 (all -1)
    assert ev.per_class()["c2"]["AP"] == -1.0
    assert ev.per_class()["c1"]["AP"] == pytest.approx(1.0)
    assert np.all(ev.precision[:, :, 1] == -1)


def test_no_detections_at_all_gives_zero_where_ground_truth_exists():
    stats = ours(coco_gt([{"bbox": [0, 0, 10, 10]}]), []).stats_as_dict()
    assert stats["AP"] == 0.0 and stats["AR100"] == 0.0 and stats["APm"] == -1.0


def test_annotation_id_zero_behaves_as_pycocotools():
    # pycocotools marks matches with the ground truth's id, so a match to id 0 reads as "unmatched".
    gt = coco_gt([{"bbox": [0, 0, 10, 10], "id": 0}])
    ev = ours(gt, [det([0, 0, 10, 10], 0.9)])
    assert ev.stats_as_dict()["AP"] == 0.0
    ref = reference(gt, [det([0, 0, 10, 10], 0.9)], AITODParams())
    assert np.array_equal(ref.eval["precision"], ev.precision)


# ---------------------------------------------------------------------------------------------
# equality with pycocotools on random cases
# ---------------------------------------------------------------------------------------------


@st.composite
def coco_cases(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    """Small crowded scenes on a coarse grid, so IoU ties, area-range edges and score ties are frequent."""
    n_img = draw(st.integers(1, 3))
    n_cat = draw(st.integers(1, 3))
    images = tuple(draw(st.permutations([3 * i + 1 for i in range(n_img)])))
    cats = tuple(draw(st.permutations([2 * c + 5 for c in range(n_cat)])))
    coord = st.integers(0, 12).map(float)
    size = st.sampled_from([0.0, 1.0, 2.0, 4.0, 6.0, 8.0, 9.5, 16.0])
    anns = []
    for _ in range(draw(st.integers(0, 10))):
        w, h = draw(size), draw(size)
        anns.append({
            "bbox": [draw(coord), draw(coord), w, h], "image_id": draw(st.sampled_from(images)),
            "category_id": draw(st.sampled_from(cats)), "iscrowd": int(draw(st.integers(0, 9)) == 0),
            "area": draw(st.sampled_from([w * h, 64.0, 256.0, 1024.0, 30.0, 500.0, 2000.0])),
        })  # fmt: skip
    score = st.sampled_from([0.1, 0.5, 0.5, 0.9, 1.0])
    dets = []
    for _ in range(draw(st.integers(1, 14))):  # pycocotools cannot load an empty result list
        if anns and draw(st.booleans()):
            # A near copy of a ground truth: several of these compete for the same objects at IoU >= 0.5.
            src = draw(st.sampled_from(anns))
            shift = st.sampled_from([-1.0, 0.0, 0.0, 1.0])
            x, y, w, h = src["bbox"]
            dets.append(det([x + draw(shift), y + draw(shift), max(w + draw(shift), 0.0), h], draw(score),
                            image_id=src["image_id"], category_id=src["category_id"]))  # fmt: skip
        else:
            dets.append(det([draw(coord), draw(coord), draw(size), draw(size)], draw(score),
                            image_id=draw(st.sampled_from(images)), category_id=draw(st.sampled_from(cats))))  # fmt: skip
    return coco_gt(anns, images, cats), dets


PARAMS = {
    "aitod": AITODParams(),
    "tiny_max_dets": AITODParams(max_dets=(1, 3, 5)),
    "odd": AITODParams(iou_thrs=(0.0, 0.3, 0.5, 1.0), max_dets=(2, 100),
                       area_rngs=((0, 1e10), (0, 30)), area_labels=("all", "verytiny")),  # fmt: skip
}


@pytest.mark.parametrize("name", sorted(PARAMS))
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=coco_cases())
def test_arrays_equal_pycocotools(name: str, case: tuple[dict, list[dict]]):
    gt_dict, dets = case
    params = PARAMS[name]
    ev = ours(gt_dict, dets, params)
    ref = reference(gt_dict, dets, params)
    np.testing.assert_allclose(ev.precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.recall, ref.eval["recall"], rtol=0, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(case=coco_cases())
def test_reported_figures_equal_pycocotools_summarize(case: tuple[dict, list[dict]]):
    gt_dict, dets = case
    ev = ours(gt_dict, dets)
    expected = reference_stats(reference(gt_dict, dets, AITODParams()))
    got = ev.stats_as_dict()
    for key in REPORT_KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


@settings(max_examples=40, deadline=None)
@given(case=coco_cases(), data=st.data())
def test_image_subset_equals_pycocotools_img_ids(case: tuple[dict, list[dict]], data: st.DataObject):
    gt_dict, dets = case
    all_ids = [im["id"] for im in gt_dict["images"]]
    subset = data.draw(st.lists(st.sampled_from(all_ids), min_size=1, unique=True))
    ev = ours(gt_dict, dets, img_ids=subset)
    ref = reference(gt_dict, dets, AITODParams(), img_ids=sorted(subset))
    np.testing.assert_allclose(ev.precision, ref.eval["precision"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ev.recall, ref.eval["recall"], rtol=0, atol=1e-12)


def test_chunked_pair_search_equals_one_chunk(monkeypatch: pytest.MonkeyPatch):
    rng = np.random.default_rng(3)
    anns = [{"bbox": [float(x), float(y), 8.0, 8.0], "image_id": int(i)}
            for x, y, i in zip(rng.integers(0, 40, 60), rng.integers(0, 40, 60), rng.integers(1, 4, 60), strict=True)]  # fmt: skip
    gt = coco_gt(anns, images=(1, 2, 3))
    dets = [det([float(x), float(y), 8.0, 8.0], float(s), image_id=int(i))
            for x, y, s, i in zip(rng.integers(0, 40, 300), rng.integers(0, 40, 300), rng.random(300),
                                  rng.integers(1, 4, 300), strict=True)]  # fmt: skip
    whole = ours(gt, dets)
    monkeypatch.setattr(aitod_eval, "_PAIR_CHUNK", 7)  # many chunks, each holding whole ground truths
    chunked = ours(gt, dets)
    assert np.array_equal(whole.precision, chunked.precision)
    assert np.array_equal(whole.recall, chunked.recall)
    assert np.array_equal(whole.precision, reference(gt, dets, AITODParams()).eval["precision"])


# ---------------------------------------------------------------------------------------------
# files, report, lifecycle, parameters
# ---------------------------------------------------------------------------------------------


def write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def test_evaluate_files_writes_the_report_deterministically(tmp_path: Path):
    gt = coco_gt([{"bbox": [0, 0, 10, 10]}, {"bbox": [40, 40, 40, 40], "category_id": 2}], cats=(1, 2))
    ann = write(tmp_path / "gt.json", gt)
    dets = write(tmp_path / "dets.json", [det([0, 0, 10, 10], 0.9), det([40, 40, 40, 40], 0.8, category_id=2)])
    report = evaluate_files(ann, dets, out=tmp_path / "out" / "report.json")
    assert list(report) == [*REPORT_KEYS, "per_class"]
    assert report["AP"] == pytest.approx(1.0) and report["APm"] == pytest.approx(1.0) and report["APs"] == -1.0
    assert set(report["per_class"]) == {"c1", "c2"}
    assert report["per_class"]["c2"]["APm"] == pytest.approx(1.0) and report["per_class"]["c2"]["APvt"] == -1.0
    first = (tmp_path / "out" / "report.json").read_bytes()
    assert json.loads(first) == report
    evaluate_files(ann, dets, out=tmp_path / "out" / "report.json")
    assert (tmp_path / "out" / "report.json").read_bytes() == first
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["report.json"]  # no temporary left behind


def test_detections_wrapped_in_annotations_object_are_accepted(tmp_path: Path):
    ann = write(tmp_path / "gt.json", coco_gt([{"bbox": [0, 0, 10, 10]}]))
    plain = write(tmp_path / "a.json", [det([0, 0, 10, 10], 0.9)])
    wrapped = write(tmp_path / "b.json", {"annotations": [det([0, 0, 10, 10], 0.9)], "info": {}})
    assert evaluate_files(ann, plain) == evaluate_files(ann, wrapped)


def test_lifecycle_out_of_order_raises():
    gt = GroundTruth.from_coco(coco_gt([{"bbox": [0, 0, 10, 10]}]))
    ev = AITODEval(gt, Detections.from_coco([], gt))
    with pytest.raises(AITODStateError, match="evaluate"):
        ev.accumulate()
    with pytest.raises(AITODStateError, match="accumulate"):
        ev.summarize()
    with pytest.raises(AITODStateError, match="summarize"):
        ev.stats_as_dict()
    ev.evaluate()
    with pytest.raises(AITODStateError):
        ev.per_class()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"iou_thrs": (0.5, 1.5)}, "iou_thrs"),  # thresholds are IoUs in [0, 1]
        ({"iou_thrs": ()}, "iou_thrs"),  # at least one threshold
        ({"rec_thrs": (0.5, 0.1)}, "rec_thrs"),  # recall points increase
        ({"max_dets": (300, 100)}, "max_dets"),  # the last max_dets bounds matching: increasing
        ({"max_dets": (0, 10)}, "max_dets"),  # positive
        ({"area_rngs": ((10, 5),)}, "area_rngs"),  # low <= high
        ({"area_labels": ("all",)}, "area_labels"),  # one label per range
    ],
)
def test_params_reject_invalid_values(kwargs: dict, match: str):
    with pytest.raises(ValueError, match=match):
        AITODParams(**kwargs)


def test_select_categories_drops_other_annotations():
    gt = GroundTruth.from_coco(coco_gt([{"bbox": [0, 0, 4, 4], "category_id": 1},
                                        {"bbox": [0, 0, 4, 4], "category_id": 2}], cats=(1, 2)))  # fmt: skip
    sub = gt.select_categories([2])
    assert sub.cat_ids.tolist() == [2] and sub.cat_names == ("c2",)
    assert sub.ann_ids.tolist() == [2] and sub.category.tolist() == [0]
    with pytest.raises(AITODInputError, match="category id 9"):
        gt.select_categories([9])


# ---------------------------------------------------------------------------------------------
# bad input: one line naming the entry and field
# ---------------------------------------------------------------------------------------------

GOOD_GT = coco_gt([{"bbox": [0, 0, 10, 10]}], images=(1, 2), cats=(1, 3))


@pytest.mark.parametrize(
    ("dets", "match"),
    [
        ({"results": []}, "'annotations' list"),  # an object must hold an 'annotations' list
        ("nope", "got a JSON str"),  # not a list
        ([det([0, 0, 1, 1], 0.5), det([0, 0, 1, 1], 0.5, image_id=7)], r"detection 1: image_id 7 is not"),
        ([det([0, 0, 1, 1], 0.5, category_id=2)], r"detection 0: category_id 2 is not"),
        ([det([0, 0, 1, 1], 0.5), det([0, float("nan"), 1, 1], 0.5)], r"detection 1: field 'bbox' must be finite"),
        ([det([0, 0, float("inf"), 1], 0.5)], r"detection 0: field 'bbox' must be finite"),
        ([det([0, 0, 1, 1], 0.5), det([0, 0, 1, 1], 0.5), det([0, 0, -1, 1], 0.5)], r"detection 2: .*negative"),
        ([det([0, 0, 1], 0.5)], r"detection 0: field 'bbox' must be 4 numbers"),
        ([det([0, 0, "1", 1], 0.5)], r"detection 0: field 'bbox' must be 4 numbers"),
        ([det([0, 0, 1, 1], float("nan"))], r"detection 0: field 'score' must be finite"),
        ([det([0, 0, 1, 1], "high")], r"detection 0: field 'score' must be a number"),
        ([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}], r"detection 0: missing field 'score'"),
        ([det([0, 0, 1, 1], 0.5), 3], r"detection 1: expected an object"),
        ([det([0, 0, 1, 1], 0.5, image_id=1.0)], r"detection 0: field 'image_id' must be an integer"),
    ],
)
def test_bad_detections_name_the_entry(dets: object, match: str):
    gt = GroundTruth.from_coco(GOOD_GT)
    with pytest.raises(AITODInputError, match=match) as info:
        Detections.from_coco(dets, gt, source="dets.json")
    assert str(info.value).startswith("dets.json: ") and "\n" not in str(info.value)
    assert isinstance(info.value, HSFPNError)


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        (lambda g: g.pop("categories"), "field 'categories' must be a list, got nothing"),
        (lambda g: g.update(images={}), "field 'images' must be a list"),
        (lambda g: g["annotations"][0].pop("area"), r"annotation 0: missing field 'area'"),
        (lambda g: g["annotations"][0].update(area=-1), r"annotation 0: field 'area' must not be negative"),
        (lambda g: g["annotations"][0].update(image_id=5), r"annotation 0: image_id 5 is not a listed image"),
        (lambda g: g["annotations"][0].update(category_id=2), r"annotation 0: category_id 2 is not a listed"),
        (lambda g: g["annotations"][0].update(bbox=[0, 0, 1, float("nan")]), r"annotation 0: field 'bbox'"),
        (lambda g: g["annotations"].append(dict(g["annotations"][0])), r"annotation 1: duplicate id 1"),
        (lambda g: g["images"].append({"id": 1}), r"image 2: duplicate id 1"),
    ],
)
def test_bad_ground_truth_names_the_entry(mutate, match: str):
    gt = copy.deepcopy(GOOD_GT)
    mutate(gt)
    with pytest.raises(AITODInputError, match=match):
        GroundTruth.from_coco(gt, source="gt.json")


def test_ground_truth_must_be_an_object():
    with pytest.raises(AITODInputError, match="must be a JSON object"):
        GroundTruth.from_coco([], source="gt.json")


def test_file_errors_are_one_line(tmp_path: Path):
    ann = write(tmp_path / "gt.json", GOOD_GT)
    with pytest.raises(AITODInputError, match="detections file not found"):
        evaluate_files(ann, tmp_path / "missing.json")
    (tmp_path / "empty.json").write_text("  \n", encoding="utf-8")
    with pytest.raises(AITODInputError, match="empty.json: detections file is empty"):
        evaluate_files(ann, tmp_path / "empty.json")
    (tmp_path / "broken.json").write_text('[{"image_id": 1,', encoding="utf-8")
    with pytest.raises(AITODInputError, match=r"broken.json: detections is not valid JSON \(line 1"):
        evaluate_files(ann, tmp_path / "broken.json")
    with pytest.raises(AITODInputError, match="ground truth file not found"):
        evaluate_files(tmp_path / "nope.json", ann)


# ---------------------------------------------------------------------------------------------
# hsfpn-repro eval (the command of this module; cli.py only parses and prints)
# ---------------------------------------------------------------------------------------------


def test_cli_eval_prints_the_table_and_writes_the_report(tmp_path: Path):
    from typer.testing import CliRunner

    from cli import repro_app

    ann = write(tmp_path / "gt.json", coco_gt([{"bbox": [0, 0, 10, 10]}]))
    dets = write(tmp_path / "dets.json", [det([10, 10, 10, 7.2], 0.6), det([0, 0, 10, 7.2], 0.9)])
    result = CliRunner().invoke(repro_app, ["eval", "--ann", str(ann), "--dets", str(dets),
                                            "--out", str(tmp_path / "r.json")])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert report == evaluate_files(ann, dets)
    assert "AR1500" in result.output and f"{report['AP']:.4f}" in result.output
    assert "c1" in result.output  # the per-class table


def test_cli_eval_bad_input_exits_1_with_one_line(tmp_path: Path):
    from typer.testing import CliRunner

    from cli import repro_app

    ann = write(tmp_path / "gt.json", coco_gt([{"bbox": [0, 0, 10, 10]}]))
    dets = write(tmp_path / "dets.json", [det([0, 0, 10, 10], 0.9), det([0, 0, 10, 10], 0.9, image_id=4)])
    result = CliRunner().invoke(repro_app, ["eval", "--ann", str(ann), "--dets", str(dets)])
    assert result.exit_code == 1
    assert "detection 1: image_id 4 is not a listed image" in result.output
    assert "Traceback" not in result.output
    assert CliRunner().invoke(repro_app, ["eval", "--help"]).exit_code == 0


def test_areas_far_from_the_box_are_said_and_area_from_box_uses_w_times_h(tmp_path: Path):
    # SAHI's test jsons give every annotation the image's area (1024 x 1024): a 10 x 12 box (tiny: 120 px^2)
    # and a 20 x 20 box (small: 400 px^2) both land in "medium". The third area is a segmentation's, 0.6 of
    # its box: not far.
    gt = coco_gt([{"bbox": [0, 0, 10, 12], "area": 1024 * 1024}, {"bbox": [50, 50, 20, 20], "area": 1024 * 1024},
                  {"bbox": [100, 100, 10, 10], "area": 60}])
    ann = write(tmp_path / "gt.json", gt)
    dets = write(tmp_path / "dets.json", [det([0, 0, 10, 12], 0.9), det([50, 50, 20, 20], 0.8),
                                          det([100, 100, 10, 10], 0.7)])
    notes: list[str] = []
    as_given = evaluate_files(ann, dets, note=notes.append)
    assert (as_given["APt"], as_given["APs"], as_given["APm"]) == (-1.0, -1.0, pytest.approx(1.0))
    assert as_given["APvt"] == pytest.approx(1.0)  # the segmentation area 60 is very tiny (< 64)
    assert notes == [f"{ann}: 2 of 3 annotations have an area more than 2x away from their box's w x h (e.g. "
                     "annotation id 1: area 1,048,576 for a 10 x 12 box); the AI-TOD size ranges go by area: "
                     "--area-from-box uses w x h"]
    from_box = evaluate_files(ann, dets, area_from_box=True, note=notes.append)
    assert (from_box["APt"], from_box["APs"], from_box["APm"]) == (pytest.approx(1.0), pytest.approx(1.0), -1.0)
    assert notes[1].endswith("(--area-from-box); 2 of 3 annotations had an area more than 2x away from it")
    assert GroundTruth.from_coco(gt).far_areas().tolist() == [True, True, False]


def test_cli_eval_says_the_far_areas_in_one_line(tmp_path: Path):
    from typer.testing import CliRunner

    from cli import repro_app

    ann = write(tmp_path / "gt.json", coco_gt([{"bbox": [0, 0, 10, 10], "area": 1000}]))
    dets = write(tmp_path / "dets.json", [det([0, 0, 10, 10], 0.9)])
    result = CliRunner().invoke(repro_app, ["eval", "--ann", str(ann), "--dets", str(dets)])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith(f"{ann}: 1 of 1 annotations have an area more than 2x away")
    result = CliRunner().invoke(repro_app, ["eval", "--ann", str(ann), "--dets", str(dets), "--area-from-box"])
    assert result.exit_code == 0 and "(--area-from-box)" in result.output.splitlines()[0]
