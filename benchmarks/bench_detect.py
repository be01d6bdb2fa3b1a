"""Benchmark of large-scene inference: the merge against SAHI and DOTA_devkit, and detect against a window loop.

Merge. A synthetic 20,000 x 20,000 scene: tiny objects (6-64 px), each reported by every 1,024 / 768 window that
holds at least 70% of it (clipped to the window, with a little localisation and score noise, as a detector
that already ran its own NMS would), at most ``--per-window`` detections per window. The same boxes are merged
by ours (``dotamini10.merge``), by SAHI's ``batched_nms`` (PyPI ``sahi`` 0.12, numpy backend; a benchmark-only
dependency) at IoU 0.5, and by DOTA_devkit's ResultMerge procedure (py_cpu_nms per image and class, +1 areas,
IoU > 0.1; reimplemented here from its documented behaviour, a Python loop over kept boxes). The kept sets are
compared (scores are distinct, so the visiting order is the same for all). The devkit procedure is quadratic
per class: it runs on a ``--devkit-side`` sub-scene (and ours with devkit options beside it), unless
``--devkit-side`` equals ``--side``.

Detect. Windows/s of ``hsfpn-repro detect`` (``pipelines.detect.detect_images``: model processes of one thread
each, a background thread that decodes and prepares the next batches, merge and all outputs included) against a
loop over the same windows calling MMDetection's ``inference_detector`` (the scene decoded once by OpenCV, each
window cropped), with the same model (a randomly initialised Faster R-CNN R-50 FPN from our configs, inputs resized to
``--img-scale``) on the same device. Then the peak memory of ``detect`` on a 20,000 x 20,000 scene, with the
oracle detector (``pipelines.oracle``) so that the driver's own memory is measured, beside the scene's decoded
size. Each measurement runs in its own child process (peak = VmHWM of that process).

    python benchmarks/bench_detect.py                     # everything at full size
    python benchmarks/bench_detect.py --only merge --side 10000
    python benchmarks/bench_detect.py --only detect --memory-side 0 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (VmHWM from /proc; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---------------------------------------------------------------------------------------------------------------
# Merge
# ---------------------------------------------------------------------------------------------------------------


def window_detections(side: int, per_window: int, classes: int, seed: int, window: int = 1024, stride: int = 768,
                      iof: float = 0.7) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Detections of every window of a synthetic scene, in full-image coordinates.

    Returns:
        ``(boxes (N, 4), scores (N,), labels (N,), objects, windows)``; scores are distinct.
    """
    from dotamini10.split import get_windows

    rng = np.random.default_rng(seed)
    windows = get_windows(side, side, crop_size=window, stride=stride)
    n = int(per_window / window**2 * side**2)
    length = np.exp(rng.uniform(np.log(6), np.log(64), n))
    aspect = rng.uniform(1.0, 2.5, n)
    wide = rng.random(n) < 0.5
    w, h = np.where(wide, length, length / aspect), np.where(wide, length / aspect, length)
    x1, y1 = rng.uniform(0, side - w), rng.uniform(0, side - h)
    objects = np.stack([x1, y1, x1 + w, y1 + h], axis=1)
    labels, base = rng.integers(0, classes, n), rng.uniform(0.1, 0.9, n)
    order = np.argsort(objects[:, 0])
    objects, labels, base = objects[order], labels[order], base[order]
    out_b, out_s, out_l = [], [], []
    for wx0, wy0, wx1, wy1 in windows.tolist():
        a, b = np.searchsorted(objects[:, 0], [wx0 - 64, wx1])
        o = objects[a:b]
        clipped = np.stack([np.maximum(o[:, 0], wx0), np.maximum(o[:, 1], wy0), np.minimum(o[:, 2], wx1),
                            np.minimum(o[:, 3], wy1)], axis=1)
        inside = np.maximum(clipped[:, 2] - clipped[:, 0], 0) * np.maximum(clipped[:, 3] - clipped[:, 1], 0)
        sel = np.flatnonzero(inside >= iof * (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]))
        boxes = clipped[sel] + rng.normal(0, 0.5, (len(sel), 4))
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        scores = np.clip(base[a:b][sel] + rng.normal(0, 0.02, len(sel)), 1e-4, 1.0)
        top = np.argsort(-scores, kind="stable")[:per_window]
        out_b.append(boxes[top])
        out_s.append(scores[top])
        out_l.append(labels[a:b][sel][top])
    boxes, scores, labels = np.concatenate(out_b), np.concatenate(out_s), np.concatenate(out_l)
    scores = scores + np.arange(len(scores)) * 1e-12  # distinct: every merge visits boxes in the same order
    return boxes, scores, labels, n, len(windows)


