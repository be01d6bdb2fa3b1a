"""Slicing a COCO set: read -> plan -> slice every image (parallel, resumable) -> COCO json, manifest, record.

Output layout under ``out_dir`` for split ``S`` (the json's stem unless given), so that several splits sliced
into one folder form the layout ``hsfpn-repro train`` reads (``annotations/{split}.json``, ``images/{split}/``):

* ``images/S/{stem}__{factor}__{x0}___{y0}.png``: the windows (``stem`` is the source ``file_name`` without
  suffix, its folders kept), padded bottom/right where the image is smaller than a window;
* ``annotations/S.json``: COCO; the input's categories unchanged; each image entry adds ``source_image``,
  ``source_id``, ``scale`` and ``window`` ([x0, y0]); each annotation has the clipped ``bbox``, ``area`` = w * h,
  the clipped box as ``segmentation``, ``iscrowd`` (and ``ignore`` when the input has it) carried from its
  source annotation, ``truncated`` and ``source_annotation`` (the input id);
* ``slicing/S/manifest.jsonl``: one line per input annotation with its fate: ``kept`` (``windows`` lists them),
  ``dropped`` (below the iof in every window; ``best_iof``) or ``invalid`` (``reason``);
* ``slicing/S/problems.jsonl`` and ``slicing/S/slice.json`` (:class:`~dotamini10.slicing.record.SliceRecord`).
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..build import _toolkit_version  # the version every build record states, looked up in one place
from ..errors import DatasetError
from ..io import ProgressFn, atomic_write_text, folder_lock, json_text, jsonl_text, remove_temporaries
from ..png import PNG_LEVELS
from ..pool import start_pool
from ..problems import Problem, count_reasons
from ..resume import prepare_fresh
from ..scale import INTERPOLATIONS, factor_tag, scaled_size
from ..split import get_windows
from ..task_run import TaskRun, WorkFolder
from ..write import sha256_bytes, sha256_file
from .record import SliceRecord
from .source import SliceSource, SourceImage, read_coco_source
from .task import TIMING_KEYS, SliceResult, SliceSettings, SliceTask, run_slice

WORK_DIR = ".work"


@dataclass(frozen=True)
class SliceOptions:
    """Every option that affects the outputs (recorded in ``slice.json``).

    Attributes:
        window: Window size, px. Defaults to 1024.
        stride: Step between windows, px. Defaults to 768.
        scales: Factors each image is sliced at. Defaults to (1.0,).
        iof: Minimum share of a box's area inside a window to keep it there. Defaults to 0.7.
        pad_value: Gray value of the padding of images smaller than a window. Defaults to 0.
        interpolation: Resizing filter (``area``, ``cubic``, ``linear``, ``nearest``). Defaults to ``area``.
        png_compression: ISA-L deflate level (0-3). Defaults to 1.
        decimals: Decimals of output coordinates. Defaults to 2.
        drop_empty: Write no window without a kept object. Defaults to False (every window, as SAHI does).
    """

    window: int = 1024
    stride: int = 768
    scales: tuple[float, ...] = (1.0,)
    iof: float = 0.7
    pad_value: int = 0
    interpolation: str = "area"
    png_compression: int = 1
    decimals: int = 2
    drop_empty: bool = False

    def check(self) -> SliceOptions:
        """Validate every option; returns ``self``.

        Raises:
            DatasetError: Naming the first invalid option and its value.
        """
        if self.window <= 0 or not 0 < self.stride <= self.window:
            raise DatasetError(f"--window/--stride: expected 0 < stride <= window, got {self.window}, {self.stride}")
        if not self.scales or any(not s > 0 for s in self.scales):
            raise DatasetError(f"--scales: expected positive factors, got {list(self.scales)}")
        tags: dict[str, float] = {}
        for factor in sorted(set(self.scales)):  # window names hold the factor to 6 decimals
            other = tags.setdefault(factor_tag(factor), factor)
            if other != factor:
                raise DatasetError(f"--scales: {other} and {factor} would give the same window names "
                                   f"(__{factor_tag(factor)}__); give factors that differ within 6 decimals")
        if not 0.0 < self.iof <= 1.0:
            raise DatasetError(f"--iof: expected a value in (0, 1], got {self.iof}")
        if not 0 <= self.pad_value <= 255:
            raise DatasetError(f"pad_value: expected 0..255, got {self.pad_value}")
        if self.interpolation not in INTERPOLATIONS:
            raise DatasetError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.png_compression not in PNG_LEVELS:
            raise DatasetError(f"png_compression: expected 0..3, got {self.png_compression}")
        if not 0 <= self.decimals <= 6:
            raise DatasetError(f"decimals: expected 0..6, got {self.decimals}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready options (scales sorted, without repeats: the order they run in)."""
        return {"window": self.window, "stride": self.stride, "scales": sorted(set(self.scales)), "iof": self.iof,
                "pad_value": self.pad_value, "interpolation": self.interpolation,
                "png_compression": self.png_compression, "decimals": self.decimals, "drop_empty": self.drop_empty}


