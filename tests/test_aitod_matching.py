"""Tests of AITODEval.matching: the evaluator's per-row matching, by hand and against pycocotools' evaluateImg."""

from __future__ import annotations

import contextlib
import copy
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from hsfpn.aitod_eval import AITODEval, AITODParams, AITODStateError, Detections, GroundTruth, MatchStatus

M, U, IGN, NE = MatchStatus.MATCHED, MatchStatus.UNMATCHED, MatchStatus.IGNORED, MatchStatus.NOT_EVALUATED


def scene(anns: list[dict], images: tuple[int, ...] = (1,), cats: tuple[int, ...] = (1,)) -> dict:
    out = []
    for j, a in enumerate(anns):
        x, y, w, h = a["bbox"]
        out.append({"id": j + 1, "image_id": a.get("image_id", images[0]), "category_id": a.get("category_id", cats[0]),
                    "bbox": [x, y, w, h], "area": a.get("area", w * h), "iscrowd": a.get("iscrowd", 0)})  # fmt: skip
    return {"images": [{"id": i} for i in images], "categories": [{"id": c, "name": f"c{c}"} for c in cats],
            "annotations": out}  # fmt: skip


def det(bbox: list[float], score: float, image_id: int = 1, category_id: int = 1) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": bbox, "score": score}


def evaluated(gt_dict: dict, dets: list[dict], params: AITODParams | None = None) -> AITODEval:
    gt = GroundTruth.from_coco(gt_dict)
    ev = AITODEval(gt, Detections.from_coco(dets, gt), params)
    ev.evaluate()
    ev.accumulate()
    return ev


# ---------------------------------------------------------------------------------------------
# cases a reader can count
# ---------------------------------------------------------------------------------------------


def test_duplicate_low_iou_miss_and_crowd_counted_by_hand():
    gt_dict = scene([
        {"bbox": [0, 0, 10, 10]},                    # g0: found twice (d0 then its duplicate d1)
        {"bbox": [50, 50, 10, 10]},                  # g1: d2 overlaps it at IoU 25/175 = 0.14 < 0.5
        {"bbox": [100, 100, 10, 10]},                # g2: nobody near it (a miss)
        {"bbox": [200, 200, 40, 40], "iscrowd": 1},  # g3: a crowd region
    ])  # fmt: skip
    dets = [
        det([0, 0, 10, 10], 0.9),      # d0: TP on g0
        det([1, 0, 10, 10], 0.8),      # d1: duplicate of g0 -> FP (g0 is taken)
        det([55, 55, 10, 10], 0.7),    # d2: below the IoU threshold -> FP
        det([210, 210, 10, 10], 0.6),  # d3: inside the crowd region (IoU 100/100 = 1) -> ignored
    ]
    m = evaluated(gt_dict, dets).matching(0.5, "all")
    assert m.det_status.tolist() == [M, U, U, IGN]
    assert m.gt_status.tolist() == [M, U, U, IGN]
    assert m.det_gt.tolist() == [0, -1, -1, 3]
    assert m.gt_det.tolist() == [0, -1, -1, -1]  # a crowd region names no single detection
    tp, fp, fn = m.counts_per_image(1)
    assert (tp.tolist(), fp.tolist(), fn.tolist()) == ([1], [2], [2])


def test_area_range_ignores_objects_outside_it():
    # In "verytiny" [0, 64] the 16 x 16 object (area 256) is ignored and so is the detection that matches it;
    # an unmatched 20 x 20 detection outside the range is ignored too; the 6 x 6 object is a miss.
    gt_dict = scene([{"bbox": [0, 0, 16, 16]}, {"bbox": [40, 40, 6, 6]}])
    dets = [det([0, 0, 16, 16], 0.9), det([80, 80, 20, 20], 0.8), det([90, 0, 4, 4], 0.7)]
    ev = evaluated(gt_dict, dets)
    m = ev.matching(0.5, "verytiny")
    assert m.det_status.tolist() == [IGN, IGN, U]
    assert m.gt_status.tolist() == [IGN, U]
    m_all = ev.matching(0.5, "all")
    assert m_all.det_status.tolist() == [M, U, U]
    assert m_all.gt_status.tolist() == [M, U]


def test_detections_beyond_max_dets_and_unselected_images_are_not_evaluated():
    gt_dict = scene([{"bbox": [0, 0, 8, 8], "image_id": 1}, {"bbox": [0, 0, 8, 8], "image_id": 2}], images=(1, 2))
    dets = [det([0, 0, 8, 8], 0.9), det([20, 20, 8, 8], 0.8), det([0, 0, 8, 8], 0.5, image_id=2)]
    gt = GroundTruth.from_coco(gt_dict)
    ev = AITODEval(gt, Detections.from_coco(dets, gt), AITODParams(max_dets=(1,)), img_ids=[1])
    ev.evaluate()
    m = ev.matching(0.5)
    assert m.det_status.tolist() == [M, NE, NE]
    assert m.gt_status.tolist() == [M, NE]


def test_matching_needs_evaluate_and_known_slices():
    gt_dict = scene([{"bbox": [0, 0, 8, 8]}])
    gt = GroundTruth.from_coco(gt_dict)
    ev = AITODEval(gt, Detections.from_coco([det([0, 0, 8, 8], 1.0)], gt))
    with pytest.raises(AITODStateError, match="evaluate"):
        ev.matching()
    ev.evaluate()
    with pytest.raises(ValueError, match="thresholds"):
        ev.matching(0.3)  # not one of 0.50:0.05:0.95
    with pytest.raises(ValueError, match="area labels"):
        ev.matching(0.5, "huge")


