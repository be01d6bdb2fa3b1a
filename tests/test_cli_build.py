"""Tests of the ``hsfpn-data build-dotamini10`` command."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from cli import data_app
from test_build import box, make_split

runner = CliRunner()


def test_help_lists_the_options():
    result = runner.invoke(data_app, ["build-dotamini10", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--dota-root", "--out", "--workers", "--seed", "--strict", "--scale-mode", "--scales", "--resume",
                   "--quiet"):
        assert option in result.output


def test_build_prints_a_summary_and_writes_the_dataset(tmp_path):
    root = make_split(tmp_path / "src", {"a": (300, 200)}, {"a": [box(10, 10, 40, 30, "plane"), "1 2 plane"]})
    out = tmp_path / "out"
    args = ["build-dotamini10", "--dota-root", str(root), "--out", str(out), "--crop-size", "128", "--stride", "96",
            "--scale-mode", "fixed", "--scales", "1.0", "--workers", "1", "--quiet"]
    result = runner.invoke(data_app, args)
    assert result.exit_code == 0, result.output
    assert "train: 1 images (0 augmented), 1 instances; source objects 2: kept 1" in result.output
    assert "1 input problems (token_count 1)" in result.output
    assert "windows" not in result.output.split("train:")[0]  # --quiet: no progress bar
    info = json.loads((out / "build.json").read_text(encoding="utf-8"))
    assert info["options"]["crop_size"] == 128 and info["options"]["scales"] == [1.0]

    # A second run without --resume/--overwrite is an expected failure: one line, exit code 1.
    again = runner.invoke(data_app, args)
    assert again.exit_code == 1
    assert "--resume" in again.output and "Traceback" not in again.output
    done = runner.invoke(data_app, [*args, "--resume"])
    assert done.exit_code == 0 and "already complete" in done.output


def test_progress_bar_is_shown_without_quiet(tmp_path):
    root = make_split(tmp_path / "src", {"a": (150, 150)}, {"a": [box(10, 10, 40, 30, "plane")]})
    result = runner.invoke(data_app, ["build-dotamini10", "--dota-root", str(root), "--out", str(tmp_path / "o"),
                                      "--crop-size", "128", "--stride", "96", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "windows" in result.output and "ETA" in result.output


def test_strict_stops_at_the_first_problem_with_file_and_line(tmp_path):
    root = make_split(tmp_path / "src", {"a": (300, 200)}, {"a": [box(10, 10, 40, 30, "plane"), "1 2 x y plane 0"]})
    result = runner.invoke(data_app, ["build-dotamini10", "--dota-root", str(root), "--out", str(tmp_path / "o"),
                                      "--strict", "--quiet", "--workers", "1"])
    assert result.exit_code == 1
    assert "error: labelTxt/a.txt:4: token_count" in result.output


def test_bad_options_are_expected_failures(tmp_path):
    result = runner.invoke(data_app, ["build-dotamini10", "--out", str(tmp_path / "o"), "--scale-range", "0.5",
                                      "--quiet"])
    assert result.exit_code == 1 and "--scale-range" in result.output
    result = runner.invoke(data_app, ["build-dotamini10", "--out", str(tmp_path / "o"), "--classes", "plane,jet",
                                      "--quiet"])
    assert result.exit_code == 1 and "'jet' is not a DOTA class" in result.output
