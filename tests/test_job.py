"""The job process helpers: last checkpoint lookup, resuming only from a recorded checkpoint under the weights-only
allowlist, metric mapping, the launchers' environments (torchrun, Slurm) and the CPU DDP wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pipelines.distributed import DistEnv, cpu_model_wrapper, dist_env, first_host, slurm_port
from pipelines.hooks import DivergedError, check_loss
from pipelines.job_folder import JobFolder, UntrustedCheckpointError
from pipelines.metrics import table_metrics
from hsfpn.checkpoints import checkpoint_globals


def last_checkpoint(job_dir):
    return JobFolder(job_dir).last_checkpoint()


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
    (job / "last_checkpoint").write_bytes(b"\xff\xfe\x00")  # not text: as if there were no marker
    assert last_checkpoint(job) is None


def test_bookkeeping_files_that_are_not_objects_read_as_empty(tmp_path):
    folder = JobFolder(tmp_path)
    for name in ("job.json", "done.json", "failed.json", "checkpoints.json"):
        (tmp_path / name).write_text("[1, 2]")
    assert folder.fingerprint() is None and folder.done() == {} and folder.failure() == {}
    assert folder.recorded_digest(tmp_path / "epoch_1.pth") is None
    assert folder.inspect("abc").state.value == "done"  # done.json is there, whatever it holds


def test_mmengine_checkpoints_load_weights_only_under_the_allowlist_and_code_does_not(tmp_path):
    import pickle

    mine = tmp_path / "epoch_1.pth"
    _mmengine_like_checkpoint(mine)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(mine)  # torch >= 2.6 default: the reason resume needs the allowlist
    with checkpoint_globals():
        assert torch.load(mine)["state_dict"]["w"].sum().item() == 2.0

    class Payload:
        def __reduce__(self):
            return (print, ("this must not run",))

    evil = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "meta": Payload()}, evil, pickle_module=pickle)
    with checkpoint_globals(), pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(evil)
    with pytest.raises(Exception, match="(?i)weights_only|unsupported global"):
        torch.load(mine)  # the allowlist ends with the block


def test_history_buffers_come_back_working_and_other_lookups_are_refused(tmp_path):
    import pickle

    from mmengine.logging import HistoryBuffer

    mine = tmp_path / "epoch_1.pth"
    _mmengine_like_checkpoint(mine)
    with checkpoint_globals():
        buffer = torch.load(mine)["message_hub"]["loss"]
    assert isinstance(buffer, HistoryBuffer) and buffer.mean() == 1.5 and buffer.statistics("max") == 2.0

    class Gadget:  # the first step of a getattr chain: an attribute of an allowed class
        def __reduce__(self):
            return (getattr, (HistoryBuffer, "__init__"))

    evil = tmp_path / "gadget.pth"
    torch.save({"state_dict": {}, "meta": Gadget()}, evil, pickle_module=pickle)
    with checkpoint_globals(), pytest.raises(Exception, match="may not look up '__init__'"):
        torch.load(evil)


def test_a_job_resumes_only_from_a_checkpoint_whose_digest_it_recorded(tmp_path):
    folder = JobFolder(tmp_path)
    assert folder.trusted_checkpoint() is None  # nothing to resume
    ckpt = tmp_path / "epoch_2.pth"
    _mmengine_like_checkpoint(ckpt)
    (tmp_path / "last_checkpoint").write_text(str(ckpt))
    with pytest.raises(UntrustedCheckpointError, match=r"epoch_2\.pth: not a checkpoint this job saved \(no digest"):
        folder.trusted_checkpoint()
    assert folder.inspect("f").detail.endswith("(not a checkpoint this job recorded: will not resume)")
    folder.record_checkpoint(ckpt)
    assert folder.trusted_checkpoint() == ckpt.resolve()
    ckpt.write_bytes(ckpt.read_bytes() + b"x")  # changed after the job saved it
    with pytest.raises(UntrustedCheckpointError, match="its digest differs from the recorded one"):
        folder.trusted_checkpoint()


class _SavingRunner:
    """What JobCheckpointHook uses of mmengine's Runner; each save writes the step's bytes and notes what the
    folder's marker named at that moment."""

    def __init__(self, work_dir):
        from mmengine.logging import MessageHub

        import logging

        self.work_dir = str(work_dir)
        self.message_hub = MessageHub.get_instance(f"hook-test-{work_dir}")
        self.logger = logging.getLogger("hook-test")
        self.marker_during_save: list[str | None] = []

    def save_checkpoint(self, out_dir, filename, *args, **kwargs):
        marker = JobFolder(Path(self.work_dir)).last_checkpoint()
        self.marker_during_save.append(None if marker is None else marker.name)
        (Path(out_dir) / filename).write_bytes(filename.encode())


