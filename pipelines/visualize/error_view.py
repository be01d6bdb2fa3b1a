"""True positives, false positives and misses per image (the paper's Figures 16-17), from the AI-TOD evaluator.

Flow: read the ground truth and one or two detection files -> keep detections scoring at least ``score`` ->
match them with :meth:`hsfpn.aitod_eval.AITODEval.matching` (greedy by score, its crowd and ignore rules, at
one IoU threshold) -> count per image -> rank the images -> write ``counts.csv``, ``summary.json``,
``totals.png`` and one figure per image for the first ``max_images`` of the ranking.

A figure and the table never disagree: both are drawn from the same :class:`~hsfpn.aitod_eval.Matching`.
The per-bucket columns of ``counts.csv`` are the evaluator's matching at that area range (very tiny [0, 64],
tiny [64, 256], small [256, 1024], medium [1024, 1e10] squared pixels of the ``area`` field, both ends
inclusive, as AI-TOD's evaluator): an object whose area is exactly 64 belongs to both very tiny and tiny, and
a detection matched to an object outside the bucket is ignored there, so the buckets need not add up to the
"all" columns.

Ranking. With two detection files, images come in decreasing order of ``|FN(first) - FN(second)|`` (where one
detector helps most), ties broken by the signed difference (the second detector helping first), then by the
total misses and the image id. With one file, by misses, then false positives, then the image id.

Figures. Each detector gets a column block (FPN | HS-FPN as in the paper): the whole image with every box on
top, then zoomed crops below. The crops are the same regions in every block and are numbered on the image;
they are centred on the objects that matter most: misses of one detector that the other finds, then misses,
then false positives, then true positives, smallest first. A crop spans at least ``crop_side`` pixels, so a
5 px object fills about a tenth of a crop panel.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import ProgressFn, read_json, write_json
from hsfpn.aitod_eval import AREA_NAMES, AITODEval, AITODParams, Detections, GroundTruth, Matching, MatchStatus

from . import VisualizeError
from .figure import (
    CROP_COLOR,
    FN_COLOR,
    FP_COLOR,
    IGNORED_COLOR,
    TP_COLOR,
    downscale,
    new_figure,
    read_rgb,
    save_png,
    write_csv,
)

#: AI-TOD's size buckets, in the order of the ``counts.csv`` columns.
AREA_BUCKETS: tuple[str, ...] = ("verytiny", "tiny", "small", "medium")



class BoxKind(enum.IntEnum):
    """How a drawn box counts: a detection (TP, FP), a missed object (FN) or something the evaluator ignores."""

    TP = 0
    FP = 1
    FN = 2
    IGNORED = 3


BOX_COLORS: dict[BoxKind, str] = {
    BoxKind.TP: TP_COLOR, BoxKind.FP: FP_COLOR, BoxKind.FN: FN_COLOR, BoxKind.IGNORED: IGNORED_COLOR,
}  # fmt: skip


@dataclass(frozen=True)
class ErrorViewOptions:
    """Settings of the error views.

    Args:
        iou: IoU threshold of a match. Defaults to 0.5.
        score: Detections scoring below this are dropped before matching. Defaults to 0.3.
        area: Area range of the figures and of the ``tp`` / ``fp`` / ``fn`` columns: ``all``, ``verytiny``,
            ``tiny``, ``small`` or ``medium``. Defaults to ``all``.
        max_images: Figures for the first this many images of the ranking. Defaults to 20.
        max_crops: Zoomed crops per figure. Defaults to 8.
        crop_side: Smallest side of a crop in image pixels. Defaults to 48.
        overview_side: The whole image is drawn shrunk to at most this many pixels a side. Defaults to 1400.
    """

    iou: float = 0.5
    score: float = 0.3
    area: str = "all"
    max_images: int = 20
    max_crops: int = 8
    crop_side: int = 48
    overview_side: int = 1400

    def __post_init__(self) -> None:
        if not 0.0 < self.iou <= 1.0:
            raise VisualizeError(f"--iou must be in (0, 1], got {self.iou}")
        if not math.isfinite(self.score):
            raise VisualizeError(f"--score must be a finite number, got {self.score}")
        if self.area not in ("all", *AREA_BUCKETS):
            raise VisualizeError(f"--area must be one of all, {', '.join(AREA_BUCKETS)}; got {self.area!r}")
        for name in ("max_images", "max_crops", "crop_side", "overview_side"):
            minimum = 0 if name in ("max_images", "max_crops") else 8
            if getattr(self, name) < minimum:
                raise VisualizeError(f"--{name.replace('_', '-')} must be >= {minimum}, got {getattr(self, name)}")


@dataclass(frozen=True, eq=False)
class Scenes:
    """The ground truth and where each image's pixels are.

    Attributes:
        gt: The ground truth.
        file_names: One ``file_name`` per image (``gt.img_ids`` order); None where the entry has none.
        source: The ground-truth file.
    """

    gt: GroundTruth
    file_names: tuple[str | None, ...]
    source: Path


@dataclass(frozen=True, eq=False)
class DetectorErrors:
    """One detections file, matched.

    Attributes:
        label: Name in figures and tables (``FPN``).
        source: The detections file.
        n_input: Detections in the file.
        detections: Those scoring at least the threshold.
        matchings: The evaluator's matching per area label (the options' area and every bucket).
        counts: ``(tp, fp, fn)`` per image, per area label; (I,) int64 arrays.
    """

    label: str
    source: Path
    n_input: int
    detections: Detections
    matchings: dict[str, Matching]
    counts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]

    def totals(self, area: str) -> dict[str, int]:
        tp, fp, fn = self.counts[area]
        return {"tp": int(tp.sum()), "fp": int(fp.sum()), "fn": int(fn.sum())}


@dataclass(frozen=True)
class Crop:
    """A square region of an image, in pixels: columns ``x0 .. x0 + side``, rows ``y0 .. y0 + side``."""

    x0: int
    y0: int
    side: int


@dataclass(frozen=True, eq=False)
class Panel:
    """What one detector's block of a figure shows: boxes ``(N, 4)`` ``[x, y, w, h]`` with their kinds."""

    label: str
    boxes: np.ndarray
    kinds: np.ndarray
    tp: int
    fp: int
    fn: int


