"""Benchmark HS-FPN (hsfpn.nn) against a plain-PyTorch FPN of the same shape, MMDetection's necks and the release.

Necks, all with ResNet-50 channels (C2..C5 of a square image, 256 output channels, 5 outputs) and the same
weights where they share them:

- ``FPN``: plain-PyTorch FPN, i.e. :class:`hsfpn.nn.HSFPN` with every HS-FPN switch off (exactly FPN's modules
  and outputs; the tests pin it to MMDetection's FPN);
- ``HSFPN``: :class:`hsfpn.nn.HSFPN`, plain PyTorch;
- ``mmdet-FPN``, ``mmdet-HSFPN``: MMDetection's FPN and the registered adapter :class:`hsfpn.neck.HSFPN`;
- ``baseline``: the release transcription (``reference_hsfpn.py``: torch-dct, explicit attention).

The last three need MMCV / MMDetection (and torch-dct): where those are not installed (a GPU box with plain
PyTorch) they are left out and the rest runs.

Printed for each device and precision (CPU fp32; on CUDA fp32 and bf16 autocast when a GPU is present) and batch
size: forward and forward+backward time (median over repeats; wall-clock, and on CPU also process CPU time, the
steadier figure on a shared machine), peak memory, ratios to the plain FPN measured in the same run, and a check
that HS-FPN's outputs equal the adapter's and the release's. Each (neck, batch, mode) runs in its own
subprocess. Peak memory on CPU is the peak of live tensor bytes during one extra run, from the profiler's
allocation records (inputs and weights excluded); on CUDA it is ``torch.cuda.max_memory_allocated`` above the
allocation after setup.

Usage::

    python benchmarks/bench_neck.py                       # 800 x 800, batches 1 and 2, 2 repeats
    python benchmarks/bench_neck.py --repeats 5 --threads 2
    python benchmarks/bench_neck.py --size 512 --batches 1 --devices cpu --necks FPN HSFPN
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
NECKS = ("FPN", "HSFPN", "mmdet-FPN", "mmdet-HSFPN", "baseline")
NEEDS_MMDET = ("mmdet-FPN", "mmdet-HSFPN", "baseline")
IN_CHANNELS = [256, 512, 1024, 2048]
ALL_OFF = dict(channel_path=False, spatial_path=False, sdp=False)


def available_necks() -> tuple[str, ...]:
    """The necks this environment can build (MMDetection and torch-dct are optional here)."""
    have_mmdet = all(importlib.util.find_spec(m) is not None for m in ("mmcv", "mmdet", "torch_dct"))
    return tuple(n for n in NECKS if have_mmdet or n not in NEEDS_MMDET)


def build_neck(neck: str, seed: int = 0):
    """One neck of the benchmark, with the weights of a seeded :class:`hsfpn.nn.HSFPN` (shared names)."""
    import torch

    sys.path[:0] = [str(REPO), str(HERE)]
    from hsfpn.nn import HSFPN

    torch.manual_seed(seed)
    master = HSFPN(IN_CHANNELS, 256, 5).state_dict()
    fpn_part = {k: v for k, v in master.items() if k.split(".")[0] in ("lateral_convs", "fpn_convs")}
    if neck in ("FPN", "HSFPN"):
        module = HSFPN(IN_CHANNELS, 256, 5, **(ALL_OFF if neck == "FPN" else {}))
        module.load_state_dict(fpn_part if neck == "FPN" else master)
        return module
    import logging

    from mmengine.logging import MMLogger

    # init_weights logs every parameter's initialiser at INFO: hundreds of lines around the figures.
    MMLogger.get_current_instance().setLevel(logging.WARNING)
    if neck == "mmdet-FPN":
        from mmdet.models.necks import FPN

        module = FPN(IN_CHANNELS, 256, 5)
        module.load_state_dict(fpn_part)
    elif neck == "mmdet-HSFPN":
        from hsfpn.neck import HSFPN as MMDetHSFPN

        module = MMDetHSFPN(IN_CHANNELS, 256, 5)
        module.load_state_dict(master)
    else:
        from reference_hsfpn import ReferenceHSFPN

        from hsfpn.convert import convert_neck_state_dict

        module = ReferenceHSFPN(IN_CHANNELS, 256, 5)
        release_names = list(module.state_dict())
        ours = convert_neck_state_dict({k: v for k, v in module.state_dict().items()})
        module.load_state_dict({release: master[our] for release, our in zip(release_names, ours)})
    return module


def make_inputs(batch: int, size: int, device: str, seed: int = 1):
    import torch

    g = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, c, size // 2 ** (i + 2), size // 2 ** (i + 2), generator=g).to(device)
            for i, c in enumerate(IN_CHANNELS)]


def precision(device: str, dtype: str):
    """The autocast context of a measurement (fp32: none)."""
    import torch

    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.split(":")[0], dtype=getattr(torch, {"bf16": "bfloat16"}[dtype]))


def run_once(module, inputs, mode: str, device: str, dtype: str) -> None:
    """One forward (no grad) or one forward+backward of ``module``."""
    import torch

    if mode == "fwd":
        with torch.no_grad(), precision(device, dtype):
            module.eval()(inputs)
        return
    feats = [x.clone().requires_grad_(True) for x in inputs]
    module.train().zero_grad(set_to_none=True)
    with precision(device, dtype):
        # The outputs are not kept: they are freed before the backward pass, as in a detector's loss.
        loss = sum(o.float().mean() for o in module(feats))
    loss.backward()


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


def worker(neck: str, batch: int, size: int, device: str, dtype: str, mode: str, repeats: int, warmup: int) -> dict:
    """Time one neck in this process: median wall and CPU seconds, peak memory in MiB."""
    import torch

    module = build_neck(neck).to(device)
    inputs = make_inputs(batch, size, device)
    cuda = device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    if cuda:
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    times, cpu = [], []
    for i in range(warmup + repeats):
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        run_once(module, inputs, mode, device, dtype)
        sync()
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    if cuda:
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _cpu_peak_bytes(lambda: run_once(module, inputs, mode, device, dtype))
    return {"s": statistics.median(times), "cpu_s": statistics.median(cpu), "mib": peak / 2**20}


def check_equal(size: int, device: str, necks: tuple[str, ...]) -> dict[str, float]:
    """Largest relative difference of HSFPN's outputs (max |ours - other| / max |other| over the levels), batch 1."""
    import torch

    inputs = make_inputs(1, size, device)
    with torch.no_grad():
        ours = build_neck("HSFPN").to(device).eval()(inputs)
        diffs = {}
        for other in ("mmdet-HSFPN", "baseline"):
            if other in necks:
                ref = build_neck(other).to(device).eval()(inputs)
                diffs[other] = max(float((a - b).abs().max() / b.abs().max()) for a, b in zip(ours, ref))
    return diffs


