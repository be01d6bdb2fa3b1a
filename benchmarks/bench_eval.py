"""Benchmark: AI-TOD evaluation, ours (hsfpn.aitod_eval) against pycocotools with AI-TOD parameters.

Builds a synthetic test set of AI-TOD's size from a seed (14,018 images of 800 x 800, about 350,000 tiny ground
truths, up to 1,500 scored detections per image), runs every evaluator in its own child process on the same
COCO-format Python objects (built before the clock starts), checks that the precision / recall arrays agree,
and prints the times, the ratios against pycocotools measured in the same run, and each evaluator's peak RSS.

    python benchmarks/bench_eval.py                    # full AI-TOD size (pycocotools takes many minutes)
    python benchmarks/bench_eval.py --images 300       # scaled down
    python benchmarks/bench_eval.py --ref-images 2000  # pycocotools on the first 2,000 images only,
                                                       # its full-size time extrapolated (labelled as such)

Timed for each evaluator: turning the COCO dicts into its own structures (ours: validation into arrays;
pycocotools: COCO index + loadRes), evaluate, accumulate. JSON decoding is common to all and not timed.
Peak RSS is the high-water mark of the child's resident memory during the timed part (reset through
/proc/self/clear_refs just before it; where that is unavailable, the process's lifetime peak is shown).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

IMAGE_SIZE = 800
# AI-TOD's eight classes, with a long-tailed share of instances (cars and people dominate).
CLASSES = ("airplane", "bridge", "storage-tank", "ship", "swimming-pool", "vehicle", "person", "wind-mill")
CLASS_SHARE = np.array([0.01, 0.01, 0.04, 0.13, 0.005, 0.64, 0.16, 0.005])


def make_dataset(images: int, seed: int, gt_per_image: float = 25.0, dets_mean: float = 300.0,
                 max_dets: int = 1500) -> tuple[dict, dict]:  # fmt: skip
    """A synthetic AI-TOD-like set as arrays.

    Args:
        images: Number of 800 x 800 images.
        seed: Seed of the generator (same seed, same set).
        gt_per_image: Mean ground truths per image (Poisson). AI-TOD: about 25.
        dets_mean: Mean detections per image before the cap (gamma distributed, heavy tail).
        max_dets: Cap on detections per image.

    Returns:
        ``(gt, det)`` dicts of arrays: gt ``image, category, boxes (N, 4) xywh, area, iscrowd``; det ``image,
        category, boxes, score``. Boxes are whole pixels (as AI-TOD's), so IoU ties and area-range edges occur.
    """
    rng = np.random.default_rng(seed)
    n_gt = rng.poisson(gt_per_image, images)
    g_img = np.repeat(np.arange(images), n_gt)
    n = len(g_img)
    # Mean side about 12.8 px (AI-TOD's): most objects are very tiny or tiny, a few are small or medium.
    side = np.clip(rng.lognormal(np.log(11.0), 0.55, n), 2, 120)
    ratio = np.exp(rng.normal(0, 0.3, n))
    w = np.maximum(1, np.round(side * np.sqrt(ratio)))
    h = np.maximum(1, np.round(side / np.sqrt(ratio)))
    x = np.floor(rng.random(n) * (IMAGE_SIZE - w))
    y = np.floor(rng.random(n) * (IMAGE_SIZE - h))
    gt = {
        "image": g_img,
        "category": rng.choice(len(CLASSES), n, p=CLASS_SHARE / CLASS_SHARE.sum()),
        "boxes": np.stack([x, y, w, h], axis=1),
        "area": w * h,
        "iscrowd": rng.random(n) < 0.002,
    }

    # True-positive-like detections: jittered copies of 85% of the objects (one, sometimes more).
    copies = np.where(rng.random(n) < 0.85, 1 + rng.poisson(0.6, n), 0)
    src = np.repeat(np.arange(n), copies)
    m = len(src)
    jitter = rng.normal(0, 0.12, (m, 4)) * np.stack([w[src], h[src], w[src], h[src]], axis=1)
    tp_boxes = gt["boxes"][src] + jitter
    tp_boxes[:, 2:] = np.maximum(tp_boxes[:, 2:], 0.5)
    tp_cat = np.where(rng.random(m) < 0.95, gt["category"][src], rng.integers(0, len(CLASSES), m))
    tp_score = rng.beta(5, 2, m)
    # Background detections fill each image up to its drawn count.
    wanted = np.minimum(max_dets, np.round(rng.gamma(1.2, dets_mean / 1.2, images))).astype(np.int64)
    tp_per_image = np.bincount(g_img[src], minlength=images)
    n_bg = np.maximum(wanted - tp_per_image, 0)
    bg_img = np.repeat(np.arange(images), n_bg)
    k = len(bg_img)
    bside = np.clip(rng.lognormal(np.log(11.0), 0.6, k), 1, 120)
    bw, bh = bside * np.exp(rng.normal(0, 0.2, k)), bside * np.exp(rng.normal(0, 0.2, k))
    bg_boxes = np.stack([rng.random(k) * (IMAGE_SIZE - bw), rng.random(k) * (IMAGE_SIZE - bh), bw, bh], axis=1)
    d_img = np.concatenate([g_img[src], bg_img])
    order = np.argsort(d_img, kind="stable")
    det = {
        "image": d_img[order],
        "category": np.concatenate([tp_cat, rng.choice(len(CLASSES), k, p=CLASS_SHARE / CLASS_SHARE.sum())])[order],
        # Boxes to 0.01 px and scores to float32 precision, as a detector's JSON export writes them.
        "boxes": np.round(np.concatenate([tp_boxes, bg_boxes]), 2)[order],
        "score": np.concatenate([tp_score, rng.beta(1, 4, k)]).astype(np.float32).astype(np.float64)[order],
    }
    # Keep at most max_dets per image (the highest scored), as a detector's max_per_img does.
    by_score = np.lexsort((-det["score"], det["image"]))
    first = np.searchsorted(det["image"][by_score], det["image"][by_score])
    keep = np.sort(by_score[np.arange(len(by_score)) - first < max_dets])
    det = {key: v[keep] for key, v in det.items()}
    return gt, det


def to_coco(gt: dict, det: dict, images: int) -> tuple[dict, list]:
    """COCO ground-truth dict and results list (image ids 1.., category ids 1.., annotation ids 1..)."""
    gt_dict = {
        "images": [{"id": i + 1, "width": IMAGE_SIZE, "height": IMAGE_SIZE, "file_name": f"{i:05d}.png"}
                   for i in range(images)],  # fmt: skip
        "categories": [{"id": c + 1, "name": name} for c, name in enumerate(CLASSES)],
        "annotations": [
            {"id": j + 1, "image_id": int(i) + 1, "category_id": int(c) + 1, "bbox": b, "area": float(a),
             "iscrowd": int(z)}  # fmt: skip
            for j, (i, c, b, a, z) in enumerate(zip(gt["image"].tolist(), gt["category"].tolist(),
                                                    gt["boxes"].tolist(), gt["area"].tolist(),
                                                    gt["iscrowd"].tolist(), strict=True))  # fmt: skip
        ],
    }
    dets = [
        {"image_id": i + 1, "category_id": c + 1, "bbox": b, "score": s}
        for i, c, b, s in zip(det["image"].tolist(), det["category"].tolist(), det["boxes"].tolist(),
                              det["score"].tolist(), strict=True)  # fmt: skip
    ]
    return gt_dict, dets


def _subset(gt: dict, det: dict, images: int) -> tuple[dict, dict]:
    g, d = gt["image"] < images, det["image"] < images
    return {k: v[g] for k, v in gt.items()}, {k: v[d] for k, v in det.items()}


# ---------------------------------------------------------------------------------------------
# Child process: one evaluator, timed, with its peak RSS
# ---------------------------------------------------------------------------------------------


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def worker(args: argparse.Namespace) -> None:
    from hsfpn.aitod_eval import AITODEval, AITODParams, Detections, GroundTruth

    gt_arr, det_arr = make_dataset(args.images, args.seed, dets_mean=args.dets_mean)
    if args.subset:
        gt_arr, det_arr = _subset(gt_arr, det_arr, args.subset)
    n_images = args.subset or args.images
    gt_dict, dets = to_coco(gt_arr, det_arr, n_images)
    params = AITODParams()
    del gt_arr, det_arr
    rss_before = _rss_kib("VmRSS")
    exact_peak = _reset_peak()
    phases: dict[str, float] = {}
    t0 = time.perf_counter()
    if args.worker == "ours":
        gt = GroundTruth.from_coco(gt_dict)
        dt = Detections.from_coco(dets, gt)
        t1 = time.perf_counter()
        ev = AITODEval(gt, dt, params)
        ev.evaluate()
        t2 = time.perf_counter()
        ev.accumulate()
        t3 = time.perf_counter()
        precision, recall = ev.precision, ev.recall
    else:
        sink = io.StringIO()
        with contextlib.redirect_stdout(sink):
            if args.worker == "pycocotools":
                from pycocotools.coco import COCO
                from pycocotools.cocoeval import COCOeval

                coco = COCO()
                coco.dataset = gt_dict
                coco.createIndex()
                coco_dt = coco.loadRes(dets)
                ev = COCOeval(coco, coco_dt, "bbox")
                ev.params.areaRng = [list(r) for r in params.area_rngs]
                ev.params.areaRngLbl = list(params.area_labels)
            else:
                from faster_coco_eval import COCO, COCOeval_faster

                coco = COCO(gt_dict)
                coco_dt = coco.loadRes(dets)
                ranges = dict(zip(params.area_labels[1:], [list(r) for r in params.area_rngs[1:]], strict=True))
                ev = COCOeval_faster(coco, coco_dt, "bbox", ranges=ranges, print_function=lambda *a: None)
            ev.params.maxDets = list(params.max_dets)
            t1 = time.perf_counter()
            ev.evaluate()
            t2 = time.perf_counter()
            ev.accumulate()
            t3 = time.perf_counter()
        precision, recall = ev.eval["precision"], ev.eval["recall"]
    phases = {"load": t1 - t0, "evaluate": t2 - t1, "accumulate": t3 - t2}
    peak = _rss_kib("VmHWM") if exact_peak else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    np.savez(args.result, precision=precision, recall=recall)
    print(json.dumps({
        "seconds": t3 - t0, "phases": phases, "rss_before_mib": (rss_before or 0) / 1024,
        "peak_rss_mib": (peak or 0) / 1024, "exact_peak": exact_peak,
        "detections": len(dets), "ground_truths": len(gt_dict["annotations"]), "images": n_images,
    }))  # fmt: skip


def _run_child(name: str, images: int, seed: int, dets_mean: float, subset: int, tmp: Path) -> tuple[dict, dict]:
    result = tmp / f"{name}-{subset or images}.npz"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--images", str(images),
           "--seed", str(seed), "--dets-mean", str(dets_mean), "--subset", str(subset), "--result", str(result)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    with np.load(result) as arrays:
        return info, {"precision": arrays["precision"], "recall": arrays["recall"]}


def _agree(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(a["precision"] - b["precision"]))), float(np.max(np.abs(a["recall"] - b["recall"]))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=14018, help="images in the synthetic set (AI-TOD: 14,018)")
    parser.add_argument("--full", action="store_true", help="the full AI-TOD size (same as --images 14018)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dets-mean", type=float, default=300.0, help="mean detections per image before the cap")
    parser.add_argument("--ref-images", type=int, default=0,
                        help="run pycocotools on the first N images only and extrapolate its full time (labelled)")
    parser.add_argument("--skip-faster", action="store_true", help="do not run faster-coco-eval")
    parser.add_argument("--worker", choices=("ours", "pycocotools", "faster"), help=argparse.SUPPRESS)
    parser.add_argument("--subset", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.full:
        args.images = 14018
    if args.worker:
        worker(args)
        return

    gt, det = make_dataset(args.images, args.seed, dets_mean=args.dets_mean)
    per_image = np.bincount(det["image"], minlength=args.images)
    print(f"synthetic AI-TOD-like set (seed {args.seed}): {args.images} images of {IMAGE_SIZE}x{IMAGE_SIZE}, "
          f"{len(gt['image'])} ground truths, {len(det['image'])} detections "
          f"(per image: mean {per_image.mean():.0f}, max {per_image.max()}, {int((per_image == 1500).sum())} at 1500)")  # fmt: skip
    areas = gt["area"]
    print("ground-truth sizes: " + ", ".join(
        f"{label} {np.mean((areas >= lo) & (areas <= hi)):.1%}"
        for label, (lo, hi) in zip(("verytiny", "tiny", "small", "medium"), ((0, 64), (64, 256), (256, 1024), (1024, 1e10)),
                                   strict=True)))  # fmt: skip
    del gt, det
    ref_sub = args.ref_images if 0 < args.ref_images < args.images else 0

    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp_name:
        tmp = Path(tmp_name)
        rows = []
        ours, ours_arr = _run_child("ours", args.images, args.seed, args.dets_mean, 0, tmp)
        rows.append(("ours (hsfpn.aitod_eval)", ours, "measured"))
        ref, ref_arr = _run_child("pycocotools", args.images, args.seed, args.dets_mean, ref_sub, tmp)
        if ref_sub:
            ours_sub, ours_sub_arr = _run_child("ours", args.images, args.seed, args.dets_mean, ref_sub, tmp)
            diff = _agree(ours_sub_arr, ref_arr)
            scale = ours["detections"] / ref["detections"]
            ref_full = {**ref, "seconds": ref["seconds"] * scale, "extrapolated": True}
            rows.append((f"pycocotools on {ref_sub} images", {**ref, "subset": True}, "measured"))
            rows.append(("pycocotools, full set", ref_full,
                         f"EXTRAPOLATED x{scale:.1f} by detections from {ref_sub} images"))
            print(f"\nours on the same {ref_sub}-image subset: {ours_sub['seconds']:.2f} s, "
                  f"ratio measured on the subset {ref['seconds'] / ours_sub['seconds']:.1f}x")
        else:
            diff = _agree(ours_arr, ref_arr)
            ref_full = ref
            rows.append(("pycocotools (AI-TOD params)", ref, "measured"))
        print(f"figures: max |ours - pycocotools| over precision and recall arrays = {diff:.3g}"
              f" ({'identical' if diff == 0 else 'DIFFERENT' if diff > 1e-6 else 'within 1e-6'})")
        if not args.skip_faster:
            fast, fast_arr = _run_child("faster", args.images, args.seed, args.dets_mean, 0, tmp)
            fdiff = _agree(ours_arr, fast_arr)
            print(f"figures: max |ours - faster-coco-eval| = {fdiff:.3g}")
            rows.append(("faster-coco-eval 1.8 (ranges)", fast, "measured"))

    print(f"\n{'evaluator':<34}{'seconds':>9}{'load':>8}{'eval':>8}{'accum':>8}{'peak RSS MiB':>14}"
          f"{'(+ during)':>12}  {'vs pycocotools':>15}  note")  # fmt: skip
    for name, info, note in rows:
        ratio = f"{ref_full['seconds'] / info['seconds']:>14.1f}x"
        if info.get("extrapolated"):  # only the total is extrapolated; phases and memory were not measured
            detail = f"{'-':>8}{'-':>8}{'-':>8}{'-':>14}{'-':>12}"
        else:
            ph = info["phases"]
            detail = (f"{ph['load']:>8.2f}{ph['evaluate']:>8.2f}{ph['accumulate']:>8.2f}{info['peak_rss_mib']:>14.0f}"
                      f"{info['peak_rss_mib'] - info['rss_before_mib']:>12.0f}")  # fmt: skip
        if info.get("subset"):
            ratio = f"{'(subset)':>15}"
        print(f"{name:<34}{info['seconds']:>9.2f}{detail}  {ratio}  {note}")
    print("(peak RSS: high-water mark during the timed part, including the COCO objects already in memory; "
          "'+ during' is the growth over the RSS before it)")


if __name__ == "__main__":
    main()