# ---------------------------------------------------------------------------------------------
# equal to pycocotools' per-image matching, and to the accumulated recall, on random cases
# ---------------------------------------------------------------------------------------------


@st.composite
def cases(draw: st.DrawFn) -> tuple[dict, list[dict]]:
    """Crowded scenes on a coarse grid (ties in IoU and score, area-range edges, crowd regions)."""
    images = tuple(3 * i + 1 for i in range(draw(st.integers(1, 3))))
    cats = tuple(2 * c + 5 for c in range(draw(st.integers(1, 2))))
    coord = st.integers(0, 12).map(float)
    size = st.sampled_from([1.0, 2.0, 4.0, 6.0, 8.0, 9.5, 16.0, 40.0])
    anns = []
    for _ in range(draw(st.integers(0, 10))):
        w, h = draw(size), draw(size)
        anns.append({"bbox": [draw(coord), draw(coord), w, h], "image_id": draw(st.sampled_from(images)),
                     "category_id": draw(st.sampled_from(cats)), "iscrowd": int(draw(st.integers(0, 7)) == 0),
                     "area": draw(st.sampled_from([w * h, w * h, 64.0, 256.0, 1024.0, 30.0]))})  # fmt: skip
    dets = []
    for _ in range(draw(st.integers(1, 14))):  # pycocotools cannot load an empty result list
        if anns and draw(st.booleans()):
            src = draw(st.sampled_from(anns))
            x, y, w, h = src["bbox"]
            shift = st.sampled_from([-1.0, 0.0, 1.0])
            bbox = [x + draw(shift), y + draw(shift), max(w + draw(shift), 0.5), h]
            dets.append(det(bbox, draw(st.sampled_from([0.1, 0.5, 0.9])), src["image_id"], src["category_id"]))
        else:
            dets.append(det([draw(coord), draw(coord), draw(size), draw(size)], draw(st.sampled_from([0.1, 0.5, 0.9])),
                            draw(st.sampled_from(images)), draw(st.sampled_from(cats))))  # fmt: skip
    return scene(anns, images, cats), dets


def pycocotools_status(gt_dict: dict, dets: list[dict], params: AITODParams, t: int, a: int):
    """Per-row statuses read from pycocotools' evaluateImg records (detection ids are 1 + input row)."""
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt_dict)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(copy.deepcopy(dets)), "bbox")
        ev.params.iouThrs = np.asarray(params.iou_thrs)
        ev.params.maxDets = list(params.max_dets)
        ev.params.areaRng = [list(r) for r in params.area_rngs]
        ev.params.areaRngLbl = list(params.area_labels)
        ev.evaluate()
    det_status = np.full(len(dets), NE)
    ann_row = {ann["id"]: j for j, ann in enumerate(gt_dict["annotations"])}
    gt_status = np.full(len(ann_row), NE)
    n_img = len(ev.params.imgIds)
    for k in range(len(ev.params.catIds)):
        for rec in ev.evalImgs[(k * len(params.area_rngs) + a) * n_img:(k * len(params.area_rngs) + a + 1) * n_img]:
            if rec is None:
                continue
            for d_id, matched, ignored in zip(rec["dtIds"], rec["dtMatches"][t], rec["dtIgnore"][t], strict=True):
                det_status[d_id - 1] = IGN if ignored else (M if matched > 0 else U)
            for g_id, matched, ignored in zip(rec["gtIds"], rec["gtMatches"][t], rec["gtIgnore"], strict=True):
                gt_status[ann_row[g_id]] = IGN if ignored else (M if matched > 0 else U)
    return det_status, gt_status


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), area=st.sampled_from(["all", "verytiny", "tiny", "small"]), iou=st.sampled_from([0.5, 0.75]))
def test_statuses_equal_pycocotools_evaluate_img(case: tuple[dict, list[dict]], area: str, iou: float):
    gt_dict, dets = case
    params = AITODParams(max_dets=(2, 5))  # small enough that the max_dets cut happens
    m = evaluated(gt_dict, dets, params).matching(iou, area)
    t = list(params.iou_thrs).index(iou)
    det_status, gt_status = pycocotools_status(gt_dict, dets, params, t, params.area_labels.index(area))
    assert m.det_status.tolist() == det_status.tolist()
    assert m.gt_status.tolist() == gt_status.tolist()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), area=st.sampled_from(["all", "verytiny", "tiny"]))
def test_tp_over_tp_plus_fn_is_the_accumulated_recall(case: tuple[dict, list[dict]], area: str):
    gt_dict, dets = case
    ev = evaluated(gt_dict, dets)
    m = ev.matching(0.5, area)
    a, gt, d = ev.params.area_labels.index(area), ev.gt, ev.dets
    for k in range(len(gt.cat_ids)):
        tp = int(np.sum((m.det_status == M) & (d.category == k)))
        fn = int(np.sum((m.gt_status == U) & (gt.category == k)))
        expected = -1.0 if tp + fn == 0 else tp / (tp + fn)
        assert ev.recall[0, k, a, -1] == pytest.approx(expected, abs=1e-12)
    # Every matched ground truth is matched by exactly one detection that points back at it.
    found = np.flatnonzero(m.gt_status == M)
    assert sorted(m.gt_det[found].tolist()) == sorted(np.flatnonzero(m.det_status == M).tolist())
    assert (m.det_gt[m.gt_det[found]] == found).all()
