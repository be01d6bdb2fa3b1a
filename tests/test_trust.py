"""No file the user did not ask to trust runs code: a checkpoint whose unpickling would create a marker file is
planted beside a ``job.json`` (what a job folder looks like) and handed to ``detect``, ``visualize`` and ``train``.
Each refuses it in one line, and the marker never appears."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

import cli
from dotamini10.io import sha256_file
from pipelines.job_folder import JobFolder
from test_train import PATHS, write_coco

runner = CliRunner()


class Payload:
    """Unpickling this runs ``touch MARKER`` (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path) -> Path:
    """A file that looks like the toolkit's model.pth (weights and meta) and runs code when unpickled."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "meta": {"dataset_meta": Payload(marker)}}, path,
               pickle_module=pickle)
    return path


@pytest.fixture()
def job_folder(tmp_path: Path) -> tuple[Path, Path]:
    """A folder with an empty job.json and a planted model.pth; the marker the plant would create."""
    folder = tmp_path / "job"
    folder.mkdir()
    (folder / "job.json").write_text("{}")
    marker = tmp_path / "PWNED"
    return plant(folder / "model.pth", marker), marker


def one_line_error(result) -> str:
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_the_plant_would_run_code(tmp_path):
    # The test has teeth: an unguarded load of the planted file creates the marker.
    path, marker = plant(tmp_path / "m.pth", tmp_path / "marker"), tmp_path / "marker"
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_detect_refuses_a_planted_checkpoint_beside_job_json(job_folder, tmp_path):
    path, marker = job_folder
    image = tmp_path / "scene.png"
    image.write_bytes(b"")
    result = runner.invoke(cli.repro_app, ["detect", "--config", "faster_rcnn", "--checkpoint", str(path),
                                           "--images", str(image), "--out", str(tmp_path / "out")])
    assert "not a readable weights-only checkpoint" in one_line_error(result)
    assert not marker.exists()


def test_visualize_refuses_a_planted_checkpoint_beside_job_json(job_folder, tmp_path):
    path, marker = job_folder
    image = tmp_path / "img.png"
    import cv2
    import numpy as np

    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    result = runner.invoke(cli.repro_app, ["visualize", "frequencies", "--image", str(image), "--out",
                                           str(tmp_path / "out"), "--config", "faster_rcnn", "--checkpoint", str(path)])
    assert "not a readable weights-only checkpoint" in one_line_error(result)
    assert not marker.exists()


def _train(tmp_path: Path, work: Path) -> object:
    data = tmp_path / "mine"
    write_coco(data, "train", 2)
    write_coco(data, "val", 1, seed=1)
    args = ["train", "--config", "faster_rcnn", "--data-root", str(data), *PATHS, "--work-dir", str(work),
            "--preset", "smoke", "--img-scale", "64", "--epochs", "2", "--milestones", "2", "--report-every", "60"]
    return runner.invoke(cli.repro_app, args)


def test_train_resumes_only_a_checkpoint_the_job_recorded(tmp_path):
    # A work dir handed over with a planted epoch checkpoint named by last_checkpoint: no digest recorded for it.
    work, marker = tmp_path / "run", tmp_path / "PWNED"
    planted = plant(work / "epoch_1.pth", marker)
    (work / "job.json").write_text("{}")
    (work / "last_checkpoint").write_text(str(planted))
    line = one_line_error(_train(tmp_path, work))
    assert "epoch_1.pth: not a checkpoint this job saved (no digest recorded for it" in line
    assert not marker.exists()
    assert not (work / "job.log").exists()  # refused before any job process started


@pytest.mark.slow
def test_a_forged_digest_still_loads_nothing_but_weights(tmp_path):
    # Even with a digest record forged to match, the resume loads weights-only under the allowlist: the job
    # fails on the planted object and the marker never appears.
    work, marker = tmp_path / "run", tmp_path / "PWNED"
    planted = plant(work / "epoch_1.pth", marker)
    (work / "last_checkpoint").write_text(str(planted))
    (work / "checkpoints.json").write_text(json.dumps({"epoch_1.pth": sha256_file(planted)}))
    result = _train(tmp_path, work)
    assert result.exit_code == 1, result.output
    assert "failed" in result.output and "Weights only load failed" in JobFolder(work).log_tail()
    assert not marker.exists()