@dataclass(frozen=True)
class ErrorViewResult:
    """What :func:`render_error_views` wrote.

    Attributes:
        counts_csv: ``counts.csv``: one row per image (and detector), in ranking order.
        summary_json: ``summary.json``: options, totals per detector and area range, problems.
        totals_png: ``totals.png``: TP / FP / FN per size bucket and detector.
        figures: The per-image figures, in ranking order.
        totals: ``{label: {"tp", "fp", "fn"}}`` at the options' area range.
        images: Images of the ground truth.
        problems: ``"file: reason"`` of each ranked image that could not be drawn.
    """

    counts_csv: Path
    summary_json: Path
    totals_png: Path
    figures: tuple[Path, ...]
    totals: dict[str, dict[str, int]]
    images: int
    problems: tuple[str, ...]


# ---------------------------------------------------------------------------------------------
# Read and match
# ---------------------------------------------------------------------------------------------


def load_scenes(ann: Path) -> Scenes:
    """Read a COCO ground-truth file and its images' ``file_name`` entries.

    Raises:
        VisualizeError: The file is missing or not JSON.
        hsfpn.aitod_eval.AITODInputError: The ground truth is malformed (names the entry).
    """
    data = read_json(ann, what="ground truth", error=VisualizeError)
    gt = GroundTruth.from_coco(data, source=str(ann))
    names = {entry["id"]: entry.get("file_name") for entry in data["images"]}
    file_names = tuple(_file_name(names[int(i)]) for i in gt.img_ids)
    return Scenes(gt=gt, file_names=file_names, source=Path(ann))


