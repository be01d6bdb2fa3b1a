"""The job process helpers: last checkpoint lookup, the narrow weights_only relaxation, metric mapping."""

from __future__ import annotations

import pytest
import torch

from pipelines.job import DivergedError, check_loss, last_checkpoint, table_metrics, trust_checkpoint


def _mmengine_like_checkpoint(path):
    # mmengine's checkpoints pickle its HistoryBuffer in the message hub: not a weights-only object.
    from mmengine.logging import HistoryBuffer

    torch.save({"state_dict": {"w": torch.ones(2)}, "message_hub": {"loss": HistoryBuffer([1.0, 2.0], [1, 1])}}, path)


def test_last_checkpoint_follows_mmengines_marker(tmp_path):
    assert last_checkpoint(tmp_path) is None
    ckpt = tmp_path / "epoch_3.pth"
    ckpt.write_bytes(b"x")
    (tmp_path / "last_checkpoint").write_text(str(ckpt))
    assert last_checkpoint(tmp_path) == ckpt.resolve()
    (tmp_path / "last_checkpoint").write_text("epoch_3.pth")  # relative paths are relative to the job dir
    assert last_checkpoint(tmp_path) == ckpt.resolve()


def test_last_checkpoint_ignores_missing_and_foreign_files(tmp_path):
    job = tmp_path / "job"
    job.mkdir()
    (job / "last_checkpoint").write_text(str(job / "epoch_9.pth"))
    assert last_checkpoint(job) is None  # named but gone
    outside = tmp_path / "elsewhere.pth"
    outside.write_bytes(b"x")
    (job / "last_checkpoint").write_text(str(outside))
    assert last_checkpoint(job) is None  # only the job's own files are trusted


def test_trust_checkpoint_relaxes_weights_only_for_that_file_only(tmp_path):
    mine, other = tmp_path / "epoch_1.pth", tmp_path / "downloaded.pth"
    _mmengine_like_checkpoint(mine)
    _mmengine_like_checkpoint(other)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(mine)  # torch >= 2.6 default: the reason resume needs the relaxation
    restore = trust_checkpoint(mine)
    try:
        assert torch.load(str(mine))["state_dict"]["w"].sum().item() == 2.0
        with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
            torch.load(other)
    finally:
        restore()
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(mine)


def test_table_metrics_converts_fractions_to_percent():
    raw = {"aitod/AP": 0.236, "aitod/AP50": 0.523, "aitod/APvt": -1.0, "aitod/APm": 0.3161, "other": 5}
    out = table_metrics(raw)
    assert out == {"AP": 23.6, "AP50": 52.3, "AP75": None, "APvt": None, "APt": None, "APs": None, "APm": 31.61}


def test_check_loss_stops_nan_and_inf_only():
    check_loss(torch.tensor(2.5), 10)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DivergedError, match=r"training diverged: loss is (nan|inf) at iteration 31"):
            check_loss(torch.tensor(bad), 31)
