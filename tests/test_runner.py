"""The runner's bookkeeping with fake quick jobs: skip finished, resume interrupted, record failures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pipelines.job_folder import JobFolder
from pipelines.runner import (
    Job,
    JobInterrupted,
    JobOnDisk,
    JobStatus,
    PlanClock,
    ProgressEvent,
    RunnerError,
    error_line,
    format_duration,
    format_event,
    free_port,
    inspect_job,
    job_env,
    job_state,
    launch_command,
    log_progress,
    run_jobs,
)

# A stand-in for pipelines.job: "trains" epochs (a checkpoint file each, mmengine's last_checkpoint
# marker), resumes from the last checkpoint, prints mmengine-like log lines, can fail or crash once.
FAKE_JOB = r'''
import json, sys, time
from pathlib import Path
from dotamini10.io import write_json
from pipelines.job_folder import JobFolder

job_dir = Path(sys.argv[1])
folder = JobFolder(job_dir)
spec = json.loads((job_dir / "behaviour.json").read_text())
if spec.get("fail"):
    print("Traceback (most recent call last):")
    print("ValueError: boom in " + job_dir.name)
    sys.exit(3)
start = 0
ckpt = folder.trusted_checkpoint()
if ckpt is not None:
    start = int(ckpt.stem.split("_")[1])
    print(f"resumed from {ckpt.name}")
epochs = spec.get("epochs", 3)
for epoch in range(start + 1, epochs + 1):
    print(f"11/21 04:00:00 - mmengine - INFO - Epoch(train) [{epoch}][ 2/2]  lr: 1e-2  eta: 0:00:{epochs - epoch:02d}  loss: 1.0", flush=True)
    time.sleep(spec.get("sleep", 0.0))
    (job_dir / f"epoch_{epoch}.pth").write_text("weights")
    folder.record_checkpoint(job_dir / f"epoch_{epoch}.pth")
    (job_dir / "last_checkpoint").write_text(str(job_dir / f"epoch_{epoch}.pth"))
    if spec.get("crash_after") == epoch and not (job_dir / "crashed").exists():
        (job_dir / "crashed").write_text("")
        print("RuntimeError: simulated interruption", flush=True)
        sys.exit(1)
write_json(job_dir / "done.json", {"metrics": {"AP": spec.get("ap", 10.0)}, "resumed_from": None if ckpt is None else str(ckpt)})
'''


@pytest.fixture()
def fake(tmp_path: Path):
    script = tmp_path / "fake_job.py"
    script.write_text(FAKE_JOB, encoding="utf-8")

    def command(job: Job) -> list[str]:
        return [sys.executable, str(script), str(job.work_dir)]

    return command


def make_job(tmp_path: Path, key: str, config: str = "cfg = 1\n", **behaviour) -> Job:
    d = tmp_path / "runs" / key
    d.mkdir(parents=True, exist_ok=True)
    (d / "behaviour.json").write_text(json.dumps(behaviour), encoding="utf-8")
    return Job(key=key, row=key.split("__")[0], variant=key.split("__")[1], work_dir=d, config_text=config)


def run(jobs, command, events=None, **kw):
    sink = [] if events is None else events
    return run_jobs(jobs, command, env=job_env(0), progress=sink.append, poll_s=0.05, **kw)


def attempts(job: Job) -> list[dict]:
    path = JobFolder(job.work_dir).attempts
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_fresh_run_finishes_every_job_and_writes_its_config(tmp_path, fake):
    jobs = [make_job(tmp_path, "a__fpn", ap=11.0), make_job(tmp_path, "b__hsfpn", ap=12.5)]
    events: list[ProgressEvent] = []
    results = run(jobs, fake, events)
    assert [r.status for r in results] == [JobStatus.DONE, JobStatus.DONE]
    assert [r.metrics["AP"] for r in results] == [11.0, 12.5]
    assert (jobs[0].work_dir / "job_config.py").read_text() == "cfg = 1\n"
    assert json.loads((jobs[0].work_dir / "job.json").read_text())["fingerprint"] == jobs[0].fingerprint
    assert [(e.key, e.state) for e in events] == [
        ("a__fpn", "starting"),
        ("a__fpn", "done"),
        ("b__hsfpn", "starting"),
        ("b__hsfpn", "done"),
    ]
    # The second job's start knows the first job's duration, hence a plan ETA.
    assert events[2].plan_eta_s is not None and events[0].plan_eta_s is None
    assert all(len(attempts(j)) == 1 and attempts(j)[0]["returncode"] == 0 for j in jobs)
    assert all(r.wall_s is not None and r.wall_s >= 0 for r in results)


def test_finished_jobs_are_skipped_without_starting_a_process(tmp_path, fake):
    jobs = [make_job(tmp_path, "a__fpn"), make_job(tmp_path, "b__fpn")]
    run(jobs, fake)
    events: list[ProgressEvent] = []
    results = run(jobs, fake, events)
    assert [r.status for r in results] == [JobStatus.SKIPPED, JobStatus.SKIPPED]
    assert [e.state for e in events] == [JobStatus.SKIPPED, JobStatus.SKIPPED]
    assert all(len(attempts(j)) == 1 for j in jobs)  # no second attempt
    assert results[0].metrics == {"AP": 10.0}


def test_a_failing_job_is_recorded_and_the_next_still_runs(tmp_path, fake):
    jobs = [make_job(tmp_path, "bad__fpn", fail=True), make_job(tmp_path, "good__fpn")]
    events: list[ProgressEvent] = []
    results = run(jobs, fake, events)
    assert [r.status for r in results] == [JobStatus.FAILED, JobStatus.DONE]
    assert results[0].error == "ValueError: boom in bad__fpn"
    record = json.loads(JobFolder(jobs[0].work_dir).failed_file.read_text())
    assert record["returncode"] == 3 and record["log"].endswith("job.log")
    assert "ValueError: boom" in (jobs[0].work_dir / "job.log").read_text()
    assert job_state(jobs[0]) == ("failed", "ValueError: boom in bad__fpn")
    assert events[1].state == "failed" and "job.log" in events[1].detail


def test_an_interrupted_job_resumes_from_its_last_checkpoint(tmp_path, fake):
    job = make_job(tmp_path, "c__hsfpn", epochs=4, crash_after=2)
    first = run([job], fake)
    assert first[0].status == JobStatus.FAILED and first[0].error == "RuntimeError: simulated interruption"
    assert job_state(job) == ("resumable", "from epoch_2.pth")
    events: list[ProgressEvent] = []
    second = run([job], fake, events)
    assert second[0].status == JobStatus.DONE
    assert events[0].state == "resuming" and events[0].detail == "from epoch_2.pth"
    log = (job.work_dir / "job.log").read_text()
    assert "resumed from epoch_2.pth" in log
    assert second[0].resumed_from == str(job.work_dir / "epoch_2.pth")
    # Epochs 3 and 4 only were trained by the second attempt; the failure record is gone.
    assert log.count("Epoch(train) [3]") == 1 and log.count("Epoch(train) [1]") == 1
    assert not JobFolder(job.work_dir).failed_file.exists()
    # Wall time adds both attempts.
    assert second[0].wall_s == pytest.approx(JobFolder(job.work_dir).attempts_wall_s(), abs=0.11)
    assert len(attempts(job)) == 2


def test_ctrl_c_stops_the_job_records_the_attempt_and_names_the_job(tmp_path, fake):
    # Ctrl-C reaches the runner while it waits (here: raised from the progress callback once epoch 2 is saved).
    job = make_job(tmp_path, "e__hsfpn", epochs=6, sleep=0.3)

    def ctrl_c(event: ProgressEvent) -> None:
        if (job.work_dir / "epoch_2.pth").exists():
            raise KeyboardInterrupt

    with pytest.raises(JobInterrupted) as caught:
        run_jobs([job], fake, env=job_env(0), progress=ctrl_c, poll_s=0.05, report_every_s=0.05)
    assert isinstance(caught.value, KeyboardInterrupt) and caught.value.job is job
    checkpoint = JobFolder(job.work_dir).last_checkpoint()
    assert checkpoint is not None and checkpoint.name in {"epoch_2.pth", "epoch_3.pth"}
    assert [a["returncode"] for a in attempts(job)] == [None]  # recorded as an interrupted attempt
    assert run([job], fake)[0].status is JobStatus.DONE  # the rerun resumes and finishes
    assert f"resumed from {checkpoint.name}" in (job.work_dir / "job.log").read_text()


def test_changed_settings_never_resume_foreign_checkpoints(tmp_path, fake):
    job = make_job(tmp_path, "d__fpn", epochs=3, crash_after=1)
    run([job], fake)
    changed = Job(job.key, job.row, job.variant, job.work_dir, config_text="cfg = 2\n")
    state, detail = job_state(changed)
    assert state == "resumable" and "differs" in detail
    results = run([changed], fake)
    assert results[0].status == JobStatus.FAILED and "other settings" in results[0].error
    assert len(attempts(job)) == 1  # nothing was started


def test_done_job_with_other_settings_is_skipped_and_flagged(tmp_path, fake):
    job = make_job(tmp_path, "e__fpn")
    run([job], fake)
    changed = Job(job.key, job.row, job.variant, job.work_dir, config_text="cfg = 3\n")
    results = run([changed], fake)
    assert results[0].status == JobStatus.SKIPPED and "OTHER settings" in results[0].error


def test_blocked_jobs_are_reported_not_run(tmp_path, fake):
    blocked = Job("f__fpn", "f", "fpn", tmp_path / "f", blocked=JobStatus.NOT_AVAILABLE, reason="assigners missing")
    events: list[ProgressEvent] = []
    results = run([blocked], fake, events)
    assert results[0].status == JobStatus.NOT_AVAILABLE and results[0].error == "assigners missing"
    assert not (tmp_path / "f").exists()
    assert events[0].state == JobStatus.NOT_AVAILABLE


def test_running_jobs_report_their_eta(tmp_path, fake):
    job = make_job(tmp_path, "g__fpn", epochs=3, sleep=0.4)
    events: list[ProgressEvent] = []
    run([job], fake, events, report_every_s=0.0)
    running = [e for e in events if e.state == "running"]
    assert running, "no running event"
    assert any(e.detail.startswith("epoch ") and e.job_eta_s is not None for e in running)


def test_duplicate_keys_are_rejected(tmp_path, fake):
    job = make_job(tmp_path, "h__fpn")
    with pytest.raises(RunnerError, match="duplicate"):
        run([job, job], fake)


def test_log_progress_reads_the_latest_position_and_eta():
    text = (
        "Epoch(train)  [1][ 50/120]  lr: 1e-3  eta: 1:02:03  time: 0.5\n"
        "Epoch(train)  [2][ 10/120]  lr: 1e-3  eta: 1 day, 0:00:10  time: 0.5\n"
        "some other line\n"
    )
    assert log_progress(text) == ("epoch 2 iter 10/120", 86410.0)
    assert log_progress("nothing yet") == ("", None)


def test_error_line_finds_the_last_exception():
    text = "Traceback (most recent call last):\n  File x\nKeyError: 'a'\nmore\nmmengine.X.ConfigError: bad\n"
    assert error_line(text) == "mmengine.X.ConfigError: bad"
    assert error_line("all good\n") is None


def test_format_helpers():
    assert format_duration(3723.4) == "1:02:03"
    assert format_duration(None) == "?"
    event = ProgressEvent(2, 5, "k", "running", "epoch 1", job_eta_s=61, plan_eta_s=3600)
    assert format_event(event) == "[2/5]  k  running  epoch 1  job ETA 0:01:01  all ETA 1:00:00"


def test_launch_commands(tmp_path):
    job = Job("k", "r", "v", tmp_path / "k")
    single = launch_command("none", 1)(job)
    assert single == [sys.executable, "-m", "pipelines.job", str(job.work_dir), "--launcher", "none"]
    torchrun = launch_command("pytorch", 4, master_port=29600)(job)
    assert torchrun[:5] == [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=4", "--master_port=29600"]
    assert torchrun[-2:] == ["--launcher", "pytorch"]
    srun = launch_command("slurm", 16, srun_args="-p gpu --time 48:00:00")(job)
    assert srun[:5] == ["srun", "--ntasks=16", "--ntasks-per-node=8", "--gres=gpu:8", "--kill-on-bad-exit=1"]
    assert srun[5:9] == ["-p", "gpu", "--time", "48:00:00"]
    assert srun[-2:] == ["--launcher", "slurm"]
    with pytest.raises(RunnerError, match="launcher"):
        launch_command("mpi", 1)


def test_job_env_makes_the_toolkit_importable_and_hides_gpus_on_cpu():
    env = job_env(0, base={"PYTHONPATH": "/x"})
    assert env["PYTHONPATH"].split(":")[1] == "/x"
    assert (Path(env["PYTHONPATH"].split(":")[0]) / "pipelines").is_dir()
    assert env["CUDA_VISIBLE_DEVICES"] == ""
    assert "CUDA_VISIBLE_DEVICES" not in job_env(2, base={})
    assert "OMP_NUM_THREADS" not in job_env(0, base={})  # torch's default unless the settings name a count
    one = job_env(0, base={"OMP_NUM_THREADS": "8"}, threads=1)
    assert (one["OMP_NUM_THREADS"], one["MKL_NUM_THREADS"]) == ("1", "1")


# A fake job that writes the progress record of pipelines.progress, as the real job's hook does (through JobFolder).
PROGRESS_JOB = r'''
import sys, time
from pathlib import Path
from pipelines.job_folder import JobFolder
from pipelines.progress import JobProgress, Phase
from dotamini10.io import write_json
job_dir = Path(sys.argv[1])
write_progress = lambda d, p: JobFolder(d).write_progress(p)
for done in range(1, 4):
    write_progress(job_dir, JobProgress(Phase.TRAIN, 1, 2, done, 4, done, 8, loss=1.0 / done, iter_s=0.5, eta_s=10.0 - done))
    time.sleep(0.3)
write_progress(job_dir, JobProgress(Phase.TEST, 2, 2, 1, 5, 8, 8, eta_s=1.0))
time.sleep(0.3)
write_json(job_dir / "done.json", {"metrics": {"AP": 1.0}})
'''


def test_running_events_carry_the_jobs_progress_record(tmp_path):
    script = tmp_path / "progress_job.py"
    script.write_text(PROGRESS_JOB, encoding="utf-8")
    job = make_job(tmp_path, "p__fpn")
    events: list[ProgressEvent] = []
    results = run_jobs([job], lambda j: [sys.executable, str(script), str(j.work_dir)], env=job_env(0),
                       progress=events.append, poll_s=0.05, report_every_s=0.0)
    assert results[0].status == JobStatus.DONE
    running = [e for e in events if e.state == "running" and e.progress is not None]
    train = [e for e in running if e.progress.phase == "train"]
    assert train and all(e.detail.startswith("epoch 1/2 iter ") and " it/s" in e.detail for e in train)
    assert {e.job_eta_s for e in train} <= {9.0, 8.0, 7.0}
    # The only job: the plan's ETA is the job's.
    assert all(e.plan_eta_s == e.job_eta_s for e in running)
    assert any(e.detail == "evaluating 1/5 (test, after epoch 2/2)" for e in running)


def test_a_new_attempt_starts_without_the_last_attempts_progress(tmp_path, fake):
    job = make_job(tmp_path, "q__fpn")
    (job.work_dir / "progress.json").write_text('{"phase": "train"}')
    run([job], fake)
    assert not (job.work_dir / "progress.json").exists()


def test_inspect_job_tells_foreign_checkpoints_apart(tmp_path, fake):
    job = make_job(tmp_path, "r__fpn", epochs=3, crash_after=1)
    run([job], fake)
    assert inspect_job(job) == JobOnDisk(JobStatus.RESUMABLE, "from epoch_1.pth", foreign=False)
    other = Job(job.key, job.row, job.variant, job.work_dir, config_text="cfg = 9\n")
    disk = inspect_job(other)
    assert disk.state is JobStatus.RESUMABLE and disk.foreign
    blocked = Job("s__fpn", "s", "fpn", tmp_path / "s", blocked=JobStatus.NOT_AVAILABLE, reason="r")
    assert inspect_job(blocked) == JobOnDisk(JobStatus.NOT_AVAILABLE, "r")


def test_plan_clock_estimates_from_finished_jobs_or_the_running_one():
    clock = PlanClock(remaining=2)
    assert clock.eta(None) is None  # nothing known yet
    assert clock.eta(30.0, current_total_s=100.0) == 30.0 + 2 * 100.0  # the running job stands for the others
    clock.durations += [50.0, 70.0]
    assert clock.eta(30.0, current_total_s=100.0) == 30.0 + 2 * 60.0  # finished jobs' mean wins
    assert clock.eta(None, including=1) == 3 * 60.0
    assert PlanClock(remaining=0).eta(12.0) == 12.0


def test_cpu_process_launch_commands(tmp_path):
    job = Job("k", "r", "v", tmp_path / "k")
    torchrun = launch_command("pytorch", 0, nproc=2)(job)
    assert torchrun[3] == "--nproc_per_node=2" and torchrun[4].startswith("--master_port=")
    assert 0 < int(torchrun[4].split("=")[1]) < 65536
    srun = launch_command("slurm", 0, nproc=2, srun_args="-p cpu")(job)
    assert srun[:6] == ["srun", "--ntasks=2", "--cpus-per-task=1", "--kill-on-bad-exit=1", "-p", "cpu"]
    assert not any(a.startswith("--gres") for a in srun)
    assert srun[-2:] == ["--launcher", "slurm"]


def test_free_port_can_be_bound():
    import socket

    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_relative_work_dirs_reach_the_job_as_absolute_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    job = Job("k", "r", "v", Path("runs") / "k")
    argv = launch_command("none", 1)(job)
    assert argv[-3] == str(tmp_path / "runs" / "k")
