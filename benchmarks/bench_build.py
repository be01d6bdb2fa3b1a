"""Benchmark of the DOTAmini10 builder: windows/s and peak memory against a plain reference and the I/O bound.

Scenes: a synthetic 8,000 x 8,000 scene with 3,000 objects (121 windows of 1,024 px at stride 768), and the
real DOTA sample the repository ships (``tests/data/dota_sample``). Three figures per scene, all measured in this run:

* ``reference``: ``benchmarks/reference_split.py``, one process: read, resize, then per window crop, shapely
  for every object, label file and PNG.
* ``builder``: ``dotamini10.build.build_dotamini10`` with 1 and with ``--workers`` processes (scale fixed at 1.0,
  no augmented copies, so that both write the same windows).
* ``I/O bound``: decoding the image once plus encoding every window as PNG (the builder's codec,
  ``dotamini10/png.py``), the encoding spread over the workers: ``decode + encode_total / workers``. The formula
  assumes that many free cores; the same work is also run in ``workers`` forked processes, which shows what a
  shared machine really offers at the moment of the run. The bound is also printed with OpenCV's codec, the
  one the reference uses, whose figures the issue quotes (~1.1 s decode, ~0.03 s per encode).

Each run is a fresh process, which reports its own wall time (imports excluded) and peak resident memory.
The builder's breakdown (decode, intersect, wait for rows, encode, labels, write, ...) is summed over
processes; the builder can beat the bound's formula, since its workers split the top of a shared image while
its bottom is still being decoded.

Usage:
    python benchmarks/bench_build.py [--workers 2] [--size 8000] [--objects 3000] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLASSES = ("plane", "small-vehicle", "large-vehicle", "ship", "tennis-court", "swimming-pool", "storage-tank")


def make_scene(root: Path, size: int, n_objects: int, seed: int = 0) -> Path:
    """A DOTA split folder with one ``size`` x ``size`` textured scene and ``n_objects`` rotated boxes."""
    import cv2

    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    # Low-frequency colour field plus fine noise: compresses like an aerial photo, not like pure noise.
    field = rng.integers(40, 200, (size // 250 + 2, size // 250 + 2, 3), dtype=np.uint8)
    image = cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC)
    image = cv2.add(image, rng.integers(0, 12, image.shape, dtype=np.uint8))
    lines = []
    for i in range(n_objects):
        length = float(min(6 + rng.pareto(1.6) * 8, 400))
        width = length * rng.uniform(0.3, 1.0)
        cx, cy = rng.uniform(20, size - 20, 2)
        angle = rng.uniform(0, 180)
        corners = cv2.boxPoints(((cx, cy), (length, width), angle))
        cv2.fillPoly(image, [np.round(corners).astype(np.int32)], tuple(int(v) for v in rng.integers(0, 255, 3)))
        coords = " ".join(f"{v:.1f}" for v in corners.ravel())
        lines.append(f"{coords} {CLASSES[i % len(CLASSES)]} 0\n")
    cv2.imwrite(str(root / "images" / f"S{size}.png"), image)
    (root / "labelTxt" / f"S{size}.txt").write_text("imagesource:bench\ngsd:0.5\n" + "".join(lines), encoding="utf-8")
    return root


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM: unlike ru_maxrss it does not inherit the parent's peak)."""
    from dotamini10.worker import peak_rss_mb as worker_peak

    return worker_peak()


# ---------------------------------------------------------------------------------------------------------------
# Child processes: each measures one thing and prints one JSON line
# ---------------------------------------------------------------------------------------------------------------


def child_reference(split_dir: Path, out: Path) -> dict:
    from benchmarks.reference_split import reference_split

    start = time.perf_counter()
    windows = reference_split(split_dir, out)
    return {"seconds": time.perf_counter() - start, "windows": windows, "peak_rss_mb": peak_rss_mb()}


