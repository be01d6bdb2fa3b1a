"""The dataset check before a job (pipelines.dataset_check): scan time without and with its cache, against decoding
every image (what the training loader would do to find the same missing or truncated files), and the wall time of
``hsfpn-repro train`` rejecting a set with one missing and one truncated image.

The set: ``--images`` PNG images of ``--size`` px (smooth content, so writing it is quick), ``--boxes`` boxes each,
one COCO json. "Without the cache" means the scan's own cache is empty; the files sit in the OS page cache either
way (they were just written), so the figures compare the work each approach does, not the disk.

Usage:
    .venv/bin/python benchmarks/bench_dataset_check.py
    .venv/bin/python benchmarks/bench_dataset_check.py --images 5000 --size 800
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def write_set(root: Path, images: int, size: int, boxes: int) -> None:
    import numpy as np

    from dotamini10.png import encode_png

    (root / "images").mkdir(parents=True)
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    entries, anns = [], []
    for i in range(images):
        pixels = np.stack([np.add.outer(ramp, ramp) / 2 + i % 7] * 3, axis=-1).astype(np.uint8)
        (root / "images" / f"{i:05d}.png").write_bytes(encode_png(pixels))
        entries.append(dict(id=i + 1, file_name=f"{i:05d}.png", width=size, height=size))
        for k in range(boxes):
            x, y = (13 * k + i) % (size - 20), (29 * k + 3 * i) % (size - 20)
            anns.append(dict(id=len(anns) + 1, image_id=i + 1, category_id=1, bbox=[x, y, 12, 9], area=108, iscrowd=0))
    (root / "train.json").write_text(json.dumps(dict(images=entries, annotations=anns,
                                                     categories=[dict(id=1, name="car")])))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def decode_all(root: Path) -> int:
    import cv2

    cv2.setNumThreads(1)
    return sum(cv2.imread(str(p), cv2.IMREAD_UNCHANGED) is not None for p in sorted((root / "images").iterdir()))


def rejection_wall_s(tmp: Path) -> tuple[float, str]:
    """``hsfpn-repro train`` on test_train's 4-image set with image 2 missing and image 1 truncated."""
    sys.path.insert(0, str(REPO / "tests"))
    from test_train import PATHS, write_coco

    root = tmp / "small"
    write_coco(root, "train", 4)
    write_coco(root, "val", 2, seed=1)
    (root / "pics" / "train" / "002.png").unlink()
    png = root / "pics" / "train" / "001.png"
    png.write_bytes(png.read_bytes()[:200])
    argv = [str(REPO / ".venv" / "bin" / "hsfpn-repro"), "train", "--config", "faster_rcnn", "--data-root", str(root),
            *PATHS, "--work-dir", str(tmp / "run"), "--gpus", "0"]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, HSFPN_CACHE=str(tmp / "c2")))
    return time.perf_counter() - start, (result.stdout + result.stderr).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--boxes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=None, help="header threads (default: the scan's own)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        os.environ["HSFPN_CACHE"] = str(tmp / "cache")
        write_set(tmp / "set", args.images, args.size, args.boxes)
        from pipelines.dataset_check import scan_split

        cold, scan = timed(lambda: scan_split(tmp / "set", "train.json", "images", workers=args.workers))
        warm, again = timed(lambda: scan_split(tmp / "set", "train.json", "images", workers=args.workers))
        decode, decoded = timed(lambda: decode_all(tmp / "set"))
        print(f"{args.images:,} images of {args.size} x {args.size} px, {args.images * args.boxes:,} annotations; "
              f"{os.cpu_count()} cores")
        print(f"  scan, empty cache:   {cold:7.3f} s ({scan.probed:,} headers read, {len(scan.problems)} problems)")
        print(f"  scan, cached rerun:  {warm:7.3f} s ({again.probed:,} headers read)")
        print(f"  decode every image:  {decode:7.3f} s ({decoded:,} decoded; cv2, one thread): "
              f"{decode / cold:.1f}x the empty-cache scan, {decode / warm:.1f}x the cached one")
        wall, output = rejection_wall_s(tmp)
        print(f"  train rejecting 1 missing + 1 truncated of 4 images: {wall:.2f} s wall (process start included)")
        print("    " + "\n    ".join(output.splitlines()))


if __name__ == "__main__":
    main()
