"""Table plans (jobs, shared folders, filters, data problems) and outputs (md, csv, png, smoke labels)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from pipelines import tables
from pipelines.datasets import DataRootError
from pipelines.presets import SyntheticSpec, resolve_settings
from pipelines.job_folder import JobStatus
from pipelines.runner import Job, JobResult
from pipelines.tables import (
    SMOKE_BANNER,
    TABLE_SPECS,
    TableError,
    plan_table,
    render_csv,
    render_markdown,
    table_rows,
    write_outputs,
)

TINY = SyntheticSpec(num_train=2, num_test=1, image_size=64, objects_per_image=(1, 2), object_size=(8, 10))


def _result(row, variant, status=JobStatus.DONE, **metrics):
    job = Job(f"{row}__{variant}", row, variant, Path("/w") / f"{row}__{variant}")
    return JobResult(job, status, metrics=metrics, wall_s=120.0, log=job.work_dir / "job.log")


def test_table3_pairs_follow_the_paper():
    pairs = TABLE_SPECS["table3"].pairs()
    assert pairs[:3] == [("atss", "fpn"), ("menet", "fpn"), ("retinanet", "fpn")]
    assert ("atss", "hsfpn") not in pairs and len(pairs) == 28
    assert TABLE_SPECS["table4"].pairs() == [(r, v) for r in ("retinanet", "faster_rcnn", "cascade_rcnn") for v in ("fpn", "hsfpn")]


def test_rows_hold_ours_paper_deltas_and_gains():
    s = resolve_settings("paper", Path("/w"), gpus=2, launcher="pytorch")
    results = [_result("faster_rcnn", "fpn", AP=18.0, AP50=44.0), _result("faster_rcnn", "hsfpn", AP=20.5, AP50=49.0)]
    rows = table_rows("table3", results, s)
    fpn, hs = rows
    assert (fpn["method"], fpn["backbone"], hs["backbone"]) == ("Faster R-CNN", "R-50 + FPN", "R-50 + HS-FPN")
    assert (hs["AP"], hs["paper_AP"], hs["delta_AP"]) == (20.5, 20.3, 0.2)
    assert (hs["gain_AP"], hs["paper_gain_AP"]) == (2.5, 2.0)
    assert fpn["gain_AP"] is None and fpn["delta_AP50"] == -0.7
    assert hs["AP75"] is None and hs["delta_AP75"] is None  # not measured -> no delta
    assert hs["effective_batch"] == 2 and hs["init"] == "random" and hs["wall_s"] == 120.0


def test_markdown_and_csv_of_a_paper_run():
    s = resolve_settings("paper", Path("/w"))
    results = [
        _result("faster_rcnn", "hsfpn", AP=20.5),
        _result("faster_rcnn_nwd", "fpn", status=JobStatus.NOT_AVAILABLE),
        _result("grid_rcnn", "fpn", status=JobStatus.FAILED),
    ]
    results[2].error = "RuntimeError: out of memory"
    rows = table_rows("table3", results, s)
    md = render_markdown("table3", rows, s)
    assert md.startswith("# Table 3: main results on AI-TOD")
    assert "| Faster R-CNN | R-50 + HS-FPN | done | 20.5 (20.3, +0.2) |" in md
    assert "random init (no --pretrained)" in md and "SMOKE" not in md
    assert "- grid_rcnn / fpn: RuntimeError: out of memory (log: /w/grid_rcnn__fpn/job.log)" in md
    parsed = list(csv.DictReader(io.StringIO(render_csv("table3", rows, s))))
    assert [r["status"] for r in parsed] == ["done", "not available", "failed"]
    assert parsed[0]["AP"] == "20.5" and parsed[0]["paper_AP"] == "20.3" and parsed[1]["AP"] == ""
    assert {"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm", "delta_APm", "wall_s", "preset"} <= set(parsed[0])


def test_smoke_outputs_are_labelled_everywhere(tmp_path):
    s = resolve_settings("smoke", tmp_path)
    rows = table_rows("table4", [_result("retinanet", "fpn", AP=5.0), _result("retinanet", "hsfpn", AP=6.0)], s)
    paths = write_outputs("table4", rows, s, tmp_path)
    md = paths["md"].read_text()
    assert md.startswith("# [SMOKE] Table 4") and SMOKE_BANNER in md
    text = paths["csv"].read_text()
    assert text.startswith(f"# {SMOKE_BANNER}\n")
    assert all(r["preset"] == "smoke" for r in csv.DictReader(io.StringIO(text.split("\n", 1)[1])))
    assert "AP75" not in text.split("\n")[1]  # Table 4 has no AP75 / APvt
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table4.csv", "table4.md", "table4.png"]


def test_png_is_deterministic(tmp_path):
    s = resolve_settings("paper", tmp_path)
    rows = table_rows("table1", [_result("cascade_rcnn", "fpn", AP=19.0), _result("cascade_rcnn", "cp", AP=21.0)], s)
    a = write_outputs("table1", rows, s, tmp_path / "a")["png"].read_bytes()
    b = write_outputs("table1", rows, s, tmp_path / "b")["png"].read_bytes()
    assert a == b


def test_plan_shares_job_folders_between_tables(tmp_path):
    s = resolve_settings("smoke", tmp_path, synthetic=TINY)
    t1 = plan_table("table1", s, necks=["hfp"])
    t2 = plan_table("table2", s, necks=["hfp_a0.25"])
    assert t1.jobs[0].work_dir == t2.jobs[0].work_dir == tmp_path / "smoke" / "synthetic" / "cascade_rcnn__hfp"
    assert t1.jobs[0].config_text == t2.jobs[0].config_text  # same neck, same settings
    assert (tmp_path / "smoke" / "synthetic_data" / "synthetic.json").is_file()


def test_plan_filters_and_rejects_unknown_names(tmp_path):
    s = resolve_settings("smoke", tmp_path, synthetic=TINY)
    plan = plan_table("table4", s, rows=["faster_rcnn"], necks=["hsfpn"])
    assert [j.key for j in plan.jobs] == ["faster_rcnn__hsfpn"]
    assert "HSFPN" in plan.jobs[0].config_text
    with pytest.raises(TableError, match="unknown row\\(s\\) yolo; rows are retinanet, faster_rcnn, cascade_rcnn"):
        plan_table("table4", s, rows=["yolo"])
    with pytest.raises(TableError, match="unknown neck\\(s\\) sdp"):
        plan_table("table4", s, necks=["sdp"])
    with pytest.raises(TableError, match="table must be one of"):
        plan_table("table7", s)


def test_menet_is_planned_as_not_reproduced(tmp_path):
    s = resolve_settings("smoke", tmp_path, synthetic=TINY)
    plan = plan_table("table3", s, rows=["menet"])
    assert [(j.key, j.blocked) for j in plan.jobs] == [("menet__fpn", "not reproduced")]


def test_paper_preset_needs_a_valid_data_root(tmp_path):
    s = resolve_settings("paper", tmp_path)
    with pytest.raises(TableError, match="--data-root is required"):
        plan_table("table4", s, rows=["faster_rcnn"])
    bad = resolve_settings("paper", tmp_path, data_root=tmp_path / "nope")
    with pytest.raises(DataRootError, match="does not exist"):
        plan_table("table4", bad, rows=["faster_rcnn"])
    plan = plan_table("table4", bad, rows=["faster_rcnn"], necks=["fpn"], dry_run=True)
    text = plan.describe(with_configs=True)
    assert "PROBLEM: DOTAmini10 data root" in text and "pending" in text
    assert "# ---- resolved config of faster_rcnn__fpn" in text


def test_run_table_writes_outputs_and_settings(tmp_path, monkeypatch):
    seen = {}

    def fake_run_jobs(jobs, command, **kw):
        seen["argv"] = command(jobs[0])
        return [JobResult(j, JobStatus.DONE, metrics={"AP": 1.0}, wall_s=3.0) for j in jobs]

    monkeypatch.setattr(tables, "run_jobs", fake_run_jobs)
    outcome = tables.reproduce("table4", preset="smoke", work_dir=tmp_path, rows=["retinanet"], synthetic=TINY)
    assert seen["argv"][-3:] == [str(tmp_path / "smoke" / "synthetic" / "retinanet__fpn"), "--launcher", "none"]
    assert json.loads((tmp_path / "smoke" / "settings.json").read_text())["preset"] == "smoke"
    assert set(outcome.outputs) == {"md", "csv", "png"} and all(p.is_file() for p in outcome.outputs.values())
    assert tables.summarize(outcome).startswith("table4 [SMOKE")
    dry = tables.reproduce("table4", preset="smoke", work_dir=tmp_path / "dry", rows=["retinanet"], dry_run=True, synthetic=TINY)
    assert dry.results == [] and dry.outputs == {}
    assert not (tmp_path / "dry").exists()  # a dry run writes nothing