def devkit_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float = 0.1) -> list[int]:
    """DOTA_devkit's py_cpu_nms procedure: take the best remaining box, drop the rest whose +1-area IoU with it
    is above the threshold, repeat."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while len(order):
        i, rest = order[0], order[1:]
        keep.append(int(i))
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= threshold]
    return keep


def devkit_merge(boxes, scores, labels) -> list[int]:
    kept = []
    for label in np.unique(labels):
        mine = np.flatnonzero(labels == label)
        kept += mine[devkit_nms(boxes[mine], scores[mine])].tolist()
    return kept


def timed(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_merge(args) -> None:
    from dotamini10.merge import DEVKIT_OPTIONS, MergeOptions, merge_detections

    boxes, scores, labels, objects, windows = window_detections(args.side, args.per_window, args.classes, args.seed)
    print(f"merge: {args.side:,} x {args.side:,} scene, {windows} windows, {objects:,} objects, "
          f"{len(boxes):,} window detections, {args.classes} classes")
    rows = []
    ours_s, ours = timed(lambda: merge_detections(boxes, scores, labels, options=MergeOptions()), args.repeat)
    rows.append(("ours, NMS IoU 0.5", ours_s, len(ours), None))
    try:
        from sahi.postprocess.backends import set_postprocess_backend
        from sahi.postprocess.combine import batched_nms

        set_postprocess_backend("numpy")
        table = np.concatenate([boxes, scores[:, None], labels[:, None].astype(np.float64)], axis=1)
        sahi_s, sahi = timed(lambda: batched_nms(table, "IOU", 0.5), args.repeat)
        same = set(sahi) == set(ours.index.tolist())
        rows.append(("SAHI 0.12 batched_nms (numpy)", sahi_s, len(sahi), same))
    except ImportError as exc:
        print(f"  SAHI not available ({exc}); pip install sahi==0.12.8")
        sahi_s = None
    _print_merge(rows, sahi_s)

    sub = args.devkit_side
    if sub < args.side:  # the devkit's loop is quadratic per class: a sub-scene of the same density
        boxes, scores, labels, objects, windows = window_detections(sub, args.per_window, args.classes, args.seed)
    print(f"merge, DOTA_devkit's procedure: {sub:,} x {sub:,} scene, {windows} windows, {len(boxes):,} detections")
    ours_s, ours = timed(lambda: merge_detections(boxes, scores, labels, options=DEVKIT_OPTIONS), args.repeat)
    devkit_s, devkit = timed(lambda: devkit_merge(boxes, scores, labels))
    same = set(devkit) == set(ours.index.tolist())
    _print_merge([("ours, devkit options (+1, IoU > 0.1)", ours_s, len(ours), None),
                  ("DOTA_devkit py_cpu_nms procedure", devkit_s, len(devkit), same)], devkit_s)


def _print_merge(rows, reference_s) -> None:
    print(f"  {'':<40}{'seconds':>9}{'kept':>10}{'same set':>10}{'x slower than ours':>20}")
    ours_s = rows[0][1]
    for label, seconds, kept, same in rows:
        flag = "" if same is None else ("yes" if same else "NO")
        ratio = "" if label.startswith("ours") else f"{seconds / ours_s:.1f}x"
        print(f"  {label:<40}{seconds:>9.3f}{kept:>10,}{flag:>10}{ratio:>20}")


# ---------------------------------------------------------------------------------------------------------------
# Detect
# ---------------------------------------------------------------------------------------------------------------


def _model_files(work: Path, img_scale: int) -> tuple[Path, Path]:
    import logging

    import torch
    from mmdet.registry import MODELS
    from mmengine.config import Config
    from mmengine.logging import MMLogger
    from mmengine.registry import init_default_scope

    from dotamini10.classes import DOTAMINI10_CLASSES
    from pipelines.detectors import CONFIG_DIR

    config = work / "frcnn.py"
    config.write_text(
        f"_base_ = {str(CONFIG_DIR / 'faster-rcnn_r50_fpn_1x_aitod.py')!r}\n"
        "model = dict(backbone=dict(init_cfg=None), roi_head=dict(bbox_head=dict(num_classes=10)))\n"
        f"test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=({img_scale}, {img_scale}), "
        "keep_ratio=True), dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', "
        "'scale_factor'))]\n"
        "test_dataloader = dict(dataset=dict(pipeline=test_pipeline))\n", encoding="utf-8")
    init_default_scope("mmdet")
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(str(config)).model)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # not a line per initialised weight
    model.init_weights()
    logger.setLevel(level)
    checkpoint = work / "random.pth"
    torch.save(dict(state_dict=model.state_dict(), meta=dict(dataset_meta=dict(classes=list(DOTAMINI10_CLASSES)))),
               checkpoint)
    return config, checkpoint


def child_loop(config: str, checkpoint: str, image: str, device: str) -> dict:
    """MMDetection's way: decode once, crop each builder window, ``inference_detector`` per window."""
    import cv2
    import torch
    from mmdet.apis import inference_detector, init_detector

    from dotamini10.split import get_windows
    from dotamini10.worker import crop_window

    model = init_detector(config, checkpoint, device=device)
    torch.set_grad_enabled(False)
    start = time.perf_counter()
    pixels = cv2.imread(image, cv2.IMREAD_COLOR)
    windows = get_windows(pixels.shape[1], pixels.shape[0])
    found = 0
    for window in windows:
        result = inference_detector(model, crop_window(pixels, window))
        found += len(result.pred_instances)
    return dict(seconds=time.perf_counter() - start, windows=len(windows), peak_rss_mb=peak_rss_mb())


