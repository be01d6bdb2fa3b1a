"""Several processes for one job: where each stands (torchrun's or Slurm's variables), its process group, its
parent guard, and the CPU DDP wrapper.

Notes:
    The job sets up the process group itself, from torchrun's variables (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or Slurm's (``SLURM_PROCID``, ``SLURM_NTASKS``,
    ``SLURM_LOCALID``, the step's node list), with NCCL on GPUs and gloo on CPU. mmengine 0.10.7's own set-up
    calls ``torch.cuda.set_device``, which a CPU-only torch refuses; its Runner skips that set-up when a group
    exists. On CPU the model is wrapped with ``device_ids=None`` (mmengine's default ``[LOCAL_RANK]`` is refused
    by CPU DDP).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dotamini10.processes import is_alive

# The pid of the launcher (torchrun) a job's processes must not outlive; set by pipelines.parent_guard.
LAUNCHER_PID_ENV = "HSFPN_LAUNCHER_PID"


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a multi-process job.

    Args:
        rank: Global rank.
        world_size: Processes of the job.
        local_rank: Rank on this machine (the GPU index on GPUs).
        master_addr: Host of rank 0.
        master_port: Rendezvous port on that host.
    """

    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int

    def to_environ(self) -> dict[str, str]:
        """The ``env://`` variables of ``torch.distributed`` (and mmengine's ``LOCAL_RANK``)."""
        return dict(
            RANK=str(self.rank),
            WORLD_SIZE=str(self.world_size),
            LOCAL_RANK=str(self.local_rank),
            MASTER_ADDR=self.master_addr,
            MASTER_PORT=str(self.master_port),
        )


def first_host(nodelist: str) -> str:
    """The first host of a Slurm node list (``"node[03-05,9],gpu1"`` -> ``"node03"``), without ``scontrol``."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if m is None:
        raise ValueError(f"not a Slurm node list: {nodelist!r}")
    prefix, ranges = m.groups()
    if ranges is None:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def slurm_port(job_id: int, step_id: int) -> int:
    """A rendezvous port every task of a Slurm step derives alike (12000-31999), different for other steps."""
    return 12000 + (job_id * 8 + step_id) % 20000


def dist_env(launcher: str, environ: Mapping[str, str]) -> DistEnv | None:
    """This process's place in the job, from the launcher's variables; ``None`` for a single process.

    Args:
        launcher: ``"none"``, ``"pytorch"`` (torchrun's ``RANK`` ...) or ``"slurm"`` (``SLURM_PROCID`` ...;
            ``MASTER_PORT`` when set, else :func:`slurm_port`).
        environ: The process environment.

    Returns:
        The rank, world size, local rank and rendezvous address.
    """
    if launcher == "none":
        return None
    if launcher == "pytorch":
        return DistEnv(
            int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ["LOCAL_RANK"]),
            environ["MASTER_ADDR"], int(environ["MASTER_PORT"]),
        )
    if launcher == "slurm":
        nodes = environ.get("SLURM_STEP_NODELIST") or environ["SLURM_NODELIST"]
        port = environ.get("MASTER_PORT") or slurm_port(int(environ["SLURM_JOB_ID"]), int(environ.get("SLURM_STEP_ID", 0)))
        return DistEnv(
            int(environ["SLURM_PROCID"]), int(environ.get("SLURM_STEP_NUM_TASKS") or environ["SLURM_NTASKS"]),
            int(environ["SLURM_LOCALID"]), environ.get("MASTER_ADDR") or first_host(nodes), int(port),
        )
    raise ValueError(f"launcher must be none, pytorch or slurm, got {launcher!r}")


def guard_parent(launcher: str) -> None:
    """End this process when its launcher dies (torchrun's workers); see :mod:`pipelines.parent_guard`.

    A plain job process is already covered (the guard execs into it). Slurm's tasks are children of
    ``slurmstepd``, which ends the step when ``srun`` dies.
    """
    if launcher != "pytorch":
        return
    from dotamini10.processes import die_with_parent

    parent = os.getppid()
    expected = int(os.environ.get(LAUNCHER_PID_ENV) or parent)
    if expected != parent and is_alive(expected):
        # A value inherited from elsewhere (torchrun started by hand): the living parent is the launcher.
        expected = parent
    # Otherwise a launcher that died before this line is caught: die_with_parent compares it with getppid().
    die_with_parent(expected)


def init_process_group(env: DistEnv, backend: str) -> None:
    """Set up the job's process group before mmengine's Runner (which then keeps it).

    Args:
        env: This process's place (:func:`dist_env`).
        backend: ``"gloo"`` (CPU) or ``"nccl"`` (GPUs; this process takes GPU ``local_rank``).
    """
    import torch
    import torch.distributed as dist

    os.environ.update(env.to_environ())
    if backend == "nccl":
        torch.cuda.set_device(env.local_rank)
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size)


def cpu_model_wrapper(cfg: Any) -> dict[str, Any]:
    """The ``model_wrapper_cfg`` of CPU DDP: mmengine's wrapper with ``device_ids=None`` (the config's keys kept)."""
    wrapper = dict(cfg.get("model_wrapper_cfg") or {})
    wrapper.setdefault("type", "MMDistributedDataParallel")
    wrapper.setdefault("broadcast_buffers", False)
    wrapper.setdefault("find_unused_parameters", bool(cfg.get("find_unused_parameters", False)))
    wrapper["device_ids"] = None
    return wrapper
