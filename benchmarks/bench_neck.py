"""Benchmark HS-FPN against MMDetection's FPN and the unoptimised transcription of the paper.

Prints, for each device (CPU, and CUDA when available) and batch size, forward and forward+backward time
(median over repeats, wall-clock and process CPU time: on a shared machine the CPU time of a one-thread run is
the steadier figure) and peak memory of the three necks on ResNet-50 maps of a square image, with ratios to
FPN and to the baseline measured in the same run, after checking that HS-FPN's outputs equal the baseline's.

Each (device, neck, batch, forward or forward+backward) runs in its own subprocess. Peak memory on CPU is the
peak of live tensor bytes during one extra run, from the profiler's allocation records (inputs and weights
excluded); on CUDA it is ``torch.cuda.max_memory_allocated`` above the allocation after setup.

Usage::

    python benchmarks/bench_neck.py                       # 800 x 800, batches 1 and 2, 2 repeats
    python benchmarks/bench_neck.py --repeats 5 --threads 2
    python benchmarks/bench_neck.py --size 512 --batches 1 --devices cpu
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NECKS = ("FPN", "HSFPN", "baseline")
IN_CHANNELS = [256, 512, 1024, 2048]


def _setup(neck: str, batch: int, size: int, device: str, seed: int = 0):
    import torch

    sys.path[:0] = [str(REPO), str(HERE)]
    import hsfpn  # noqa: F401
    from mmdet.models.necks import FPN
    from reference_hsfpn import ReferenceHSFPN

    from hsfpn.convert import load_release_state_dict
    from hsfpn.neck import HSFPN

    import logging

    from mmengine.logging import MMLogger

    # init_weights logs every parameter's initialiser at INFO: hundreds of lines around the figures.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    torch.manual_seed(seed)
    ref = ReferenceHSFPN(IN_CHANNELS, 256, 5)
    ref.init_weights()
    if neck == "FPN":
        module = FPN(IN_CHANNELS, 256, 5)
        module.load_state_dict({k: v for k, v in ref.state_dict().items() if k.split(".")[0] in
                                ("lateral_convs", "fpn_convs")})
    elif neck == "HSFPN":
        module = HSFPN(IN_CHANNELS, 256, 5)
        load_release_state_dict(module, ref.state_dict())
    else:
        module = ref
    g = torch.Generator().manual_seed(seed + 1)
    inputs = [torch.randn(batch, c, size // 2 ** (i + 2), size // 2 ** (i + 2), generator=g)
              for i, c in enumerate(IN_CHANNELS)]
    return module.to(device), [x.to(device) for x in inputs]


def run_once(module, inputs, mode: str) -> None:
    """One forward (no grad) or one forward+backward of ``module``."""
    import torch

    if mode == "fwd":
        with torch.no_grad():
            module.eval()(inputs)
        return
    feats = [x.clone().requires_grad_(True) for x in inputs]
    module.train().zero_grad(set_to_none=True)
    sum(o.float().mean() for o in module(feats)).backward()


def _cpu_peak_bytes(fn) -> int:
    """Peak of live tensor bytes allocated during ``fn()``, from the profiler's allocation records.

    Allocations and frees are summed in time order at operator granularity (a buffer an operator allocates
    and frees inside itself is not seen). The process's resident set would be dominated by allocator and
    library caches shared by every neck.
    """
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    current = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        current += event.self_cpu_memory_usage
        peak = max(peak, current)
    return peak


def worker(neck: str, batch: int, size: int, device: str, mode: str, repeats: int, warmup: int) -> dict:
    """Time one neck in this process (``mode`` 'fwd' or 'fwdbwd'): median seconds and peak memory in MiB."""
    import torch

    module, inputs = _setup(neck, batch, size, device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times, cpu = [], []
    if mode == "fwd":
        module.eval()
        with torch.no_grad():
            for i in range(warmup + repeats):
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                module(inputs)
                sync()
                if i >= warmup:
                    times.append(time.perf_counter() - t0)
                    cpu.append(time.process_time() - c0)
    else:
        module.train()
        feats = [x.clone().requires_grad_(True) for x in inputs]
        for i in range(warmup + repeats):
            module.zero_grad(set_to_none=True)
            sync()
            t0, c0 = time.perf_counter(), time.process_time()
            sum(o.float().mean() for o in module(feats)).backward()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _cpu_peak_bytes(lambda: run_once(module, inputs, mode))
    return {"s": statistics.median(times), "cpu_s": statistics.median(cpu), "mib": peak / 2**20}


def check_equal(size: int, device: str) -> float:
    """Largest relative difference (per level, max |ours - baseline| / max |baseline|) at batch 1."""
    import torch

    ours, inputs = _setup("HSFPN", 1, size, device)
    ref, _ = _setup("baseline", 1, size, device)
    with torch.no_grad():
        a, b = ours.eval()(inputs), ref.eval()(inputs)
    return max(float((x - y).abs().max() / y.abs().max()) for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800, help="image side (maps are size/4 .. size/32)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu + cuda if any)")
    parser.add_argument("--worker", nargs=4, metavar=("NECK", "BATCH", "DEVICE", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.worker:
        neck, batch, device, mode = args.worker
        print(json.dumps(worker(neck, int(batch), args.size, device, mode, args.repeats, args.warmup)))
        return

    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, size {args.size}, "
          f"repeats {args.repeats} (median), warmup {args.warmup}")
    for device in devices:
        rel = check_equal(args.size, device)
        print(f"\n[{device}] HSFPN vs baseline outputs: max relative difference {rel:.2e} "
              f"({'OK' if rel <= 1e-4 else 'ABOVE 1e-4'})")
        for batch in args.batches:
            res: dict[str, dict[str, float]] = {}
            for neck in NECKS:
                for mode in ("fwd", "fwdbwd"):
                    cmd = [sys.executable, __file__, "--worker", neck, str(batch), device, mode, "--size",
                           str(args.size), "--repeats", str(args.repeats), "--warmup", str(args.warmup),
                           "--threads", str(args.threads or torch.get_num_threads())]
                    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                    r = json.loads(out.strip().splitlines()[-1])
                    res.setdefault(neck, {}).update(
                        {f"{mode}_s": r["s"], f"{mode}_cpu": r["cpu_s"], f"{mode}_mib": r["mib"]}
                    )
            print(f"\n  batch {batch}   (wall s: median wall-clock seconds; cpu s: median process CPU seconds)")
            print(f"  {'neck':<9}{'fwd s':>8}{'x FPN':>7}{'cpu s':>8}{'x FPN':>7}{'MiB':>6}"
                  f"{'f+b s':>9}{'x FPN':>7}{'cpu s':>8}{'x FPN':>7}{'MiB':>6}")
            for neck in NECKS:
                r, b = res[neck], res["FPN"]
                print(f"  {neck:<9}{r['fwd_s']:>8.3f}{r['fwd_s'] / b['fwd_s']:>7.2f}{r['fwd_cpu']:>8.3f}"
                      f"{r['fwd_cpu'] / b['fwd_cpu']:>7.2f}{r['fwd_mib']:>6.0f}{r['fwdbwd_s']:>9.3f}"
                      f"{r['fwdbwd_s'] / b['fwdbwd_s']:>7.2f}{r['fwdbwd_cpu']:>8.3f}"
                      f"{r['fwdbwd_cpu'] / b['fwdbwd_cpu']:>7.2f}{r['fwdbwd_mib']:>6.0f}")
            speed = {k: res["baseline"][k] / res["HSFPN"][k] for k in ("fwd_s", "fwd_cpu", "fwdbwd_s", "fwdbwd_cpu")}
            print(f"  HSFPN speed-up over baseline: forward {speed['fwd_s']:.2f}x wall / {speed['fwd_cpu']:.2f}x cpu, "
                  f"forward+backward {speed['fwdbwd_s']:.2f}x wall / {speed['fwdbwd_cpu']:.2f}x cpu")


if __name__ == "__main__":
    main()
