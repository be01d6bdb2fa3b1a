"""Assignment time and peak memory: NWD ranking and RFLA hierarchical assigners vs mmdet's MaxIoUAssigner.

The case from the issue: 3,000 tiny ground truths against the priors of an 800 x 800 image at P2 (stride 4,
200 x 200 points x 5 ratios = 200,000 priors; the AI-TOD anchors are scale 2 with ratios 0.33..3, the RF
priors use the same five ratios so both assigners see 200,000 boxes). Each measurement runs in a fresh
process so its peak resident memory (VmHWM) is its own; "peak" is the growth over the process's memory
just before ``assign`` (inputs and libraries excluded).

mmdet's MaxIoUAssigner builds the full 3,000 x 200,000 IoU matrix plus (G, N, 2) temporaries, about
``28 * G * N`` bytes (~17 GB here). It is measured at full size only with ``--allow-large-baseline`` (or when
it needs less than half of the available memory); it is always measured, in the same run, on a reduced case
(``--reduced-gts`` ground truths, same priors) where the ratios are printed.

Usage:
    .venv/bin/python benchmarks/bench_assign.py
    .venv/bin/python benchmarks/bench_assign.py --num-gts 1000 --threads 2
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time
from pathlib import Path

AITOD_RATIOS = (0.33, 0.5, 1.0, 2.0, 3.0)


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text(encoding="utf-8").splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def make_inputs(method: str, num_gts: int, image_size: int, seed: int):
    """Priors at P2 of an image_size square image and num_gts tiny boxes (2-32 px, mean ~12 px)."""
    import torch
    from mmdet.models.task_modules.prior_generators import AnchorGenerator
    from mmengine.structures import InstanceData

    from hsfpn.assigners import RFGenerator

    points = image_size // 4
    if method == "rfla":
        gen = RFGenerator(strides=(4,), ratios=AITOD_RATIOS)
    else:
        gen = AnchorGenerator(strides=[4], ratios=list(AITOD_RATIOS), scales=[2])
    priors = gen.grid_priors([(points, points)], device="cpu")[0]
    g = torch.Generator().manual_seed(seed)
    centres = torch.rand(num_gts, 2, generator=g) * image_size
    sides = torch.exp(torch.empty(num_gts, 2).uniform_(0.7, 3.47, generator=g))  # 2..32 px, log-uniform
    boxes = torch.cat([centres - sides / 2, centres + sides / 2], 1)
    labels = torch.randint(0, 8, (num_gts,), generator=g)
    return InstanceData(priors=priors), InstanceData(bboxes=boxes, labels=labels)


def build_assigner(method: str, max_elements: int):
    import hsfpn  # noqa: F401  (registers the assigners)
    from mmdet.registry import TASK_UTILS

    if method == "nwd":
        return TASK_UTILS.build(dict(type="RankingAssigner", topk=3, max_elements=max_elements))
    if method == "rfla":
        return TASK_UTILS.build(dict(type="HieAssigner", topk=(3, 1), ratio=0.9, max_elements=max_elements))
    # The RPN setting of mmdet's Faster R-CNN configs.
    return TASK_UTILS.build(
        dict(type="MaxIoUAssigner", pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True)
    )


def measure(method: str, num_gts: int, image_size: int, seed: int, max_elements: int, threads: int, queue) -> None:
    """Child process: time one assign() and report its peak memory growth."""
    import torch

    torch.set_num_threads(threads)
    pred, gt = make_inputs(method, num_gts, image_size, seed)
    assigner = build_assigner(method, max_elements)
    try:  # reset the peak-RSS mark to the current RSS (Linux >= 4.0)
        Path("/proc/self/clear_refs").write_text("5", encoding="utf-8")
        resettable = True
    except OSError:
        resettable = False
    before = _status_kib("VmRSS")
    start = time.perf_counter()
    result = assigner.assign(pred, gt)
    seconds = time.perf_counter() - start
    peak = _status_kib("VmHWM") - before if resettable else float("nan")
    positives = int((result.gt_inds > 0).sum())
    queue.put(dict(seconds=seconds, peak_mib=peak / 1024, priors=len(pred.priors), positives=positives))


def run_case(method: str, num_gts: int, args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(
        target=measure, args=(method, num_gts, args.image_size, args.seed, args.max_elements, args.threads, queue)
    )
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        return dict(error=f"exit code {proc.exitcode}")
    return queue.get()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-gts", type=int, default=3000, help="ground truths in the full case")
    parser.add_argument("--reduced-gts", type=int, default=300, help="ground truths in the reduced case")
    parser.add_argument("--image-size", type=int, default=800, help="square image side (P2 has side/4 points)")
    parser.add_argument("--max-elements", type=int, default=1 << 24, help="chunk budget of our assigners")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per measurement")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--allow-large-baseline", action="store_true", help="run MaxIoUAssigner at full size anyway")
    args = parser.parse_args()

    num_priors = (args.image_size // 4) ** 2 * len(AITOD_RATIOS)
    print(f"priors at P2: {num_priors:,}  threads: {args.threads}  chunk budget: {args.max_elements:,} entries")
    rows = []
    for num_gts, label in ((args.num_gts, "full"), (args.reduced_gts, "reduced")):
        baseline_bytes = 28 * num_gts * num_priors
        for method in ("maxiou", "nwd", "rfla"):
            if method == "maxiou" and not args.allow_large_baseline and baseline_bytes > _available_bytes() / 2:
                rows.append((label, num_gts, method, None, f"skipped: needs ~{baseline_bytes / 2**30:.1f} GiB"))
                continue
            rows.append((label, num_gts, method, run_case(method, num_gts, args), ""))

    print(f"{'case':8} {'GTs':>6} {'assigner':8} {'time s':>8} {'peak MiB':>9} {'positives':>9}  vs MaxIoU")
    base = {label: r for label, _, m, r, _ in rows if m == "maxiou" and r and "error" not in r}
    for label, num_gts, method, r, note in rows:
        if r is None or "error" in r:
            print(f"{label:8} {num_gts:>6} {method:8} {note or r['error']}")
            continue
        ratio = ""
        if label in base and method != "maxiou":
            b = base[label]
            ratio = f"time x{r['seconds'] / b['seconds']:.2f}, memory x{r['peak_mib'] / max(b['peak_mib'], 1e-9):.3f}"
        print(
            f"{label:8} {num_gts:>6} {method:8} {r['seconds']:8.2f} {r['peak_mib']:9.1f} {r['positives']:9d}  {ratio}"
        )


if __name__ == "__main__":
    main()
