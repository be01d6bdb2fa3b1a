"""``hsfpn-repro visualize errors|frequencies`` and ``analyze scr``: the paper's pictures and analyses on your data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import csv_list, domain_errors, group, progress_bar

visualize_app = group("visualize", "The paper's pictures on your data: TP/FP/FN per image, high-frequency responses, "
                                   "P2 features.")
analyze_app = group("analyze", "The paper's analyses on real data: the signal-to-clutter ratio of tiny objects "
                               "(Figure 1).")


@visualize_app.command(
    "errors",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro visualize errors --ann val.json --dets fpn.bbox.json --dets hsfpn.bbox.json "
        "--images DOTAmini10/images/val --out runs/errors --labels FPN,HS-FPN\n\n"
        "  hsfpn-repro visualize errors --ann scenes_gt.json --dets detect/results.json --images scenes/ "
        "--out runs/errors --score 0.5 --max-images 5"
    ),
)
def visualize_errors_command(
    *,
    ann: Annotated[Path, typer.Option("--ann", help="COCO ground truth (windows, or full scenes from coco-gt).")],
    dets: Annotated[
        list[Path], typer.Option("--dets", help="COCO results JSON; give it twice to compare (e.g. FPN, then HS-FPN).")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder the ground truth's file_name entries are in.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (counts.csv, summary.json, totals.png, images/).")],
    iou: Annotated[float, typer.Option("--iou", help="IoU threshold of a match.")] = 0.5,
    score: Annotated[float, typer.Option("--score", help="Drop detections scoring below this before matching.")] = 0.3,
    area: Annotated[
        str, typer.Option("--area", help="Area range of the figures and tp/fp/fn: all, verytiny, tiny, small, medium.")
    ] = "all",
    max_images: Annotated[int, typer.Option("--max-images", help="Figures for this many top-ranked images.")] = 20,
    max_crops: Annotated[int, typer.Option("--max-crops", help="Zoomed crops per figure.")] = 8,
    labels: Annotated[
        Optional[str], typer.Option("--labels", help="Comma-separated detector names. Defaults to the file stems.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """True positives (green), false positives (blue) and misses (red) per image, as the AI-TOD evaluator counts them."""
    from pipelines.visualize.error_view import ErrorViewOptions, render_error_views

    with domain_errors():
        options = ErrorViewOptions(iou=iou, score=score, area=area, max_images=max_images, max_crops=max_crops)
        with progress_bar("figures", quiet) as progress:
            result = render_error_views(ann, dets, images, out, options=options, labels=csv_list(labels, "--labels"),
                                        progress=progress)  # fmt: skip
    for label, t in result.totals.items():
        typer.echo(f"{label}: TP {t['tp']:,}  FP {t['fp']:,}  FN {t['fn']:,} on {result.images:,} images "
                   f"(IoU {iou:g}, score >= {score:g}, area {area})")  # fmt: skip
    for problem in result.problems:
        typer.secho(f"skipped: {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {len(result.figures)} figures in {out / 'images'}, {result.counts_csv}, {result.totals_png}, "
               f"{result.summary_json}")  # fmt: skip


@visualize_app.command(
    "frequencies",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro visualize frequencies --image P0706.png --out runs/freq\n\n"
        "  hsfpn-repro visualize frequencies --image P0706.png --config cascade_rcnn --checkpoint epoch_12.pth "
        "--alphas 0,0.25,0.5,0.75,1 --out runs/freq"
    ),
)
def visualize_frequencies_command(
    *,
    image: Annotated[Path, typer.Option("--image", help="Input image.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (frequencies.png/json, p2_features.png/json).")],
    config: Annotated[
        Optional[str], typer.Option("--config", help="A row id (e.g. cascade_rcnn) or an MMDetection config file.")
    ] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Weights of --config. Without both: the image's own DCT.")
    ] = None,
    neck: Annotated[
        Optional[str], typer.Option("--neck", help="Neck variant: hsfpn, fpn, hfp, sdp, ...; default hsfpn for a row "
                                                   "id, the file's own neck for a config file.")
    ] = None,
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated HFP cutoffs in [0, 1].")] = "0,0.25,0.5,0.75,1",
    max_side: Annotated[int, typer.Option("--max-side", help="Shrink larger images to this longer side first.")] = 800,
) -> None:
    """Figure 8 (F2 for each alpha) and Figures 7/11-13 (P2 before and after HFP and SDP) for one image."""
    from pipelines.visualize.frequencies import parse_alphas, render_frequencies

    with domain_errors():
        result = render_frequencies(image, out, alphas=parse_alphas(alphas), config=config, checkpoint=checkpoint,
                                    neck=neck, max_side=max_side)  # fmt: skip
    source = "the checkpoint's C2" if result.source == "checkpoint" else "the image itself (no checkpoint)"
    typer.echo(f"high-frequency responses of {source}")
    for path in [*result.figures, *result.numbers]:
        typer.echo(f"wrote {path}")


@analyze_app.command(
    "scr",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro analyze scr --dota-root tests/data/dota_sample --out runs/scr\n\n"
        "  hsfpn-repro analyze scr --dota-root /data/DOTA-v1.0/val --classes ship,small-vehicle "
        "--ranges 0,1,10,50,100 --out runs/scr"
    ),
)
def analyze_scr_command(
    *,
    dota_root: Annotated[Path, typer.Option("--dota-root", help="DOTA split folder (images/, labelTxt/) or release root.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (scr.csv, objects.csv, scr_summary.json, scr.png).")],
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes to measure. Defaults to all.")
    ] = None,
    ranges: Annotated[str, typer.Option("--ranges", help="Comma-separated k: DCT[:k, :k] zeroed.")] = "0,1,10,50,100",
    window: Annotated[int, typer.Option("--window", help="Side of the DCT-filtered local window, px.")] = 512,
    background: Annotated[int, typer.Option("--background", help="Outer side of the background ring, px.")] = 80,
    target: Annotated[int, typer.Option("--target", help="Side of the target region, px.")] = 40,
    max_size: Annotated[float, typer.Option("--max-size", help="Tiny objects: sqrt(w * h) below this, px.")] = 16.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Figure 1 on real data: the signal-to-clutter ratio of every tiny object as low frequencies are zeroed."""
    from pipelines.visualize.scr import SCRGeometry, analyze_scr, parse_ranges

    with domain_errors():
        geometry = SCRGeometry(target=target, background=background, window=window)
        with progress_bar("images", quiet) as progress:
            result = analyze_scr(dota_root, out, classes=csv_list(classes, "--classes"), ranges=parse_ranges(ranges, geometry),
                                 geometry=geometry, max_size=max_size, progress=progress)  # fmt: skip
    fates = ", ".join(f"{name} {count:,}" for name, count in result.fates.items() if count)
    typer.echo(f"{result.images} images; objects: {fates}")
    for problem in result.problems:
        typer.secho(f"skipped: {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.verdict.describe(result.curves))
    for path in (result.figure, result.scr_csv, result.objects_csv, result.summary_json):
        typer.echo(f"wrote {path}")
