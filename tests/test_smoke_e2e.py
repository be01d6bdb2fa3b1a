"""The smoke preset end to end for one detector (trimmed): data, job process, AI-TOD metric, resume, tables.

A real job process trains Faster R-CNN with the HS-FPN for one epoch on a tiny synthetic set, is evaluated
by AITODMetric and lands in table3.md / .csv / .png. Then the job's done marker is removed, as if the process
had died after its last checkpoint: the next run resumes from that mmengine checkpoint (the torch >= 2.6
weights_only case) and evaluates again without training.

A second case trains FPN and HS-FPN with two seeds each and recomputes the table's mean, sample std and paired gain
from the per-seed done.json files, and reads a job's TensorBoard events back.
"""

from __future__ import annotations

import csv
import io
import json
import math

import pytest

from pipelines.presets import SyntheticSpec
from pipelines.job_folder import JobStatus
from pipelines.tables import reproduce

TRIMMED = SyntheticSpec(num_train=4, num_test=2, image_size=128, objects_per_image=(3, 5), object_size=(8, 16))


@pytest.mark.slow
def test_smoke_table3_one_detector_end_to_end(tmp_path):
    events = []
    kwargs = dict(
        preset="smoke",
        work_dir=tmp_path,
        rows=["faster_rcnn"],
        necks=["hsfpn"],
        progress=events.append,
        synthetic=TRIMMED,
        img_scale=128,
        max_epochs=1,
        milestones=(1,),
    )
    outcome = reproduce("table3", **kwargs)
    result = outcome.results[0]
    assert result.status == JobStatus.DONE, (result.error, result.log and result.log.read_text()[-3000:])
    assert set(result.metrics) == {"AP", "AP50", "AP75", "APvt", "APt", "APs", "APm"}
    assert result.metrics["AP"] is not None and 0.0 <= result.metrics["AP"] <= 100.0
    job_dir = tmp_path / "smoke" / "synthetic" / "faster_rcnn__hsfpn"
    assert (job_dir / "epoch_1.pth").is_file() and "type='HSFPN'" in (job_dir / "job_config.py").read_text()
    assert [e.state for e in events] == ["starting", "done"]

    md = (tmp_path / "smoke" / "table3.md").read_text()
    assert md.startswith("# [SMOKE] Table 3") and "| Faster R-CNN | R-50 + HS-FPN | done |" in md
    rows = list(csv.DictReader(io.StringIO((tmp_path / "smoke" / "table3.csv").read_text().split("\n", 1)[1])))
    assert rows[0]["preset"] == "smoke" and rows[0]["paper_AP"] == "20.3" and rows[0]["status"] == "done"
    assert (tmp_path / "smoke" / "table3.png").stat().st_size > 1000

    # Interrupted after the last checkpoint: resume (mmengine checkpoint under torch's weights_only default).
    (job_dir / "done.json").unlink()
    events.clear()
    again = reproduce("table3", **kwargs).results[0]
    assert again.status == JobStatus.DONE, again.error
    assert events[0].state == "resuming" and events[0].detail == "from epoch_1.pth"
    assert json.loads((job_dir / "done.json").read_text())["resumed_from"] == str(job_dir / "epoch_1.pth")
    assert again.metrics == result.metrics  # same weights, same evaluation

    # Finished: a third run skips it.
    assert reproduce("table3", **kwargs).results[0].status == JobStatus.SKIPPED


def _scalars(job_dir):
    """Every scalars.json entry of a job folder, in file order."""
    lines = [line for path in sorted(job_dir.glob("*/vis_data/scalars.json")) for line in path.read_text().splitlines()]
    return [json.loads(line) for line in lines]


@pytest.mark.slow
def test_smoke_table_of_two_seeds_reports_mean_std_and_the_paired_gain(tmp_path):
    outcome = reproduce("table3", preset="smoke", work_dir=tmp_path, rows=["faster_rcnn"], necks=["fpn", "hsfpn"],
                        seeds=(0, 1), synthetic=TRIMMED, img_scale=128, max_epochs=1, milestones=(1,))
    assert [r.status for r in outcome.results] == [JobStatus.DONE] * 4, [r.error for r in outcome.results]
    base = tmp_path / "smoke" / "synthetic"
    folders = {(neck, seed): base / f"faster_rcnn__{neck}{'__s1' if seed else ''}" for neck in ("fpn", "hsfpn")
               for seed in (0, 1)}
    done = {key: json.loads((folder / "done.json").read_text())["metrics"] for key, folder in folders.items()}
    text = (tmp_path / "smoke" / "table3.csv").read_text().split("\n", 1)[1]
    rows = {r["neck"]: r for r in csv.DictReader(io.StringIO(text))}

    def number(cell):
        return None if cell == "" else float(cell)

    # Mean and sample std recomputed by hand from the per-seed done.json files.
    for neck in ("fpn", "hsfpn"):
        row = rows[neck]
        assert (row["seeds"], row["n"], row["missing"], row["status"]) == ("0;1", "2", "", "done")
        for m in ("AP", "AP50", "AP75", "APvt", "APt", "APs", "APm"):
            a, b = done[(neck, 0)][m], done[(neck, 1)][m]
            assert (number(row[f"{m}_s0"]), number(row[f"{m}_s1"])) == (a, b)
            if a is None or b is None:
                continue
            assert number(row[m]) == round((a + b) / 2, 2)
            # n - 1 = 1: the sample std of two values is |a - b| / sqrt(2) (the csv rounds to 2 decimals).
            assert number(row[f"{m}_std"]) == pytest.approx(abs(a - b) / math.sqrt(2), abs=0.0051)
    gains = [done[("hsfpn", s)]["AP"] - done[("fpn", s)]["AP"] for s in (0, 1)]
    assert number(rows["hsfpn"]["gain_AP"]) == round(sum(gains) / 2, 2)
    assert number(rows["hsfpn"]["gain_AP_std"]) == pytest.approx(abs(gains[0] - gains[1]) / math.sqrt(2), abs=0.0051)
    md = (tmp_path / "smoke" / "table3.md").read_text()
    assert "| Faster R-CNN | R-50 + HS-FPN | done | 2/2 |" in md and "Every seed's figures:" in md

    # The seeds differ where they must (initial weights: the first logged loss) and each job logged to TensorBoard,
    # the evaluation after training included.
    first = {key: next(e["loss"] for e in _scalars(folder) if "loss" in e) for key, folder in folders.items()}
    assert first[("hsfpn", 0)] != first[("hsfpn", 1)] and first[("fpn", 0)] != first[("fpn", 1)]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (vis_data,) = folders[("hsfpn", 1)].glob("*/vis_data")  # one attempt: one log folder (its event files)
    reader = EventAccumulator(str(vis_data))
    reader.Reload()
    assert {"loss", "lr", "time", "loss_rpn_cls", "test/aitod/AP", "test/aitod/AP50"} <= set(reader.Tags()["scalars"])
    (ap,) = reader.Scalars("test/aitod/AP")
    assert ap.value == pytest.approx(json.loads((folders[("hsfpn", 1)] / "done.json").read_text())["raw_metrics"]["aitod/AP"])