def child_detect(config: str, checkpoint: str, image: str, device: str, batch: int, workers: int, out: str) -> dict:
    """``detect_images`` (model loading outside the clock, as in the loop; worker start-up inside it)."""
    import resource

    from pipelines import detect

    loaded = detect.load_detector(config, Path(checkpoint), device=device)
    detect.load_detector = lambda *a, **k: loaded  # loaded once, outside the timed part
    start = time.perf_counter()
    options = detect.DetectOptions(batch=batch, device=device, workers=workers or None)
    summary = detect.detect_images([Path(image)], Path(out), config=config, checkpoint=Path(checkpoint),
                                   options=options)
    worker_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest ended child
    return dict(seconds=time.perf_counter() - start, windows=summary.windows, peak_rss_mb=peak_rss_mb(),
                worker_peak_mb=worker_mb, workers=options.model_workers, status=summary.outcomes[0].status.value)


def child_memory(side: int, work: str) -> dict:
    """Peak memory of ``detect`` with the oracle detector on a ``side`` x ``side`` scene."""
    sys.path.insert(0, str(REPO / "tests"))
    from scene_fixture import oracle_config

    from pipelines import detect

    root = Path(work)
    config, checkpoint = oracle_config(root, root / "labelTxt", _ORACLE_CLASSES)
    loaded = detect.load_detector(str(config), checkpoint)  # torch, mmdet and the model: not the scene's memory
    detect.load_detector = lambda *a, **k: loaded
    base = peak_rss_mb()
    start = time.perf_counter()
    summary = detect.detect_images([root / "images" / "big.png"], root / "out", config=str(config),
                                   checkpoint=checkpoint, options=detect.DetectOptions(batch=4, score=0.5))
    return dict(seconds=time.perf_counter() - start, windows=summary.windows, peak_rss_mb=peak_rss_mb(),
                before_mb=base, detections=summary.outcomes[0].detections, status=summary.outcomes[0].status.value)


_ORACLE_CLASSES = ("plane", "ship")


def _big_scene(root: Path, side: int, seed: int = 0) -> None:
    from dotamini10.png import encode_png

    rng = np.random.default_rng(seed)
    image = np.full((side, side, 3), 20, dtype=np.uint8)
    lines = []
    for k in range(3000):
        x, y = (int(v) for v in rng.integers(0, side - 64, 2))
        w, h = (int(v) for v in rng.integers(8, 60, 2))
        image[y:y + h, x:x + w] = 220
        lines.append(f"{x} {y} {x + w} {y} {x + w} {y + h} {x} {y + h} {_ORACLE_CLASSES[k % 2]} 0\n")
    (root / "images").mkdir(parents=True)
    (root / "labelTxt").mkdir()
    (root / "images" / "big.png").write_bytes(encode_png(image))
    (root / "labelTxt" / "big.txt").write_text("".join(lines), encoding="utf-8")