def _file_name(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def match_detections(scenes: Scenes, every: Detections, label: str, source: Path,
                     options: ErrorViewOptions) -> DetectorErrors:  # fmt: skip
    """Match one detector's detections against the ground truth with the AI-TOD evaluator.

    Args:
        scenes: The ground truth.
        every: All detections of the file (validated against ``scenes.gt``).
        label: The detector's name.
        source: The detections file, for the summary.
        options: IoU threshold, score threshold and area range.

    Returns:
        The matching per area label and the per-image counts.
    """
    gt = scenes.gt
    keep = every.scores >= options.score
    kept = Detections(image=every.image[keep], category=every.category[keep], boxes=every.boxes[keep],
                      scores=every.scores[keep])  # fmt: skip
    evaluator = AITODEval(gt, kept, AITODParams(iou_thrs=(options.iou,)))
    evaluator.evaluate()
    areas = dict.fromkeys((options.area, *AREA_BUCKETS))
    matchings = {area: evaluator.matching(options.iou, area) for area in areas}
    n_images = len(gt.img_ids)
    counts = {area: m.counts_per_image(n_images) for area, m in matchings.items()}
    return DetectorErrors(label=label, source=Path(source), n_input=len(every.scores), detections=kept,
                          matchings=matchings, counts=counts)  # fmt: skip


def rank_images(detectors: Sequence[DetectorErrors], area: str, img_ids: np.ndarray) -> np.ndarray:
    """Image positions in ranking order (rules in the module notes).

    Args:
        detectors: One or two matched detection files.
        area: The area label whose counts rank the images.
        img_ids: (I,) image ids, the last tie-break.

    Returns:
        (I,) int64 positions into ``img_ids``.
    """
    if len(detectors) == 1:
        _, fp, fn = detectors[0].counts[area]
        return np.lexsort((img_ids, -fp, -fn)).astype(np.int64)
    fn_a, fn_b = detectors[0].counts[area][2], detectors[1].counts[area][2]
    diff = fn_a - fn_b
    return np.lexsort((img_ids, -(fn_a + fn_b), -diff, -np.abs(diff))).astype(np.int64)


def default_labels(paths: Sequence[Path]) -> tuple[str, ...]:
    """File stems as detector names, or ``parent/stem`` when two files share a stem."""
    stems = [Path(p).stem for p in paths]
    if len(set(stems)) == len(stems):
        return tuple(stems)
    return tuple(f"{Path(p).parent.name}/{Path(p).stem}" for p in paths)


# ---------------------------------------------------------------------------------------------
# What one figure shows
# ---------------------------------------------------------------------------------------------


def image_panel(scenes: Scenes, errors: DetectorErrors, image: int, area: str) -> Panel:
    """The boxes one detector's block shows for one image (position ``image`` in ``gt.img_ids``)."""
    m, dets, gt = errors.matchings[area], errors.detections, scenes.gt
    d_rows = np.flatnonzero(dets.image == image)
    g_rows = np.flatnonzero(gt.image == image)
    d_status, g_status = m.det_status[d_rows], m.gt_status[g_rows]
    det_kind = np.select([d_status == MatchStatus.MATCHED, d_status == MatchStatus.UNMATCHED],
                         [BoxKind.TP, BoxKind.FP], BoxKind.IGNORED)  # fmt: skip
    # Matched objects are shown by their detection (green); an evaluated-out detection is not drawn.
    d_show = d_status != MatchStatus.NOT_EVALUATED
    g_show = (g_status == MatchStatus.UNMATCHED) | (g_status == MatchStatus.IGNORED)
    gt_kind = np.where(g_status == MatchStatus.UNMATCHED, BoxKind.FN, BoxKind.IGNORED)
    boxes = np.concatenate([dets.boxes[d_rows[d_show]], gt.boxes[g_rows[g_show]]]).reshape(-1, 4)
    kinds = np.concatenate([det_kind[d_show], gt_kind[g_show]]).astype(np.int64)
    tp, fp, fn = (int(c[image]) for c in errors.counts[area])
    return Panel(label=errors.label, boxes=boxes, kinds=kinds, tp=tp, fp=fp, fn=fn)


def crop_candidates(scenes: Scenes, detectors: Sequence[DetectorErrors], image: int, area: str) -> np.ndarray:
    """Boxes worth a zoomed crop, most telling first: ``(N, 4)`` ``[x, y, w, h]``.

    Priority: objects missed by some detector and found by another, objects missed by all, false positives,
    objects found by all; inside a priority, smaller first, then top to bottom, left to right.
    """
    gt = scenes.gt
    g_rows = np.flatnonzero(gt.image == image)
    status = np.stack([d.matchings[area].gt_status[g_rows] for d in detectors]) if len(g_rows) else np.zeros((1, 0))
    missed = (status == MatchStatus.UNMATCHED).any(axis=0)
    found = (status == MatchStatus.MATCHED).any(axis=0)
    g_prio = np.select([missed & found, missed, found], [0, 1, 3], -1)
    boxes, prio = [gt.boxes[g_rows][g_prio >= 0]], [g_prio[g_prio >= 0]]
    for d in detectors:
        rows = np.flatnonzero((d.detections.image == image) & (d.matchings[area].det_status == MatchStatus.UNMATCHED))
        boxes.append(d.detections.boxes[rows])
        prio.append(np.full(len(rows), 2))
    all_boxes, all_prio = np.concatenate(boxes).reshape(-1, 4), np.concatenate(prio)
    size = np.maximum(all_boxes[:, 2], all_boxes[:, 3])
    order = np.lexsort((all_boxes[:, 0], all_boxes[:, 1], size, all_prio))
    return all_boxes[order]


def choose_crops(candidates: np.ndarray, width: int, height: int, max_crops: int, min_side: int) -> list[Crop]:
    """Square crops centred on the candidates in order, skipping a candidate that an earlier crop already shows.

    Args:
        candidates: (N, 4) ``[x, y, w, h]`` boxes, most important first.
        width: Image width.
        height: Image height.
        max_crops: At most this many crops.
        min_side: Smallest crop side; a crop is at least three times its object's longer side, and never
            larger than the image.

    Returns:
        The crops, inside the image.
    """
    crops: list[Crop] = []
    limit = max(1, min(width, height))
    for x, y, w, h in candidates:
        if len(crops) >= max_crops:
            break
        cx, cy, extent = x + w / 2, y + h / 2, max(w, h)
        if any(_shows(c, cx, cy, extent) for c in crops):
            continue
        side = int(min(limit, max(min_side, math.ceil(3 * extent))))
        x0 = int(min(max(round(cx - side / 2), 0), max(width - side, 0)))
        y0 = int(min(max(round(cy - side / 2), 0), max(height - side, 0)))
        crops.append(Crop(x0, y0, side))
    return crops


def _shows(crop: Crop, cx: float, cy: float, extent: float) -> bool:
    """Whether ``crop`` already shows an object centred at ``(cx, cy)`` well inside it and at a useful zoom."""
    margin = crop.side / 6
    lo_x, hi_x = crop.x0 + margin, crop.x0 + crop.side - margin
    lo_y, hi_y = crop.y0 + margin, crop.y0 + crop.side - margin
    inside = lo_x <= cx <= hi_x and lo_y <= cy <= hi_y
    return inside and extent <= crop.side / 2


# ---------------------------------------------------------------------------------------------
# Drawing
# ---------------------------------------------------------------------------------------------

_BLOCK_IN = 6.0  # width of one detector's block, inches
_GAP_IN = 0.6  # between blocks (room for the second block's tick labels)
_LEFT_IN = 0.5  # room for the first block's tick labels
_CROP_COLS = 4


def render_image_errors(rgb: np.ndarray, title: str, panels: Sequence[Panel], crops: Sequence[Crop],
                        options: ErrorViewOptions) -> Any:  # fmt: skip
    """One image's figure: per detector, the whole image with its boxes, then the zoomed crops.

    Args:
        rgb: (H, W, 3) uint8 image.
        title: The figure's title (image name and size).
        panels: One per detector, in block order.
        crops: The crop regions (the same in every block).
        options: For the subtitle (IoU, score, area) and the overview size.

    Returns:
        A matplotlib ``Figure``.
    """
    height, width = rgb.shape[:2]
    crop_rows = math.ceil(len(crops) / _CROP_COLS)
    crop_in = _BLOCK_IN / _CROP_COLS
    overview_in = min(max(_BLOCK_IN * height / width, 2.0), 7.5)
    # One block is too narrow for the legend on one line: two lines then.
    legend_cols = 4 if len(panels) > 1 else 2
    top_in, title_in = (1.2 if legend_cols == 4 else 1.4), 0.3
    fig_h = top_in + overview_in + title_in + crop_rows * (crop_in + 0.2) + 0.25
    fig_w = _LEFT_IN + len(panels) * _BLOCK_IN + (len(panels) - 1) * _GAP_IN + 0.25
    figure = new_figure(fig_w, fig_h)
    small = downscale(rgb, options.overview_side)
    for b, panel in enumerate(panels):
        left_in = _LEFT_IN + b * (_BLOCK_IN + _GAP_IN)
        top = fig_h - top_in
        ax = figure.add_axes(_rect(left_in, top - overview_in, _BLOCK_IN, overview_in, fig_w, fig_h))
        ax.imshow(small, extent=(0, width, height, 0), interpolation="antialiased")
        _draw_boxes(ax, panel, linewidth=0.9)
        for number, crop in enumerate(crops, start=1):
            _draw_crop_outline(ax, crop, number)
        ax.set_xlim(0, width)
        ax.set_ylim(height, 0)
        ax.tick_params(labelsize=7)
        ax.set_title(f"{panel.label}:  TP {panel.tp}   FP {panel.fp}   FN {panel.fn}", fontsize=10)
        for i, crop in enumerate(crops):
            row, col = divmod(i, _CROP_COLS)
            y_in = top - overview_in - title_in - (row + 1) * (crop_in + 0.2) + 0.2
            cax = figure.add_axes(_rect(left_in + col * crop_in + 0.03, y_in, crop_in - 0.06, crop_in, fig_w, fig_h))
            _draw_crop(cax, rgb, crop, panel, i + 1)
    figure.suptitle(title, fontsize=11, y=1 - 0.12 / fig_h, va="top")
    figure.text(0.5, 1 - 0.38 / fig_h, _subtitle(options), ha="center", va="top", fontsize=9)
    _legend(figure, 1 - 0.58 / fig_h, legend_cols)
    return figure


def _rect(left: float, bottom: float, width: float, height: float, fig_w: float, fig_h: float) -> list[float]:
    return [left / fig_w, bottom / fig_h, width / fig_w, height / fig_h]


def _subtitle(options: ErrorViewOptions) -> str:
    return (f"AI-TOD matching: IoU >= {options.iou:g}, score >= {options.score:g}, area range "
            f"{AREA_NAMES.get(options.area, options.area)}; numbered squares are zoomed below")  # fmt: skip


def _legend(figure: Any, y: float, columns: int) -> None:
    from matplotlib.lines import Line2D

    names = {BoxKind.TP: "TP (detection)", BoxKind.FP: "FP (detection)", BoxKind.FN: "FN (missed object)",
             BoxKind.IGNORED: "ignored (crowd, outside area range)"}  # fmt: skip
    handles = [Line2D([], [], color=BOX_COLORS[k], linewidth=2, linestyle="--" if k == BoxKind.IGNORED else "-",
                      label=names[k]) for k in BoxKind]  # fmt: skip
    figure.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, y), ncol=columns, fontsize=8,
                  frameon=False, borderaxespad=0.0, handletextpad=0.5, labelspacing=0.3)


