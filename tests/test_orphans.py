"""No job process outlives the table runner: SIGKILL the runner, or the job's launcher (torchrun), and look.

The jobs here are fakes that only sleep (a real two-process training job is killed in tests/test_ddp.py): a plain
job process, and two workers under a real torchrun that call the job's own parent guard.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from process_probe import alive, wait_until

from dotamini10.processes import process_stat

REPO = Path(__file__).resolve().parent.parent

# Sleeps like a long job; under torchrun it first asks to die with torchrun, as pipelines.job does.
SLEEPER = r"""
import os, sys, time
from pathlib import Path
if "RANK" in os.environ:
    from pipelines.distributed import guard_parent
    guard_parent("pytorch")
Path(sys.argv[1], f"worker{os.environ.get('RANK', '')}.pid").write_text(str(os.getpid()))
time.sleep(600)
"""

# The table runner with one job whose argv is given as JSON.
DRIVER = r"""
import json, sys
from pathlib import Path
from pipelines.runner import Job, format_event, job_env, run_jobs
argv, work = json.loads(sys.argv[1]), Path(sys.argv[2])
job = Job("sleep__fpn", "sleep", "fpn", work, config_text="cfg = 1\n")
result = run_jobs([job], lambda j: argv, env=job_env(0), progress=lambda e: print(format_event(e), flush=True),
                  poll_s=0.1)[0]
print("STATUS", result.status, result.error, flush=True)
"""


def _parent(pid: int) -> int:
    return process_stat(pid).parent


def _pids(work: Path, count: int, timeout: float = 120.0) -> list[int]:
    files = lambda: sorted(work.glob("worker*.pid"))  # noqa: E731
    written = lambda: len(files()) == count and all(f.read_text() for f in files())  # noqa: E731
    assert wait_until(written, timeout), list(work.iterdir())
    return [int(f.read_text()) for f in files()]


def _start_driver(argv: list[str], work: Path) -> subprocess.Popen:
    import json

    return subprocess.Popen([sys.executable, "-c", DRIVER, json.dumps(argv), str(work)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _torchrun(script: Path, work: Path) -> list[str]:
    from pipelines.runner import free_port

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={free_port()}",
            str(script), str(work)]


def test_a_sigkilled_runner_takes_its_plain_job_with_it(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    work = tmp_path / "job"
    driver = _start_driver([sys.executable, str(script), str(work)], work)
    try:
        (job,) = _pids(work, 1)
        assert alive(job)
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        assert wait_until(lambda: not alive(job), 10.0), f"job {job} outlived the runner"
    finally:
        driver.kill()


def test_a_sigkilled_runner_takes_torchrun_and_its_workers_with_it(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    work = tmp_path / "job"
    driver = _start_driver(_torchrun(script, work), work)
    try:
        workers = _pids(work, 2)
        launcher = _parent(workers[0])
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        everyone = [launcher, *workers]
        assert wait_until(lambda: not any(alive(p) for p in everyone), 60.0), f"{everyone} outlived the runner"
    finally:
        driver.kill()


def test_workers_end_when_their_launcher_is_sigkilled_and_the_runner_records_it(tmp_path):
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    work = tmp_path / "job"
    driver = _start_driver(_torchrun(script, work), work)
    try:
        workers = _pids(work, 2)
        launchers = {_parent(p) for p in workers}
        assert len(launchers) == 1  # both workers are torchrun's children
        (launcher,) = launchers
        assert b"torch.distributed.run" in Path(f"/proc/{launcher}/cmdline").read_bytes()
        os.kill(launcher, signal.SIGKILL)
        assert wait_until(lambda: not any(alive(p) for p in workers), 10.0), f"workers {workers} outlived torchrun"
        out, _ = driver.communicate(timeout=30)
        assert "STATUS failed" in out and "exit code -9" in out
    finally:
        driver.kill()


def test_the_guard_without_pdeathsig_supervises_and_stops_the_command(tmp_path):
    # Elsewhere than Linux the guard stays the command's parent and stops it when the runner is gone.
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    work = tmp_path / "job"
    work.mkdir()
    guard = (
        "import sys; sys.platform = 'elsewhere'; from pipelines import parent_guard; "
        "sys.exit(parent_guard.main(sys.argv[1:]))"
    )
    parent_code = (
        "import os, subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {guard!r}, str(os.getpid()), '--', sys.executable, {str(script)!r}, "
        f"{str(work)!r}]); time.sleep(600)"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        (job,) = _pids(work, 1, timeout=60)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        assert wait_until(lambda: not alive(job), 15.0), f"job {job} outlived its runner (watchdog path)"
    finally:
        parent.kill()


def test_the_guard_reports_a_command_that_cannot_start(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pipelines.parent_guard", str(os.getpid()), "--", str(tmp_path / "nope")],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 127 and result.stderr.startswith(f"error: cannot start {tmp_path / 'nope'}: ")