def test_the_marker_always_names_a_recorded_checkpoint_that_exists(tmp_path):
    from pipelines.hooks import JobCheckpointHook

    runner = _SavingRunner(tmp_path)
    hook = JobCheckpointHook(interval=1, max_keep_ckpts=1)
    hook.before_train(runner)
    folder = JobFolder(tmp_path)
    for step in (1, 2):
        hook._save_checkpoint_with_step(runner, step, dict(epoch=step))
    # epoch_1 stayed on disk, named by the marker, while epoch_2 was written; then it went.
    assert runner.marker_during_save == [None, "epoch_1.pth"]
    assert sorted(p.name for p in tmp_path.glob("*.pth")) == ["epoch_2.pth"]
    assert folder.trusted_checkpoint() == tmp_path / "epoch_2.pth"
    assert runner.message_hub.get_info("keep_ckpt_ids") == [2]
    # Killed after saving epoch 3 and before recording it: the job resumes from epoch 2, still there.
    original = JobFolder.record_checkpoint

    def killed(self, checkpoint):
        raise KeyboardInterrupt

    JobFolder.record_checkpoint = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            hook._save_checkpoint_with_step(runner, 3, dict(epoch=3))
    finally:
        JobFolder.record_checkpoint = original
    assert folder.trusted_checkpoint() == tmp_path / "epoch_2.pth"


def test_table_metrics_converts_fractions_to_percent():
    raw = {"aitod/AP": 0.236, "aitod/AP50": 0.523, "aitod/APvt": -1.0, "aitod/APm": 0.3161, "other": 5}
    out = table_metrics(raw)
    assert out == {"AP": 23.6, "AP50": 52.3, "AP75": None, "APvt": None, "APt": None, "APs": None, "APm": 31.61}


def test_check_loss_stops_nan_and_inf_only():
    check_loss(torch.tensor(2.5), 10)
    for bad in (float("nan"), float("inf")):
        with pytest.raises(DivergedError, match=r"training diverged: loss is (nan|inf) at iteration 31"):
            check_loss(torch.tensor(bad), 31)


def test_torchrun_environment_gives_the_rank_and_rendezvous():
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29600"}
    assert dist_env("pytorch", env) == DistEnv(1, 2, 1, "127.0.0.1", 29600)
    assert dist_env("none", env) is None


def test_slurm_environment_gives_the_rank_and_a_shared_port():
    env = {"SLURM_PROCID": "3", "SLURM_NTASKS": "4", "SLURM_LOCALID": "1", "SLURM_STEP_NODELIST": "gpu[07-08]",
           "SLURM_JOB_ID": "1234", "SLURM_STEP_ID": "2"}
    got = dist_env("slurm", env)
    assert got == DistEnv(3, 4, 1, "gpu07", slurm_port(1234, 2))
    assert got.to_environ() == {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "MASTER_ADDR": "gpu07",
                                "MASTER_PORT": str(12000 + (1234 * 8 + 2) % 20000)}
    assert dist_env("slurm", dict(env, MASTER_PORT="40000", MASTER_ADDR="head")).master_port == 40000
    assert dist_env("slurm", dict(env, MASTER_ADDR="head")).master_addr == "head"


def test_first_host_of_slurm_node_lists():
    assert first_host("vm") == "vm"
    assert first_host("node[03-05,9],gpu1") == "node03"
    assert first_host("a1,b2") == "a1"
    assert first_host("n[1,3-4]") == "n1"


def test_slurm_ports_stay_in_range_and_differ_between_steps():
    ports = {slurm_port(job, step) for job in range(100) for step in range(3)}
    assert min(ports) >= 12000 and max(ports) < 32000 and len(ports) == 300


def test_cpu_model_wrapper_keeps_the_configs_keys_and_drops_device_ids():
    from mmengine.config import Config

    cfg = Config(dict(find_unused_parameters=True))
    assert cpu_model_wrapper(cfg) == dict(
        type="MMDistributedDataParallel", broadcast_buffers=False, find_unused_parameters=True, device_ids=None
    )
    cfg = Config(dict(model_wrapper_cfg=dict(type="MMDistributedDataParallel", broadcast_buffers=True,
                                             device_ids=[0])))
    assert cpu_model_wrapper(cfg) == dict(
        type="MMDistributedDataParallel", broadcast_buffers=True, find_unused_parameters=False, device_ids=None
    )


def test_guard_parent_binds_torchruns_workers_to_the_launcher(monkeypatch):
    import os

    import pipelines.distributed as job

    bound = []
    monkeypatch.setattr("dotamini10.processes.die_with_parent", lambda pid: bound.append(pid))
    job.guard_parent("none")
    job.guard_parent("slurm")  # tasks are slurmstepd's: the step ends with srun
    assert bound == []
    monkeypatch.setenv(job.LAUNCHER_PID_ENV, str(os.getppid()))
    job.guard_parent("pytorch")
    # A pid left in the environment by something else that still runs: the living parent is the launcher.
    monkeypatch.setenv(job.LAUNCHER_PID_ENV, str(os.getpid()))
    job.guard_parent("pytorch")
    # The launcher is gone (no such process): bind to it anyway, so that die_with_parent ends this process.
    monkeypatch.setenv(job.LAUNCHER_PID_ENV, str(2**22 + 12345))
    job.guard_parent("pytorch")
    assert bound == [os.getppid(), os.getppid(), 2**22 + 12345]
