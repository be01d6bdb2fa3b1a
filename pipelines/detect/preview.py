"""``detect``'s preview of a scene: the merged detections above a stated score, with their class and score, and,
when the ground truth is known (``--gt``), what the AI-TOD evaluator made of them.

With the ground truth every drawn box is one of the evaluator's own outcomes (:meth:`hsfpn.aitod_eval.AITODEval.
matching` at IoU 0.5 over all sizes, the detections below the score left out first, as error views do): a true
positive (the detection, green), a false positive (the detection, blue) or a missed object (the ground truth,
red); crowd regions and what matched them are grey. Without it the detections are coloured by class. A legend band
above the scene states the score, the counts and the class abbreviations the boxes are labelled with.

Leaving out the detections below the score before matching does not change how those above it match: the
evaluator matches in score order, so a lower detection never takes an object from a higher one.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hsfpn.aitod_eval import AITODEval, AITODParams, Detections, GroundTruth, MatchStatus

from ..visualize.figure import FN_COLOR, FP_COLOR, IGNORED_COLOR, TP_COLOR
from .options import DetectError

#: The IoU at which the preview matches (AP50's).
PREVIEW_IOU = 0.5


def _bgr(hex_colour: str) -> tuple[int, int, int]:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return b, g, r


KIND_COLOURS: dict[str, tuple[int, int, int]] = {
    "TP": _bgr(TP_COLOR), "FP": _bgr(FP_COLOR), "FN": _bgr(FN_COLOR), "ignored": _bgr(IGNORED_COLOR),
}  # fmt: skip


@dataclass(frozen=True)
class SceneTruth:
    """The ground truth given to ``detect --gt``, as the evaluator reads it, with its images by file name.

    Args:
        gt: The ground truth.
        image_ids: ``file name -> image id``.
        source: The file, as given (notes name it whole; the preview's legend by its name).
    """

    gt: GroundTruth
    image_ids: dict[str, int]
    source: str

    @classmethod
    def load(cls, path: Path) -> SceneTruth:
        """Read and check a COCO ground truth (one-line :class:`DetectError` when it cannot be used)."""
        from dotamini10.io import read_json
        from hsfpn.errors import HSFPNError

        data = read_json(path, what="ground truth", error=DetectError)
        try:
            gt = GroundTruth.from_coco(data, source=str(path))
            names = {Path(i["file_name"]).name: int(i["id"]) for i in data["images"]}
        except HSFPNError as exc:  # already names the file
            raise DetectError(f"--gt {exc}") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise DetectError(f"--gt {path}: {exc}") from None
        return cls(gt, names, str(path))


@dataclass(frozen=True)
class PreviewBoxes:
    """What one preview draws, in full-image pixels.

    Args:
        boxes: (N, 4) ``x1, y1, x2, y2``.
        kinds: N of ``TP``, ``FP``, ``FN``, ``ignored`` (with the ground truth) or ``""`` (detections without it).
        labels: (N,) class index of each box (a ground truth's class for ``FN``).
        scores: (N,) score of each detection; NaN for ground truth.
    """

    boxes: np.ndarray
    kinds: tuple[str, ...]
    labels: np.ndarray
    scores: np.ndarray

    def count(self, kind: str) -> int:
        return sum(k == kind for k in self.kinds)


def match_scene(truth: SceneTruth, image: str, boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                classes: Sequence[str]) -> PreviewBoxes | None:
    """The evaluator's outcome of one image's detections (module notes); None when the image is not in the truth.

    Args:
        truth: The ground truth.
        image: The image's file name.
        boxes: (N, 4) ``x1, y1, x2, y2`` detections, already above the preview's score.
        scores: (N,) their scores.
        labels: (N,) their class indices in ``classes``.
        classes: The model's class names; a class the ground truth lacks is drawn as ignored.
    """
    gt = truth.gt
    if image not in truth.image_ids:
        return None
    image_id = truth.image_ids[image]
    cat_of = {name: int(cid) for name, cid in zip(gt.cat_names, gt.cat_ids, strict=True)}
    known = np.array([classes[k] in cat_of for k in labels.tolist()], dtype=bool)
    xywh = np.column_stack([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]]) if len(boxes) else np.zeros((0, 4))
    dets = Detections.from_arrays(gt, np.full(int(known.sum()), image_id),
                                  np.array([cat_of[classes[k]] for k in labels[known].tolist()], dtype=np.int64),
                                  xywh[known], scores[known], source="detections")
    evaluator = AITODEval(gt, dets, AITODParams(iou_thrs=(PREVIEW_IOU,)), img_ids=[image_id])
    evaluator.evaluate()
    m = evaluator.matching(PREVIEW_IOU, "all")
    names = {MatchStatus.MATCHED: "TP", MatchStatus.UNMATCHED: "FP"}
    det_kinds = ["ignored"] * len(boxes)
    for row, status in zip(np.flatnonzero(known).tolist(), m.det_status.tolist(), strict=True):
        det_kinds[row] = names.get(MatchStatus(status), "ignored")
    rows = np.flatnonzero((m.gt_status == MatchStatus.UNMATCHED) | (m.gt_status == MatchStatus.IGNORED))
    gt_kinds = ["FN" if m.gt_status[r] == MatchStatus.UNMATCHED else "ignored" for r in rows.tolist()]
    class_of = {name: k for k, name in enumerate(classes)}
    gt_labels = [class_of.get(gt.cat_names[c], -1) for c in gt.category[rows].tolist()]
    g = gt.boxes[rows]
    gt_boxes = np.column_stack([g[:, :2], g[:, :2] + g[:, 2:]]) if len(rows) else np.zeros((0, 4))
    return PreviewBoxes(np.concatenate([boxes, gt_boxes]).reshape(-1, 4), tuple(det_kinds + gt_kinds),
                        np.concatenate([labels, np.array(gt_labels, dtype=np.int64)]),
                        np.concatenate([scores, np.full(len(rows), np.nan)]))


def abbreviations(classes: Sequence[str]) -> list[str]:
    """Short class labels for the boxes: the initials of a hyphenated name (``small-vehicle`` -> ``SV``), else its
    first two letters (``plane`` -> ``PL``); a clash keeps the full name of the later class."""
    out: list[str] = []
    for name in classes:
        parts = [p for p in name.replace("_", "-").split("-") if p]
        short = "".join(p[0] for p in parts).upper() if len(parts) > 1 else name[:2].upper()
        out.append(short if short and short not in out else name)
    return out


def class_palette(n: int) -> list[tuple[int, int, int]]:
    """``n`` well-spread BGR colours (the detections' colours without ground truth)."""
    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / max(n, 1), 0.9, 1.0))[::-1] for k in range(n)]


