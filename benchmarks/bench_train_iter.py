"""Seconds per training iteration of a Table 3 detector with FPN and with HS-FPN, and their ratio.

The issue's GPU figure: Cascade R-CNN R-50 at 800 x 800, one image per iteration (the paper's per-GPU
batch), with the AI-TOD settings of ``pipelines/configs`` (3000 proposals, 512 RoIs). Each iteration is a
full SGD step (forward, backward, optimizer) on a synthetic image with 200 tiny boxes; the first
``--warmup`` iterations are not timed. Both necks are measured in the same run, FPN first, on the same
device (CUDA when available, else CPU), so the ratio is comparable even where absolute times are not.

Usage:
    .venv/bin/python benchmarks/bench_train_iter.py                       # Cascade R-CNN, 800 px, GPU if any
    .venv/bin/python benchmarks/bench_train_iter.py --size 256 --iters 3  # quick CPU check
    .venv/bin/python benchmarks/bench_train_iter.py --row faster_rcnn --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _batch(size: int, boxes: int, device: str, seed: int = 0):
    import torch
    from mmdet.structures import DetDataSample
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(seed)
    img = torch.randint(0, 255, (3, size, size), dtype=torch.uint8, generator=g)
    xy = torch.rand(boxes, 2, generator=g) * (size - 24)
    wh = 4 + torch.rand(boxes, 2, generator=g) * 16  # AI-TOD-like: 4-20 px
    sample = DetDataSample(metainfo=dict(img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0)))
    sample.gt_instances = InstanceData(
        bboxes=torch.cat([xy, xy + wh], dim=1), labels=torch.randint(0, 8, (boxes,), generator=g)
    )
    return dict(inputs=[img], data_samples=[sample.to(device)])


def measure(row: str, neck: str, size: int, iters: int, warmup: int, boxes: int, device: str) -> float:
    """Mean seconds per training iteration (after ``warmup`` untimed ones)."""
    import torch
    from mmdet.registry import MODELS
    from mmengine.optim import build_optim_wrapper
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
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    data = _batch(size, boxes, device)

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        model.train_step(data, optim)
    sync()
    start = time.perf_counter()
    for _ in range(iters):
        model.train_step(data, optim)
    sync()
    return (time.perf_counter() - start) / iters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--row", default="cascade_rcnn", help="Table 3 row id (default cascade_rcnn)")
    parser.add_argument("--size", type=int, default=800, help="input side in pixels (multiple of 32)")
    parser.add_argument("--iters", type=int, default=20, help="timed iterations per neck")
    parser.add_argument("--warmup", type=int, default=3, help="untimed iterations per neck")
    parser.add_argument("--boxes", type=int, default=200, help="ground-truth boxes in the image")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads on CPU")
    args = parser.parse_args()

    import torch
    from mmengine.logging import MMLogger

    MMLogger.get_instance("mmengine", log_level="WARNING")  # keep the weight-init report out of the figures
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
