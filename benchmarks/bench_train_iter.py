"""Seconds per training iteration of a Table 3 detector with FPN and with HS-FPN, and their ratio; and the
same training step in 1 vs 2 CPU processes (DDP over gloo) on the same total batch, with the scaling efficiency.

The issue's GPU figure: Cascade R-CNN R-50 at 800 x 800, one image per iteration (the paper's per-GPU
batch), with the AI-TOD settings of ``pipelines/configs`` (3000 proposals, 512 RoIs). Each iteration is a
full SGD step (forward, backward, optimizer) on a synthetic image with 200 tiny boxes; the first
``--warmup`` iterations are not timed. Both necks are measured in the same run, FPN first, on the same
device (CUDA when available, else CPU), so the ratio is comparable even where absolute times are not.

``--processes N`` measures data parallelism instead: one step on a total batch of N images, taken by one
process (N images) and by N processes of one image each (``MMDistributedDataParallel`` with
``device_ids=None`` over gloo, as ``--gpus 0 --nproc N`` runs a job), every process with ``--threads``
threads. Scaling efficiency = (1-process s/iter) / (N x N-process s/iter): 1.0 is a perfect N-fold speed-up.
A single process with N x ``--threads`` threads is timed too, as the other way to use the same cores.

Usage:
    .venv/bin/python benchmarks/bench_train_iter.py                       # Cascade R-CNN, 800 px, GPU if any
    .venv/bin/python benchmarks/bench_train_iter.py --size 256 --iters 3  # quick CPU check
    .venv/bin/python benchmarks/bench_train_iter.py --row faster_rcnn --threads 2
    .venv/bin/python benchmarks/bench_train_iter.py --processes 2 --row faster_rcnn --size 256 --iters 5
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def _batch(size: int, boxes: int, device: str, seed: int = 0, images: int = 1):
    """``images`` synthetic images with ``boxes`` AI-TOD-like boxes each; image ``k`` drawn from ``seed + k``."""
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    inputs, samples = [], []
    for k in range(images):
        g = torch.Generator().manual_seed(seed + k)
        inputs.append(torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g))
        xy = torch.rand(boxes, 2, generator=g) * (size - 24)
        wh = 4 + torch.rand(boxes, 2, generator=g) * 16  # AI-TOD-like: 4-20 px
        sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0)))
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], dim=1), labels=torch.randint(0, 8, (boxes,), generator=g)
        )
        samples.append(sample.to(device))
    return dict(inputs=inputs, data_samples=samples)


def _build(row: str, neck: str, size: int, device: str):
    """The row's model (seeded init, train mode) and its optimizer config."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    import hsfpn  # noqa: F401  (registers HSFPN)
    from pipelines.datasets import AITOD_CLASSES, DatasetLayout
    from pipelines.detectors import DETECTORS, VARIANTS, build_job_config
    from pipelines.presets import resolve_settings

    init_default_scope("mmdet")
    torch.manual_seed(0)
    layout = DatasetLayout("aitod", Path("/data"), AITOD_CLASSES, "a.json", "i/", "b.json", "j/")
    settings = resolve_settings("paper", Path("w"), img_scale=size)
    cfg = build_job_config(DETECTORS[row], VARIANTS[neck], layout, settings)
    model = MODELS.build(cfg.model).to(device)
    model.init_weights()
    model.train()
    return model, cfg


def _time_steps(step, iters: int, warmup: int, sync) -> float:
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync()
    return (time.perf_counter() - start) / iters


def measure(row: str, neck: str, size: int, iters: int, warmup: int, boxes: int, device: str, images: int = 1) -> float:
    """Mean seconds per training iteration of one process on ``images`` images (after ``warmup`` untimed ones)."""
    import torch
    from mmengine.optim import build_optim_wrapper

    model, cfg = _build(row, neck, size, device)
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = _batch(size, boxes, device, images=images)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    return _time_steps(lambda: model.train_step(data, optim), iters, warmup, sync)


