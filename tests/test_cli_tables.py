"""The table1-4 commands: help, dry run, option parsing into the library call, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import cli
from pipelines import tables
from pipelines.job_folder import JobStatus
from pipelines.runner import Job, JobResult

runner = CliRunner()


@pytest.mark.parametrize("table", ["table1", "table2", "table3", "table4"])
def test_help_lists_the_shared_options(table):
    result = runner.invoke(cli.repro_app, [table, "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--data-root", "--work-dir", "--preset", "--rows", "--necks", "--gpus", "--launcher",
                   "--pretrained", "--dry-run"):
        assert option in result.output
    assert f"hsfpn-repro {table} --preset smoke" in result.output


@pytest.mark.parametrize("table", ["table1", "table2", "table3", "table4"])
def test_the_smoke_example_of_the_help_is_a_valid_command(table, tmp_path):
    # The example names a row of this table (table1 and table2 have only cascade_rcnn); dry-run it.
    help_text = runner.invoke(cli.repro_app, [table, "--help"], terminal_width=200).output
    example = next(line.split() for line in help_text.splitlines() if f"{table} --preset smoke" in line)
    args = example[example.index(table):]
    args[args.index("--work-dir") + 1] = str(tmp_path)
    result = runner.invoke(cli.repro_app, [*args, "--dry-run"])
    assert result.exit_code == 0, result.output
    assert not any(tmp_path.iterdir())  # a dry run writes nothing


def test_dry_run_prints_the_plan_and_configs(tmp_path):
    result = runner.invoke(
        cli.repro_app, ["table4", "--preset", "smoke", "--work-dir", str(tmp_path), "--rows", "faster_rcnn", "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert "[SMOKE]" in result.output and "faster_rcnn__hsfpn" in result.output
    assert "# ---- resolved config of faster_rcnn__fpn" in result.output and "type='HSFPN'" in result.output


def test_bad_data_root_exits_1_with_one_line(tmp_path):
    result = runner.invoke(cli.repro_app, ["table3", "--data-root", str(tmp_path / "none"), "--work-dir", str(tmp_path),
                                           "--gpus", "0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [f"error: AI-TOD data root {tmp_path / 'none'} does not exist"]


def test_gpus_without_cuda_stop_before_any_file_is_written(tmp_path, monkeypatch):
    # The paper preset's default --gpus 1 on a machine without CUDA (forced here, whatever this machine has).
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    work = tmp_path / "runs"
    result = runner.invoke(cli.repro_app, ["table3", "--data-root", str(tmp_path / "none"), "--work-dir", str(work)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: --gpus 1: this machine has no CUDA device; --gpus 0 runs the job on the CPU instead, or run it where "
        "the GPUs are"]
    assert not work.exists()
    # The smoke preset generates its data first: with --gpus 1 it stops before that too.
    result = runner.invoke(cli.repro_app, ["table4", "--preset", "smoke", "--gpus", "1", "--work-dir", str(work)])
    assert result.exit_code == 1 and "--gpus 1: this machine has no CUDA device" in result.output
    assert not work.exists()


def test_bad_option_values_exit_1(tmp_path):
    result = runner.invoke(cli.repro_app, ["table1", "--preset", "smoke", "--necks", "fpn,nope", "--dry-run",
                                           "--work-dir", str(tmp_path)])
    assert result.exit_code == 1 and "unknown neck(s) nope" in result.output
    result = runner.invoke(cli.repro_app, ["table1", "--preset", "quick", "--work-dir", str(tmp_path)])
    assert result.exit_code == 1 and "preset must be one of paper, smoke" in result.output


def test_options_reach_the_library_and_failures_exit_1(tmp_path, monkeypatch):
    seen = {}

    def fake_reproduce(table, **kwargs):
        seen.update(kwargs, table=table)
        plan = tables.Plan(tables.TABLE_SPECS[table], None, None, [], tmp_path)
        job = Job("faster_rcnn__fpn", "faster_rcnn", "fpn", tmp_path)
        outcome = tables.TableOutcome(plan, results=[JobResult(job, status)])
        return outcome

    monkeypatch.setattr(tables, "reproduce", fake_reproduce)
    monkeypatch.setattr(tables, "summarize", lambda outcome: "summary")
    status = JobStatus.DONE
    args = ["table3", "--data-root", "/d", "--work-dir", "/w", "--rows", "faster_rcnn, cascade_rcnn", "--necks", "hsfpn",
            "--gpus", "2", "--launcher", "pytorch", "--epochs", "6", "--milestones", "4,5", "--pretrained", "/p",
            "--img-scale", "1024"]
    result = runner.invoke(cli.repro_app, args)
    assert result.exit_code == 0 and result.output == "summary\n"
    assert seen["table"] == "table3" and seen["rows"] == ["faster_rcnn", "cascade_rcnn"] and seen["necks"] == ["hsfpn"]
    assert (seen["gpus"], seen["launcher"], seen["max_epochs"], seen["milestones"]) == (2, "pytorch", 6, [4, 5])
    assert seen["data_root"] == Path("/d") and seen["pretrained"] == Path("/p") and seen["work_dir"] == Path("/w")
    assert seen["batch_per_gpu"] is None and seen["auto_scale_lr"] is None  # not given: the preset decides
    assert seen["img_scale"] == 1024
    status = JobStatus.FAILED
    result = runner.invoke(cli.repro_app, args)
    assert result.exit_code == 1 and "1 job(s) failed" in result.output