def _rectangles(boxes: np.ndarray) -> np.ndarray:
    """(N, 5, 2) closed outlines of ``[x, y, w, h]`` boxes."""
    x, y, w, h = boxes.T
    xs = np.stack([x, x + w, x + w, x, x], axis=1)
    ys = np.stack([y, y, y + h, y + h, y], axis=1)
    return np.stack([xs, ys], axis=2)


def _draw_boxes(ax: Any, panel: Panel, linewidth: float) -> None:
    from matplotlib.collections import LineCollection

    # Ignored first, misses last: the colour that matters most ends on top.
    for kind in (BoxKind.IGNORED, BoxKind.TP, BoxKind.FP, BoxKind.FN):
        sel = panel.kinds == kind
        if sel.any():
            style = "--" if kind == BoxKind.IGNORED else "-"
            ax.add_collection(LineCollection(_rectangles(panel.boxes[sel]), colors=BOX_COLORS[kind],
                                             linewidths=linewidth, linestyles=style))  # fmt: skip


def _draw_crop_outline(ax: Any, crop: Crop, number: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((crop.x0, crop.y0), crop.side, crop.side, fill=False, edgecolor=CROP_COLOR, linewidth=0.8))
    ax.text(crop.x0, crop.y0, str(number), color="black", fontsize=6, ha="left", va="bottom",
            bbox=dict(boxstyle="square,pad=0.1", facecolor=CROP_COLOR, edgecolor="none"))  # fmt: skip


