"""The DOTAmini10 builder: read -> filter -> scale -> split -> augment -> write, in parallel and resumable.

Output layout under ``out_dir``:

* ``images/{split}/{name}.png`` and ``labelTxt/{split}/{name}.txt``, where ``name`` is
  ``{image}__{factor}__{x0}___{y0}`` (window origin in the scaled image) and augmented copies add ``__aug{k}``.
* ``annotations/{split}.json``: COCO. ``file_name`` is ``{name}.png``, relative to ``images/{split}/`` (so an
  MMDetection config uses ``data_prefix=dict(img="images/train/")``). Categories are the selected classes with
  ids 1..N in the order given (Table 7 order by default). Each image entry also has ``source`` (source image
  name), ``scale`` (factor), ``window`` ([x0, y0]) and ``aug_copy`` (0 for the window itself, k for the k-th
  augmented copy). Each annotation has ``bbox`` [x, y, w, h] of the clipped polygon's horizontal box, ``area``
  = w * h (as AI-TOD counts it), ``segmentation`` (the clipped polygon parts), ``iscrowd`` 0, ``truncated`` and
  the source ``difficult`` flag.
* ``manifest.jsonl``: one line per source object (every object line of every label file) with its fate:
  ``kept`` (``windows`` lists every output image holding it, augmented copies included), ``filtered`` (class
  not selected), ``dropped`` (below the iof threshold in every window; ``best_iof`` is its largest area
  fraction inside any window) or ``invalid`` (``reason`` names the problem). ``problems`` lists non-fatal
  problems of a used object (``outside_image``).
* ``problems.jsonl`` (file, line, reason, detail) and ``build.json`` (options, seed, toolkit version, source,
  input/output checksums, counts, problem counts; the worker count sits under ``runtime``).

Notes:
    Work is cut into units of (image, scale, batch of windows). An image holding at least one worker's share of
    the build's windows is cut into several batches so that one image alone keeps every worker busy; such an
    image is decoded and resized once by a ``PrepareTask`` into ``.work/pixels/*.npy``, which the workers
    memory-map (they read only the rows their windows need, and the pages are shared). The batches run while
    it decodes: each waits for the rows of its next window (``worker.SharedRows``), so the top of a large image
    is being split while its bottom is decoded. Other images are decoded by the one worker that takes them.
    Memory per worker is thus about two copies of the current image at most (OpenCV's decoder, used for other
    formats than 8-bit PNG, briefly holds a second copy), plus one window.

    Every finished unit leaves a record under ``.work/units``; when all units of an image are done, an image
    record under ``.work/records`` marks it finished. ``resume=True`` skips finished images and units, and the
    final files are assembled from the records in sorted order, so a resumed build and an uninterrupted one
    are byte-identical, whatever the worker count. ``.work`` is removed when the build completes.

    Source objects whose polygon reaches outside the image are clipped to it and reported
    (``outside_image``); they stay usable. Images without a label file, and images whose label file cannot be
    read, are reported and skipped: their windows would teach a detector that their objects are background.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import worker as worker_module
from .classes import AUGMENT_CLASSES, DOTAMINI10_CLASSES, check_class_list, detect_dota_version
from .errors import DatasetError
from .png import PNG_LEVELS
from .pool import start_pool
from .problems import Problem, ProblemLog, StrictModeError
from .read import ImageProbeError, find_splits, outside_image, pair_files, probe_image, read_label_file
from .scale import INTERPOLATIONS, check_scale_options, factor_tag, image_factors, scaled_size
from .split import get_windows
from .worker import (
    TIMING_KEYS,
    PrepareResult,
    PrepareTask,
    UnitResult,
    UnitSettings,
    SharedRows,
    UnitTask,
    create_shared,
    run_hash,
    run_prepare,
    run_unit,
)
from .io import atomic_write_text, json_text, jsonl_text, remove_temporaries, write_json
from .write import coco_document, sha256_bytes, sha256_file

logger = logging.getLogger(__name__)

WORK_DIR = ".work"
OUTPUT_ENTRIES: tuple[str, ...] = (
    "images", "labelTxt", "annotations", "manifest.jsonl", "problems.jsonl", "build.json", WORK_DIR,
)
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildOptions:
    """Every option that affects the outputs (all recorded in ``build.json``).

    Attributes:
        classes: Classes kept, in output id order. Defaults to the ten DOTAmini10 classes (Table 7 order).
        scale_mode: ``"random"`` (one factor per image drawn from ``scale_range``) or ``"fixed"`` (every factor
            of ``scales``). Defaults to ``"random"``.
        scales: Factors of ``fixed`` mode. Defaults to (0.5, 1.0).
        scale_range: Bounds of ``random`` mode. Defaults to (0.5, 1.0), the paper's range.
        scale_decimals: Rounding of random factors. Defaults to 4.
        interpolation: Resizing filter (``area``, ``cubic``, ``linear``, ``nearest``). Defaults to ``area``.
        crop_size: Window size. Defaults to 1024.
        stride: Window step. Defaults to 768 (overlap 256).
        iof_threshold: Minimum area fraction of an object inside a window. Defaults to 0.7.
        pad_value: Gray value padding images smaller than a window. Defaults to 0.
        drop_empty_train: Drop train windows without objects (val keeps all). Defaults to True.
        aug_copies: Augmented copies per train window holding an ``aug_classes`` object. Defaults to 1: the
            paper does not give the number; one copy roughly doubles those classes, which matches the
            train/val ratio of basketball-court in its Table 7 (7.7 against about 4 for unaugmented classes).
        aug_classes: Classes that trigger augmentation. Defaults to basketball-court, baseball-diamond,
            helicopter.
        flip_prob: Probability of each of the horizontal and vertical flips. Defaults to 0.5.
        hsv_gains: Hue, saturation, value gains of the jitter. Defaults to (0.015, 0.7, 0.4).
        png_compression: Deflate level (ISA-L, 0-3) of the PNG windows. Defaults to 1.
        coord_decimals: Decimals of output coordinates. Defaults to 2.
        strict: Stop at the first input problem. Defaults to False.
    """

    classes: tuple[str, ...] = DOTAMINI10_CLASSES
    scale_mode: str = "random"
    scales: tuple[float, ...] = (0.5, 1.0)
    scale_range: tuple[float, float] = (0.5, 1.0)
    scale_decimals: int = 4
    interpolation: str = "area"
    crop_size: int = 1024
    stride: int = 768
    iof_threshold: float = 0.7
    pad_value: int = 0
    drop_empty_train: bool = True
    aug_copies: int = 1
    aug_classes: tuple[str, ...] = AUGMENT_CLASSES
    flip_prob: float = 0.5
    hsv_gains: tuple[float, float, float] = (0.015, 0.7, 0.4)
    png_compression: int = 1
    coord_decimals: int = 2
    strict: bool = False

    def check(self) -> BuildOptions:
        """Validate every option; returns ``self``.

        Raises:
            DatasetError: Naming the first invalid option and its value.
        """
        check_class_list(self.classes, name="classes")
        check_class_list(self.aug_classes, name="aug_classes")
        check_scale_options(self.scale_mode, self.scales, self.scale_range)
        if self.interpolation not in INTERPOLATIONS:
            raise DatasetError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}, got {self.interpolation!r}")
        if self.crop_size <= 0 or not 0 < self.stride <= self.crop_size:
            raise DatasetError(f"crop_size/stride: expected 0 < stride <= crop_size, got {self.crop_size}, {self.stride}")
        if not 0.0 < self.iof_threshold <= 1.0:
            raise DatasetError(f"iof_threshold: expected a value in (0, 1], got {self.iof_threshold}")
        if not 0 <= self.pad_value <= 255:
            raise DatasetError(f"pad_value: expected 0..255, got {self.pad_value}")
        if self.aug_copies < 0:
            raise DatasetError(f"aug_copies: expected >= 0, got {self.aug_copies}")
        if not 0.0 <= self.flip_prob <= 1.0:
            raise DatasetError(f"flip_prob: expected a probability, got {self.flip_prob}")
        if len(self.hsv_gains) != 3 or any(not 0.0 <= g <= 1.0 for g in self.hsv_gains):
            raise DatasetError(f"hsv_gains: expected three gains in [0, 1], got {self.hsv_gains}")
        if self.png_compression not in PNG_LEVELS:
            raise DatasetError(f"png_compression: expected 0..3, got {self.png_compression}")
        if not 0 <= self.coord_decimals <= 6:
            raise DatasetError(f"coord_decimals: expected 0..6, got {self.coord_decimals}")
        return self

    def to_dict(self) -> dict[str, object]:
        """JSON-ready options (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))


