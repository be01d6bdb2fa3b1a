"""Rebuild the example figures of the README's "See what the detector does" (data_cards/figures/).

Every input is in the repository or made here from a seed: the real DOTA sample in tests/data/dota_sample, detections
simulated from its ground truth (two made-up detectors that miss and add boxes at random: they show the figure, not
any detector's result), and a randomly initialised HS-FPN Faster R-CNN for the P2 figure. The figures are made by the
three commands' library functions, then shrunk and reduced to a 192-colour palette so that the README stays light.

Usage:
    PYTHONPATH=. .venv/bin/python scripts/make_figure_examples.py [--out data_cards/figures]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
# Relative to the repository (the script runs there), so the committed JSON names no machine's folders.
SAMPLE = Path("tests") / "data" / "dota_sample"


def simulated_case(work: Path, seed: int = 0) -> tuple[Path, list[Path]]:
    """COCO ground truth of P1888 (horizontal boxes of its polygons) and two simulated detection files."""
    from dotamini10.read import read_label_file

    labels = read_label_file(SAMPLE / "labelTxt" / "P1888.txt")
    lo, hi = labels.coords.min(axis=1), labels.coords.max(axis=1)
    names = sorted(set(labels.categories))
    anns = []
    for j, (a, b, cat) in enumerate(zip(lo, hi, labels.categories, strict=True)):
        w, h = (b - a).tolist()
        anns.append({"id": j + 1, "image_id": 1, "category_id": names.index(cat) + 1,
                     "bbox": [float(a[0]), float(a[1]), w, h], "area": w * h, "iscrowd": 0})  # fmt: skip
    gt = {"images": [{"id": 1, "file_name": "P1888.png", "width": 712, "height": 557}],
          "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)], "annotations": anns}  # fmt: skip
    (work / "gt.json").write_text(json.dumps(gt), encoding="utf-8")
    rng = np.random.default_rng(seed)
    paths = []
    for name, miss, false_positives in (("A", 0.3, 6), ("B", 0.1, 2)):
        dets = []
        for ann in anns:
            if rng.random() < miss:
                continue
            x, y, w, h = ann["bbox"]
            jx, jy, jw, jh = rng.normal(0, 1.0, 4)
            dets.append({"image_id": 1, "category_id": ann["category_id"], "score": float(rng.uniform(0.4, 1.0)),
                         "bbox": [x + jx, y + jy, max(w + jw, 1.0), max(h + jh, 1.0)]})  # fmt: skip
        for _ in range(false_positives):
            dets.append({"image_id": 1, "category_id": 1, "score": float(rng.uniform(0.3, 0.9)),
                         "bbox": [float(rng.uniform(0, 690)), float(rng.uniform(0, 540)), 8.0, 12.0]})  # fmt: skip
        paths.append(work / f"{name}.json")
        paths[-1].write_text(json.dumps(dets), encoding="utf-8")
    return work / "gt.json", paths


def random_checkpoint(work: Path) -> Path:
    import torch

    from pipelines.visualize.frequencies import build_model

    torch.manual_seed(0)
    path = work / "random_init.pth"
    torch.save({"state_dict": build_model("faster_rcnn", "hsfpn").state_dict()}, path)
    return path


def lighten(src: Path, dst: Path, scale: float, colors: int = 192) -> None:
    """``src`` shrunk by ``scale`` (area interpolation) and saved with a ``colors``-entry palette.

    The palette is a median cut of the figure plus the box colours, which cover too few pixels to survive a
    median cut on their own.
    """
    import cv2
    from PIL import Image

    from dotamini10.io import atomic_path
    from pipelines.visualize.figure import CROP_COLOR, FN_COLOR, FP_COLOR, IGNORED_COLOR, TP_COLOR

    rgb = cv2.cvtColor(cv2.imread(str(src), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    if scale != 1.0:
        size = (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    keys = [TP_COLOR, FP_COLOR, FN_COLOR, IGNORED_COLOR, CROP_COLOR, "#000000", "#ffffff"]
    image = Image.fromarray(rgb)
    cut = image.quantize(colors=colors - len(keys), method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    palette = cut.getpalette()[: 3 * (colors - len(keys))]
    palette += [int(c[i:i + 2], 16) for c in keys for i in (1, 3, 5)]
    holder = Image.new("P", (1, 1))
    holder.putpalette(palette + [0] * (768 - len(palette)))
    dst.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dst) as tmp:
        image.quantize(palette=holder, dither=Image.Dither.NONE).save(tmp, format="PNG", optimize=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "data_cards" / "figures")
    args = parser.parse_args()
    args.out = args.out.resolve()
    os.chdir(REPO)
    from pipelines.visualize.error_view import render_error_views
    from pipelines.visualize.frequencies import render_frequencies
    from pipelines.visualize.scr import analyze_scr

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ann, dets = simulated_case(work)
        errors = render_error_views(ann, dets, SAMPLE / "images", work / "errors",
                                    labels=["detector A (simulated)", "detector B (simulated)"])  # fmt: skip
        lighten(errors.figures[0], args.out / "errors_P1888.png", 0.7, colors=160)
        lighten(errors.totals_png, args.out / "errors_totals.png", 0.75, colors=64)
        freq = render_frequencies(SAMPLE / "images" / "P1888.png", work / "freq", max_side=712)
        lighten(freq.figures[0], args.out / "frequencies_image.png", 0.6, colors=160)
        p2 = render_frequencies(SAMPLE / "images" / "P1888.png", work / "p2", config="faster_rcnn",
                                checkpoint=random_checkpoint(work), max_side=512)  # fmt: skip
        lighten(p2.figures[1], args.out / "p2_features_random_init.png", 0.6)
        scr = analyze_scr(SAMPLE, work / "scr")
        lighten(scr.figure, args.out / "scr_dota_sample.png", 0.85, colors=128)
        shutil.copy(scr.summary_json, args.out / "scr_dota_sample.json")
        print(scr.verdict.describe(scr.curves))
    for path in sorted(args.out.iterdir()):
        print(f"{path.relative_to(REPO)}: {path.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
