"""detect's preview: TP / FP / FN from the AI-TOD evaluator's own matching, class and score labels, the legend."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsfpn.aitod_eval import AITODEval, AITODParams, Detections
from pipelines.detect import DetectError
from pipelines.detect.preview import (
    KIND_COLOURS,
    PreviewBoxes,
    SceneTruth,
    abbreviations,
    draw_preview,
    match_scene,
)

CLASSES = ("ship", "small-vehicle", "helicopter")


@pytest.fixture
def truth(tmp_path):
    # Two images; scene.png holds three ships and a car, the last ship a crowd region.
    coco = {
        "images": [{"id": 3, "file_name": "other.png", "width": 100, "height": 100},
                   {"id": 7, "file_name": "scene.png", "width": 400, "height": 300}],
        "categories": [{"id": 1, "name": "ship"}, {"id": 2, "name": "small-vehicle"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10, 10, 40, 20], "area": 800},
            {"id": 2, "image_id": 7, "category_id": 1, "bbox": [100, 100, 30, 30], "area": 900},
            {"id": 3, "image_id": 7, "category_id": 2, "bbox": [200, 50, 20, 10], "area": 200},
            {"id": 4, "image_id": 7, "category_id": 1, "bbox": [300, 200, 50, 50], "area": 2500, "iscrowd": 1},
            {"id": 5, "image_id": 3, "category_id": 1, "bbox": [0, 0, 10, 10], "area": 100},
        ],
    }
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(coco))
    return SceneTruth.load(path)


def _detections():
    boxes = np.array([
        [10, 10, 50, 30],      # ship on ship 1: TP
        [12, 10, 50, 30],      # a second ship on ship 1, lower score: FP (the object is taken)
        [200, 50, 220, 60],    # a ship on the car: FP (wrong class)
        [305, 205, 340, 240],  # a ship inside the crowd region: ignored
        [50, 200, 70, 220],    # a helicopter, a class the ground truth lacks: ignored
    ], dtype=np.float64)
    return boxes, np.array([0.9, 0.8, 0.7, 0.6, 0.95]), np.array([0, 0, 0, 0, 2])


def test_match_scene_gives_the_evaluators_outcomes(truth):
    boxes, scores, labels = _detections()
    drawn = match_scene(truth, "scene.png", boxes, scores, labels, CLASSES)
    # Detections first, in input order; then the objects left: ship 2 and the car missed (FN), the crowd ignored.
    assert drawn.kinds == ("TP", "FP", "FP", "ignored", "ignored", "FN", "FN", "ignored")
    assert drawn.labels.tolist() == [0, 0, 0, 0, 2, 0, 1, 0]
    assert drawn.boxes[5].tolist() == [100, 100, 130, 130] and np.isnan(drawn.scores[5:]).all()
    # The same counts as the evaluator's own matching on that image.
    gt = truth.gt
    known = labels != 2
    dets = Detections.from_arrays(gt, np.full(4, 7), np.ones(4, dtype=np.int64),
                                  np.column_stack([boxes[known, :2], boxes[known, 2:] - boxes[known, :2]]), scores[known])
    evaluator = AITODEval(gt, dets, AITODParams(iou_thrs=(0.5,)), img_ids=[7])
    evaluator.evaluate()
    tp, fp, fn = (int(c[list(gt.img_ids).index(7)]) for c in evaluator.matching(0.5, "all").counts_per_image(2))
    assert (tp, fp, fn) == (drawn.count("TP"), drawn.count("FP"), drawn.count("FN")) == (1, 2, 2)
    # The other image's object is not this image's miss; an image the truth does not hold has no matching.
    assert match_scene(truth, "absent.png", boxes, scores, labels, CLASSES) is None


def test_bad_ground_truth_is_one_line(tmp_path):
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": [{"id": 1}], "categories": [], "annotations": [{"id": 1}]}))
    with pytest.raises(DetectError, match=r"^--gt .*gt.json: ") as info:
        SceneTruth.load(path)
    assert "\n" not in str(info.value)


def test_abbreviations():
    assert abbreviations(["plane", "small-vehicle", "ship", "storage-tank", "swimming-pool"]) == \
        ["PL", "SV", "SH", "ST", "SP"]
    assert abbreviations(["ship", "shield"]) == ["SH", "shield"]  # a clash keeps the later full name


def test_draw_preview_colours_each_outcome_and_adds_a_legend(truth):
    boxes, scores, labels = _detections()
    drawn = match_scene(truth, "scene.png", boxes, scores, labels, CLASSES)
    scene = np.full((300, 400, 3), 60, dtype=np.uint8)
    image = draw_preview(scene, 1.0, drawn, CLASSES, ["scene.png: 5 detections"])
    band = image.shape[0] - 300
    assert image.shape[1] == 400 and band > 0 and (image[band:][:5, :5] == 60).all()
    body = image[band:]

    def colour_at(x, y):
        return tuple(int(v) for v in body[y, x])

    # Left edges (1 px at this width): the TP's at x 10 (the FP on the same ship starts at x 12), the missed
    # ship's at x 100, the missed car's at x 200 drawn over the FP ship on it (misses on top); the crowd in grey.
    assert colour_at(10, 20) == KIND_COLOURS["TP"] and colour_at(12, 20) == KIND_COLOURS["FP"]
    assert colour_at(100, 115) == KIND_COLOURS["FN"] and colour_at(200, 55) == KIND_COLOURS["FN"]
    assert colour_at(300, 225) == KIND_COLOURS["ignored"]
    legend = image[:band]
    for kind in ("TP", "FP", "FN"):  # the colour key's swatches
        assert (legend == np.array(KIND_COLOURS[kind], dtype=np.uint8)).all(axis=2).sum() > 50
    # Without ground truth: boxes in class colours, one swatch per class.
    plain = draw_preview(scene, 1.0, PreviewBoxes(boxes, ("",) * 5, labels, scores), CLASSES, ["no truth"])
    assert not (plain == np.array(KIND_COLOURS["TP"], dtype=np.uint8)).all(axis=2).any()
