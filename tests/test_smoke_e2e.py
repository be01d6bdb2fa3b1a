"""The smoke preset end to end for one detector (trimmed): data, job process, AI-TOD metric, resume, tables.

A real job process trains Faster R-CNN with the HS-FPN for one epoch on a tiny synthetic set, is evaluated
by AITODMetric and lands in table3.md / .csv / .png. Then the job's done marker is removed, as if the process
had died after its last checkpoint: the next run resumes from that mmengine checkpoint (the torch >= 2.6
weights_only case) and evaluates again without training.
"""

from __future__ import annotations

import csv
import io
import json

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
