"""A plain single-process DOTA splitter: the baseline ``bench_build.py`` measures the builder against.

It does what the classic tools do, in the simplest way: read the whole image, resize it, and for every window
crop it, test every object of the image against the window with shapely, write the window's label file and
write the window as PNG with OpenCV's default settings. No vectorised prefilter, no parallelism.

Usage:
    python benchmarks/reference_split.py SPLIT_DIR OUT_DIR [--rate 1.0]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import shapely


def read_objects(label: Path) -> list[tuple[shapely.Polygon, str, str]]:
    """(polygon, category, difficult) of every well-formed object line of a DOTA label file."""
    objects = []
    for line in label.read_text(encoding="utf-8").splitlines():
        tokens = line.split()
        if len(tokens) < 9:
            continue
        try:
            coords = [float(t) for t in tokens[:8]]
        except ValueError:
            continue
        poly = shapely.Polygon(np.array(coords).reshape(4, 2))
        if poly.is_valid and poly.area > 0:
            objects.append((poly, tokens[8], tokens[9] if len(tokens) > 9 else "0"))
    return objects


def starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets along one axis, the last one flush with the edge."""
    out, pos = [], 0
    while True:
        if pos + crop >= length:
            out.append(max(length - crop, 0))
            return out
        out.append(pos)
        pos += stride


def split_image(
    image_path: Path, label_path: Path, out_dir: Path, *, rate: float = 1.0, crop: int = 1024, stride: int = 768,
    iof_threshold: float = 0.7,
) -> int:
    """Split one image; returns the number of windows written."""
    image = cv2.imread(str(image_path))
    objects = read_objects(label_path)
    if rate != 1.0:
        image = cv2.resize(image, None, fx=rate, fy=rate, interpolation=cv2.INTER_CUBIC)
        objects = [(shapely.affinity.scale(p, rate, rate, origin=(0, 0)), c, d) for p, c, d in objects]
    height, width = image.shape[:2]
    count = 0
    for y0 in starts(height, crop, stride):
        for x0 in starts(width, crop, stride):
            window = shapely.box(x0, y0, x0 + crop, y0 + crop)
            lines = []
            for poly, category, difficult in objects:
                inter = poly.intersection(window)
                if inter.area / poly.area >= iof_threshold:
                    xy = np.asarray(shapely.minimum_rotated_rectangle(inter).exterior.coords)[:4] - [x0, y0]
                    lines.append(" ".join(f"{v:.1f}" for v in xy.ravel()) + f" {category} {difficult}\n")
            patch = np.zeros((crop, crop, 3), np.uint8)
            part = image[y0 : y0 + crop, x0 : x0 + crop]
            patch[: part.shape[0], : part.shape[1]] = part
            name = f"{image_path.stem}__{rate:g}__{x0}___{y0}"
            (out_dir / "labelTxt" / f"{name}.txt").write_text("".join(lines), encoding="utf-8")
            cv2.imwrite(str(out_dir / "images" / f"{name}.png"), patch)
            count += 1
    return count


def reference_split(split_dir: Path, out_dir: Path, *, rate: float = 1.0, crop: int = 1024, stride: int = 768) -> int:
    """Split every labelled image of a DOTA split folder; returns the number of windows written."""
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    (out_dir / "labelTxt").mkdir(parents=True, exist_ok=True)
    count = 0
    for image_path in sorted((split_dir / "images").iterdir()):
        label = split_dir / "labelTxt" / f"{image_path.stem}.txt"
        if label.is_file():
            count += split_image(image_path, label, out_dir, rate=rate, crop=crop, stride=stride)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("split_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--rate", type=float, default=1.0)
    args = parser.parse_args()
    start = time.perf_counter()
    n = reference_split(args.split_dir, args.out_dir, rate=args.rate)
    print(f"{n} windows in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