def _draw_crop(ax: Any, rgb: np.ndarray, crop: Crop, panel: Panel, number: int) -> None:
    x1, y1 = crop.x0 + crop.side, crop.y0 + crop.side
    ax.imshow(rgb[crop.y0:y1, crop.x0:x1], extent=(crop.x0, x1, y1, crop.y0), interpolation="nearest")
    _draw_boxes(ax, panel, linewidth=1.6)
    ax.set_xlim(crop.x0, x1)
    ax.set_ylim(y1, crop.y0)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(CROP_COLOR)
    ax.text(0.03, 0.97, str(number), transform=ax.transAxes, fontsize=7, ha="left", va="top",
            bbox=dict(boxstyle="square,pad=0.15", facecolor=CROP_COLOR, edgecolor="none"))  # fmt: skip
    _scale_bar(ax, crop)


def _scale_bar(ax: Any, crop: Crop) -> None:
    """A bar of a round length (about a quarter of the crop) in the lower-left corner, labelled in pixels."""
    target = crop.side / 4
    length = max((n for n in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000) if n <= target), default=1)
    x = crop.x0 + crop.side * 0.06
    y = crop.y0 + crop.side * 0.92
    ax.plot([x, x + length], [y, y], color="white", linewidth=2.5, solid_capstyle="butt")
    ax.plot([x, x + length], [y, y], color="black", linewidth=1.0, solid_capstyle="butt")
    box = dict(boxstyle="square,pad=0.05", facecolor="black", alpha=0.5, edgecolor="none")
    ax.text(x + length / 2, y - crop.side * 0.03, f"{length} px", color="white", fontsize=6, ha="center",
            va="bottom", bbox=box)


