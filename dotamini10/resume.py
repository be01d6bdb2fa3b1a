"""What a build has finished, for its progress bar and for resuming it: the one owner of ``out_dir/.work``.

Notes:
    An image's parts are its units and its checksum. Every finished part of an unfinished image leaves a record
    under ``.work/units/{split}/{stem}/`` (a unit's ``UnitResult``, or ``sha256.json``); when the last part is
    done, an :class:`ImageRecord` under ``.work/records/{split}/{stem}.json`` marks the image finished and
    replaces them. ``resume=True`` skips finished images and parts, and the final files are assembled from the
    image records in sorted order, so a resumed build and an uninterrupted one are byte-identical, whatever the
    worker count. ``.work/state.json`` holds the build's fingerprint (options, seed, source, input file sizes
    and times): a resumed build must match it. The builder removes ``.work`` when the build completes.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import DatasetError
from .io import ProgressFn, json_text, read_json, read_json_if_valid, write_json
from .plan import ImagePlan
from .problems import Problem, StrictModeError
from .sources import SourceImage
from .worker import TIMING_KEYS, HashResult, PrepareResult, UnitResult

WORK_DIR = ".work"
#: Everything a build writes into its output folder.
OUTPUT_ENTRIES: tuple[str, ...] = (
    "images", "labelTxt", "annotations", "manifest.jsonl", "problems.jsonl", "build.json", WORK_DIR,
)
CHECKSUM_PART = "sha256"  # the name of an image's checksum among its part records (unit keys hold a "_")


@dataclass
class ImageRecord:
    """Everything the final files need from one finished source image.

    Attributes:
        split: Output split.
        stem: Source image name.
        input_sha256: Checksum of the image file.
        problems: ``(reason, detail)`` of a decode failure, sorted.
        processed: Windows considered.
        best_iof: Per candidate (index in the label file's objects), its largest area fraction in any window.
        windows: One record per written image, in output order (``worker.UnitResult.windows``).
    """

    split: str
    stem: str
    input_sha256: str | None
    problems: list[tuple[str, str]] = field(default_factory=list)
    processed: int = 0
    best_iof: dict[int, float] = field(default_factory=dict)
    windows: list[dict[str, object]] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "split": self.split,
            "stem": self.stem,
            "input_sha256": self.input_sha256,
            "problems": [list(p) for p in self.problems],
            "processed": self.processed,
            "best_iof": sorted([k, v] for k, v in self.best_iof.items()),
            "windows": self.windows,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ImageRecord:
        """Inverse of ``to_dict``."""
        return cls(data["split"], data["stem"], data["input_sha256"], [tuple(p) for p in data["problems"]],
                   data["processed"], {int(k): v for k, v in data["best_iof"]}, data["windows"])


@dataclass
class _Unfinished:
    """The parts of an image finished so far."""

    remaining: int
    results: list[UnitResult] = field(default_factory=list)
    input_sha256: str | None = None


class BuildState:
    """Progress and resume state of one build; receives every task result (``schedule.ResultSink``).

    Args:
        out_dir: The output folder (its ``.work`` holds the records).
        strict: Stop at the first image that fails to decode.
        progress: Called as ``progress(done_windows, total_windows)`` at the start and after every unit.
    """

    def __init__(self, out_dir: Path, *, strict: bool = False, progress: ProgressFn | None = None) -> None:
        self.out_dir = out_dir
        self.work = out_dir / WORK_DIR
        self.pixels_dir = self.work / "pixels"
        self.strict = strict
        self.progress = progress
        self.records: dict[tuple[str, str], ImageRecord] = {}
        self.windows_total = 0
        self.done_windows = 0
        self.resumed_images = 0
        self.shared_images = 0
        self.peak_rss_mb = 0.0
        self.timings = dict.fromkeys(TIMING_KEYS, 0.0)
        self._plans: dict[tuple[str, str], ImagePlan] = {}
        self._unfinished: dict[tuple[str, str], _Unfinished] = {}

    def check_fingerprint(self, fingerprint: dict[str, object], *, resume: bool) -> None:
        """Refuse to resume an interrupted build made with another recipe, then record this one's.

        Raises:
            DatasetError: ``resume`` and ``.work/state.json`` holds another fingerprint.
        """
        state = self.work / "state.json"
        current = _as_json(fingerprint)
        if resume and state.is_file():
            previous = read_json(state, what="resume state", error=DatasetError)
            if previous != current:
                changed = sorted(k for k in current if previous.get(k) != current[k])
                raise DatasetError(
                    f"--resume: the interrupted build in {self.out_dir} used other {', '.join(changed)}; "
                    "rerun with the same options or use --overwrite"
                )
        write_json(state, fingerprint, indent=1)

    def start(self, plans: Iterable[ImagePlan], *, resume: bool) -> list[ImagePlan]:
        """Take the build's plans, load what a previous run finished (``resume``) and report the start.

        Returns:
            The work still to do: for every unfinished image a copy of its plan with only its pending tasks.
        """
        self._plans = {plan.image.key: plan for plan in plans}
        self.windows_total = sum(plan.windows for plan in self._plans.values())
        pending = []
        for plan in self._plans.values():
            if not plan.units and plan.checksum is None:
                continue  # a label file without image: nothing to run, nothing to record
            left = self._load(plan, resume=resume)
            if left is not None:
                pending.append(left)
        shutil.rmtree(self.pixels_dir, ignore_errors=True)
        self.pixels_dir.mkdir(parents=True)
        self._report()
        return pending

    def _load(self, plan: ImagePlan, *, resume: bool) -> ImagePlan | None:
        """The pending part of ``plan`` after what a previous run left (``resume``); None when nothing is left."""
        image = plan.image
        record_path = self._record_path(image)
        if resume and record_path.is_file():
            self.records[image.key] = ImageRecord.from_dict(read_json(record_path, what="resume record",
                                                                      error=DatasetError))
            self.done_windows += plan.windows
            self.resumed_images += bool(plan.units)
            return None
        done = _Unfinished(remaining=len(plan.units) + (plan.checksum is not None))
        self._unfinished[image.key] = done
        if not resume:
            return plan
        units = []
        for unit in plan.units:
            path = self._part_path(image, unit.key)
            if not path.is_file():
                units.append(unit)
                continue
            done.results.append(UnitResult.from_dict(read_json(path, what="resume record", error=DatasetError)))
            done.remaining -= 1
            self.done_windows += len(unit.windows)
        checksum = plan.checksum
        checksum_path = self._part_path(image, CHECKSUM_PART)
        if checksum is not None and checksum_path.is_file():
            done.input_sha256 = read_json(checksum_path, what="resume record", error=DatasetError)["input_sha256"]
            done.remaining -= 1
            checksum = None
        if done.remaining == 0:  # every part done, but the run ended before the image record was written
            self._finish(plan)
            return None
        return replace(plan, units=units, checksum=checksum)

    # -- results (``schedule.ResultSink``) ------------------------------------------------------------------

    def hash_done(self, result: HashResult) -> None:
        """Record an image's checksum."""
        key = (result.split, result.stem)
        self.timings["hash"] += result.seconds
        self._unfinished[key].input_sha256 = result.input_sha256
        self._part_done(key, CHECKSUM_PART, {"input_sha256": result.input_sha256})

    def prepare_done(self, result: PrepareResult) -> None:
        """Account a shared image's decode."""
        self._account(result.timings, result.peak_rss_mb)
        if not result.problems:
            self.shared_images += 1

    def unit_done(self, result: UnitResult) -> None:
        """Record a unit's windows (or its image's decode problem) and report progress.

        Raises:
            StrictModeError: In strict mode, for a unit whose image failed to decode.
        """
        key = (result.split, result.stem)
        self._account(result.timings, result.peak_rss_mb)
        if result.problems and self.strict:
            reason, detail = result.problems[0]
            image = self._plans[key].image
            raise StrictModeError(Problem(image.image_rel or image.stem, 0, reason, detail).message())
        self._unfinished[key].results.append(result)
        self._part_done(key, result.key, result.to_dict())
        self.done_windows += result.processed
        self._report()

    def discard(self, result: UnitResult) -> None:
        """Delete what a unit wrote (its shared image failed to decode); only its timings count."""
        self._account(result.timings, 0.0)
        for window in result.windows:
            (self.out_dir / "images" / result.split / f"{window['name']}.png").unlink(missing_ok=True)
            (self.out_dir / "labelTxt" / result.split / f"{window['name']}.txt").unlink(missing_ok=True)

    def check_complete(self) -> None:
        """Raise when an image has parts that never reported back (a scheduling bug, never bad input)."""
        unfinished = [f"{split}/{stem}" for split, stem in self._unfinished]
        if unfinished:  # refuse to assemble a dataset with holes
            raise RuntimeError(f"parts of {', '.join(unfinished[:5])} did not all report back")

    # -- internals --------------------------------------------------------------------------------------------

    def _account(self, timings: dict[str, float], peak_rss_mb: float) -> None:
        for name, seconds in timings.items():
            self.timings[name] += seconds
        self.peak_rss_mb = max(self.peak_rss_mb, peak_rss_mb)

    def _part_done(self, key: tuple[str, str], part: str, record: dict[str, object]) -> None:
        done = self._unfinished[key]
        done.remaining -= 1
        plan = self._plans[key]
        if done.remaining == 0:
            self._finish(plan)  # the image record replaces the part records: the last part needs none
        else:
            write_json(self._part_path(plan.image, part), record)

    def _finish(self, plan: ImagePlan) -> None:
        """Merge an image's parts into its record (the image's done marker) and drop the part records."""
        image = plan.image
        done = self._unfinished.pop(image.key)
        order = {u.key: (u.factor, u.first_window) for u in plan.units}
        results = sorted((r for r in done.results if r.key in order), key=lambda r: order[r.key])
        best_iof: dict[int, float] = {}
        for r in results:
            for idx, iof in r.best_iof.items():
                best_iof[idx] = max(best_iof.get(idx, 0.0), iof)
        record = ImageRecord(
            image.split, image.stem, done.input_sha256,
            problems=sorted({tuple(p) for r in results for p in r.problems}),
            processed=sum(r.processed for r in results),
            best_iof=best_iof,
            windows=[w for r in results for w in r.windows],
        )
        write_json(self._record_path(image), record.to_dict())
        shutil.rmtree(self.work / "units" / image.split / image.stem, ignore_errors=True)
        self.records[image.key] = record

    def _record_path(self, image: SourceImage) -> Path:
        return self.work / "records" / image.split / f"{image.stem}.json"

    def _part_path(self, image: SourceImage, part: str) -> Path:
        return self.work / "units" / image.split / image.stem / f"{part}.json"

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.done_windows, self.windows_total)


