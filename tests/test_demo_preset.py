"""The demo preset (make demo): a compact detector's short CPU schedule on a DOTAmini10 data root, its figures
labelled as smoke."""

from __future__ import annotations

from pipelines.presets import CompactModel, resolve_settings
from pipelines.tables import SMOKE_BANNER, render_csv, render_markdown


def test_demo_preset_takes_a_data_root_and_labels_smoke(tmp_path):
    s = resolve_settings("demo", tmp_path, data_root=tmp_path / "DOTAmini10")
    assert (s.gpus, s.img_scale, s.train_crop, s.max_epochs, s.milestones, s.batch_per_gpu) == (0, 1024, 384, 8, (6,), 2)
    assert s.compact == CompactModel(depth=18, base_channels=32, neck_channels=64, head_channels=256)
    assert s.optimizer == "adamw" and s.pretrained is None and s.threads == 1
    assert s.data_root == tmp_path / "DOTAmini10"
    assert s.smoke_figures and not s.is_smoke  # trains on the given build, not on the generated smoke set
    assert render_markdown("table4", [], s).startswith("# [SMOKE] Table 4")
    assert render_csv("table4", [], s).startswith(f"# {SMOKE_BANNER}")
    paper = resolve_settings("paper", tmp_path, data_root=tmp_path)
    assert not paper.smoke_figures and not render_markdown("table4", [], paper).startswith("# [SMOKE]")


def test_demo_rows_name_the_compact_backbone_they_trained(tmp_path):
    from pathlib import Path

    from pipelines.job_folder import JobStatus
    from pipelines.runner import Job, JobResult
    from pipelines.tables import table_rows

    s = resolve_settings("demo", tmp_path, data_root=tmp_path / "DOTAmini10")
    job = Job("faster_rcnn__hsfpn", "faster_rcnn", "hsfpn", Path("/w"))
    (row,) = table_rows("table4", [JobResult(job, JobStatus.DONE, metrics={"AP": 18.4})], s)
    assert row["backbone"] == "R-18 compact + HS-FPN"
