"""Benchmark of ``hsfpn-data slice`` against SAHI's ``slice_coco`` on the same COCO set, and a check that both
make the same windows and keep the same boxes where their rules coincide.

Input: ``--images`` synthetic PNGs of ``--size`` (width x height, both at least a window, so that no image is
padded) with ``--boxes`` integer boxes each (4-40 px, so that SAHI's integer areas are exact). Both slice with
the same window, a stride of 3/4 window (SAHI: overlap ratio 0.25) and ``--iof`` (SAHI: ``min_area_ratio``),
keeping empty windows (SAHI's default). Each run is a fresh process (imports excluded); runs are interleaved and
the fastest of ``--repeat`` kept. Peak memory is the process's (and our workers') high-water mark.

Usage:
    python benchmarks/bench_slice.py [--images 8] [--size 2000x1500] [--boxes 300] [--window 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def make_input(root: Path, images: int, width: int, height: int, boxes: int) -> Path:
    import cv2
    import numpy as np

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True, exist_ok=True)
    entries, anns = [], []
    for i in range(images):
        field = rng.integers(40, 200, (height // 200 + 2, width // 200 + 2, 3), dtype=np.uint8)
        image = cv2.add(cv2.resize(field, (width, height), interpolation=cv2.INTER_CUBIC),
                        rng.integers(0, 12, (height, width, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "images" / f"scene{i}.png"), image)
        entries.append({"id": i + 1, "file_name": f"scene{i}.png", "width": width, "height": height})
        for _ in range(boxes):
            w, h = (int(v) for v in rng.integers(4, 41, 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": int(rng.integers(1, 4)),
                         "bbox": [x, y, w, h], "area": w * h, "iscrowd": 0})
    categories = [{"id": k, "name": name} for k, name in enumerate(("car", "ship", "plane"), start=1)]
    (root / "train.json").write_text(json.dumps({"images": entries, "annotations": anns, "categories": categories}),
                                     encoding="utf-8")
    return root


def peak_rss_mb() -> float:
    from dotamini10.worker import peak_rss_mb as worker_peak

    return worker_peak()


def child_ours(src: Path, out: Path, window: int, iof: float, workers: int) -> dict:
    from dotamini10.slicing.build import SliceOptions, slice_coco

    start = time.perf_counter()
    summary = slice_coco(src / "train.json", src / "images", out, workers=workers,
                         options=SliceOptions(window=window, stride=window - window // 4, iof=iof))
    return {"seconds": time.perf_counter() - start, "windows": summary.counts["windows"],
            "peak_rss_mb": peak_rss_mb(), "worker_peak_rss_mb": summary.worker_peak_rss_mb}


def child_sahi(src: Path, out: Path, window: int, iof: float) -> dict:
    from sahi.slicing import slice_coco as sahi_slice_coco

    start = time.perf_counter()
    coco, _ = sahi_slice_coco(str(src / "train.json"), str(src / "images"), "sliced", output_dir=str(out),
                              slice_height=window, slice_width=window, overlap_height_ratio=0.25,
                              overlap_width_ratio=0.25, min_area_ratio=iof, out_ext=".png", verbose=False)
    return {"seconds": time.perf_counter() - start, "windows": len(coco["images"]), "peak_rss_mb": peak_rss_mb()}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(ours_dir: Path, sahi_dir: Path) -> tuple[int, int, int, int]:
    """(windows in both, windows with the same kept boxes, ours total, SAHI's total), keyed by source and origin."""
    ours = json.loads((ours_dir / "annotations" / "train.json").read_text(encoding="utf-8"))
    theirs = json.loads((sahi_dir / "sliced_coco.json").read_text(encoding="utf-8"))

    def boxes(doc: dict) -> dict[int, list]:
        found: dict[int, list] = {im["id"]: [] for im in doc["images"]}
        for a in doc["annotations"]:
            found[a["image_id"]].append((a["category_id"], tuple(round(float(v), 6) for v in a["bbox"])))
        return {k: sorted(v) for k, v in found.items()}

    ours_boxes, their_boxes = boxes(ours), boxes(theirs)
    mine = {(im["source_image"].removesuffix(".png"), *im["window"]): ours_boxes[im["id"]] for im in ours["images"]}
    pattern = re.compile(r"(.+)_\d+_(\d+)_(\d+)_\d+_\d+\.png")
    other = {}
    for im in theirs["images"]:
        stem, x, y = pattern.fullmatch(im["file_name"]).groups()
        other[(stem, int(x), int(y))] = their_boxes[im["id"]]
    both = set(mine) & set(other)
    return len(both), sum(mine[k] == other[k] for k in both), len(mine), len(other)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", default="2000x1500")
    parser.add_argument("--boxes", type=int, default=300)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--iof", type=float, default=0.7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, src, out, window, iof, *rest = args.child
        result = (child_ours(Path(src), Path(out), int(window), float(iof), int(rest[0])) if kind == "ours"
                  else child_sahi(Path(src), Path(out), int(window), float(iof)))
        print(json.dumps(result))
        return
    width, height = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="bench_slice_"))
    try:
        src = make_input(work / "src", args.images, width, height, args.boxes)
        common = (str(src), "", str(args.window), str(args.iof))
        runs = {
            "ours x1": ("ours", *common, "1"),
            f"ours x{args.workers}": ("ours", *common, str(args.workers)),
            "SAHI": ("sahi", *common),
        }
        results: dict[str, dict] = {}
        for repeat in range(args.repeat):
            for label, child in runs.items():
                out = work / f"{label.replace(' ', '_')}_{repeat}"
                r = run_child(child[0], child[1], str(out), *child[3:])
                r["out"] = out
                if label not in results or r["seconds"] < results[label]["seconds"]:
                    results[label] = r
        sahi = results["SAHI"]
        print(f"== slice: {args.images} images of {args.size} px, {args.boxes} boxes each, window {args.window}, "
              f"stride {args.window - args.window // 4}, iof {args.iof}")
        print(f"{'':<10}{'windows':>8}{'seconds':>9}{'x SAHI':>8}{'peak RSS MiB':>24}")
        for label, r in results.items():
            rss = f"{r['peak_rss_mb']:.0f}" + (f" + {r['worker_peak_rss_mb']:.0f}/worker"
                                               if r.get("worker_peak_rss_mb") and label != "ours x1" else "")
            print(f"{label:<10}{r['windows']:>8}{r['seconds']:>9.2f}{sahi['seconds'] / r['seconds']:>8.2f}{rss:>24}")
        best = results[f"ours x{args.workers}"]
        print(f"ours x{args.workers}: {sahi['seconds'] / best['seconds']:.1f}x faster than SAHI's slice_coco "
              f"(target >= 5); ours x1: {sahi['seconds'] / results['ours x1']['seconds']:.1f}x")
        both, same, n_ours, n_sahi = compare(best["out"], sahi["out"])
        print(f"same windows: {both} of ours {n_ours} / SAHI's {n_sahi}; same kept boxes (category, clipped bbox) "
              f"in {same} of {both}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