def render_totals(detectors: Sequence[DetectorErrors], options: ErrorViewOptions, n_images: int) -> Any:
    """TP, FP and FN per size bucket (and the options' area range), one bar per detector."""
    figure = new_figure(11, 3.8)
    axes = figure.subplots(1, 3)
    areas = list(dict.fromkeys((options.area, *AREA_BUCKETS)))
    x = np.arange(len(areas))
    width = 0.8 / len(detectors)
    for ax, (key, name, color) in zip(axes, (("tp", "TP", TP_COLOR), ("fp", "FP", FP_COLOR), ("fn", "FN", FN_COLOR)),
                                      strict=True):  # fmt: skip
        for j, d in enumerate(detectors):
            values = [d.totals(a)[key] for a in areas]
            bars = ax.bar(x + (j - (len(detectors) - 1) / 2) * width, values, width, color=color,
                          alpha=1.0 if j == len(detectors) - 1 else 0.45, label=d.label, edgecolor="black",
                          linewidth=0.5)  # fmt: skip
            ax.bar_label(bars, fontsize=7)
        ax.set_xticks(x, [AREA_NAMES.get(a, a).replace(" ", "\n", 1) for a in areas], fontsize=8)
        ax.set_title(name, fontsize=10, color=color)
        ax.set_ylabel("count")
        ax.legend(fontsize=8)
    figure.suptitle(f"Errors on {n_images:,} image{'' if n_images == 1 else 's'}: IoU >= {options.iou:g}, "
                    f"score >= {options.score:g} "
                    f"(buckets: evaluator's matching per area range)", fontsize=10)  # fmt: skip
    figure.tight_layout()
    return figure