@dataclass
class BuildSummary:
    """What a build did (for the command's summary and the benchmark).

    Attributes:
        out_dir: The output folder.
        counts: ``build.json``'s per-split counts.
        problems: Problem count per reason.
        windows_total: Windows considered (before dropping empty train windows).
        images_written: Output images (windows and augmented copies).
        resumed_images: Source images skipped because a previous run finished them.
        timings: Seconds per stage, summed over workers (``read`` in the main process, then the worker stages).
        elapsed: Wall-clock seconds of the whole build.
        already_complete: True when ``resume`` found a finished build with the same options.
        worker_peak_rss_mb: Largest peak resident memory of a process that ran units, in MiB.
        shared_images: Images (at one scale) decoded once into a memory map that several workers split.
    """

    out_dir: Path
    counts: dict[str, dict[str, object]]
    problems: dict[str, int]
    windows_total: int = 0
    images_written: int = 0
    resumed_images: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    elapsed: float = 0.0
    already_complete: bool = False
    worker_peak_rss_mb: float = 0.0
    shared_images: int = 0


@dataclass
class _Entry:
    """One source image (or orphan label file) of one split, after reading and validation."""

    split: str
    stem: str
    image_rel: str | None
    label_rel: str | None
    image_path: Path | None
    size: tuple[int, int] | None = None
    lines: list[int] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    difficult: list[int] = field(default_factory=list)
    status: list[str] = field(default_factory=list)  # "candidate", "filtered" or "invalid"
    reason: list[str | None] = field(default_factory=list)
    notes: list[list[str]] = field(default_factory=list)
    geoms: np.ndarray | None = None  # candidate polygons in image coordinates (clipped to the image)
    candidates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    factors: list[float] = field(default_factory=list)
    image_sha256: str | None = None
    label_sha256: str | None = None
    units: list[UnitTask] = field(default_factory=list)
    prepares: dict[str, PrepareTask] = field(default_factory=dict)  # by factor tag, for images workers share

    @property
    def key(self) -> tuple[str, str]:
        return self.split, self.stem


