"""One run at a time per output folder (dotamini10.io.folder_lock): a second run fails with one line, the lock
adds no file, and it is gone once its holder dies, even by SIGKILL; the builder, the table runner (per job) and
detect each hold theirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dotamini10.build import build_dotamini10
from dotamini10.errors import DatasetError
from dotamini10.io import folder_lock
from dotamini10.options import BuildOptions
from pipelines.job_folder import JobStatus
from pipelines.runner import Job, job_env, run_jobs

REPO = Path(__file__).resolve().parent.parent

HOLDER = r"""
import sys, time
from pathlib import Path
from dotamini10.io import folder_lock
with folder_lock(Path(sys.argv[1]), what="folder", error=RuntimeError):
    print("held", flush=True)
    time.sleep(600)
"""


class Busy(Exception):
    pass


def test_a_second_holder_fails_until_the_first_is_sigkilled(tmp_path):
    folder = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(Busy, match=rf"^{folder}: another run is using this build output; wait for it"):
            with folder_lock(folder, what="build output", error=Busy):
                pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        with folder_lock(folder, what="build output", error=Busy):  # free again: nothing to clean up
            pass
    finally:
        holder.kill()
    assert list(folder.iterdir()) == []  # the lock is on the folder itself: no file in the outputs


def test_a_folder_that_cannot_be_created_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(Busy, match=r"file/out: cannot open this job folder"):
        with folder_lock(blocker / "out", what="job folder", error=Busy):
            pass


def test_the_builder_refuses_a_folder_another_build_holds(tmp_path):
    out = tmp_path / "build"
    with folder_lock(out, what="test", error=Busy):
        with pytest.raises(DatasetError, match="another run is using this build output"):
            build_dotamini10(out, options=BuildOptions(crop_size=128, stride=96), resume=True)
    assert list(out.iterdir()) == []  # refused before anything was written


def test_the_runner_reports_a_held_job_and_runs_the_next(tmp_path):
    script = tmp_path / "job.py"
    script.write_text("import sys, json, pathlib\n"
                      "pathlib.Path(sys.argv[1], 'done.json').write_text(json.dumps({'metrics': {'AP': 1.0}}))\n")
    jobs = [Job("a__fpn", "a", "fpn", tmp_path / "a"), Job("b__fpn", "b", "fpn", tmp_path / "b")]
    events = []
    with folder_lock(jobs[0].work_dir, what="test", error=Busy):
        results = run_jobs(jobs, lambda job: [sys.executable, str(script), str(job.work_dir)], env=job_env(0),
                           progress=events.append, poll_s=0.05)
    assert [r.status for r in results] == [JobStatus.FAILED, "done"]
    assert results[0].error.endswith("another run is using this job folder; wait for it to end or stop it")
    assert [(e.key, e.state) for e in events] == [("a__fpn", "failed"), ("b__fpn", "starting"), ("b__fpn", "done")]
    assert not (jobs[0].work_dir / "job.log").exists()  # the held job's folder was not touched