# ---------------------------------------------------------------------------------------------
# Tables and orchestration
# ---------------------------------------------------------------------------------------------


def count_rows(scenes: Scenes, detectors: Sequence[DetectorErrors], ranking: np.ndarray, area: str,
               figures: dict[int, str]) -> tuple[list[str], list[list[Any]]]:  # fmt: skip
    """The ``counts.csv`` table: header and rows, one per image and detector, in ranking order."""
    header = ["rank", "image", "image_id", "detector", "tp", "fp", "fn"]
    header += [f"{k}_{b}" for b in AREA_BUCKETS for k in ("tp", "fp", "fn")]
    header += ["fn_difference", "figure"]
    rows = []
    for rank, i in enumerate(ranking.tolist(), start=1):
        diff = "" if len(detectors) == 1 else int(detectors[0].counts[area][2][i] - detectors[1].counts[area][2][i])
        for d in detectors:
            row = [rank, scenes.file_names[i] or "", int(scenes.gt.img_ids[i]), d.label]
            row += [int(c[i]) for c in d.counts[area]]
            row += [int(c[i]) for b in AREA_BUCKETS for c in d.counts[b]]
            rows.append([*row, diff, figures.get(i, "")])
    return header, rows


def _figure_name(rank: int, file_name: str | None, image_id: int) -> str:
    stem = Path(file_name).stem if file_name else f"image{image_id}"
    return f"{rank:03d}_{re.sub(r'[^A-Za-z0-9._-]+', '_', stem)}.png"


