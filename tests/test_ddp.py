"""A real two-process job on CPU (torchrun, gloo): sync, sharding, gathered metric, rank-0 files, kill and resume.

One job of the smoke preset (Faster R-CNN MobileNetV2 + HS-FPN, 4 training images of 64 px, 2 epochs of
2 iterations, a validation after each epoch with ``save_best``) runs under the table runner in a driver process.
The driver is SIGKILLed while epoch 2 trains: nothing of the job may be left, and the rerun must resume from
epoch 1's checkpoint at iteration 2 with the best record and the schedulers' state. A probe hook
(``tests/ddp_probe.py``) records each rank's view; the final checkpoint is then evaluated by one process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from process_probe import alive, wait_until

from dotamini10.io import write_json
from pipelines.presets import SyntheticSpec, resolve_settings
from pipelines.job_folder import JobFolder
from pipelines.progress import Phase
from pipelines.runner import job_env
from pipelines.tables import plan_table

TESTS = Path(__file__).resolve().parent
SPEC = SyntheticSpec(num_train=4, num_test=2, image_size=64, objects_per_image=(2, 4), object_size=(8, 14))
ITERS_PER_EPOCH = 2  # 4 images / (2 processes x 1 image)

# Runs the plan's one job through the table runner (what hsfpn-repro does), printing the progress lines.
DRIVER = r"""
import json, sys
from pathlib import Path
from pipelines.runner import Job, format_event, launch_command, run_jobs
spec = json.loads(Path(sys.argv[1]).read_text())
job = Job(spec["key"], spec["row"], spec["variant"], Path(spec["work_dir"]), config_text=spec["config"])
result = run_jobs([job], launch_command("pytorch", 0, nproc=2), env=spec["env"],
                  progress=lambda e: print(format_event(e), flush=True), poll_s=0.1, report_every_s=1.0)[0]
print("STATUS", result.status, flush=True)
"""

# Evaluates a checkpoint of the job in one process with the job's own config.
EVALUATE = r"""
import sys
from pathlib import Path
from mmengine.config import Config
from mmengine.runner import Runner
from dotamini10.io import write_json
from pipelines.job_folder import JobFolder
from hsfpn.checkpoints import checkpoint_globals
job_dir, out, ckpt = (Path(a) for a in sys.argv[1:4])
cfg = Config.fromfile(str(JobFolder(job_dir).config))
cfg.work_dir, cfg.launcher, cfg.load_from, cfg.custom_hooks = str(out), "none", str(ckpt), []
cfg.test_evaluator.outfile_prefix = str(out / "dets")
with checkpoint_globals():
    write_json(out / "metrics.json", Runner.from_cfg(cfg).test())
