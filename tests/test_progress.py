"""The progress record of a running job: its text, its JSON round trip and the evaluations still to come."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pipelines.job_folder import JobFolder
from pipelines.progress import JobProgress, Phase, remaining_evaluations


def test_describe_training_and_evaluation():
    p = JobProgress(Phase.TRAIN, 3, 12, 50, 120, 290, 1440, loss=0.81234, iter_s=0.5, eta_s=600.0)
    assert p.describe() == "epoch 3/12 iter 50/120 loss 0.8123 2.00 it/s"
    assert p.fraction == 290 / 1440
    assert JobProgress(Phase.TRAIN, 1, 12, 0, 120, 0, 1440).describe() == "epoch 1/12 iter 0/120"
    assert JobProgress(Phase.VAL, 3, 12, 7, 40, 360, 1440).describe() == "evaluating 7/40 (val, after epoch 3/12)"


def test_round_trip_through_the_file(tmp_path):
    p = JobProgress(Phase.TEST, 12, 12, 1, 5, 1440, 1440, loss=None, iter_s=0.25, eta_s=3.0)
    JobFolder(tmp_path).write_progress(p)
    assert JobFolder(tmp_path).progress() == p
    assert JobFolder(tmp_path / "none").progress() is None
    (tmp_path / "progress.json").write_text('{"phase": "sleeping", "epoch": 1}')
    assert JobFolder(tmp_path).progress() is None  # not a progress record: nothing to show


def test_remaining_evaluations_follow_mmengines_validation_rule():
    assert remaining_evaluations(0, 12, 0) == 1  # one test after training
    assert remaining_evaluations(0, 12, 1) == 12
    assert remaining_evaluations(0, 12, 5) == 3  # epochs 5, 10 and the last
    assert remaining_evaluations(10, 12, 5) == 1
    assert remaining_evaluations(12, 12, 5) == 0


@given(st.integers(1, 30), st.integers(1, 10), st.data())
def test_remaining_evaluations_count_the_validated_epochs(max_epochs, interval, data):
    done = data.draw(st.integers(0, max_epochs))
    validated = [e for e in range(1, max_epochs + 1) if e % interval == 0 or e == max_epochs]
    assert remaining_evaluations(done, max_epochs, interval) == len([e for e in validated if e > done])