def _as_json(value: object) -> object:
    """``value`` as it reads back from JSON (tuples become lists), for comparing with a file's content."""
    return json.loads(json_text(value))


def prepare_fresh(out_dir: Path, *, overwrite: bool, entries: tuple[str, ...] = OUTPUT_ENTRIES) -> None:
    """Make ``out_dir`` ready for a new build, deleting a previous one only with ``overwrite``.

    Args:
        out_dir: The output folder.
        overwrite: Delete a previous build's outputs.
        entries: Everything the build writes into ``out_dir``. Defaults to a DOTAmini10 build's.

    Raises:
        DatasetError: ``out_dir`` holds a build and ``overwrite`` is False.
    """
    present = [name for name in entries if (out_dir / name).exists()]
    if present and not overwrite:
        raise DatasetError(
            f"--out: {out_dir} already holds a build ({', '.join(present)}); "
            "pass --resume to continue it or --overwrite to replace it"
        )
    for name in present:
        path = out_dir / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def finished_build(out_dir: Path, recipe: dict[str, object], dota_root: Path | None) -> dict[str, object] | None:
    """``build.json`` of a finished build in ``out_dir`` made with the same recipe; None when there is none.

    Args:
        out_dir: The output folder.
        recipe: ``{"options": ..., "seed": ...}`` as ``build.json`` records them.
        dota_root: The requested source (None: the synthetic sample).

    Raises:
        DatasetError: ``out_dir`` holds a finished build with another recipe or source.
    """
    info = read_json_if_valid(out_dir / "build.json")
    if not isinstance(info, dict):
        return None
    source = info.get("source", {})
    same_source = (source.get("kind") == "synthetic" if dota_root is None
                   else source.get("dota_root") == str(Path(dota_root).resolve()))
    if any(info.get(k) != v for k, v in recipe.items()) or not same_source:
        raise DatasetError(
            f"--resume: {out_dir} holds a finished build with other options or inputs; use --overwrite to replace it"
        )
    return info
