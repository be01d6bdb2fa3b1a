"""The AI-TOD builder: lists -> plan -> cut and copy (in parallel, resumable) -> annotations -> verify -> record.

Output layout under ``out_dir`` (what ``hsfpn-repro table1/2/3 --data-root`` reads as it is):

* ``images/{split}/``: every image of every split, the xView windows (``{id}__{x}_{y}.png``, cut as the official
  generation stores them, see :mod:`dotamini10.aitod.official`) beside the AI-TOD_wo_xview images (byte copies);
* ``annotations/``: AI-TOD_wo_xview's jsons, byte copies (``aitod_trainval_v1.json``, ``aitod_test_v1.json``, ...);
* ``problems.jsonl``: every problem, one per line (file, reason, detail);
* ``build.json``: the :class:`~dotamini10.aitod.record.AitodRecord` (options, inputs, counts beside the published
  figures, the verification, every checksum).

The build is complete when every image every json names is present at the json's size and every annotation names
one of its json's images and lies inside it; ``.work`` (the resume records, :mod:`dotamini10.task_run`) is then
removed, and otherwise kept for ``--resume``, which runs again only the tasks that did not finish or met a problem.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..build import _toolkit_version  # the version every build record states, looked up in one place
from ..errors import DatasetError
from ..io import ProgressFn, atomic_write_text, folder_lock, jsonl_text, remove_temporaries
from ..png import PNG_LEVELS
from ..pool import start_pool
from ..problems import Problem, count_reasons
from ..resume import prepare_fresh
from ..task_run import TaskRun, WorkFolder
from ..write import sha256_bytes
from .inputs import AitodInputs
from .lists import SPLITS, XviewWindow, read_lists
from .official import COLOR_MODES, GAP, SUBSIZE
from .record import AITOD_REFERENCE, AitodRecord
from .tasks import (TIMING_KEYS, CopyTask, CutTask, CutWindow, TaskResult, UnreadableSource, copy_file, run_copy,
                    run_cut)
from .verify import SplitCheck, verify_json

WORK_DIR = ".work"
OUTPUT_ENTRIES: tuple[str, ...] = ("images", "annotations", "problems.jsonl", "build.json", WORK_DIR)


@dataclass(frozen=True)
class AitodOptions:
    """Every option that affects the outputs (recorded in ``build.json``).

    Attributes:
        colors: ``official`` (the default): the pixels the official generation stores, red and blue swapped
            against the tif; ``true``: the tif's own colours.
        png_compression: ISA-L deflate level (0-3) of the xView windows. Defaults to 1. It changes the PNG bytes,
            never the pixels.
        copy_batch: AI-TOD_wo_xview images per copy task. Defaults to 64. Changes no output.
    """

    colors: str = "official"
    png_compression: int = 1
    copy_batch: int = 64

    def check(self) -> AitodOptions:
        """Validate the options; returns ``self``.

        Raises:
            DatasetError: Naming the first invalid option.
        """
        if self.colors not in COLOR_MODES:
            raise DatasetError(f"--colors: expected one of {', '.join(COLOR_MODES)}, got {self.colors!r}")
        if self.png_compression not in PNG_LEVELS:
            raise DatasetError(f"png_compression: expected 0..3, got {self.png_compression}")
        if self.copy_batch < 1:
            raise DatasetError(f"copy_batch: expected >= 1, got {self.copy_batch}")
        return self

    def to_dict(self) -> dict[str, object]:
        """The output-affecting options as ``build.json`` records them."""
        return {"colors": self.colors, "window": SUBSIZE, "gap": GAP, "png_compression": self.png_compression}


@dataclass
class AitodSummary:
    """What a build did (for the command's summary and the benchmark).

    Attributes:
        out_dir: The output folder.
        complete: The verification passed (see the module notes).
        checks: One verification per annotation json.
        totals: The whole dataset's figures (``build.json``'s ``totals``).
        problems: Problems per reason.
        windows_written: xView window files written (a window listed in two splits counts twice).
        images_copied: AI-TOD_wo_xview images copied.
        resumed_tasks: Tasks a previous run had finished.
        timings: Seconds per stage summed over workers (``TIMING_KEYS``, then ``verify`` in this process).
        elapsed: Wall-clock seconds.
        worker_peak_rss_mb: Largest peak resident memory of a process that ran tasks, MiB.
        already_complete: ``--resume`` found a complete build with the same options and inputs.
    """

    out_dir: Path
    complete: bool
    checks: list[SplitCheck] = field(default_factory=list)
    totals: dict[str, Any] = field(default_factory=dict)
    problems: dict[str, int] = field(default_factory=dict)
    windows_written: int = 0
    images_copied: int = 0
    resumed_tasks: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    worker_peak_rss_mb: float = 0.0
    already_complete: bool = False

    def failure_line(self) -> str:
        """One line saying why the dataset is not complete ("" when it is)."""
        if self.complete:
            return ""
        missing = sum(c.missing for c in self.checks)
        parts = [f"{missing:,} images missing"] if missing or not self.checks else []
        for count, what in ((sum(c.size_mismatches for c in self.checks), "images of the wrong size"),
                            (sum(c.boxes_outside for c in self.checks), "boxes outside their image"),
                            (sum(c.annotations_without_image for c in self.checks), "annotations naming no image"),
                            (sum(not c.parsed for c in self.checks), "annotation jsons unreadable")):
            if count:
                parts.append(f"{count:,} {what}")
        if not self.checks:
            parts.append("no annotation json in --aitod/annotations")
        return f"{', '.join(parts)}, see {self.out_dir / 'problems.jsonl'}"


def build_aitod(
    out_dir: Path,
    *,
    xview: Path,
    aitod: Path,
    lists: Path,
    options: AitodOptions | None = None,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
) -> AitodSummary:
    """Build AI-TOD from the xView training tifs, AI-TOD_wo_xview and the lists of xView windows.

    Args:
        out_dir: Output folder (layout in the module notes).
        xview: The xView training set (``train_images/`` or the tifs themselves).
        aitod: AI-TOD_wo_xview as released (``images/{split}/``, ``annotations/*.json``).
        lists: The folder of ``aitod_xview_{split}.txt``.
        options: Output options. Defaults to ``AitodOptions()``.
        workers: Worker processes; 1 runs in this process. Changes no output. Defaults to 1.
        resume: Continue an unfinished build in ``out_dir`` (same options and inputs), redoing only the tasks that
            did not finish or met a problem. Defaults to False.
        overwrite: Delete a previous build in ``out_dir`` first. Defaults to False.
        progress: Called as ``progress(done_images, total_images)``.

    Returns:
        The summary; ``complete`` is False when the dataset has holes (the problems file says which).

    Raises:
        DatasetError: For bad options, a missing input folder, an output folder holding another build, or a
            worker process that died.
    """
    started = time.perf_counter()
    options = (options or AitodOptions()).check()
    if workers < 1:
        raise DatasetError(f"--workers: expected at least 1, got {workers}")
    inputs = AitodInputs.locate(xview, aitod, lists)
    out_dir = Path(out_dir)
    with folder_lock(out_dir, what="build output", error=DatasetError):
        if not resume:
            prepare_fresh(out_dir, overwrite=overwrite, entries=OUTPUT_ENTRIES)
        elif not (out_dir / WORK_DIR).is_dir() and (out_dir / "build.json").is_file():
            finished = _finished(out_dir, options, inputs)
            if finished is not None:
                return finished
        pool = start_pool(workers) if workers > 1 else None
        try:
            summary = _build(out_dir, inputs, options, workers, resume, progress, pool)
        finally:
            if pool is not None and pool.exception() is None:
                pool.result().shutdown(wait=True, cancel_futures=True)
    summary.elapsed = time.perf_counter() - started
    return summary


@dataclass
class _Plan:
    """The tasks of a build and what the verification needs to know of the lists."""

    cuts: list[CutTask]
    copies: list[CopyTask]
    provided: dict[str, set[str]]

    @property
    def images(self) -> int:
        """Output image files the tasks write."""
        return sum(len(w.splits) for t in self.cuts for w in t.windows) + sum(len(t.names) for t in self.copies)


def plan_tasks(inputs: AitodInputs, lists: dict[str, list[XviewWindow]], out_dir: Path,
               options: AitodOptions) -> _Plan:
    """One cut task per tif (all its windows, whatever their splits) and the copy batches of every split.

    Returns:
        The plan; ``provided`` holds, per split, every image name an input provides.
    """
    by_tif: dict[str, dict[tuple[int, int], set[str]]] = defaultdict(lambda: defaultdict(set))
    provided: dict[str, set[str]] = {split: set() for split in SPLITS}
    for split, windows in lists.items():
        for window in windows:
            by_tif[window.xview_id][(window.x, window.y)].add(split)
            provided[split].add(window.name)
    cuts = [
        CutTask(xview_id, inputs.tif(xview_id),
                tuple(CutWindow(x, y, tuple(sorted(splits))) for (x, y), splits in sorted(origins.items())),
                out_dir.resolve(), options.colors, options.png_compression)
        for xview_id, origins in sorted(by_tif.items(), key=lambda item: _numeric(item[0]))
    ]
    copies = []
    for split in SPLITS:
        names = inputs.wo_xview_images(split)
        provided[split].update(names)
        for batch, start in enumerate(range(0, len(names), options.copy_batch)):
            copies.append(CopyTask(split, tuple(names[start:start + options.copy_batch]), inputs.aitod_root,
                                   out_dir.resolve(), batch))
    return _Plan(cuts, copies, provided)


def _numeric(xview_id: str) -> tuple[int, str]:
    return (int(xview_id), xview_id) if xview_id.isdigit() else (-1, xview_id)


def _build(out_dir: Path, inputs: AitodInputs, options: AitodOptions, workers: int, resume: bool,
           progress: ProgressFn | None, pool: Future[ProcessPoolExecutor] | None) -> AitodSummary:
    problems: list[Problem] = []
    lists, list_problems = read_lists(inputs.lists_dir)
    problems += list_problems
    plan = plan_tasks(inputs, lists, out_dir, options)
    folder = WorkFolder(out_dir / WORK_DIR, what="build")
    source = {"xview": str(inputs.tif_dir), "aitod": str(inputs.aitod_root), "lists": str(inputs.lists_dir)}
    folder.check_fingerprint({"options": options.to_dict(), "source": source, "inputs": _input_stats(inputs)},
                             resume=resume)
    remove_temporaries(out_dir / "images")  # what a killed run was writing never reached its final name
    for split in SPLITS:
        (out_dir / "images" / split).mkdir(parents=True, exist_ok=True)
    run = TaskRun(folder, resume=resume, progress=progress, total=plan.images, timing_keys=TIMING_KEYS)
    tasks = [*plan.cuts, *plan.copies]
    run.run(tasks, _run_task, pool.result() if pool is not None else None, load=_unless_problems, amount=_images_of)
    results = [run.results[task.key] for task in tasks]
    problems += [Problem(file, 0, reason, detail) for r in results for file, reason, detail in r.problems]

    t0 = time.perf_counter()
    checksums = _Checksums(results)
    checks = _annotations_and_checks(inputs, out_dir, plan.provided, checksums, problems)
    summary = AitodSummary(
        out_dir, complete=bool(checks) and all(c.complete for c in checks), checks=checks,
        totals=_totals(checks), problems=count_reasons(problems),
        windows_written=sum(len(r.files) for r in results if r.key.startswith("cut_")),
        images_copied=sum(len(r.files) for r in results if r.key.startswith("copy_")),
        resumed_tasks=run.resumed, timings={**run.timings, "verify": time.perf_counter() - t0},
        worker_peak_rss_mb=run.peak_rss_mb,
    )
    checksums.write(out_dir, "problems.jsonl", jsonl_text(p.to_dict() for p in sorted(problems)))
    _record(summary, options, source, workers, lists, results, checksums).write(out_dir)
    if summary.complete:
        folder.clear()
    return summary


def _input_stats(inputs: AitodInputs) -> list[list[object]]:
    """``[name, size, mtime_ns]`` of the lists and jsons: a resumed build must see them unchanged."""
    files = [inputs.lists_dir / f"aitod_xview_{split}.txt" for split in SPLITS]
    files += [path for _, path in inputs.annotation_jsons()]
    return [[path.name, st.st_size, st.st_mtime_ns] for path in files if path.is_file() for st in [path.stat()]]


def _images_of(task: CutTask | CopyTask, result: TaskResult) -> int:
    """Output images a task accounts for in the progress bar."""
    return sum(len(w.splits) for w in task.windows) if isinstance(task, CutTask) else len(task.names)


def _run_task(task: CutTask | CopyTask) -> TaskResult:
    """The worker's entry point: a cut or a copy."""
    return run_cut(task) if isinstance(task, CutTask) else run_copy(task)


def _unless_problems(data: dict[str, Any]) -> TaskResult | None:
    """A finished task's result; None for one that met a problem, which a resumed build runs again."""
    result = TaskResult.from_dict(data)
    return None if result.problems else result


class _Checksums:
    """sha256 of every input and output file, by path (inputs prefixed by the folder they come from)."""

    def __init__(self, results: Iterable[TaskResult]) -> None:
        self.inputs: dict[str, str] = {}
        self.outputs: dict[str, str] = {}
        for result in results:
            self.inputs.update(result.inputs)
            self.outputs.update(result.files)

    def write(self, out_dir: Path, rel: str, text: str) -> None:
        """Write a text output atomically and record its checksum."""
        atomic_write_text(out_dir / rel, text)
        self.outputs[rel] = sha256_bytes(text.encode("utf-8"))


def _annotations_and_checks(inputs: AitodInputs, out_dir: Path, provided: dict[str, set[str]],
                            checksums: _Checksums, problems: list[Problem]) -> list[SplitCheck]:
    """Copy every annotation json into ``annotations/`` and verify it against the images."""
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    checks = []
    for split, path in inputs.annotation_jsons():
        rel = f"annotations/{path.name}"
        try:
            digest = copy_file(path, out_dir / rel)
        except UnreadableSource as exc:
            problems.append(Problem(f"aitod/{rel}", 0, "unparsable_json", f"cannot be read ({exc.detail})"))
            checks.append(SplitCheck(split, rel, parsed=False))
            continue
        checksums.inputs[f"aitod/{rel}"] = checksums.outputs[rel] = digest
        names = provided[split] if split else set().union(*provided.values())
        checks.append(verify_json(out_dir / rel, split, out_dir, names, problems))
    return checks


def _totals(checks: list[SplitCheck]) -> dict[str, Any]:
    """The whole dataset (AI-TOD's ``whole`` splits) beside the published figures."""
    whole = [c for c in checks if c.split in AITOD_REFERENCE.whole]
    images, instances = sum(c.images for c in whole), sum(c.instances for c in whole)
    classes = sorted({name for c in whole for name in c.per_class})
    size_sum = sum(c.size_sum for c in whole)
    ref = AITOD_REFERENCE
    return {
        "splits": [c.split for c in whole],
        "images": images, "published_images": ref.images["all"],
        "instances": instances, "published_instances": ref.total_instances["all"],
        "classes": len(classes), "published_classes": ref.classes,
        "mean_size": round(size_sum / instances, 4) if instances else None, "published_mean_size": ref.mean_size,
    }


def _record(summary: AitodSummary, options: AitodOptions, source: dict[str, str], workers: int,
            lists: dict[str, list[XviewWindow]], results: list[TaskResult], checksums: _Checksums) -> AitodRecord:
    written: dict[str, dict[str, int]] = {split: {"xview_windows": 0, "aitod_wo_xview_images": 0} for split in SPLITS}
    for result in results:
        kind = "xview_windows" if result.key.startswith("cut_") else "aitod_wo_xview_images"
        for rel in result.files:
            written[rel.split("/")[1]][kind] += 1
    counts: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        counts[split] = {"listed_xview_windows": len(lists.get(split, [])), **written[split]}
    for check in summary.checks:
        counts.setdefault(check.split or "unknown", {}).update(check.to_dict())
    return AitodRecord(
        toolkit_version=_toolkit_version(),
        options=options.to_dict(),
        source=source,
        runtime={"workers": workers},
        complete=summary.complete,
        annotations={c.split: c.json for c in summary.checks if c.split is not None},
        counts=counts,
        totals=summary.totals,
        problems=summary.problems,
        inputs=dict(sorted(checksums.inputs.items())),
        outputs=dict(sorted(checksums.outputs.items())),
    )


def _finished(out_dir: Path, options: AitodOptions, inputs: AitodInputs) -> AitodSummary | None:
    """The summary of a complete build in ``out_dir`` with these options and inputs; None when there is none.

    Raises:
        DatasetError: ``out_dir`` holds a complete build with other options or inputs.
    """
    from ..build_record import read_build_record

    record = read_build_record(out_dir)
    if not isinstance(record, AitodRecord) or not record.complete:
        return None
    source = {"xview": str(inputs.tif_dir), "aitod": str(inputs.aitod_root), "lists": str(inputs.lists_dir)}
    if record.options != options.to_dict() or record.source != source:
        raise DatasetError(f"--resume: {out_dir} holds a finished AI-TOD build with other options or inputs; "
                           "use --overwrite to replace it")
    checks = [SplitCheck(split, rel, images=record.counts[split]["images"],
                         instances=record.counts[split]["instances"]) for split, rel in record.annotations.items()]
    return AitodSummary(out_dir, complete=True, checks=checks, totals=dict(record.totals or {}),
                        problems=dict(record.problems or {}), already_complete=True)