def build_dotamini10(
    out_dir: Path,
    *,
    dota_root: Path | None = None,
    options: BuildOptions | None = None,
    seed: int = 0,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressCallback | None = None,
) -> BuildSummary:
    """Build DOTAmini10 from a DOTA release (or from a generated synthetic sample).

    Args:
        out_dir: Output folder (layout in the module docstring).
        dota_root: A DOTA release root or one split folder; None generates the synthetic sample from ``seed``
            under ``out_dir/.work`` and builds from it.
        options: Recipe options. Defaults to ``BuildOptions()``.
        seed: Seed of every random draw (scale factors, augmentation, the synthetic sample). Defaults to 0.
        workers: Worker processes; 1 runs in this process. Does not change any output. Defaults to 1.
        resume: Continue an interrupted build in ``out_dir`` (same options and inputs). Defaults to False.
        overwrite: Delete a previous build's outputs in ``out_dir`` first. Defaults to False.
        progress: Called as ``progress(done_windows, total_windows)`` while the build runs.

    Returns:
        The ``BuildSummary``.

    Raises:
        DatasetError: For bad options, a missing or malformed DOTA root, an output folder holding another
            build, or (``options.strict``) the first input problem, as ``StrictModeError``.

    Notes:
        With ``workers > 1`` the workers are forked from this process when that is safe (``fork_is_safe``),
        otherwise they start from a fork server (Linux) or are spawned, which re-imports the calling script: a
        script that calls this function must do so under ``if __name__ == "__main__":``, as with any
        ``multiprocessing`` pool. The command line does.
    """
    started = time.perf_counter()
    options = (options or BuildOptions()).check()
    if workers < 1:
        raise DatasetError(f"--workers: expected at least 1, got {workers}")
    out_dir = Path(out_dir)
    work = out_dir / WORK_DIR
    if not resume:
        _prepare_fresh(out_dir, overwrite=overwrite)
    elif not work.is_dir() and (out_dir / "build.json").is_file():
        done = _finished_build(out_dir, options, seed, dota_root)
        if done is not None:
            return done
    work.mkdir(parents=True, exist_ok=True)
    # Worker processes start in the background while this process reads and plans.
    pool = start_pool(workers) if workers > 1 else None
    try:
        return _build(out_dir, work, dota_root, options, seed, workers, resume, progress, started, pool)
    finally:
        if pool is not None and pool.exception() is None:
            pool.result().shutdown(wait=True, cancel_futures=True)


