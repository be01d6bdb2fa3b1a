"""Repeated seeds: the spread arithmetic, the seeds' jobs and folders, and the tables' mean ± std, per-seed values,
paired gains and missing seeds (md, csv, png)."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipelines.detectors import DETECTORS, VARIANTS, build_job_config
from pipelines.job_folder import JobStatus
from pipelines.presets import SettingsError, SyntheticSpec, resolve_settings
from pipelines.runner import Job, JobResult
from pipelines.seeds import SeedError, format_spread, paired_gain, resolve_seeds, seed_key, seed_suffix, spread
from pipelines.tables import plan_table, render_csv, render_markdown, table_rows, write_outputs

TINY = SyntheticSpec(num_train=2, num_test=1, image_size=64, objects_per_image=(1, 2), object_size=(8, 10))


def test_spread_by_hand():
    # 12.0 and 12.6: mean 12.3, deviations -0.3 and 0.3, sample variance 0.18 / 1.
    s = spread({0: 12.0, 1: 12.6, 2: None})
    assert (s.n, s.values) == (2, {0: 12.0, 1: 12.6})
    assert math.isclose(s.mean, 12.3) and math.isclose(s.std, math.sqrt(0.18))
    assert format_spread(s) == "12.3 ± 0.4"
    one = spread({3: 5.0})
    assert (one.mean, one.std, format_spread(one)) == (5.0, None, "5.0")
    assert format_spread(spread({})) == "-" and spread({0: None}).n == 0


def test_paired_gain_uses_the_seeds_both_have():
    fpn = {0: 10.0, 1: 11.0, 2: 12.0}
    hs = {0: 11.0, 1: 13.0, 2: None, 3: 20.0}
    gain = paired_gain(fpn, hs)
    assert gain.values == {0: 1.0, 1: 2.0}  # seed 2 failed for HS-FPN, seed 3 has no FPN run
    assert math.isclose(gain.mean, 1.5) and math.isclose(gain.std, math.sqrt(0.5))
    assert format_spread(gain, signed=True) == "+1.5 ± 0.7"


@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=8), st.floats(-50, 50, allow_nan=False))
def test_a_constant_shift_moves_the_mean_and_keeps_the_std(values, shift):
    base = spread(dict(enumerate(values)))
    moved = spread({i: v + shift for i, v in enumerate(values)})
    assert math.isclose(moved.mean, base.mean + shift, abs_tol=1e-9)
    assert math.isclose(moved.std, base.std, rel_tol=1e-6, abs_tol=1e-6)
    # The paired gain of a constant shift is exactly that shift, with no spread.
    gain = paired_gain(dict(enumerate(values)), {i: v + shift for i, v in enumerate(values)})
    assert math.isclose(gain.mean, shift, abs_tol=1e-9) and gain.std < 1e-6


def test_seed_options_and_names():
    assert resolve_seeds(None, None) is None
    assert resolve_seeds(3, None) == (0, 1, 2) and resolve_seeds(None, [4, 1]) == (4, 1)
    for count, listed, message in ((2, [0], "not both"), (0, None, ">= 1"), (None, [1, 1], "distinct"),
                                   (None, [-1], "distinct")):
        with pytest.raises(SeedError, match=message):
            resolve_seeds(count, listed)
    assert (seed_suffix(0), seed_suffix(2)) == ("", "__s2")
    assert seed_key("a__fpn", 0, (0,)) == "a__fpn" and seed_key("a__fpn", 0, (0, 1)) == "a__fpn__s0"
    with pytest.raises(SettingsError, match="seeds must be distinct"):
        resolve_settings("smoke", Path("/w"), seeds=(1, 1))


def test_each_seed_is_a_job_and_seed_zero_keeps_the_single_runs_folder(tmp_path):
    one = plan_table("table3", resolve_settings("smoke", tmp_path, synthetic=TINY), rows=["retinanet"], necks=["fpn"])
    three = plan_table("table3", resolve_settings("smoke", tmp_path, synthetic=TINY, seeds=(0, 1, 2)),
                       rows=["retinanet", "menet"], necks=["fpn"])
    assert [j.key for j in one.jobs] == ["retinanet__fpn"] and one.jobs[0].seed == 0
    runs = [j for j in three.jobs if j.row == "retinanet"]
    assert [j.key for j in runs] == ["retinanet__fpn__s0", "retinanet__fpn__s1", "retinanet__fpn__s2"]
    assert [j.work_dir.name for j in runs] == ["retinanet__fpn", "retinanet__fpn__s1", "retinanet__fpn__s2"]
    assert runs[0].work_dir == one.jobs[0].work_dir and runs[0].fingerprint == one.jobs[0].fingerprint
    assert len({j.fingerprint for j in runs}) == 3
    assert "seed=1" in runs[1].config_text and "randomness = dict(seed=1)" in runs[1].config_text
    # A row that cannot run is one blocked job, not one per seed.
    assert [(j.key, j.blocked) for j in three.jobs if j.row == "menet"] == [("menet__fpn__s0", JobStatus.NOT_REPRODUCED)]


def test_the_seed_reaches_mmengines_randomness_and_the_samplers_shuffle(tmp_path):
    s = resolve_settings("smoke", tmp_path)
    layout = plan_table("table3", s, rows=["retinanet"], necks=["fpn"], dry_run=True).layout
    cfg = build_job_config(DETECTORS["faster_rcnn"], VARIANTS["hsfpn"], layout, s, seed=7)
    assert cfg.randomness == dict(seed=7) and cfg.train_dataloader.sampler.seed == 7
    assert cfg.train_dataloader.sampler.shuffle


def _result(row, variant, seed, status=JobStatus.DONE, **metrics):
    job = Job(f"{row}__{variant}__s{seed}", row, variant, Path("/w") / f"{row}__{variant}{seed_suffix(seed)}", seed=seed)
    error = None if status is JobStatus.DONE else "RuntimeError: out of memory"
    return JobResult(job, status, metrics=metrics, wall_s=60.0, log=job.work_dir / "job.log", error=error)


def _three_seeds(tmp_path):
    s = resolve_settings("smoke", tmp_path, seeds=(0, 1, 2))
    results = [
        _result("retinanet", "fpn", 0, AP=12.0, AP50=30.0),
        _result("retinanet", "fpn", 1, AP=12.6, AP50=31.0),
        _result("retinanet", "fpn", 2, AP=12.3, AP50=32.0),
        _result("retinanet", "hsfpn", 0, AP=13.0, AP50=33.0),
        _result("retinanet", "hsfpn", 1, AP=14.0, AP50=34.0),
        _result("retinanet", "hsfpn", 2, JobStatus.FAILED),
    ]
    return s, table_rows("table4", results, s)


def test_rows_of_several_seeds_hold_mean_std_each_seed_and_the_paired_gain(tmp_path):
    s, (fpn, hs) = _three_seeds(tmp_path)
    assert (fpn["status"], fpn["n"], fpn["missing"], fpn["seeds"]) == ("done", 3, "", "0;1;2")
    assert (fpn["AP"], fpn["AP_std"], fpn["AP_n"]) == (12.3, 0.3, 3)  # deviations -0.3, 0.3, 0: variance 0.09
    assert (fpn["AP50"], fpn["AP50_std"]) == (31.0, 1.0)
    assert (fpn["AP_s0"], fpn["AP_s1"], fpn["AP_s2"]) == (12.0, 12.6, 12.3)
    assert (hs["status"], hs["n"], hs["missing"]) == ("2 done, 1 failed", 2, "2")
    assert (hs["AP"], hs["AP_std"], hs["AP_s2"]) == (13.5, 0.71, None)
    # Gains 13.0 - 12.0 and 14.0 - 12.6 on the seeds both finished: 1.0 and 1.4.
    assert (hs["gain_AP"], hs["gain_AP_std"], hs["gain_AP_n"]) == (1.2, 0.28, 2)
    assert hs["paper_AP"] is not None and hs["delta_AP"] == round(13.5 - hs["paper_AP"], 2)
    assert hs["error"] == "seed 2: RuntimeError: out of memory" and hs["log"] == "/w/retinanet__hsfpn__s2/job.log"


def test_markdown_csv_and_png_of_several_seeds(tmp_path):
    s, rows = _three_seeds(tmp_path)
    md = render_markdown("table4", rows, s)
    assert "- seeds: 0, 1, 2, one job each per row and neck" in md
    assert "| RetinaNet* | R-50 + FPN | done | 3/3 | 12.3 ± 0.3 (" in md
    assert "| RetinaNet* | R-50 + HS-FPN | 2 done, 1 failed | 2/3 (missing s2) | 13.5 ± 0.7 (" in md
    assert "| +1.2 ± 0.3 (n=2) (" in md
    assert "| RetinaNet* | R-50 + HS-FPN | 1 | 14.0 | 34.0 |" in md and "| RetinaNet* | R-50 + HS-FPN | 2 | - | - |" in md
    parsed = list(csv.DictReader(io.StringIO(render_csv("table4", rows, s).split("\n", 1)[1])))
    assert parsed[1]["AP"] == "13.5" and parsed[1]["AP_std"] == "0.71" and parsed[1]["AP_s1"] == "14.0"
    assert parsed[1]["missing"] == "2" and parsed[1]["AP_s2"] == ""
    paths = write_outputs("table4", rows, s, tmp_path / "out")
    again = write_outputs("table4", rows, s, tmp_path / "again")
    assert paths["png"].read_bytes() == again["png"].read_bytes()  # error bars and seed dots drawn deterministically


def test_one_default_seed_keeps_the_single_run_layout(tmp_path):
    s = resolve_settings("smoke", tmp_path)
    job = Job("retinanet__fpn", "retinanet", "fpn", Path("/w/retinanet__fpn"))
    rows = table_rows("table4", [JobResult(job, JobStatus.DONE, metrics={"AP": 5.0})], s)
    assert "AP_std" not in rows[0] and "seeds" not in rows[0] and rows[0]["AP"] == 5.0
    assert "Seeds" not in render_markdown("table4", rows, s)