def run_child(*args: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"child {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_detect(args) -> None:
    from dotamini10.png import encode_png

    if args.only == "memory":
        bench_memory(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        config, checkpoint = _model_files(work, args.img_scale)
        image = work / "scene.png"
        rng = np.random.default_rng(args.seed)
        image.write_bytes(encode_png(rng.integers(0, 255, (args.scene[1], args.scene[0], 3), dtype=np.uint8)))
        loop = run_child("loop", str(config), str(checkpoint), str(image), args.device)
        runs = [("inference_detector per window", loop)]
        for workers in args.workers:
            ours = run_child("detect", str(config), str(checkpoint), str(image), args.device, str(args.batch),
                             str(workers), str(work / f"out{workers}"))
            runs.append((f"detect, batch {args.batch}, {ours['workers']} model process(es)", ours))
        print(f"detect: {args.scene[0]:,} x {args.scene[1]:,} scene, {loop['windows']} windows of 1,024 px, "
              f"Faster R-CNN R-50 FPN (random init) at {args.img_scale} px, device {args.device}, "
              f"torch threads {os.environ.get('OMP_NUM_THREADS', 'default')} (the loop; detect's model processes "
              "run one each)")
        print(f"  {'':<48}{'seconds':>9}{'windows/s':>11}{'x loop':>8}{'peak RSS MiB':>24}")
        for label, r in runs:
            rate = r["windows"] / r["seconds"]
            ratio = rate / (loop["windows"] / loop["seconds"])
            memory = f"{r['peak_rss_mb']:.0f}" + (f" + {r['worker_peak_mb']:.0f} per worker" if "workers" in r else "")
            print(f"  {label:<48}{r['seconds']:>9.2f}{rate:>11.3f}{ratio:>7.2f}x{memory:>24}")
    bench_memory(args)


def bench_memory(args) -> None:
    if args.memory_side:
        with tempfile.TemporaryDirectory() as tmp:
            _big_scene(Path(tmp), args.memory_side)
            mem = run_child("memory", str(args.memory_side), tmp)
        decoded = args.memory_side**2 * 3 / 2**20
        print(f"memory: detect on a {args.memory_side:,} x {args.memory_side:,} scene ({mem['windows']} windows, "
              f"oracle detector, {mem['detections']:,} detections, {mem['seconds']:.1f} s): peak RSS "
              f"{mem['peak_rss_mb']:,.0f} MiB, {mem['before_mb']:,.0f} MiB with the model loaded, before the scene; decoded scene "
              f"{decoded:,.0f} MiB; (peak - before) / decoded = {(mem['peak_rss_mb'] - mem['before_mb']) / decoded:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("merge", "detect", "memory"), help="Run one part.")
    parser.add_argument("--side", type=int, default=20000, help="Merge scene side.")
    parser.add_argument("--per-window", type=int, default=1500, help="Detections per window at most.")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--devkit-side", type=int, default=4000, help="Scene side for the devkit procedure.")
    parser.add_argument("--repeat", type=int, default=5, help="Best of this many runs of each merge (ours and SAHI's).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scene", type=int, nargs=2, default=(3000, 2500), help="Detect scene width height.")
    parser.add_argument("--img-scale", type=int, default=512, help="Model input side of the detect benchmark.")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--workers", type=int, nargs="+", default=[0],
                        help="detect's model processes, one run per value (0: its default, one per core).")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-side", type=int, default=20000, help="Scene side of the memory run (0: skip).")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = dict(loop=child_loop, detect=child_detect, memory=child_memory)[kind]
        if kind == "detect":
            rest[4], rest[5] = int(rest[4]), int(rest[5])
        if kind == "memory":
            rest[0] = int(rest[0])
        print(json.dumps(fn(*rest)))
        return
    if args.only in (None, "merge"):
        bench_merge(args)
    if args.only in (None, "detect", "memory"):
        bench_detect(args)


if __name__ == "__main__":
    main()
