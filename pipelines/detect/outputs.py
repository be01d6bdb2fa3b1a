"""``detect``'s output folder: the one owner of its file names and of what each file holds.

* ``images/{name}.json`` per image (written atomically when the image is finished; ``--resume`` skips images
  whose file was written with the same model and options), with what its preview drew (``preview``: the score
  and, against ``--gt``, the TP / FP / FN counts);
* ``previews/{name}.png``, the scene downscaled with the detections above ``--preview-score`` drawn with their
  class and score, as TP / FP / FN against ``--gt`` (:mod:`.preview`);
* ``results.bbox.json`` (COCO results; image ids from a ground-truth JSON when given, matched by file name,
  else the ids of ``images.json``) and ``Task2_{class}.txt`` (DOTA's server format, written by
  :func:`dotamini10.merge.write_task2`), rebuilt from the per-image files at the end of every run;
* ``detect.json``: the options, the model, and every image's outcome.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import read_json, read_json_if_valid, write_json
from dotamini10.merge import Merged, write_task2

from .options import DetectError, DetectOptions, DetectSummary, Status

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


def write_outputs(out: Path, summary: DetectSummary, gt: Path | None) -> list[Path]:
    """Rebuild ``results.bbox.json``, ``images.json`` and ``Task2_{class}.txt`` from the per-image files."""
    records = []
    for outcome in summary.outcomes:
        if outcome.status is not Status.FAILED and (record := read_image_record(out, outcome.name)) is not None:
            records.append((outcome.name, record))
    records.sort(key=lambda r: r[0])
    classes = list(summary.classes)
    image_ids, category_ids = _ids(records, classes, gt)
    coco = []
    for _, record in records:
        if record["image"] not in image_ids:
            continue
        det = record["detections"]
        for box, s, label in zip(det["bbox"], det["score"], det["label"], strict=True):
            if classes[label] in category_ids:
                coco.append(dict(image_id=image_ids[record["image"]], category_id=category_ids[classes[label]],
                                 bbox=[round(box[0], 3), round(box[1], 3), round(box[2] - box[0], 3),
                                       round(box[3] - box[1], 3)], score=s))
    files = [out / COCO_RESULTS, out / IMAGE_LIST]
    write_json(files[0], coco)
    write_json(files[1], [dict(id=image_ids.get(r["image"]), file_name=r["image"], width=r["width"],
                               height=r["height"]) for _, r in records])
    files += write_task2(out, classes, [name for name, _ in records], _all_detections(records))
    return files


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


def _ids(records, classes: list[str], gt: Path | None) -> tuple[dict[str, int], dict[str, int]]:
    if gt is None:
        return ({r["image"]: k + 1 for k, (_, r) in enumerate(records)},
                {c: k + 1 for k, c in enumerate(classes)})
    coco = read_json(gt, what="ground truth", error=DetectError)
    try:
        images = {Path(i["file_name"]).name: int(i["id"]) for i in coco["images"]}
        categories = {c["name"]: int(c["id"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError):
        raise DetectError(f"--gt {gt}: expected COCO 'images' (id, file_name) and 'categories' (id, name)") from None
    return images, categories


def write_summary(out: Path, summary: DetectSummary, config: str, checkpoint: Path, options: DetectOptions,
                  fingerprint: str) -> None:
    """``detect.json``: the options, the model and every image's outcome."""
    record = dict(
        config=str(config), checkpoint=str(checkpoint), classes=list(summary.classes), fingerprint=fingerprint,
        options=options.to_json(), batch=options.batch, device=options.device, workers=options.model_workers,
        images=[dict(path=str(o.path), name=o.name, status=o.status.value, windows=o.windows,
                     detections=o.detections, error=o.error) for o in summary.outcomes],
        windows=summary.windows, seconds=round(summary.seconds, 3),
        windows_per_s=round(summary.windows_per_s, 3),
    )
    write_json(out / SUMMARY, record, indent=2)
