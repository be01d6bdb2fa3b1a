"""DOTA's own Task2 (horizontal boxes) evaluation, as DOTA_devkit's ``dota_evaluation_task2.py`` computes it.

Numpy only. ``hsfpn-repro eval --protocol dota`` calls :func:`evaluate_task2_files`.

Notes:
    The protocol (VOC 2007 style), per class:

    * Ground truth comes from DOTA label files: the horizontal box of an object is the enclosing axis-aligned box
      of its polygon, each coordinate truncated by ``int(float(v))`` first, as ``[xmin, ymin, xmax, ymax]``.
      The devkit takes points 1 and 3 instead, because its ground truth is DOTA's HBB label files, whose
      polygons are axis-aligned and start at the top-left corner: there the two rules give the same box. On
      oriented labels (``labelTxt/``) points 1 and 3 are two corners of a rotated box; the enclosing box is how
      DOTA's HBB labels are made from them, and the report counts the polygons that were not axis-aligned.
      Header lines (``imagesource:``, ``gsd:``) and blank lines are skipped here (the devkit cannot read them).
      The difficult flag is the tenth token (0 when missing).
    * Detections are the ``Task2_{class}.txt`` lines ``image score xmin ymin xmax ymax``, visited by descending
      score; ties keep the file order (a stable sort: the devkit's quicksort leaves their order unspecified).
    * A detection matches the ground truth of its image and class with the largest pixel-inclusive IoU
      (``+ 1`` on widths and heights); it is a true positive when that IoU is strictly above 0.5 and the box
      is not difficult and not matched before, a false positive when the IoU is at most 0.5 or the box was
      already matched; a detection whose best box is difficult counts as neither. Difficult boxes are not in
      the recall's denominator.
    * AP is the VOC07 11-point average: the mean over recall levels ``numpy.arange(0.0, 1.1, 0.1)`` (the
      devkit's exact floating-point levels) of the highest precision at a recall at least that level, 0 when
      none. A class without (non-difficult) ground truth gets AP 0, as in the devkit.

    Where the devkit crashes, this evaluator decides: a class without a detection file has no detections, and
    detections of images outside the image set are ignored (and counted in the report).

    The image set (:func:`resolve_imageset`) is ``--imageset`` when given; else the images a ``detect`` run
    processed; else the label files that have an image in the ``images/`` folder beside the label folder (DOTA's
    layout); else every label file. A label file left out is counted, never scored as missed objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dotamini10.read import IMAGE_SUFFIXES, label_lines

from .errors import HSFPNError

IOU_THRESHOLD = 0.5
# The devkit's recall levels, floating-point quirks included (the fourth is 0.30000000000000004).
RECALL_LEVELS = np.arange(0.0, 1.1, 0.1)


class DotaEvalError(HSFPNError):
    """Bad input to the DOTA evaluation (missing folders, malformed label lines, unknown image names)."""


@dataclass
class ImageTruth:
    """Ground truth of one image.

    Attributes:
        classes: Class name per object.
        boxes: ``[xmin, ymin, xmax, ymax]`` per object (integers as floats), shape (K, 4).
        difficult: Shape (K,), bool.
        rotated: Shape (K,), bool: the polygon is not axis-aligned (its box is its enclosing box).
    """

    classes: list[str]
    boxes: np.ndarray
    difficult: np.ndarray
    rotated: np.ndarray


@dataclass(frozen=True)
class ClassResult:
    """One class's evaluation.

    Attributes:
        ap: VOC07 11-point AP, a fraction.
        ground_truth: Non-difficult ground-truth objects (the recall's denominator).
        detections: Detections evaluated (of images in the image set).
        true_positives: Detections that matched.
        ignored: Detections of images outside the image set.
    """

    ap: float
    ground_truth: int
    detections: int
    true_positives: int
    ignored: int = 0


def truth_from_label_text(text: str, *, file: str) -> ImageTruth:
    """Ground truth of one DOTA label file, by the protocol's rule (module notes); its lines are read by
    :func:`dotamini10.read.label_lines`, the toolkit's one reader of the format.

    Raises:
        DotaEvalError: An object line has fewer than 9 tokens or a coordinate that is not a number; the message
            names the file and line.
    """
    classes, boxes, difficult, rotated = [], [], [], []
    for number, tokens in label_lines(text):
        if len(tokens) < 9:
            raise DotaEvalError(f"{file}:{number}: expected 'x1 y1 ... x4 y4 class [difficult]', "
                                f"got {len(tokens)} tokens")
        try:
            corners = [int(float(v)) for v in tokens[:8]]
            flag = int(tokens[9]) if len(tokens) >= 10 else 0
        except ValueError:
            raise DotaEvalError(f"{file}:{number}: coordinates and difficult flag must be numbers") from None
        box, aligned = enclosing_box(corners)
        classes.append(tokens[8])
        boxes.append(box)
        difficult.append(bool(flag))
        rotated.append(not aligned)
    return ImageTruth(classes, np.array(boxes, dtype=np.float64).reshape(-1, 4), np.array(difficult, dtype=bool),
                      np.array(rotated, dtype=bool))


def enclosing_box(corners: Sequence[int]) -> tuple[list[int], bool]:
    """The enclosing axis-aligned box of a polygon's truncated corners, and whether the polygon is that box.

    Args:
        corners: ``x1 y1 x2 y2 x3 y3 x4 y4`` (already truncated as the devkit truncates).

    Returns:
        ``([xmin, ymin, xmax, ymax], axis_aligned)``; on an axis-aligned polygon that starts at its top-left
        corner the box is the devkit's points 1 and 3.
    """
    xs, ys = corners[0::2], corners[1::2]
    box = [min(xs), min(ys), max(xs), max(ys)]
    box_corners = {(box[0], box[1]), (box[2], box[1]), (box[2], box[3]), (box[0], box[3])}
    return box, set(zip(xs, ys, strict=True)) == box_corners


def read_ground_truth(label_dir: Path, imageset: Sequence[str] | None = None) -> dict[str, ImageTruth]:
    """Ground truth of every image of the image set.

    Args:
        label_dir: Folder of ``{image}.txt`` DOTA label files.
        imageset: Image names; None: every label file of the folder.

    Returns:
        Image name to its ground truth, in image-set (or sorted file) order.

    Raises:
        DotaEvalError: The folder is missing or empty, or an image of the set has no label file.
    """
    label_dir = Path(label_dir)
    if imageset is None:
        imageset = _label_names(label_dir)
    truth = {}
    for name in imageset:
        path = label_dir / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise DotaEvalError(f"{path}: label file of image-set entry {name!r} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise DotaEvalError(f"{path}: cannot read the label file ({type(exc).__name__})") from None
        truth[name] = truth_from_label_text(text, file=str(path))
    return truth


@dataclass(frozen=True)
class ImageSet:
    """The images an evaluation scores and what chose them.

    Attributes:
        names: Image names (label file stems), in order.
        source: What chose them, for the report's line.
        left_out: Label files of the folder not in the set (not scored).
    """

    names: list[str]
    source: str
    left_out: list[str] = field(default_factory=list)


def _label_names(label_dir: Path) -> list[str]:
    if not label_dir.is_dir():
        raise DotaEvalError(f"--ann {label_dir}: label folder not found")
    names = [p.stem for p in sorted(label_dir.glob("*.txt")) if p.is_file()]
    if not names:
        raise DotaEvalError(f"--ann {label_dir}: no .txt label files")
    return names


def resolve_imageset(
    label_dir: Path, *, imageset_file: Path | None = None, run_images: Sequence[str] | None = None,
    run_source: str = "the detect run",
) -> ImageSet:
    """The image set of an evaluation, by the rule of the module notes.

    Args:
        label_dir: Folder of DOTA label files.
        imageset_file: ``--imageset``: image names, one per line.
        run_images: The images a detect run processed (its ``detect.json``), when the results come from one.
        run_source: How to name that run in the report.

    Raises:
        DotaEvalError: No label folder or label file, an unreadable image-set file, an empty set.
    """
    label_dir = Path(label_dir)
    labels = _label_names(label_dir)
    images = label_dir.parent / "images"
    if imageset_file is not None:
        names, source = read_imageset(imageset_file), f"--imageset {imageset_file}"
    elif run_images is not None:
        names, source = list(run_images), run_source
    elif images.is_dir():
        have = {p.stem for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES}
        names, source = [n for n in labels if n in have], f"the label files with an image in {images}"
    else:
        names, source = labels, f"every label file of {label_dir}"
    if not names:
        raise DotaEvalError(f"--ann {label_dir}: no image to evaluate ({source} is empty)")
    chosen = set(names)
    return ImageSet(names, source, [n for n in labels if n not in chosen])


def read_imageset(path: Path) -> list[str]:
    """Image names, one per line (blank lines skipped)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DotaEvalError(f"--imageset {path}: cannot read the image-set file ({type(exc).__name__})") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise DotaEvalError(f"--imageset {path}: no image names")
    return names


def voc07_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2007 11-point AP of a precision/recall curve (module notes).

    Args:
        recall: Cumulative recall after each detection, shape (D,).
        precision: Cumulative precision, shape (D,).

    Returns:
        The AP, a fraction.
    """
    total = 0.0
    for level in RECALL_LEVELS:
        reached = recall >= level
        total += float(precision[reached].max()) if reached.any() else 0.0
    return total / 11.0


def evaluate_class(
    truth: dict[str, ImageTruth], classname: str, names: Sequence[str], scores: np.ndarray, boxes: np.ndarray
) -> ClassResult:
    """Evaluate one class's detections.

    Args:
        truth: Ground truth of the image set.
        classname: The class.
        names: Image name of each detection, length D.
        scores: Shape (D,).
        boxes: ``[xmin, ymin, xmax, ymax]``, shape (D, 4).

    Returns:
        The class's AP and counts.
    """
    in_set = np.array([n in truth for n in names], dtype=bool)
    ignored = int((~in_set).sum())
    order = np.flatnonzero(in_set)[np.argsort(-scores[in_set], kind="stable")]
    outcome = np.zeros(len(order), dtype=np.int8)  # 1 true positive, -1 false positive, 0 neither
    positives = 0
    by_image: dict[str, list[int]] = {}
    for rank, d in enumerate(order.tolist()):
        by_image.setdefault(names[d], []).append(rank)
    for name, image in truth.items():
        mine = np.array([c == classname for c in image.classes], dtype=bool)
        positives += int((~image.difficult[mine]).sum())
        if name in by_image:
            ranks = np.array(by_image[name])
            outcome[ranks] = _match_image(boxes[order[ranks]], image.boxes[mine], image.difficult[mine])
    tp = np.cumsum(outcome == 1)
    fp = np.cumsum(outcome == -1)
    if positives == 0:
        return ClassResult(0.0, 0, len(order), int(tp[-1]) if len(tp) else 0, ignored)
    recall = tp / float(positives)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    return ClassResult(voc07_ap(recall, precision), positives, len(order), int(tp[-1]) if len(tp) else 0, ignored)


def _match_image(dets: np.ndarray, gt: np.ndarray, difficult: np.ndarray) -> np.ndarray:
    # Detections of one image, in score order, against its ground truth of the class.
    outcome = np.full(len(dets), -1, dtype=np.int8)
    if len(gt) == 0:
        return outcome
    iw = np.minimum(dets[:, None, 2], gt[None, :, 2]) - np.maximum(dets[:, None, 0], gt[None, :, 0]) + 1.0
    ih = np.minimum(dets[:, None, 3], gt[None, :, 3]) - np.maximum(dets[:, None, 1], gt[None, :, 1]) + 1.0
    inter = np.maximum(iw, 0.0) * np.maximum(ih, 0.0)
    det_area = (dets[:, 2] - dets[:, 0] + 1.0) * (dets[:, 3] - dets[:, 1] + 1.0)
    gt_area = (gt[:, 2] - gt[:, 0] + 1.0) * (gt[:, 3] - gt[:, 1] + 1.0)
    iou = inter / (det_area[:, None] + gt_area[None, :] - inter)
    best = np.argmax(iou, axis=1)  # the first of equal maxima, as numpy's argmax in the devkit
    best_iou = iou[np.arange(len(dets)), best]
    taken = np.zeros(len(gt), dtype=bool)
    for k in range(len(dets)):  # sequential: a box is matched at most once, by the highest-scored detection
        if not best_iou[k] > IOU_THRESHOLD:
            continue
        j = best[k]
        if difficult[j]:
            outcome[k] = 0
        elif not taken[j]:
            outcome[k] = 1
            taken[j] = True
    return outcome


def evaluate_task2(
    dets_dir: Path, label_dir: Path, classes: Sequence[str], *, imageset: Sequence[str] | None = None
) -> dict[str, object]:
    """DOTA Task2 evaluation of a folder of ``Task2_{class}.txt`` files.

    Args:
        dets_dir: Folder of the result files (lines ``image score xmin ymin xmax ymax``).
        label_dir: Folder of DOTA label files.
        classes: Classes to evaluate; ``mAP`` is their mean.
        imageset: Image names; None: every label file.

    Returns:
        The report: ``protocol``, ``mAP`` and ``per_class`` (fractions), ``counts`` per class, ``images``,
        ``objects`` and ``rotated_polygons`` (ground-truth objects of the image set, and those whose polygon was
        not axis-aligned), and ``missing_files`` (classes without a result file).

    Raises:
        DotaEvalError: Bad folders or label files.
        dotamini10.merge.MergeError: A malformed result line (named by file and line).
    """
    from dotamini10.merge import TASK2_PREFIX, read_task2

    if not classes:
        raise DotaEvalError("--classes: no class to evaluate")
    dets_dir = Path(dets_dir)
    if not dets_dir.is_dir():
        raise DotaEvalError(f"--dets {dets_dir}: results folder not found")
    truth = read_ground_truth(label_dir, imageset)
    files = {c: dets_dir / f"{TASK2_PREFIX}{c}.txt" for c in classes}
    missing = [c for c, p in files.items() if not p.is_file()]
    table = read_task2({c: p for c, p in files.items() if c not in missing}, ordered_boxes=False)
    results = {}
    for classname in classes:
        mine = np.flatnonzero(table.labels == (table.classes.index(classname) if classname in table.classes else -1))
        names = [table.names[i] for i in table.images[mine].tolist()]
        results[classname] = evaluate_class(truth, classname, names, table.scores[mine], table.boxes[mine])
    return dict(
        protocol="dota-task2",
        metric="VOC07 11-point AP, IoU > 0.5 (pixel-inclusive), difficult objects ignored",
        mAP=float(np.mean([r.ap for r in results.values()])),
        per_class={c: r.ap for c, r in results.items()},
        counts={c: dict(ground_truth=r.ground_truth, detections=r.detections, true_positives=r.true_positives,
                        ignored_outside_imageset=r.ignored) for c, r in results.items()},
        images=len(truth),
        objects=sum(len(t.classes) for t in truth.values()),
        rotated_polygons=int(sum(t.rotated.sum() for t in truth.values())),
        missing_files=missing,
    )


def evaluate_task2_files(
    dets_dir: Path,
    label_dir: Path,
    classes: Sequence[str],
    *,
    imageset_file: Path | None = None,
    run_images: Sequence[str] | None = None,
    out: Path | None = None,
) -> dict[str, object]:
    """:func:`evaluate_task2` on the image set of :func:`resolve_imageset`, writing the report atomically to
    ``out`` when given; the report's ``imageset`` says what chose the set and which label files it left out."""
    from dotamini10.io import write_json

    chosen = resolve_imageset(label_dir, imageset_file=imageset_file, run_images=run_images)
    report = evaluate_task2(dets_dir, label_dir, classes, imageset=chosen.names)
    report["imageset"] = dict(source=chosen.source, left_out_label_files=chosen.left_out)
    if out is not None:
        write_json(Path(out), report, indent=2)
    return report