def render_error_views(
    ann: Path,
    dets: Sequence[Path],
    images_dir: Path,
    out_dir: Path,
    *,
    options: ErrorViewOptions | None = None,
    labels: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> ErrorViewResult:
    """Write the error views of one or two detection files (outputs in :class:`ErrorViewResult`).

    Args:
        ann: COCO ground truth (windows from ``build-dotamini10`` or full scenes from ``coco-gt``).
        dets: One or two COCO results files (the second is the one compared against the first).
        images_dir: Folder the ground truth's ``file_name`` entries are relative to.
        out_dir: Output folder.
        options: Thresholds and figure settings. Defaults to :class:`ErrorViewOptions`.
        labels: Detector names. Defaults to the file stems.
        progress: Called as ``progress(done, total)`` after each figure.

    Returns:
        The files written and the totals.

    Raises:
        VisualizeError: Bad options, a missing file, not one or two detection files.
        hsfpn.aitod_eval.AITODInputError: Malformed ground truth or detections (names the entry).
    """
    options = options or ErrorViewOptions()
    if len(dets) not in (1, 2):
        raise VisualizeError(f"--dets: give one or two detection files, got {len(dets)}")
    labels = tuple(labels) if labels else default_labels(dets)
    if len(labels) != len(dets) or len(set(labels)) != len(labels):
        raise VisualizeError(f"--labels: need {len(dets)} distinct names, got {', '.join(labels)}")
    scenes = load_scenes(ann)
    detectors = [match_detections(scenes, Detections.from_file(Path(p), scenes.gt), label, Path(p), options)
                 for p, label in zip(dets, labels, strict=True)]  # fmt: skip
    ranking = rank_images(detectors, options.area, scenes.gt.img_ids)
    figures, problems = _draw_figures(scenes, detectors, ranking, Path(images_dir), Path(out_dir), options, progress)
    header, rows = count_rows(scenes, detectors, ranking, options.area, {i: p.name for i, p in figures.items()})
    out_dir = Path(out_dir)
    counts_csv = write_csv(out_dir / "counts.csv", header, rows)
    totals_png = save_png(render_totals(detectors, options, len(scenes.gt.img_ids)), out_dir / "totals.png")
    summary = _summary(scenes, detectors, options, [figures[i].name for i in ranking if i in figures], problems)
    write_json(out_dir / "summary.json", summary, indent=2)
    return ErrorViewResult(
        counts_csv=counts_csv, summary_json=out_dir / "summary.json", totals_png=totals_png,
        figures=tuple(figures[i] for i in ranking.tolist() if i in figures),
        totals={d.label: d.totals(options.area) for d in detectors}, images=len(scenes.gt.img_ids),
        problems=tuple(problems),
    )  # fmt: skip


def _draw_figures(scenes: Scenes, detectors: Sequence[DetectorErrors], ranking: np.ndarray, images_dir: Path,
                  out_dir: Path, options: ErrorViewOptions, progress: ProgressFn | None,
                  ) -> tuple[dict[int, Path], list[str]]:  # fmt: skip
    """Figures of the first ``max_images`` ranked images that have something to show; problems of the others."""
    figures: dict[int, Path] = {}
    problems: list[str] = []
    n_images = len(scenes.gt.img_ids)
    boxes = np.bincount(scenes.gt.image, minlength=n_images)
    for d in detectors:
        boxes = boxes + np.bincount(d.detections.image, minlength=n_images)
    shown = [i for i in ranking.tolist() if boxes[i]][: options.max_images]
    for done, i in enumerate(shown, start=1):
        name = scenes.file_names[i]
        image_id = int(scenes.gt.img_ids[i])
        if name is None:
            problems.append(f"image {image_id}: no file_name in {scenes.source}")
        else:
            try:
                rgb = read_rgb(images_dir / name)
            except VisualizeError as exc:
                problems.append(str(exc))
            else:
                rank = int(np.flatnonzero(ranking == i)[0]) + 1
                figures[i] = _draw_one(scenes, detectors, i, rgb, rank, out_dir, options)
        if progress is not None:
            progress(done, len(shown))
    return figures, problems


def _draw_one(scenes: Scenes, detectors: Sequence[DetectorErrors], i: int, rgb: np.ndarray, rank: int,
              out_dir: Path, options: ErrorViewOptions) -> Path:  # fmt: skip
    height, width = rgb.shape[:2]
    panels = [image_panel(scenes, d, i, options.area) for d in detectors]
    candidates = crop_candidates(scenes, detectors, i, options.area)
    crops = choose_crops(candidates, width, height, options.max_crops, options.crop_side)
    name = scenes.file_names[i] or f"image {int(scenes.gt.img_ids[i])}"
    title = f"#{rank}  {name}  ({width} x {height} px)"
    figure = render_image_errors(rgb, title, panels, crops, options)
    return save_png(figure, out_dir / "images" / _figure_name(rank, scenes.file_names[i], int(scenes.gt.img_ids[i])))


def _summary(scenes: Scenes, detectors: Sequence[DetectorErrors], options: ErrorViewOptions, figures: list[str],
             problems: list[str]) -> dict[str, Any]:  # fmt: skip
    per_detector = []
    for d in detectors:
        areas = {}
        for area in dict.fromkeys((options.area, *AREA_BUCKETS)):
            t = d.totals(area)
            found = t["tp"] + t["fn"]
            areas[area] = {**t, "recall": t["tp"] / found if found else None,
                           "precision": t["tp"] / (t["tp"] + t["fp"]) if t["tp"] + t["fp"] else None}  # fmt: skip
        per_detector.append({"label": d.label, "file": str(d.source), "detections": d.n_input,
                             "kept_at_score": len(d.detections.scores), "totals": areas})  # fmt: skip
    return {
        "ground_truth": str(scenes.source),
        "images": len(scenes.gt.img_ids),
        "objects": len(scenes.gt.ann_ids),
        "options": asdict(options),
        "detectors": per_detector,
        "figures": figures,
        "problems": problems,
    }