"""


def job_processes(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line holds ``marker``, this test's process excluded."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline and alive(int(entry.name)):
            pids.append(int(entry.name))
    return pids


def probe_records(job_dir: Path) -> dict[int, list[dict]]:
    return {
        rank: [json.loads(line) for line in (job_dir / "probe" / f"rank{rank}.jsonl").read_text().splitlines()]
        for rank in (0, 1)
    }


def _job_spec(tmp: Path) -> dict:
    from mmengine.config import Config

    settings = resolve_settings(
        "smoke", tmp, synthetic=SPEC, img_scale=64, max_epochs=2, milestones=(2,), warmup_iters=3, batch_per_gpu=1,
        nproc=2, launcher="pytorch", val_interval=1, log_interval=1,
    )
    job = plan_table("table3", settings, rows=["faster_rcnn_mnv2"], necks=["hsfpn"]).jobs[0]
    cfg = Config.fromstring(job.config_text, file_format=".py")
    cfg.custom_imports = dict(imports=["hsfpn", "ddp_probe"], allow_failed_imports=False)
    cfg.custom_hooks = [dict(type="RankProbe", out_dir=str(job.work_dir / "probe"))]
    # Fewer RoIs per image and a narrow box head: seconds per step, and small checkpoints, on 2 shared cores.
    cfg.model.train_cfg.rcnn.sampler.num = 64
    cfg.model.roi_head.bbox_head.fc_out_channels = 64
    cfg.model.test_cfg.rcnn.score_thr = 0.0  # four iterations score every box low: keep them, to compare them
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.outfile_prefix = str(job.work_dir / "dets")
    env = job_env(0)
    env["PYTHONPATH"] = os.pathsep.join([env["PYTHONPATH"], str(TESTS)])
    return dict(key=job.key, row=job.row, variant=job.variant, work_dir=str(job.work_dir), config=cfg.pretty_text,
                env=env)


@pytest.fixture(scope="module")
def ddp_job(tmp_path_factory):
    """Run, SIGKILL mid-epoch-2, rerun; returns what each step saw."""
    tmp = tmp_path_factory.mktemp("ddp")
    spec = _job_spec(tmp)
    job_dir = Path(spec["work_dir"])
    write_json(tmp / "spec.json", spec)
    argv = [sys.executable, "-c", DRIVER, str(tmp / "spec.json")]
    first = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=TESTS.parent)
    try:
        def in_epoch_two() -> bool:
            p = JobFolder(job_dir).progress()
            return first.poll() is not None or (p is not None and p.phase is Phase.TRAIN and p.epoch == 2)

        assert wait_until(in_epoch_two, timeout=400, poll=0.05), "the job never reached epoch 2"
        assert first.poll() is None, first.stdout.read()
        checkpoint_at_kill = (job_dir / "last_checkpoint").read_text().strip()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        left = wait_until(lambda: not job_processes(str(job_dir)), timeout=60)
        leftover = job_processes(str(job_dir))
    finally:
        first.kill()
    second = subprocess.run(argv, capture_output=True, text=True, cwd=TESTS.parent, timeout=500)
    evaluation = tmp / "single"
    evaluation.mkdir()
    env = dict(os.environ, PYTHONPATH=spec["env"]["PYTHONPATH"])
    single = subprocess.run(
        [sys.executable, "-c", EVALUATE, str(job_dir), str(evaluation), str(job_dir / "epoch_2.pth")],
        capture_output=True, text=True, cwd=TESTS.parent, env=env, timeout=300,
    )
    return dict(job_dir=job_dir, checkpoint_at_kill=checkpoint_at_kill, gone=left, leftover=leftover,
                second=second, single=single, evaluation=evaluation)


pytestmark = pytest.mark.slow


def test_a_killed_runner_leaves_no_job_process(ddp_job):
    assert ddp_job["gone"], f"processes of the killed job still running: {ddp_job['leftover']}"
    assert Path(ddp_job["checkpoint_at_kill"]).name == "epoch_1.pth"  # the kill landed in epoch 2


def test_the_rerun_resumes_at_the_right_iteration_with_best_record_and_schedulers(ddp_job):
    job_dir = ddp_job["job_dir"]
    assert "STATUS done" in ddp_job["second"].stdout, ddp_job["second"].stdout[-3000:]
    assert "resuming  from epoch_1.pth" in ddp_job["second"].stdout
    records = probe_records(job_dir)
    for rank, lines in records.items():
        starts = [r for r in lines if r["event"] == "start"]
        assert [(s["epoch"], s["iter"]) for s in starts] == [(0, 0), (1, ITERS_PER_EPOCH)], rank
        resumed = starts[1]
        # The save_best record of epoch 1's validation came back with the checkpoint.
        assert resumed["best_ckpt"] == str(job_dir / "best_aitod_AP_epoch_1.pth")
        assert resumed["best_score"] is not None and resumed["best_score"] >= 0.0
        # Warm-up (per iteration) has taken 2 steps, the epoch scheduler 1: the state, not a fresh start.
        assert resumed["last_steps"] == [ITERS_PER_EPOCH, 1]
        batches = [r for r in lines if r["event"] == "batch"]
        killed, redone = [b for b in batches if b["pid"] == starts[0]["pid"]], [b for b in batches if b["pid"] == resumed["pid"]]
        # Iteration 2 ran before the kill and again after the resume: same images, same learning rate.
        before = next(b for b in killed if b["iter"] == ITERS_PER_EPOCH)
        assert (redone[0]["iter"], redone[0]["ids"], redone[0]["lr"]) == (ITERS_PER_EPOCH, before["ids"], before["lr"])
    assert json.loads((job_dir / "done.json").read_text())["resumed_from"] == str(job_dir / "epoch_1.pth")


def test_both_ranks_train_the_same_parameters_on_disjoint_halves(ddp_job):
    records = probe_records(ddp_job["job_dir"])
    ends = {rank: [r for r in lines if r["event"] == "end"] for rank, lines in records.items()}
    assert len(ends[0]) == len(ends[1]) == 1
    assert ends[0][0]["digest"] == ends[1][0]["digest"]
    assert ends[0][0]["iter"] == 2 * ITERS_PER_EPOCH
    train_ids = set(range(1, SPEC.num_train + 1))
    for epoch in (0, 1):
        seen = {
            rank: [i for r in lines if r["event"] == "batch" and r["epoch"] == epoch for i in r["ids"]]
            for rank, lines in records.items()
        }
        # Epoch 0 ran once; epoch 1's first iteration ran twice (before the kill and after the resume).
        last = {rank: ids[-ITERS_PER_EPOCH:] for rank, ids in seen.items()}
        assert set(last[0]).isdisjoint(last[1]), epoch
        assert set(last[0]) | set(last[1]) == train_ids, epoch


def test_the_gathered_metric_equals_one_process_evaluating_the_checkpoint(ddp_job):
    single = ddp_job["single"]
    assert single.returncode == 0, single.stdout[-2000:] + single.stderr[-3000:]
    one = json.loads((ddp_job["evaluation"] / "metrics.json").read_text())
    done = json.loads((ddp_job["job_dir"] / "done.json").read_text())
    assert done["processes"] == 2
    assert done["raw_metrics"] == one  # epoch 2's validation over 2 ranks == 1 process, every figure
    two_ranks = (ddp_job["job_dir"] / "dets.bbox.json").read_bytes()
    assert two_ranks == (ddp_job["evaluation"] / "dets.bbox.json").read_bytes()
    assert len(json.loads(two_ranks)) > 0  # detections were compared, not two empty lists


def test_rank_zero_writes_one_checkpoint_set_and_one_log_per_attempt(ddp_job):
    job_dir = ddp_job["job_dir"]
    names = sorted(p.name for p in job_dir.glob("*.pth"))
    # The last epoch's checkpoint and the best are kept (--keep-checkpoints last), across the resumed attempt.
    assert names in (["best_aitod_AP_epoch_1.pth", "epoch_2.pth", "model.pth"],
                     ["best_aitod_AP_epoch_2.pth", "epoch_2.pth", "model.pth"])
    assert Path((job_dir / "last_checkpoint").read_text().strip()) == job_dir / "epoch_2.pth"
    runs = sorted(p for p in job_dir.iterdir() if p.is_dir() and p.name[:8].isdigit())
    assert len(runs) == 2  # one mmengine folder per attempt, shared by both ranks
    for run in runs:
        assert [p.name for p in run.glob("*.log")] == [f"{run.name}.log"]
    assert not [p for p in job_dir.rglob("*rank1*") if p.parent.name != "probe"]  # the probe is this test's
    assert not job_processes(str(job_dir))