# Drawing order: the grey of ignored boxes below everything, misses on top.
_ORDER = ("ignored", "", "TP", "FP", "FN")


def draw_preview(scene: np.ndarray, scale: float, drawn: PreviewBoxes, classes: Sequence[str],
                 header: Sequence[str]) -> np.ndarray:
    """The preview image: the downscaled scene with its boxes and labels, below a legend band.

    Args:
        scene: (H, W, 3) uint8 BGR, the scene downscaled by ``scale``.
        scale: Preview pixels per image pixel.
        drawn: The boxes and what they are.
        classes: The model's class names.
        header: The legend's first lines (image, score, matching).

    Returns:
        The BGR preview.
    """
    import cv2

    canvas = np.ascontiguousarray(scene).copy()
    short, palette = abbreviations(classes), class_palette(len(classes))
    # Box labels are read at full size; the legend also when the preview is shown half size.
    font = max(canvas.shape[1] / 2048, 0.3) * 0.42
    thick = 2 if canvas.shape[1] >= 1200 else 1
    for kind in _ORDER:
        for k in [i for i, x in enumerate(drawn.kinds) if x == kind]:
            x1, y1, x2, y2 = (int(round(v * scale)) for v in drawn.boxes[k])
            label = int(drawn.labels[k])
            colour = KIND_COLOURS[kind] if kind else palette[label % len(palette)]
            width = 1 if kind == "ignored" else thick
            cv2.rectangle(canvas, (x1, y1), (max(x2, x1 + 1), max(y2, y1 + 1)), colour, width)
            if kind in ("", "TP", "FP"):
                _text(canvas, f"{short[label]} {drawn.scores[k]:.2f}".replace(" 0.", " ."), (x1, y1 - 2), font, colour)
    legend = _legend(canvas.shape[1], drawn, classes, short, palette, header, max(canvas.shape[1] / 2048, 0.4) * 0.8)
    return np.concatenate([legend, canvas])


