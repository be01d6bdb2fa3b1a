"""Tests of dotamini10.schedule and dotamini10.resume: which tasks run, in what groups, and what an interrupted
build leaves to do (small scenes planned and run in this process)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from test_build import SMALL, box, make_split

from dotamini10 import worker
from dotamini10.plan import ImagePlan, plan_units, unit_settings
from dotamini10.problems import ProblemLog
from dotamini10.read import find_splits
from dotamini10.resume import BuildState
from dotamini10.schedule import groups_of, run_groups
from dotamini10.sources import read_sources


def _plans(root: Path, out: Path, workers: int, pixels_dir: Path | None) -> list[ImagePlan]:
    images, _ = read_sources(root, find_splits(root), SMALL.classes, ProblemLog())
    settings = unit_settings(SMALL, out, seed=0)
    for sub in ("images", "labelTxt"):
        (out / sub / "train").mkdir(parents=True, exist_ok=True)
    return plan_units(images, SMALL, settings, workers, pixels_dir=pixels_dir)


def _scene(tmp_path: Path) -> Path:
    # big: 600 x 400 holds 24 of the 25 windows (cut into units with 2 workers); small: 100 x 100, one window;
    # empty: a train image with nothing selected (no windows, checksum only); orphan: a label without image.
    return make_split(tmp_path / "src", {"big": (600, 400), "small": (100, 100), "empty": (100, 100)},
                      {"big": [box(10, 10, 40, 30, "plane"), box(500, 300, 540, 330, "ship")],
                       "small": [box(5, 5, 25, 25, "plane")], "empty": [box(5, 5, 25, 25, "bridge")],
                       "orphan": [box(1, 1, 5, 5, "plane")]})


def test_groups_carry_each_checksum_once_and_share_only_the_cut_image(tmp_path):
    out = tmp_path / "out"
    plans = {p.image.stem: p for p in _plans(_scene(tmp_path), out, 2, BuildState(out).pixels_dir)}
    assert {stem: len(p.units) for stem, p in plans.items()} == {"big": 8, "empty": 0, "orphan": 0, "small": 1}
    groups = groups_of(plans.values())
    # Build order (sorted names); the orphan label has no image: nothing to checksum, nothing to run.
    assert [(g.checksum.stem if g.checksum else None, len(g.units), g.prepare is not None) for g in groups] == [
        ("big", 8, True), ("empty", 0, False), ("small", 1, False)]


def test_a_shared_image_run_in_this_process_gives_the_unshared_records(tmp_path):
    root = _scene(tmp_path)
    records = []
    for workers in (1, 2):  # the same scene unshared (1) and with its big image cut and shared (2)
        out = tmp_path / f"out{workers}"
        state = BuildState(out)
        plans = _plans(root, out, workers, state.pixels_dir)
        run_groups(groups_of(state.start(plans, resume=False)), None, state)
        state.check_complete()
        records.append({key: r.to_dict() for key, r in state.records.items()})
        assert state.shared_images == (workers == 2)
    assert records[0] == records[1]
    big = records[0][("train", "big")]
    assert big["input_sha256"] == hashlib.sha256((root / "images" / "big.png").read_bytes()).hexdigest()
    assert sorted(w["name"] for w in big["windows"]) == ["big__1__0___0", "big__1__472___272"]
    assert records[0][("train", "empty")]["windows"] == [] and ("train", "orphan") not in records[0]
    assert len(records[0][("train", "empty")]["input_sha256"]) == 64


def test_resume_runs_only_what_the_interrupted_build_left(tmp_path):
    root, out = _scene(tmp_path), tmp_path / "out"
    first = BuildState(out)
    plans = _plans(root, out, 2, None)  # big is cut into 8 units that each decode it (no shared pixels)
    pending = first.start(plans, resume=False)
    big = next(p for p in pending if p.image.stem == "big")
    for unit in big.units[:3]:  # three units of big finish, then the build dies
        first.unit_done(worker.run_unit(unit))
    parts = sorted(p.name for p in (out / ".work" / "units" / "train" / "big").iterdir())
    assert parts == sorted(f"{u.key}.json" for u in big.units[:3])

    second = BuildState(out)
    left = {p.image.stem: p for p in second.start(plans, resume=True)}
    assert second.done_windows == sum(len(u.windows) for u in big.units[:3])
    assert [u.key for u in left["big"].units] == [u.key for u in big.units[3:]]
    assert left["big"].checksum is not None and set(left) == {"big", "empty", "small"}
    # Everything but big's checksum: big stays unfinished, its parts on disk, no image record yet.
    for unit in left["big"].units:
        second.unit_done(worker.run_unit(unit))
    assert ("train", "big") not in second.records
    second.hash_done(worker.run_hash(left["big"].checksum))
    record = json.loads((out / ".work" / "records" / "train" / "big.json").read_text(encoding="utf-8"))
    assert record["input_sha256"] == hashlib.sha256((root / "images" / "big.png").read_bytes()).hexdigest()
    assert len(record["windows"]) == 2 and not (out / ".work" / "units" / "train" / "big").exists()
    worker.reset_cache()
