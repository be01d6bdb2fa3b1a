"""``detect``'s output folder: the one owner of its file names and of what each file holds.

* ``images/{name}.json`` per image (written atomically when the image is finished; ``--resume`` skips images
  whose file was written with the same model and options), with what its preview drew (``preview``: the score
  and, against ``--gt``, the TP / FP / FN counts);
* ``previews/{name}.png``, the scene downscaled with the detections above ``--preview-score`` drawn with their
  class and score, as TP / FP / FN against ``--gt`` (:mod:`.preview`);
* ``results.bbox.json`` (COCO results; image and category ids from a ground-truth JSON when given, matched by
  file and class name, else the ids of ``images.json`` and the training json's category ids the checkpoint
  records) and ``Task2_{class}.txt`` (DOTA's server format, written by
  :func:`dotamini10.merge.write_task2`), rebuilt from the per-image files at the end of every run;
* ``detect.json``: the options, the model, and every image's outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from dotamini10.io import read_json_if_valid, write_json
from dotamini10.merge import Merged, write_task2

from .options import DetectOptions, DetectSummary, Status

if TYPE_CHECKING:  # the preview module loads the evaluator; outputs need only its type
    from .preview import SceneTruth

IMAGES_DIR, PREVIEWS_DIR = "images", "previews"
COCO_RESULTS, IMAGE_LIST, SUMMARY = "results.bbox.json", "images.json", "detect.json"


def image_record_path(out: Path, name: str) -> Path:
    """Where one image's merged detections are kept."""
    return Path(out) / IMAGES_DIR / f"{name}.json"


def preview_path(out: Path, name: str) -> Path:
    """Where one image's preview is drawn."""
    return Path(out) / PREVIEWS_DIR / f"{name}.png"


def read_image_record(out: Path, name: str) -> dict[str, Any] | None:
    """An image's record, or None when there is none (or it cannot be read)."""
    record = read_json_if_valid(image_record_path(out, name))
    return record if isinstance(record, dict) else None


def write_image_record(out: Path, name: str, record: dict[str, Any]) -> None:
    write_json(image_record_path(out, name), record)


@dataclass(frozen=True)
class ResultIds:
    """The ids ``results.bbox.json`` takes.

    Attributes:
        images: Image id by file name (``--gt``'s), or None: images are numbered 1.. in name order.
        categories: Category id by class name: ``--gt``'s, else the training json's (the checkpoint's meta),
            else 1.. in class order.
        source: Where the category ids come from, for ``detect.json``.
        note: One line when the ids are numbered rather than read (the checkpoint records none).
    """

    images: dict[str, int] | None
    categories: dict[str, int]
    source: str
    note: str | None = None


def result_ids(truth: SceneTruth | None, classes: Sequence[str], category_ids: Sequence[int] | None) -> ResultIds:
    """The ids of the COCO results: ``--gt``'s (read and checked before any image runs), else the model's."""
    if truth is not None:
        categories = dict(zip(truth.gt.cat_names, truth.gt.cat_ids.tolist(), strict=True))
        return ResultIds(dict(truth.image_ids), categories, f"--gt {truth.source}")
    if category_ids is not None:
        return ResultIds(None, dict(zip(classes, category_ids, strict=True)), "the training json (checkpoint meta)")
    note = (f"the checkpoint records no category ids: {COCO_RESULTS} numbers the classes 1.. in class order; --gt "
            "takes a json's ids")
    return ResultIds(None, {c: k + 1 for k, c in enumerate(classes)}, "1.. in class order", note)