def _ddp_worker(rank: int, world: int, port: int, parent_pid: int, args: argparse.Namespace, out: Any) -> None:
    """One of ``world`` CPU processes: a DDP training step on image ``rank`` of the total batch."""
    import os

    from dotamini10.processes import die_with_parent

    die_with_parent(parent_pid)
    import torch
    import torch.distributed as dist
    from mmengine.logging import MMLogger
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper

    MMLogger.get_instance("mmengine", log_level="WARNING")
    torch.set_num_threads(args.threads)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model, cfg = _build(args.row, args.neck, args.size, "cpu")
    ddp = MMDistributedDataParallel(
        module=model, device_ids=None, broadcast_buffers=False,
        find_unused_parameters=bool(cfg.get("find_unused_parameters", False)),
    )
    optim = build_optim_wrapper(ddp, cfg.optim_wrapper)
    data = _batch(args.size, args.boxes, "cpu", seed=rank)  # image `rank` of the 1-process batch
    seconds = _time_steps(lambda: ddp.train_step(data, optim), args.iters, args.warmup, dist.barrier)
    if rank == 0:
        out.put(seconds)
    dist.destroy_process_group()


def measure_processes(args: argparse.Namespace) -> float:
    """Mean seconds per iteration of ``args.processes`` CPU processes, one image each (rank 0's clock)."""
    import multiprocessing as mp
    import os

    from pipelines.runner import free_port

    ctx = mp.get_context("spawn")  # a clean interpreter per rank (no forked torch state)
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=_ddp_worker, args=(r, args.processes, port, os.getpid(), args, out))
             for r in range(args.processes)]
    for proc in procs:
        proc.start()
    seconds = out.get(timeout=3600)
    for proc in procs:
        proc.join(timeout=60)
    return seconds


def compare_processes(args: argparse.Namespace) -> None:
    """Print s/iter of 1 process vs N processes on a total batch of N images, and the scaling efficiency."""
    import torch

    n = args.processes
    print(f"{args.row} + {args.neck} at {args.size} x {args.size}, total batch {n} images, {args.boxes} boxes each, CPU")
    torch.set_num_threads(args.threads)
    one = measure(args.row, args.neck, args.size, args.iters, args.warmup, args.boxes, "cpu", images=n)
    print(f"  1 process  x {args.threads} thread(s), {n} images: {one:.3f} s/iter")
    torch.set_num_threads(n * args.threads)
    wide = measure(args.row, args.neck, args.size, args.iters, args.warmup, args.boxes, "cpu", images=n)
    print(f"  1 process  x {n * args.threads} thread(s), {n} images: {wide:.3f} s/iter")
    many = measure_processes(args)
    print(f"  {n} processes x {args.threads} thread(s), 1 image each (DDP, gloo): {many:.3f} s/iter")
    print(f"  speed-up {one / many:.2f}x over 1 process x {args.threads} thread(s): scaling efficiency "
          f"{one / (n * many):.2f}; {wide / many:.2f}x over 1 process x {n * args.threads} threads")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="cascade_rcnn", help="Table 3 row id (default cascade_rcnn)")
    parser.add_argument("--size", type=int, default=800, help="input side in pixels (multiple of 32)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per neck")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per neck")
    parser.add_argument("--boxes", type=int, default=200, help="ground-truth boxes in the image")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU (per process)")
    parser.add_argument("--processes", type=int, default=0,
                        help="compare 1 vs this many CPU processes on the same total batch (0: compare the necks)")
    parser.add_argument("--neck", default="hsfpn", help="neck of the --processes comparison (fpn or hsfpn)")
    args = parser.parse_args()

    import torch
    from mmengine.logging import MMLogger

    MMLogger.get_instance("mmengine", log_level="WARNING")  # keep the weight-init report out of the figures
    if args.processes:
        compare_processes(args)
        return
    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"{args.row} at {args.size} x {args.size}, 1 image / iteration, {args.boxes} boxes, device {name}")
    times = {}
    for neck in ("fpn", "hsfpn"):
        times[neck] = measure(args.row, neck, args.size, args.iters, args.warmup, args.boxes, device)
        print(f"  {neck:<6} {times[neck]:.3f} s/iter")
    print(f"  HS-FPN / FPN: {times['hsfpn'] / times['fpn']:.2f}x")


if __name__ == "__main__":
    main()