def _build(
    out_dir: Path,
    work: Path,
    dota_root: Path | None,
    options: BuildOptions,
    seed: int,
    workers: int,
    resume: bool,
    progress: ProgressCallback | None,
    started: float,
    pool: Future[ProcessPoolExecutor] | None,
) -> BuildSummary:
    """The body of ``build_dotamini10`` once the output folder is ready (``pool`` is None for one worker)."""
    # Source: the user's DOTA root, or a synthetic sample generated once into .work (reused on resume).
    if dota_root is None:
        root, source = _synthetic_source(work, seed), {"kind": "synthetic", "seed": seed}
    else:
        root = Path(dota_root).resolve()
        source = {"kind": "dota", "dota_root": str(root)}

    # Stage 1-3: read, validate, filter, choose scales; plan the units of work.
    timings = dict.fromkeys(("read", *TIMING_KEYS), 0.0)
    t0 = time.perf_counter()
    problems = ProblemLog(strict=options.strict)
    splits = find_splits(root)
    source["layout"] = "release" if splits[0].images.parent != root else "split-folder"
    entries, input_stats = _read_sources(root, splits, options, seed, problems)
    source["splits"] = [s.name for s in splits]
    source["dota_version"] = detect_dota_version(c for e in entries for c in e.categories)
    settings = UnitSettings(
        out_dir=out_dir.resolve(), seed=seed, crop_size=options.crop_size, iof_threshold=options.iof_threshold,
        pad_value=options.pad_value, drop_empty_train=options.drop_empty_train, aug_copies=options.aug_copies,
        flip_prob=options.flip_prob, hsv_gains=tuple(options.hsv_gains), interpolation=options.interpolation,
        png_compression=options.png_compression, coord_decimals=options.coord_decimals,
    )
    _plan_units(entries, options, settings, workers, pixels_dir=work / "pixels")
    version = _toolkit_version()  # looked up now, while the workers start, rather than at the end
    timings["read"] = time.perf_counter() - t0

    fingerprint = {"options": options.to_dict(), "seed": seed, "source": source, "inputs": input_stats}
    _check_state(work, fingerprint, resume)
    for split in source["splits"]:
        for sub in ("images", "labelTxt"):
            (out_dir / sub / split).mkdir(parents=True, exist_ok=True)
    remove_temporaries(out_dir / "images")
    remove_temporaries(out_dir / "labelTxt")

    # Stages 4-6 per unit (split, augment, write windows), in workers.
    records, pending, windows_total, done_windows, resumed = {}, [], 0, 0, 0
    for entry in entries:
        windows = sum(len(u.windows) for u in entry.units)
        windows_total += windows
        record_path = _record_path(work, entry)
        if resume and entry.units and record_path.is_file():
            records[entry.key] = json.loads(record_path.read_text(encoding="utf-8"))
            done_windows += windows
            resumed += 1
            continue
        for unit in entry.units:
            unit_path = _unit_path(work, entry, unit)
            if resume and unit_path.is_file():
                done_windows += len(unit.windows)
                continue
            pending.append(unit)
    by_key = {e.key: e for e in entries}
    results: dict[tuple[str, str], list[UnitResult]] = {}
    remaining = {e.key: len(e.units) for e in entries if e.units and e.key not in records}
    for entry in entries:
        if entry.key in remaining:
            for unit in entry.units:
                unit_path = _unit_path(work, entry, unit)
                if resume and unit_path.is_file():
                    results.setdefault(entry.key, []).append(
                        UnitResult.from_dict(json.loads(unit_path.read_text(encoding="utf-8")))
                    )
                    remaining[entry.key] -= 1
    for key in [k for k, n in remaining.items() if n == 0]:  # every unit done but the image record missing
        records[key] = _finish_image(work, by_key[key], results.pop(key, []))
        del remaining[key]
    if progress is not None:
        progress(done_windows, windows_total)

    peak_rss = [0.0]

    def on_result(result: UnitResult) -> None:
        nonlocal done_windows
        entry = by_key[(result.split, result.stem)]
        for name, seconds in result.timings.items():
            timings[name] += seconds
        peak_rss[0] = max(peak_rss[0], result.peak_rss_mb)
        if result.problems and options.strict:
            reason, detail = result.problems[0]
            raise StrictModeError(Problem(entry.image_rel or entry.stem, 0, reason, detail).message())
        results.setdefault(entry.key, []).append(result)
        remaining[entry.key] -= 1
        if remaining[entry.key] == 0:
            # The image record replaces its unit records; the last unit needs none of its own.
            records[entry.key] = _finish_image(work, entry, results.pop(entry.key))
        else:
            unit_path = work / "units" / entry.split / entry.stem / f"{result.key}.json"
            unit_path.parent.mkdir(parents=True, exist_ok=True)
            write_json(unit_path, result.to_dict())
        done_windows += result.processed
        if progress is not None:
            progress(done_windows, windows_total)

    shared_images = 0

    def on_prepared(prepared: PrepareResult, group: _Group) -> bool:
        nonlocal shared_images
        entry = by_key[(group.prepare.split, group.prepare.stem)]
        for name, seconds in prepared.timings.items():
            timings[name] += seconds
        peak_rss[0] = max(peak_rss[0], prepared.peak_rss_mb)
        if prepared.input_sha256:
            entry.image_sha256 = prepared.input_sha256
        if not prepared.problems:
            shared_images += 1
            return True
        for unit in group.units:  # the image failed to decode: every unit reports it, its own results go
            on_result(UnitResult(unit.split, unit.stem, unit.key, problems=list(prepared.problems),
                                 processed=len(unit.windows)))
        return False

    def discard(result: UnitResult) -> None:
        # A unit that split rows of a shared image whose decode then failed: none of its files may remain.
        for name, seconds in result.timings.items():
            timings[name] += seconds
        for window in result.windows:
            (out_dir / "images" / result.split / f"{window['name']}.png").unlink(missing_ok=True)
            (out_dir / "labelTxt" / result.split / f"{window['name']}.txt").unlink(missing_ok=True)

    def on_hashed(group: _Group, digest: str, seconds: float) -> None:
        by_key[(group.prepare.split, group.prepare.stem)].image_sha256 = digest
        timings["hash"] += seconds

    pixels_dir = work / "pixels"
    shutil.rmtree(pixels_dir, ignore_errors=True)
    pixels_dir.mkdir(parents=True)
    groups = _groups(pending, entries)
    _execute(groups, pool.result() if pool is not None and groups else None, on_result, on_prepared, on_hashed,
             discard)
    unfinished = [f"{e.split}/{e.stem}" for e in entries if e.units and e.key not in records]
    if unfinished:  # a scheduling bug, never bad input: refuse to assemble a dataset with holes
        raise RuntimeError(f"units of {', '.join(unfinished[:5])} did not all report back")

    # Stage 6: assemble COCO, manifest, problems and build.json from the records, in sorted order.
    summary = _assemble(out_dir, entries, records, problems, options, seed, source, workers, version)
    shutil.rmtree(work, ignore_errors=True)
    summary.windows_total = windows_total
    summary.resumed_images = resumed
    summary.timings = timings
    summary.elapsed = time.perf_counter() - started
    summary.worker_peak_rss_mb = peak_rss[0]
    summary.shared_images = shared_images
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Output folder state and resume
# ---------------------------------------------------------------------------------------------------------------