def child_builder(split_dir: Path, out: Path, workers: int) -> dict:
    from dotamini10.build import BuildOptions, build_dotamini10

    options = BuildOptions(scale_mode="fixed", scales=(1.0,), aug_copies=0, drop_empty_train=False)
    summary = build_dotamini10(out, dota_root=split_dir, options=options, workers=workers)
    return {
        "seconds": summary.elapsed,
        "windows": summary.windows_total,
        "peak_rss_mb": peak_rss_mb(),
        "worker_peak_rss_mb": summary.worker_peak_rss_mb,
        "timings": summary.timings,
    }


_BOUND_IMAGE = None


def _encode_share(args: tuple[int, int]) -> float:
    from dotamini10.png import encode_png
    from dotamini10.split import get_windows
    from dotamini10.worker import CHANNELS, crop_window

    part, parts = args
    image = _BOUND_IMAGE
    start = time.perf_counter()
    for window in get_windows(image.shape[1], image.shape[0])[part::parts]:
        encode_png(crop_window(image, window), channels=CHANNELS)
    return time.perf_counter() - start


def child_bound(split_dir: Path, workers: int) -> dict:
    """Decode once, encode every window: serially (the bound's formula) and in ``workers`` forked processes."""
    import multiprocessing

    import cv2

    from dotamini10.read import decode_image
    from dotamini10.worker import CHANNELS

    global _BOUND_IMAGE
    cv2.setNumThreads(1)
    decode = encode = parallel = cv_decode = cv_encode = 0.0
    windows = 0
    for path in sorted((split_dir / "images").iterdir()):
        start = time.perf_counter()
        _BOUND_IMAGE = decode_image(path, channels=CHANNELS)
        decode += time.perf_counter() - start
        windows += len(get_windows_of(_BOUND_IMAGE))
        encode += _encode_share((0, 1))
        # The same encoding spread over forked processes (they share the decoded image copy-on-write):
        # what the machine really offers in parallel at this moment.
        start = time.perf_counter()
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            pool.map(_encode_share, [(i, workers) for i in range(workers)])
        parallel += time.perf_counter() - start
        # The same bound with OpenCV's codec (the issue's own figures: ~1.1 s decode, ~0.03 s per encode),
        # encoding a spread sample of at most 20 windows.
        start = time.perf_counter()
        cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv_decode += time.perf_counter() - start
        image_windows = get_windows_of(_BOUND_IMAGE)
        sample = image_windows[:: max(1, len(image_windows) // 20)]
        bgr = np.ascontiguousarray(_BOUND_IMAGE[:, :, ::-1])
        start = time.perf_counter()
        for window in sample:
            x0, y0, x1, y1 = (int(v) for v in window)
            cv2.imencode(".png", bgr[y0:y1, x0:x1])
        cv_encode += (time.perf_counter() - start) / len(sample) * len(image_windows)
    return {"seconds": decode + encode / workers, "windows": windows, "decode": decode, "encode": encode,
            "measured_seconds": decode + parallel, "opencv_decode": cv_decode, "opencv_encode": cv_encode,
            "opencv_seconds": cv_decode + cv_encode / workers}


def get_windows_of(image: np.ndarray) -> np.ndarray:
    from dotamini10.split import get_windows

    return get_windows(image.shape[1], image.shape[0])


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------------------------------------------------


def bench_scene(name: str, split_dir: Path, work: Path, workers: int, repeat: int) -> None:
    # Runs are interleaved and the fastest of ``repeat`` kept: on a shared machine the load changes within
    # seconds, and interleaving exposes every contender to the same conditions.
    runs = {
        "reference": ("reference", str(split_dir), str(work / "ref")),
        "builder x1": ("builder", str(split_dir), str(work / "b1"), "1"),
        f"builder x{workers}": ("builder", str(split_dir), str(work / "bn"), str(workers)),
        "I/O bound": ("bound", str(split_dir), str(workers)),
    }
    results: dict[str, dict] = {}
    for _ in range(repeat):
        for label, args in runs.items():
            r = run_child(*args)
            if label not in results or r["seconds"] < results[label]["seconds"]:
                results[label] = r
            for sub in ("ref", "b1", "bn"):
                shutil.rmtree(work / sub, ignore_errors=True)
    ref = results["reference"]["windows"] / results["reference"]["seconds"]
    bound = results["I/O bound"]["windows"] / results["I/O bound"]["seconds"]
    print(f"\n== {name}")
    print(f"{'':<14}{'windows':>8}{'seconds':>9}{'windows/s':>11}{'x ref':>8}{'bound/this':>11}{'peak RSS MiB':>22}")
    for label, r in results.items():
        rate = r["windows"] / r["seconds"]
        rss = r.get("peak_rss_mb")
        rss_text = "-" if rss is None else f"{rss:.0f}"
        if "worker_peak_rss_mb" in r and label != "builder x1":
            rss_text = f"{rss:.0f} + {r['worker_peak_rss_mb']:.0f}/worker"
        print(f"{label:<14}{r['windows']:>8}{r['seconds']:>9.2f}{rate:>11.1f}{rate / ref:>8.2f}{bound / rate:>11.2f}"
              f"{rss_text:>22}")
    best = results[f"builder x{workers}"]
    best_rate = best["windows"] / best["seconds"]
    print(f"builder x{workers}: {best_rate / ref:.2f}x the reference's windows/s (target >= 3), "
          f"{bound / best_rate:.2f}x the I/O bound's time (target <= 1.3); the bound itself is "
          f"{bound / ref:.2f}x the reference")
    b = results["I/O bound"]
    measured = b["windows"] / b["measured_seconds"]
    print(f"I/O bound measured with {workers} real processes in this run: {measured:.1f} windows/s "
          f"(the formula assumes {workers} free cores: {bound:.1f}); builder x{workers} is "
          f"{measured / best_rate:.2f}x slower than that")
    print(f"I/O bound parts: decode {b['decode']:.2f} s, encode {b['encode']:.2f} s in all "
          f"({1000 * b['encode'] / max(b['windows'], 1):.1f} ms per window), spread over {workers} workers")
    cv_rate = b["windows"] / b["opencv_seconds"]
    print(f"the same bound with OpenCV's codec (cv2.imread, cv2.imencode defaults): {cv_rate:.1f} windows/s "
          f"(decode {b['opencv_decode']:.2f} s, {1000 * b['opencv_encode'] / max(b['windows'], 1):.1f} ms per "
          f"window); builder x{workers} is {best_rate / cv_rate:.2f}x that")
    t = results[f"builder x{workers}"]["timings"]
    busy = sum(t.values())
    wall = results[f"builder x{workers}"]["seconds"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in t.items() if v >= 0.005)
    print(f"builder x{workers} breakdown (s, summed over processes): {parts}; "
          f"other {max(workers * wall - busy, 0):.2f} of {workers} x {wall:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--size", type=int, default=8000)
    parser.add_argument("--objects", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3, help="Interleaved runs per figure; the fastest counts.")
    parser.add_argument("--keep", type=Path, default=None, help="Reuse/keep the generated scene in this folder.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "reference":
            out = child_reference(Path(rest[0]), Path(rest[1]))
        elif kind == "builder":
            out = child_builder(Path(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            out = child_bound(Path(rest[0]), int(rest[1]))
        print(json.dumps(out))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_build_"))
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(figures are relative to runs made in the same minutes)")
    try:
        scene = args.keep or work / "scene"
        if not (scene / "images" / f"S{args.size}.png").is_file():
            start = time.perf_counter()
            make_scene(scene, args.size, args.objects)
            print(f"made a {args.size} x {args.size} scene with {args.objects} objects in "
                  f"{time.perf_counter() - start:.1f} s")
        bench_scene(f"synthetic {args.size} x {args.size}, {args.objects} objects", scene, work, args.workers, args.repeat)
        sample = REPO / "tests" / "data" / "dota_sample"
        if (sample / "images").is_dir():
            bench_scene("real DOTA sample (2 images)", sample, work, args.workers, args.repeat)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