def measure(args, device: str, dtype: str, batch: int, neck: str) -> dict[str, float]:
    """Forward and forward+backward of one neck, each in a fresh subprocess; None figures where it failed."""
    out: dict[str, float] = {}
    for mode in ("fwd", "fwdbwd"):
        cmd = [sys.executable, __file__, "--worker", neck, str(batch), device, dtype, mode, "--size", str(args.size),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--threads", str(args.threads)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:  # e.g. the release's FFT DCT has no bf16 kernel on some GPUs
            reason = (result.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"    {neck} {mode}: failed ({reason[:120]})")
            out.update({f"{mode}_s": float("nan"), f"{mode}_cpu": float("nan"), f"{mode}_mib": float("nan")})
            continue
        r = json.loads(result.stdout.strip().splitlines()[-1])
        out.update({f"{mode}_s": r["s"], f"{mode}_cpu": r["cpu_s"], f"{mode}_mib": r["mib"]})
    return out


def print_table(res: dict[str, dict[str, float]], batch: int, cuda: bool) -> None:
    b = res["FPN"]
    cols = ("fwd_s", "fwd_cpu", "fwd_mib", "fwdbwd_s", "fwdbwd_cpu", "fwdbwd_mib")
    if cuda:  # process CPU time says nothing about GPU work
        cols = ("fwd_s", "fwd_mib", "fwdbwd_s", "fwdbwd_mib")
    heads = {"fwd_s": "fwd s", "fwd_cpu": "cpu s", "fwd_mib": "MiB", "fwdbwd_s": "f+b s", "fwdbwd_cpu": "cpu s",
             "fwdbwd_mib": "MiB"}
    print(f"\n  batch {batch}   (s: median seconds, wall-clock or process CPU; x FPN: ratio to the plain FPN; "
          "MiB: peak)")
    line = f"  {'neck':<13}"
    for c in cols:
        line += f"{heads[c]:>9}" + ("" if c.endswith("mib") else f"{'x FPN':>7}")
    print(line)
    for neck, r in res.items():
        line = f"  {neck:<13}"
        for c in cols:
            line += f"{r[c]:>9.0f}" if c.endswith("mib") else f"{r[c]:>9.3f}{r[c] / b[c]:>7.2f}"
        print(line)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=800, help="image side (maps are size/4 .. size/32)")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per measurement (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--devices", nargs="+", default=None, help="cpu and/or cuda (default: cpu + cuda if any)")
    parser.add_argument("--necks", nargs="+", default=None, choices=NECKS, help="default: all available")
    parser.add_argument("--worker", nargs=5, metavar=("NECK", "BATCH", "DEVICE", "DTYPE", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    args.threads = args.threads or torch.get_num_threads()
    if args.worker:
        neck, batch, device, dtype, mode = args.worker
        print(json.dumps(worker(neck, int(batch), args.size, device, dtype, mode, args.repeats, args.warmup)))
        return

    available = available_necks()
    necks = tuple(n for n in (args.necks or available) if n in available)
    necks = necks if "FPN" in necks else ("FPN", *necks)  # the ratios' denominator
    missing = [n for n in (args.necks or NECKS) if n not in available]
    devices = args.devices or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    print(f"torch {torch.__version__}, threads {args.threads}, size {args.size}, repeats {args.repeats} (median), "
          f"warmup {args.warmup}" + (f"; not installed here, left out: {', '.join(missing)}" if missing else ""))
    for device in devices:
        if device.startswith("cuda"):
            print(f"\n[{device}] {torch.cuda.get_device_name(device)}")
        diffs = check_equal(args.size, device, necks)
        if diffs:
            print(f"\n[{device}] HSFPN outputs vs " + ", ".join(
                f"{k}: max relative difference {v:.2e} ({'OK' if v <= 1e-4 else 'ABOVE 1e-4'})" for k, v in diffs.items()))
        for dtype in (("fp32", "bf16") if device.startswith("cuda") else ("fp32",)):
            print(f"\n[{device} {dtype}{' autocast' if dtype != 'fp32' else ''}]")
            for batch in args.batches:
                res = {neck: measure(args, device, dtype, batch, neck) for neck in necks}
                print_table(res, batch, device.startswith("cuda"))
                if "baseline" in res and "HSFPN" in res:
                    r, b = res["HSFPN"], res["baseline"]
                    print(f"  HSFPN speed-up over the release transcription: forward {b['fwd_s'] / r['fwd_s']:.2f}x, "
                          f"forward+backward {b['fwdbwd_s'] / r['fwdbwd_s']:.2f}x (wall)")


if __name__ == "__main__":
    main()