@dataclass
class SliceSummary:
    """What a slice did.

    Attributes:
        out_dir: The output root.
        split: The output split.
        counts: ``slice.json``'s counts.
        problems: Problems per reason.
        resumed_images: Images a previous run had finished.
        timings: Seconds per stage, summed over workers.
        elapsed: Wall-clock seconds.
        worker_peak_rss_mb: Largest peak resident memory of a process that sliced images, MiB.
        already_complete: ``--resume`` found a finished slice with the same options and input.
    """

    out_dir: Path
    split: str
    counts: dict[str, Any]
    problems: dict[str, int]
    resumed_images: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    worker_peak_rss_mb: float = 0.0
    already_complete: bool = False


def slice_coco(
    ann: Path,
    images: Path,
    out_dir: Path,
    *,
    split: str | None = None,
    options: SliceOptions | None = None,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> SliceSummary:
    """Slice a COCO detection set into windows (rules and layout in the module notes).

    Args:
        ann: The COCO json.
        images: The folder its ``file_name`` entries are relative to.
        out_dir: Output root.
        split: Output split name. Defaults to the json's stem.
        options: Windows, scales, iof and output options. Defaults to ``SliceOptions()``.
        workers: Worker processes; 1 runs in this process. Changes no output. Defaults to 1.
        resume: Continue an interrupted slice of this split in ``out_dir``. Defaults to False.
        overwrite: Replace this split's previous outputs in ``out_dir``. Defaults to False.
        progress: Called as ``progress(done_windows, total_windows)``.

    Returns:
        The summary.

    Raises:
        DatasetError: For bad options, an unreadable or non-COCO json, a missing images folder, an output split
            that already exists, or a worker that died.
    """
    started = time.perf_counter()
    options = (options or SliceOptions()).check()
    if workers < 1:
        raise DatasetError(f"--workers: expected at least 1, got {workers}")
    ann, images, out_dir = Path(ann), Path(images), Path(out_dir)
    if not images.is_dir():
        raise DatasetError(f"--images: {images} is not a folder")
    split = split or ann.stem
    if not split or "/" in split or split.startswith("."):
        raise DatasetError(f"--split: expected a plain name, got {split!r}")
    problems: list[Problem] = []
    source = read_coco_source(ann, images, problems)
    meta = _Meta(split, out_dir / "slicing" / split)
    fingerprint = {"options": options.to_dict(), "ann": str(ann.resolve()), "ann_sha256": sha256_file(ann),
                   "images": str(images.resolve())}
    with folder_lock(out_dir, what="slice output", error=DatasetError):
        if not resume:
            prepare_fresh(out_dir, overwrite=overwrite, entries=meta.entries)
        elif not meta.work.is_dir():
            finished = _finished(out_dir, meta, fingerprint)
            if finished is not None:
                return finished
        pool = start_pool(workers) if workers > 1 else None
        try:
            summary = _slice(source, out_dir, meta, options, fingerprint, workers, resume, progress, problems, pool)
        finally:
            if pool is not None and pool.exception() is None:
                pool.result().shutdown(wait=True, cancel_futures=True)
    summary.elapsed = time.perf_counter() - started
    return summary


@dataclass(frozen=True)
class _Meta:
    """Where one split's bookkeeping goes."""

    split: str
    folder: Path

    @property
    def work(self) -> Path:
        return self.folder / WORK_DIR

    @property
    def entries(self) -> tuple[str, ...]:
        """This split's outputs, relative to the output root."""
        return (f"images/{self.split}", f"annotations/{self.split}.json", f"slicing/{self.split}")


def _slice(source: SliceSource, out_dir: Path, meta: _Meta, options: SliceOptions, fingerprint: dict[str, Any],
           workers: int, resume: bool, progress: ProgressFn | None, problems: list[Problem],
           pool: Future[ProcessPoolExecutor] | None) -> SliceSummary:
    settings = SliceSettings(out_dir.resolve(), meta.split, options.window, options.stride, options.iof,
                             options.pad_value, options.interpolation, options.png_compression, options.decimals,
                             options.drop_empty)
    tasks, missing = _plan(source, options, settings, problems)
    folder = WorkFolder(meta.work, what=f"slice of {meta.split}")
    folder.check_fingerprint(fingerprint, resume=resume)
    remove_temporaries(out_dir / "images" / meta.split)  # what a killed run was writing never got its name
    (out_dir / "images" / meta.split).mkdir(parents=True, exist_ok=True)
    run = TaskRun(folder, resume=resume, progress=progress, total=sum(_windows(t) for t in tasks),
                  timing_keys=TIMING_KEYS)
    run.run(tasks, run_slice, pool.result() if pool is not None else None, load=SliceResult.from_dict,
            amount=_windows_done)
    results = run.results
    for task in tasks:
        for reason, detail in results[task.key].problems:
            problems.append(Problem(str(task.path), 0, reason, detail))
    counts, outputs = _assemble(source, tasks, results, missing, out_dir, meta, problems)
    SliceRecord(
        toolkit_version=_toolkit_version(), options=options.to_dict(),
        source={"ann": fingerprint["ann"], "ann_sha256": fingerprint["ann_sha256"], "images": fingerprint["images"]},
        runtime={"workers": workers}, counts=counts, problems=count_reasons(problems), outputs=outputs,
    ).write(meta.folder)
    folder.clear()
    return SliceSummary(out_dir, meta.split, counts, count_reasons(problems), resumed_images=run.resumed,
                        timings=run.timings, worker_peak_rss_mb=run.peak_rss_mb)


def _plan(source: SliceSource, options: SliceOptions, settings: SliceSettings,
          problems: list[Problem]) -> tuple[list[SliceTask], dict[int, str]]:
    """One task per image whose file exists; ``missing`` maps the others' index to the problem reason."""
    tasks, missing = [], {}
    factors = tuple(sorted(set(options.scales)))
    for image in source.images:
        if not image.path.is_file():
            problems.append(Problem(str(image.path), 0, "missing_image", f"image id {image.image_id}"))
            missing[image.index] = "missing_image"
            continue
        usable = image.usable
        ignore = [image.annotations[i].ignore for i in usable.tolist()]
        tasks.append(SliceTask(image.index, image.file_name, image.path, (image.width, image.height), factors,
                               image.boxes[usable], usable, np.array(ignore, dtype=bool), settings))
    return tasks, missing


def _windows(task: SliceTask) -> int:
    s = task.settings
    return sum(len(get_windows(*scaled_size(*task.size, f), crop_size=s.window, stride=s.stride))
               for f in task.factors)


def _windows_done(task: SliceTask, result: SliceResult) -> int:
    """The windows a finished task accounts for: the planned ones when the image could not be used (it cut none),
    so that the bar reaches the total it was planned with."""
    return _windows(task) if result.problems else result.windows_total


def _assemble(source: SliceSource, tasks: list[SliceTask], results: dict[str, SliceResult], missing: dict[int, str],
              out_dir: Path, meta: _Meta, problems: list[Problem]) -> tuple[dict[str, Any], dict[str, str]]:
    """Write the COCO json, the manifest and the problems file; returns the counts and every output checksum."""
    by_index = {task.index: results[task.key] for task in tasks}
    coco_images: list[dict[str, Any]] = []
    coco_anns: list[dict[str, Any]] = []
    manifest: list[dict[str, Any]] = []
    outputs: dict[str, str] = {}
    for image in source.images:
        result = by_index.get(image.index)
        failure = missing.get(image.index) or (result.problems[0][0] if result and result.problems else None)
        kept_in: dict[int, list[str]] = {}
        for window in result.windows if result is not None and failure is None else []:
            image_id = len(coco_images) + 1
            coco_images.append({"id": image_id, "file_name": window["name"], "width": window["width"],
                                "height": window["height"], "source_image": image.file_name,
                                "source_id": image.image_id, "scale": window["scale"], "window": window["window"]})
            outputs[f"images/{meta.split}/{window['name']}"] = window["png_sha256"]
            for obj in window["objects"]:
                coco_anns.append(_annotation(len(coco_anns) + 1, image_id, image, obj))
                kept_in.setdefault(obj["ann"], []).append(window["name"])
        best = result.best_iof if result is not None else {}
        manifest += [_manifest_row(image, k, a, kept_in, best, failure) for k, a in enumerate(image.annotations)]
    manifest += [_manifest_row(None, 0, a, {}, {}, None) for a in source.orphans]
    document = {"images": coco_images, "annotations": coco_anns, "categories": source.categories}
    for rel, text in ((f"annotations/{meta.split}.json", json_text(document)),
                      (f"slicing/{meta.split}/manifest.jsonl", jsonl_text(manifest)),
                      (f"slicing/{meta.split}/problems.jsonl", jsonl_text(p.to_dict() for p in sorted(problems)))):
        atomic_write_text(out_dir / rel, text, make_parents=True)
        outputs[rel] = sha256_bytes(text.encode("utf-8"))
    fates = Counter(row["status"] for row in manifest)
    counts = {
        "source_images": len(source.images),
        "sliced_images": sum(1 for t in tasks if not results[t.key].problems),
        "windows_considered": sum(r.windows_total for r in results.values()),
        "windows": len(coco_images),
        "instances": sum(1 for a in coco_anns if not _is_ignore(a)),
        "ignore_areas": sum(1 for a in coco_anns if _is_ignore(a)),
        "source_annotations": {"total": len(manifest), **{f: fates[f] for f in ("kept", "dropped", "invalid")}},
    }
    return counts, dict(sorted(outputs.items()))


def _is_ignore(annotation: dict[str, Any]) -> bool:
    return bool(annotation.get("iscrowd")) or bool(annotation.get("ignore"))


def _annotation(ann_id: int, image_id: int, image: SourceImage, obj: dict[str, Any]) -> dict[str, Any]:
    source = image.annotations[obj["ann"]]
    x, y, w, h = obj["bbox"]
    entry = {"id": ann_id, "image_id": image_id, "category_id": source.category_id, "bbox": obj["bbox"],
             "area": obj["area"], "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
             "iscrowd": source.flags.get("iscrowd", 0)}
    if "ignore" in source.flags:
        entry["ignore"] = source.flags["ignore"]
    entry["truncated"] = obj["truncated"]
    entry["source_annotation"] = source.ann_id
    return entry


def _manifest_row(image: SourceImage | None, index: int, ann: Any, kept_in: dict[int, list[str]],
                  best_iof: dict[str, float], failure: str | None) -> dict[str, Any]:
    row = {"image": image.file_name if image is not None else None, "annotation": ann.ann_id,
           "category_id": ann.category_id, "ignore": ann.ignore}
    if ann.reason is not None or failure is not None:
        return {**row, "status": "invalid", "reason": ann.reason or failure, "windows": [], "problems": ann.notes}
    if index in kept_in:
        return {**row, "status": "kept", "reason": None, "windows": kept_in[index], "problems": ann.notes}
    return {**row, "status": "dropped", "reason": "iof_below_threshold", "windows": [], "problems": ann.notes,
            "best_iof": best_iof.get(str(index), 0.0)}


def _finished(out_dir: Path, meta: _Meta, fingerprint: dict[str, Any]) -> SliceSummary | None:
    record = SliceRecord.read(meta.folder)
    if record is None:
        return None
    same = (record.options == fingerprint["options"]
            and record.source == {k: fingerprint[k] for k in ("ann", "ann_sha256", "images")})
    if not same:
        raise DatasetError(f"--resume: {meta.folder} holds a finished slice with other options or another json; "
                           "use --overwrite to replace it")
    return SliceSummary(out_dir, meta.split, dict(record.counts or {}), dict(record.problems or {}),
                        already_complete=True)