def write_outputs(out: Path, summary: DetectSummary, ids: ResultIds) -> list[Path]:
    """Rebuild ``results.bbox.json``, ``images.json`` and ``Task2_{class}.txt`` from the per-image files; what the
    COCO results leave out (images not in ``--gt``, classes it does not name) goes to ``summary.notes``."""
    records = []
    for outcome in summary.outcomes:
        if outcome.status is not Status.FAILED and (record := read_image_record(out, outcome.name)) is not None:
            records.append((outcome.name, record))
    records.sort(key=lambda r: r[0])
    classes = list(summary.classes)
    image_ids = ids.images if ids.images is not None else {r["image"]: k + 1 for k, (_, r) in enumerate(records)}
    coco = []
    for _, record in records:
        if record["image"] not in image_ids:
            continue
        det = record["detections"]
        for box, s, label in zip(det["bbox"], det["score"], det["label"], strict=True):
            if classes[label] in ids.categories:
                coco.append(dict(image_id=image_ids[record["image"]], category_id=ids.categories[classes[label]],
                                 bbox=[round(box[0], 3), round(box[1], 3), round(box[2] - box[0], 3),
                                       round(box[3] - box[1], 3)], score=s))
    summary.notes += _left_out(records, image_ids, classes, ids)
    files = [out / COCO_RESULTS, out / IMAGE_LIST]
    write_json(files[0], coco)
    write_json(files[1], [dict(id=image_ids.get(r["image"]), file_name=r["image"], width=r["width"],
                               height=r["height"]) for _, r in records])
    files += write_task2(out, classes, [name for name, _ in records], _all_detections(records))
    return files


def _left_out(records, image_ids: dict[str, int], classes: list[str], ids: ResultIds) -> list[str]:
    notes = []
    images = [r["image"] for _, r in records if r["image"] not in image_ids]
    if images:
        shown = ", ".join(images[:5]) + (f", ... ({len(images) - 5} more)" if len(images) > 5 else "")
        notes.append(f"{len(images)} image(s) not in {ids.source} left out of {COCO_RESULTS}: {shown} "
                     "(their detections are in images/ and the Task2 files)")
    unnamed = [c for c in classes if c not in ids.categories]
    if unnamed:
        notes.append(f"{ids.source} names no category {', '.join(unnamed)}: their detections are left out of "
                     f"{COCO_RESULTS}")
    return notes


def _all_detections(records: list[tuple[str, dict[str, Any]]]) -> Merged:
    # Every image's merged detections as one merge result (image k is the k-th record), for the Task2 writer.
    parts = [(np.array(r["detections"]["bbox"], dtype=np.float64).reshape(-1, 4),
              np.array(r["detections"]["score"], dtype=np.float64),
              np.array(r["detections"]["label"], dtype=np.int64)) for _, r in records]  # fmt: skip
    boxes = np.concatenate([b for b, _, _ in parts]) if parts else np.zeros((0, 4))
    scores = np.concatenate([s for _, s, _ in parts]) if parts else np.zeros(0)
    labels = np.concatenate([lab for _, _, lab in parts]) if parts else np.zeros(0, dtype=np.int64)
    images = np.repeat(np.arange(len(parts), dtype=np.int64), [len(s) for _, s, _ in parts])
    return Merged(np.arange(len(scores), dtype=np.int64), boxes, scores, labels, images)


def run_image_names(out: Path) -> list[str] | None:
    """The names of every image a detect run was given (each outcome of its ``detect.json``, failed ones
    included: their objects count as missed), or None when ``out`` holds no readable ``detect.json``."""
    record = read_json_if_valid(Path(out) / SUMMARY)
    if not isinstance(record, dict) or not isinstance(record.get("images"), list):
        return None
    names = [image.get("name") for image in record["images"] if isinstance(image, dict)]
    return [n for n in names if isinstance(n, str)]


def write_summary(out: Path, summary: DetectSummary, config: str, checkpoint: Path, options: DetectOptions,
                  fingerprint: str, ids: ResultIds) -> None:
    """``detect.json``: the options, the model, the category ids of the COCO results and every image's outcome."""
    record = dict(
        config=str(config), checkpoint=str(checkpoint), classes=list(summary.classes), fingerprint=fingerprint,
        category_ids=ids.categories, category_ids_from=ids.source, notes=summary.notes,
        options=options.to_json(), batch=options.batch, device=options.device, workers=options.model_workers,
        images=[dict(path=str(o.path), name=o.name, status=o.status.value, windows=o.windows,
                     detections=o.detections, error=o.error) for o in summary.outcomes],
        windows=summary.windows, seconds=round(summary.seconds, 3),
        windows_per_s=round(summary.windows_per_s, 3),
    )
    write_json(out / SUMMARY, record, indent=2)
