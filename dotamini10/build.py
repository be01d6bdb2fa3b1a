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

The stages live in modules named for them: ``sources`` (read, validate, filter), ``plan`` (scale factors,
windows, units of work), ``schedule`` and ``pool`` (running the units in this process or in worker processes),
``worker`` (split, augment, write the windows), ``resume`` (progress, and the records an interrupted build
resumes from) and ``assemble`` (the index files). This module runs them in that order.
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .assemble import BuildInfo, assemble
from .classes import detect_dota_version
from .errors import DatasetError
from .io import ProgressFn, folder_lock, remove_temporaries
from .options import BuildOptions
from .plan import plan_units, unit_settings
from .pool import start_pool
from .problems import ProblemLog
from .read import find_splits
from .resume import WORK_DIR, BuildState, finished_build, prepare_fresh
from .schedule import groups_of, run_groups
from .sources import read_sources, synthetic_source

__all__ = ["BuildOptions", "BuildSummary", "build_dotamini10"]


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


def build_dotamini10(
    out_dir: Path,
    *,
    dota_root: Path | None = None,
    options: BuildOptions | None = None,
    seed: int = 0,
    workers: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
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
    with folder_lock(out_dir, what="build output", error=DatasetError):  # one build at a time in a folder
        work = out_dir / WORK_DIR
        if not resume:
            prepare_fresh(out_dir, overwrite=overwrite)
        elif not work.is_dir() and (out_dir / "build.json").is_file():
            info = finished_build(out_dir, {"options": options.to_dict(), "seed": seed}, dota_root)
            if info is not None:
                return _finished_summary(out_dir, info)
        work.mkdir(parents=True, exist_ok=True)
        # Worker processes start in the background while this process reads and plans.
        pool = start_pool(workers) if workers > 1 else None
        try:
            summary = _build(out_dir, dota_root, options, seed, workers, resume, progress, pool)
            summary.elapsed = time.perf_counter() - started
            return summary
        finally:
            if pool is not None and pool.exception() is None:
                pool.result().shutdown(wait=True, cancel_futures=True)


def _build(
    out_dir: Path,
    dota_root: Path | None,
    options: BuildOptions,
    seed: int,
    workers: int,
    resume: bool,
    progress: ProgressFn | None,
    pool: Future[ProcessPoolExecutor] | None,
) -> BuildSummary:
    """The body of ``build_dotamini10`` once the output folder is ready (``pool`` is None for one worker)."""
    t0 = time.perf_counter()
    state = BuildState(out_dir, strict=options.strict, progress=progress)
    root, source = _source(state.work, dota_root, seed)
    problems = ProblemLog(strict=options.strict)
    splits = find_splits(root)
    source["layout"] = "release" if splits[0].images.parent != root else "split-folder"
    images, input_stats = read_sources(root, splits, options.classes, problems)
    source["splits"] = [s.name for s in splits]
    source["dota_version"] = detect_dota_version(o.category for im in images for o in im.objects)
    plans = plan_units(images, options, unit_settings(options, out_dir, seed), workers, pixels_dir=state.pixels_dir)
    version = _toolkit_version()  # looked up now, while the workers start, rather than at the end
    read_seconds = time.perf_counter() - t0

    state.check_fingerprint({"options": options.to_dict(), "seed": seed, "source": source, "inputs": input_stats},
                            resume=resume)
    _make_output_folders(out_dir, source["splits"])
    groups = groups_of(state.start(plans, resume=resume))
    run_groups(groups, pool.result() if pool is not None and groups else None, state)
    state.check_complete()

    counts = assemble(out_dir, images, state.records, problems, BuildInfo(version, seed, options, source, workers))
    shutil.rmtree(state.work, ignore_errors=True)
    return BuildSummary(
        out_dir, counts, problems.counts(), windows_total=state.windows_total,
        images_written=sum(c["images"] for c in counts.values()), resumed_images=state.resumed_images,
        timings={"read": read_seconds, **state.timings}, worker_peak_rss_mb=state.peak_rss_mb,
        shared_images=state.shared_images,
    )


def _source(work: Path, dota_root: Path | None, seed: int) -> tuple[Path, dict[str, object]]:
    """The folder to read and ``build.json``'s description of it: the user's DOTA root, or the synthetic sample
    generated once into ``.work`` (reused on resume)."""
    if dota_root is None:
        return synthetic_source(work, seed), {"kind": "synthetic", "seed": seed}
    root = Path(dota_root).resolve()
    return root, {"kind": "dota", "dota_root": str(root)}


def _make_output_folders(out_dir: Path, splits: list[str]) -> None:
    for split in splits:
        for sub in ("images", "labelTxt"):
            (out_dir / sub / split).mkdir(parents=True, exist_ok=True)
    # What a killed run was writing when it died never reached its final name.
    remove_temporaries(out_dir / "images")
    remove_temporaries(out_dir / "labelTxt")


def _finished_summary(out_dir: Path, info: dict[str, object]) -> BuildSummary:
    counts = info.get("counts", {})
    images = sum(int(c.get("images", 0)) for c in counts.values())
    return BuildSummary(out_dir, counts, info.get("problems", {}), images_written=images, already_complete=True)


def _toolkit_version() -> str:
    from . import __version__

    return __version__