def _prepare_fresh(out_dir: Path, *, overwrite: bool) -> None:
    present = [name for name in OUTPUT_ENTRIES if (out_dir / name).exists()]
    if present and not overwrite:
        raise DatasetError(
            f"--out: {out_dir} already holds a build ({', '.join(present)}); "
            "pass --resume to continue it or --overwrite to replace it"
        )
    for name in present:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _finished_build(out_dir: Path, options: BuildOptions, seed: int, dota_root: Path | None) -> BuildSummary | None:
    """The summary of a finished build with the same recipe, or None when ``out_dir`` holds no such build."""
    try:
        info = json.loads((out_dir / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    same_source = (
        info.get("source", {}).get("kind") == "synthetic" if dota_root is None
        else info.get("source", {}).get("dota_root") == str(Path(dota_root).resolve())
    )
    if info.get("options") != options.to_dict() or info.get("seed") != seed or not same_source:
        raise DatasetError(
            f"--resume: {out_dir} holds a finished build with other options or inputs; use --overwrite to replace it"
        )
    counts = info.get("counts", {})
    images = sum(int(c.get("images", 0)) for c in counts.values())
    return BuildSummary(out_dir, counts, info.get("problems", {}), images_written=images, already_complete=True)


def _check_state(work: Path, fingerprint: dict[str, object], resume: bool) -> None:
    state = work / "state.json"
    if resume and state.is_file():
        previous = json.loads(state.read_text(encoding="utf-8"))
        if previous != json.loads(json.dumps(fingerprint)):
            changed = sorted(k for k in fingerprint if previous.get(k) != json.loads(json.dumps(fingerprint[k])))
            raise DatasetError(
                f"--resume: the interrupted build in {work.parent} used other {', '.join(changed)}; "
                "rerun with the same options or use --overwrite"
            )
    write_json(state, fingerprint, indent=1)


def _record_path(work: Path, entry: _Entry) -> Path:
    return work / "records" / entry.split / f"{entry.stem}.json"


def _unit_path(work: Path, entry: _Entry, unit: UnitTask) -> Path:
    return work / "units" / entry.split / entry.stem / f"{unit.key}.json"


def _finish_image(work: Path, entry: _Entry, results: list[UnitResult]) -> dict[str, object]:
    """Merge an image's unit results into its record (the image's done marker) and drop the unit records."""
    order = {u.key: (u.factor, u.first_window) for u in entry.units}
    results = sorted((r for r in results if r.key in order), key=lambda r: order[r.key])
    problems = sorted({tuple(p) for r in results for p in r.problems})
    hashes = [r.input_sha256 for r in results if r.input_sha256]
    record = {
        "split": entry.split,
        "stem": entry.stem,
        "input_sha256": hashes[0] if hashes else (entry.image_sha256 or sha256_file(entry.image_path)),
        "problems": [list(p) for p in problems],
        "processed": sum(r.processed for r in results),
        "best_iof": sorted([k, v] for k, v in _max_merge(r.best_iof for r in results).items()),
        "windows": [w for r in results for w in r.windows],
    }
    path = _record_path(work, entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, record)
    shutil.rmtree(work / "units" / entry.split / entry.stem, ignore_errors=True)
    return record


def _max_merge(maps: Iterable[dict[int, float]]) -> dict[int, float]:
    merged: dict[int, float] = {}
    for values in maps:
        for key, value in values.items():
            merged[key] = max(merged.get(key, 0.0), value)
    return merged


def _synthetic_source(work: Path, seed: int) -> Path:
    target = work / "synthetic_source"
    marker = work / "synthetic_source.done"
    if marker.is_file() and target.is_dir():
        return target
    try:
        from .synthetic import generate_synthetic_dota
    except ImportError as exc:
        raise DatasetError(f"--dota-root not given and the synthetic sample generator is unavailable ({exc})") from None
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    logger.info("generating the synthetic DOTA sample (seed %d) in %s", seed, target)
    generate_synthetic_dota(target, seed=seed)
    marker.write_text(str(seed), encoding="utf-8")
    return target


# ---------------------------------------------------------------------------------------------------------------
# Stages 1-3: read, validate, filter, scale; plan units
# ---------------------------------------------------------------------------------------------------------------


def _read_sources(
    root: Path, splits: Sequence, options: BuildOptions, seed: int, problems: ProblemLog
) -> tuple[list[_Entry], list[list[object]]]:
    import shapely

    classes = set(options.classes)
    entries: list[_Entry] = []
    input_stats: list[list[object]] = []

    def rel(path: Path) -> str:
        return path.relative_to(root).as_posix()

    for source in splits:
        pairs, notes = pair_files(source)
        for path, reason, detail in notes:
            problems.add(Problem(rel(path), 0, reason, detail))
        for pair in pairs:
            entry = _Entry(
                split=source.name,
                stem=pair.stem,
                image_rel=rel(pair.image) if pair.image else None,
                label_rel=rel(pair.label) if pair.label else None,
                image_path=pair.image,
            )
            if pair.label is None:
                problems.add(Problem(entry.image_rel, 0, "image_without_label",
                                     f"no {pair.stem}.txt in {rel(source.labels)}"))
                continue
            for path in (pair.label, pair.image):
                if path is not None:
                    st = path.stat()
                    input_stats.append([rel(path), st.st_size, st.st_mtime_ns])
            entry.label_sha256 = sha256_file(pair.label)
            label = read_label_file(pair.label, file=entry.label_rel)
            problems.extend(label.problems)
            entry.lines = label.lines.tolist()
            entry.categories = list(label.categories)
            entry.difficult = label.difficult.tolist()
            entry.reason = list(label.invalid)
            entry.notes = [[] for _ in entry.lines]
            entries.append(entry)
            file_problem: str | None = None
            if pair.image is None:
                problems.add(Problem(entry.label_rel, 0, "label_without_image",
                                     f"no {pair.stem}.png/.jpg/.tif/.bmp in {rel(source.images)}"))
                file_problem = "label_without_image"
            else:
                try:
                    info = probe_image(pair.image)
                    entry.size = (info.width, info.height)
                except ImageProbeError as exc:
                    problems.add(Problem(entry.image_rel, 0, exc.reason, exc.detail))
                    file_problem = exc.reason
                    entry.image_sha256 = sha256_file(pair.image)
            if file_problem is None and any(p.reason == "unreadable_label" for p in label.problems):
                # Unknown annotations: the image can be neither a positive nor a negative example.
                file_problem = "unreadable_label"
                entry.size = None
                entry.image_sha256 = sha256_file(pair.image)
            if file_problem is not None:
                entry.reason = [r or file_problem for r in entry.reason]
                entry.status = ["invalid"] * len(entry.lines)
                continue

            # Objects reaching outside the image are reported and clipped to it; nothing left -> invalid.
            width, height = entry.size
            coords = label.coords
            valid = np.array([r is None for r in entry.reason], dtype=bool)
            geoms = np.empty(len(entry.lines), dtype=object)
            if valid.any():
                geoms[valid] = shapely.polygons(coords[valid])
                out = outside_image(coords, width, height) & valid
                if out.any():
                    frame = shapely.box(0, 0, width, height)
                    # Clockwise on screen is counter-clockwise in shapely's y-up terms (DOTA vertex order).
                    geoms[out] = shapely.orient_polygons(shapely.intersection(geoms[out], frame), exterior_cw=False)
                    for idx in np.flatnonzero(out).tolist():
                        problems.add(Problem(entry.label_rel, entry.lines[idx], "outside_image",
                                             f"image is {width} x {height}"))
                        if shapely.area(geoms[idx]) <= 0:
                            entry.reason[idx] = "outside_image"
                        else:
                            entry.notes[idx].append("outside_image")
            entry.status = [
                "invalid" if r is not None else ("candidate" if c in classes else "filtered")
                for r, c in zip(entry.reason, entry.categories, strict=True)
            ]
            entry.candidates = np.array([i for i, s in enumerate(entry.status) if s == "candidate"], dtype=np.int64)
            entry.geoms = geoms[entry.candidates] if len(entry.candidates) else np.zeros(0, dtype=object)
            entry.factors = image_factors(options.scale_mode, seed, source.name, pair.stem, scales=options.scales,
                                          scale_range=options.scale_range, decimals=options.scale_decimals)
    return entries, sorted(input_stats)


def _plan_units(
    entries: list[_Entry], options: BuildOptions, settings: UnitSettings, workers: int, *, pixels_dir: Path | None = None
) -> None:
    """Cut every usable image into units of windows (one per image unless it is a large share of the build).

    Notes:
        An image is cut only when it holds at least one worker's fair share of all windows
        (``share = windows * workers / total >= 1``); it then gets ``4 * min(share, workers)`` units, so a
        single image keeps every worker busy and the last units to finish are short. The units of a cut image
        read the scaled pixels from one ``.npy`` file under ``pixels_dir`` that a ``PrepareTask`` fills while
        they run, so the image is decoded and resized once, not once per worker. Other images are decoded by
        the worker that takes their single unit. Cutting never changes an output.
    """
    import shapely

    aug = set(options.aug_classes)
    usable = [
        e for e in entries
        if e.size is not None and (len(e.candidates) or not (e.split == "train" and options.drop_empty_train))
    ]
    for entry in entries:
        if entry.size is not None and entry not in usable and entry.image_sha256 is None:
            # No unit will read this image (train, nothing to keep): checksum it here.
            entry.image_sha256 = sha256_file(entry.image_path)
    plans = []
    for entry in usable:
        width, height = entry.size
        for fi, factor in enumerate(entry.factors):
            sw, sh = scaled_size(width, height, factor)
            windows = get_windows(sw, sh, crop_size=options.crop_size, stride=options.stride)
            plans.append((entry, fi, factor, (sw, sh), windows))
    total = sum(len(p[4]) for p in plans)
    for entry, fi, factor, (sw, sh), windows in plans:
        width, height = entry.size
        cand = entry.candidates
        categories = [entry.categories[i] for i in cand.tolist()]
        difficult = np.array([entry.difficult[i] for i in cand.tolist()], dtype=np.int64)
        augment = np.array([c in aug for c in categories], dtype=bool)
        ratio = np.array([sw / width, sh / height])
        geoms = shapely.transform(entry.geoms, lambda c, r=ratio: c * r) if len(cand) else entry.geoms
        n = len(windows)
        share = n * workers / max(total, 1)
        units = min(n, math.ceil(4 * min(share, workers))) if workers > 1 and share >= 1 else 1
        batch = math.ceil(n / units)
        tag = factor_tag(factor)
        pixels = None
        if units > 1 and pixels_dir is not None:
            pixels = pixels_dir / f"{entry.split}__{entry.stem}__{tag}.npy"
            entry.prepares[tag] = PrepareTask(
                split=entry.split, stem=entry.stem, image_path=entry.image_path, image_size=(width, height),
                scaled_size=(sw, sh), interpolation=options.interpolation, pixels_path=pixels,
                hash_input=(fi == 0),
            )
        bounds = shapely.bounds(geoms).reshape(-1, 4)
        for start in range(0, n, batch):
            part = windows[start:start + batch]
            # A unit carries only the objects that touch its windows' extent (the same strict overlap test as
            # ``assign_objects``): the rest could never be assigned there, and every object costs pickling and
            # geometry set-up per unit. Relative order is kept, so the outputs do not change.
            x0, y0 = part[:, 0].min(), part[:, 1].min()
            x1, y1 = part[:, 2].max(), part[:, 3].max()
            near = np.flatnonzero(
                (bounds[:, 0] < x1) & (bounds[:, 2] > x0) & (bounds[:, 1] < y1) & (bounds[:, 3] > y0)
            )
            entry.units.append(UnitTask(
                split=entry.split, stem=entry.stem, image_path=entry.image_path, image_size=(width, height),
                factor=factor, tag=tag, scaled_size=(sw, sh),
                windows=part, first_window=start, geoms=geoms[near], object_ids=cand[near],
                categories=[categories[i] for i in near.tolist()], difficult=difficult[near], augment=augment[near],
                hash_input=(fi == 0 and start == 0 and pixels is None), settings=settings, pixels_path=pixels,
            ))


# ---------------------------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------------------------


def _toolkit_version() -> str:
    from . import __version__

    return __version__


@dataclass
class _Group:
    """The pending units of one image at one scale, and the task sharing its pixels (None: not shared).

    For a shared image the units run while the pixels are decoded, but their results are held until the
    decode has succeeded: if it fails, what they wrote is deleted and the image's problem is reported instead.
    """

    units: list[UnitTask]
    prepare: PrepareTask | None
    outstanding: int = 0  # submitted tasks (units and prepare) not yet returned
    prepared: bool = False
    failed: bool = False
    held: list[UnitResult] = field(default_factory=list)


def _groups(pending: list[UnitTask], entries: list[_Entry]) -> list[_Group]:
    by_image: dict[tuple[str, str, str], list[UnitTask]] = {}
    for unit in pending:
        by_image.setdefault((unit.split, unit.stem, unit.tag), []).append(unit)
    prepares = {(e.split, e.stem, tag): task for e in entries for tag, task in e.prepares.items()}
    return [_Group(units, prepares.get(key)) for key, units in by_image.items()]


_BROKEN_POOL = (
    "a worker process died (out of memory, or a script that starts a build without an "
    "`if __name__ == '__main__':` guard); rerun with --resume and fewer --workers"
)
# At most this many shared images exist at once: one being split, the next being prepared.
MAX_SHARED_IMAGES = 2


def _execute(
    groups: list[_Group],
    pool: ProcessPoolExecutor | None,
    on_result: Callable[[UnitResult], None],
    on_prepared: Callable[[PrepareResult, _Group], bool],
    on_hashed: Callable[[_Group, str, float], None],
    discard: Callable[[UnitResult], None],
) -> None:
    """Run the groups' tasks in ``pool`` (None: in this process), calling back in this process.

    ``discard`` deletes what a unit of a shared image wrote when that image's decode failed.
    """
    if not groups:
        return
    if pool is None:
        # In this process the worker cache must not outlive the build: it would keep an image in memory and
        # could serve stale pixels to a later build that reads a changed file under the same name.
        worker_module.reset_cache()
        try:
            for group in groups:
                if group.prepare is not None:
                    create_shared(group.prepare)
                if group.prepare is None or on_prepared(_guarded(run_prepare, group.prepare), group):
                    for unit in group.units:
                        on_result(_guarded(run_unit, unit))
                if group.prepare is not None:
                    _remove_shared(group.prepare)
        finally:
            worker_module.reset_cache()
        return
    queue = deque(groups)
    # What each future is: a unit, None for a PrepareTask, or "hash".
    inflight: dict[Future, tuple[_Group, UnitTask | str | None]] = {}
    shared = 0

    def feed() -> None:
        # Submit in build order. A shared image's PrepareTask goes first and its units right after: the pool
        # starts tasks in submission order, so a unit never waits on rows that no worker is decoding.
        nonlocal shared
        while queue:
            group = queue[0]
            if group.prepare is not None:
                if shared >= MAX_SHARED_IMAGES:
                    return
                shared += 1
                prepare = group.prepare
                create_shared(prepare)
                if prepare.hash_input:
                    # Checksum in another worker: decoding is the critical path of a shared image.
                    inflight[pool.submit(run_hash, prepare.image_path)] = (group, "hash")
                    prepare = replace(prepare, hash_input=False)
                inflight[pool.submit(run_prepare, prepare)] = (group, None)
                group.outstanding += 1
            for unit in group.units:
                inflight[pool.submit(run_unit, unit)] = (group, unit)
            group.outstanding += len(group.units)
            queue.popleft()

    def settle(group: _Group, result: UnitResult) -> None:
        # A shared image's unit counts once its decode is known to have succeeded.
        if group.prepare is None or group.prepared:
            on_result(result)
        elif group.failed or result.aborted:
            discard(result)
        else:
            group.held.append(result)

    try:
        feed()
        while inflight:
            done, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in done:
                group, unit = inflight.pop(future)
                result = _future_result(future)
                if unit == "hash":
                    on_hashed(group, *result)
                    continue
                if unit is None:
                    if on_prepared(result, group):
                        group.prepared = True
                        for held in group.held:
                            on_result(held)
                    else:  # not decodable: on_prepared reported every unit as failed
                        group.failed = True
                        for held in group.held:
                            discard(held)
                    group.held = []
                else:
                    settle(group, result)
                group.outstanding -= 1
                if group.outstanding == 0 and group.prepare is not None:
                    _remove_shared(group.prepare)
                    shared -= 1
            feed()
    except BrokenProcessPool:  # raised by submit() once a worker has died
        pool.shutdown(wait=True, cancel_futures=True)
        raise DatasetError(_BROKEN_POOL) from None
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise


def _remove_shared(prepare: PrepareTask) -> None:
    prepare.pixels_path.unlink(missing_ok=True)
    SharedRows.path_for(prepare.pixels_path).unlink(missing_ok=True)


def _future_result(future: Future):
    try:
        return future.result()
    except BrokenProcessPool:
        raise DatasetError(_BROKEN_POOL) from None
    except OSError as exc:
        raise DatasetError(f"writing outputs failed: {exc}") from None


def _guarded(fn: Callable, task: object) -> object:
    try:
        return fn(task)
    except OSError as exc:
        raise DatasetError(f"writing outputs failed: {exc}") from None


# ---------------------------------------------------------------------------------------------------------------
# Assembly
# ---------------------------------------------------------------------------------------------------------------


def _assemble(
    out_dir: Path,
    entries: list[_Entry],
    records: dict[tuple[str, str], dict[str, object]],
    problems: ProblemLog,
    options: BuildOptions,
    seed: int,
    source: dict[str, object],
    workers: int,
    version: str,
) -> BuildSummary:
    category_ids = {name: i + 1 for i, name in enumerate(options.classes)}
    outputs: dict[str, str] = {}
    inputs: dict[str, str] = {}
    manifest: list[dict[str, object]] = []
    counts: dict[str, dict[str, object]] = {}
    (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
    images_written = 0
    for split in source["splits"]:
        coco_images: list[dict[str, object]] = []
        coco_anns: list[dict[str, object]] = []
        fates = Counter({"kept": 0, "filtered": 0, "dropped": 0, "invalid": 0})
        per_class = Counter()
        source_images = 0
        expected: set[str] = set()
        for entry in (e for e in entries if e.split == split):
            if entry.label_sha256 is not None:
                inputs[entry.label_rel] = entry.label_sha256
            record = records.get(entry.key)
            decode_problem = None
            if record is not None:
                if record["input_sha256"]:
                    inputs[entry.image_rel] = record["input_sha256"]
                for reason, detail in record["problems"]:
                    problems.add(Problem(entry.image_rel, 0, reason, detail))
                    decode_problem = decode_problem or reason
            elif entry.image_sha256 is not None:
                inputs[entry.image_rel] = entry.image_sha256
            if entry.size is not None and decode_problem is None:
                source_images += 1
            kept_in: dict[int, list[str]] = {}
            best_iof = {int(k): v for k, v in record["best_iof"]} if record else {}
            for window in (record["windows"] if record else []):
                image_id = len(coco_images) + 1
                name = window["name"]
                coco_images.append({
                    "id": image_id,
                    "file_name": f"{name}.png",
                    "width": window["width"],
                    "height": window["height"],
                    "source": entry.stem,
                    "scale": window["scale"],
                    "window": window["window"],
                    "aug_copy": window["aug_copy"],
                })
                outputs[f"images/{split}/{name}.png"] = window["png_sha256"]
                outputs[f"labelTxt/{split}/{name}.txt"] = window["txt_sha256"]
                expected.update((f"{name}.png", f"{name}.txt"))
                for obj in window["objects"]:
                    coco_anns.append({
                        "id": len(coco_anns) + 1,
                        "image_id": image_id,
                        "category_id": category_ids[obj["category"]],
                        "bbox": obj["bbox"],
                        "area": obj["area"],
                        "segmentation": obj["segmentation"],
                        "iscrowd": 0,
                        "truncated": obj["truncated"],
                        "difficult": obj["difficult"],
                    })
                    per_class[obj["category"]] += 1
                    kept_in.setdefault(obj["object"], []).append(name)
            for idx, line in enumerate(entry.lines):
                status, reason = entry.status[idx], entry.reason[idx]
                extra: dict[str, object] = {}
                if status == "candidate":
                    if decode_problem is not None:
                        status, reason = "invalid", decode_problem
                    elif idx in kept_in:
                        status = "kept"
                    else:
                        status, reason = "dropped", "iof_below_threshold"
                        extra["best_iof"] = best_iof.get(idx, 0.0)
                elif status == "filtered":
                    reason = "class_not_selected"
                fates[status] += 1
                manifest.append({
                    "split": split,
                    "image": entry.stem,
                    "label": entry.label_rel,
                    "line": line,
                    "category": entry.categories[idx],
                    "status": status,
                    "reason": reason,
                    "windows": kept_in.get(idx, []),
                    "problems": entry.notes[idx],
                    **extra,
                })
        for sub, suffix in (("images", ".png"), ("labelTxt", ".txt")):
            folder = out_dir / sub / split
            for path in sorted(folder.iterdir()) if folder.is_dir() else []:
                if path.name.endswith(suffix) and path.name not in expected:
                    logger.warning("removing %s: not part of this build", path)
                    path.unlink()
        text = json_text(coco_document(options.classes, coco_images, coco_anns))
        _write_output(out_dir, f"annotations/{split}.json", text, outputs)
        images_written += len(coco_images)
        counts[split] = {
            "images": len(coco_images),
            "augmented_images": sum(1 for im in coco_images if im["aug_copy"]),
            "instances": len(coco_anns),
            "source_images": source_images,
            "source_objects": {"total": sum(fates.values()), **dict(fates)},
            "instances_per_class": {name: per_class[name] for name in options.classes},
        }
    _write_output(out_dir, "manifest.jsonl", jsonl_text(manifest), outputs)
    _write_output(out_dir, "problems.jsonl", jsonl_text(p.to_dict() for p in problems.problems), outputs)
    build = {
        "toolkit_version": version,
        "seed": seed,
        "options": options.to_dict(),
        "source": source,
        "runtime": {"workers": workers},
        "counts": counts,
        "problems": problems.counts(),
        "inputs": dict(sorted(inputs.items())),
        "outputs": dict(sorted(outputs.items())),
    }
    write_json(out_dir / "build.json", build, indent=1)
    return BuildSummary(out_dir, counts, problems.counts(), images_written=images_written)


def _write_output(out_dir: Path, rel: str, text: str, outputs: dict[str, str]) -> None:
    data = text.encode("utf-8")
    atomic_write_text(out_dir / rel, text)
    outputs[rel] = sha256_bytes(data)