def _text(canvas: np.ndarray, text: str, origin: tuple[int, int], font: float, colour: tuple[int, int, int]) -> None:
    import cv2

    # A dark outline under the coloured text: readable on any background.
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(canvas, text, origin, cv2.FONT_HERSHEY_SIMPLEX, font, colour, 1, cv2.LINE_AA)


def _legend(width: int, drawn: PreviewBoxes, classes: Sequence[str], short: Sequence[str],
            palette: Sequence[tuple[int, int, int]], header: Sequence[str], size: float) -> np.ndarray:
    """The band above the scene: the header lines, the colour key with counts, and the class abbreviations (text of
    OpenCV scale ``size``)."""
    import cv2

    line = _line_height(size)
    if any(drawn.kinds):
        n = {k: drawn.count(k) for k in ("TP", "FP", "FN", "ignored")}
        keys = [(KIND_COLOURS["TP"], f"TP: detection matched ({n['TP']})"),
                (KIND_COLOURS["FP"], f"FP: detection unmatched ({n['FP']})"),
                (KIND_COLOURS["FN"], f"FN: object missed ({n['FN']})"),
                (KIND_COLOURS["ignored"], f"ignored ({n['ignored']})")]
        found = n["TP"] + n["FN"]
        extra = [f"recall {n['TP'] / found:.0%}, precision {n['TP'] / max(n['TP'] + n['FP'], 1):.0%} at this score"
                 if found else "no objects to find"]
        classes_line = ["labels: " + ", ".join(f"{s} {c}" for s, c in zip(short, classes, strict=True))]
    else:
        counts = np.bincount(drawn.labels.astype(np.int64), minlength=len(classes)) if len(drawn.labels) else \
            np.zeros(len(classes), dtype=np.int64)
        keys = [(palette[k], f"{short[k]} {name} ({int(counts[k])})") for k, name in enumerate(classes)]
        extra, classes_line = [], []
    rows = _wrap_keys(keys, width, size)
    text_lines = [*header, *extra]
    band = np.zeros((line * (len(text_lines) + len(rows) + len(classes_line)) + 10, width, 3), dtype=np.uint8)
    y = line - 6
    for text in text_lines:
        cv2.putText(band, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), _stroke(size), cv2.LINE_AA)
        y += line
    for row in rows:
        x = 10
        for colour, text in row:
            cv2.rectangle(band, (x, y - line // 2), (x + line, y + 2), colour, -1)
            cv2.putText(band, text, (x + line + 8, y), cv2.FONT_HERSHEY_SIMPLEX, size, (255, 255, 255), _stroke(size),
                        cv2.LINE_AA)
            x += line + 8 + _width(text, size) + 28
        y += line
    for text in classes_line:
        cv2.putText(band, text, (10, y), cv2.FONT_HERSHEY_SIMPLEX, size, (200, 200, 200), _stroke(size), cv2.LINE_AA)
    return band


def _width(text: str, size: float) -> int:
    import cv2

    return cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, size, _stroke(size))[0][0]


def _stroke(size: float) -> int:
    return 2 if size >= 0.7 else 1


def _line_height(size: float) -> int:
    return int(round(30 * size)) + 10


def _wrap_keys(keys: list[tuple[Any, str]], width: int, size: float) -> list[list[tuple[Any, str]]]:
    line = _line_height(size)
    rows: list[list[tuple[Any, str]]] = [[]]
    used = 10
    for key in keys:
        need = line + 8 + _width(key[1], size) + 28
        if rows[-1] and used + need > width:
            rows.append([])
            used = 10
        rows[-1].append(key)
        used += need
    return rows
