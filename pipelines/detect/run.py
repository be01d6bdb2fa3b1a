"""``hsfpn-repro detect``: full scenes cut into the builder's windows, batched through a model, merged back.

The run: the model is loaded once (:mod:`pipelines.models`), every image is planned (header only), a background
thread decodes, scales and prepares batches (:mod:`.windows`) while the model runs earlier ones in ``workers``
processes of one torch thread each on a CPU, in this process on a GPU (:mod:`.model_pool`; results come back in
window order and do not depend on the worker count); each image's detections are merged and drawn at its end
(:mod:`.scenes`) and the collection files are rebuilt from the per-image records (:mod:`.outputs`).

Bad input (a missing, unreadable or truncated image, or one over ``max_side`` pixels a side at a scale) is
one line in the outcome and the other images go on; nothing of that image is written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dotamini10.io import ProgressFn, folder_lock
from dotamini10.read import IMAGE_SUFFIXES

from .model_pool import ModelRunner, WindowDetections
from .options import DetectError, DetectOptions, DetectSummary, ImageError, ImageOutcome, Status
from .outputs import read_image_record, result_ids, write_outputs, write_summary
from .preview import SceneTruth
from .scenes import SceneDetections, add_batch, finish_image
from .windows import Batch, ImageEnd, ImageFailed, ImagePlan, in_background, plan_image, produce, window_pipeline


def expand_images(paths: Sequence[Path]) -> list[Path]:
    """Image files of the arguments: files as given, folders as their image files in name order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            found.append(path)
    return found


def detect_images(
    images: Sequence[Path],
    out: Path,
    *,
    config: str,
    checkpoint: Path,
    neck: str | None = None,
    options: DetectOptions = DetectOptions(),
    gt: Path | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
    log: Callable[[str], None] | None = None,
) -> DetectSummary:
    """``hsfpn-repro detect``: run a detector over full scenes and write the merged results (module notes).

    Args:
        images: Image files or folders of images.
        out: Output folder.
        config: A row id (``cascade_rcnn``) or an MMDetection config file.
        checkpoint: The weights.
        neck: ``fpn`` or ``hsfpn`` to swap the config's neck; None keeps it.
        options: Cutting, batching and merging.
        gt: A COCO ground truth JSON whose image and category ids the COCO results take (matched by file and class
            name; read before any image runs), and against which the previews show the evaluator's matching.
            Without it the category ids are the training json's (recorded in the checkpoint's meta by the
            toolkit's jobs), else 1.. in class order.
        resume: Skip images finished by an earlier run with the same model and options.
        progress: Called with (windows done, windows in all) after every batch.
        log: Receives one line per failed image.

    Returns:
        The summary.

    Raises:
        DetectError: The model cannot be loaded or the options are invalid.
    """
    from ..models import load_model, resolve_config

    out = Path(out)
    truth = None if gt is None else SceneTruth.load(gt)  # a broken --gt stops the run before any image
    resolved = resolve_config(config, neck, row_neck=None, error=DetectError)
    detector = load_model(resolved, checkpoint, device=options.device, error=DetectError)
    ids = result_ids(truth, detector.classes, detector.category_ids)
    pipeline = window_pipeline(detector.cfg)
    fingerprint = hashlib.sha256(json.dumps([detector.identity, options.to_json()]).encode()).hexdigest()[:16]
    log = log or (lambda _: None)
    with folder_lock(out, what="detect output", error=DetectError):  # one run at a time writes a folder
        summary = DetectSummary(out, detector.classes)
        plans = _plan_all(expand_images(images), options, out, fingerprint, resume, summary, log)
        collector = _Collector(detector.classes, options, out, fingerprint, summary, sum(p.windows for p in plans),
                               progress, log, truth)
        start = time.perf_counter()
        # The runner forks its model processes before the producer thread starts (module notes of model_pool).
        with ModelRunner(detector.model, options.device, options.model_workers) as runner:
            items = in_background(produce(plans, pipeline, options))
            for item, found in runner.ordered(items, lambda item: item.data if isinstance(item, Batch) else None):
                collector.take(item, found)
        summary.seconds = time.perf_counter() - start
        summary.windows = sum(o.windows for o in summary.outcomes if o.status is Status.DONE)
        summary.notes += [ids.note] if ids.note else []
        summary.files = write_outputs(out, summary, ids)
        write_summary(out, summary, config, checkpoint, options, fingerprint, ids)
    return summary


@dataclass
class _Collector:
    """The consumer side of a run: takes the ordered stream, gathers the image being run, merges and writes it
    at its end, and fills the summary."""

    classes: tuple[str, ...]
    options: DetectOptions
    out: Path
    fingerprint: str
    summary: DetectSummary
    total: int
    progress: ProgressFn | None
    log: Callable[[str], None]
    truth: SceneTruth | None = None
    pending: SceneDetections = field(default_factory=SceneDetections)
    done: int = 0

    def take(self, item: Batch | ImageEnd | ImageFailed, found: list[WindowDetections] | None) -> None:
        if isinstance(item, Batch):
            add_batch(item, found, self.options.score, self.pending)
            self._advance(len(item.origins))
        elif isinstance(item, ImageEnd):
            self.summary.outcomes.append(finish_image(item, self.pending, self.classes, self.options, self.out,
                                                      self.fingerprint, self.truth))
            self.pending = SceneDetections()
        else:
            self.summary.outcomes.append(ImageOutcome(item.plan.path, item.plan.name, Status.FAILED,
                                                      error=item.error))
            self.log(item.error)
            self._advance(item.plan.windows)

    def _advance(self, windows: int) -> None:
        self.done += windows
        if self.progress is not None:
            self.progress(self.done, self.total)


def _plan_all(paths, options, out, fingerprint, resume, summary, log) -> list[ImagePlan]:
    plans, names = [], set()
    for path in paths:
        name = Path(path).stem
        try:
            if name in names:
                raise ImageError(f"{path}: another image of this run is named {name!r}")
            names.add(name)
            if resume:
                record = read_image_record(out, name)
                if record is not None and record.get("fingerprint") == fingerprint:
                    summary.outcomes.append(ImageOutcome(path, name, Status.RESUMED, record.get("windows", 0),
                                                         len(record["detections"]["score"])))
                    continue
            plans.append(plan_image(Path(path), options))
        except ImageError as exc:
            summary.outcomes.append(ImageOutcome(Path(path), name, Status.FAILED, error=str(exc)))
            log(str(exc))
    return plans
