"""``hsfpn-data merge`` and ``coco-gt``: window results into full-image results, and full-image ground truth."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Optional

import typer

from dotamini10.merge import DEVKIT_OPTIONS, MatchMetric, MergeMethod, MergeOptions

from .common import choice, csv_list, domain_errors, group

app = group()
MERGE = MergeOptions()


def merge_options(method: str, metric: str, threshold: float | None, max_per_image: int | None,
                  class_agnostic: bool = False, *, base: MergeOptions = MERGE) -> MergeOptions:
    """``base`` with the command line's merge values (bad names are one-line errors)."""
    options = dataclasses.replace(base, method=choice(MergeMethod, method, "--method"),
                                  metric=choice(MatchMetric, metric, "--metric"), class_agnostic=class_agnostic,
                                  max_per_image=max_per_image)  # fmt: skip
    return options if threshold is None else dataclasses.replace(options, threshold=threshold)


@app.command(
    "merge",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data merge work/window_results --out work/full_results\n\n"
        "  hsfpn-data merge work/window_results --out work/devkit_results --devkit\n\n"
        "  hsfpn-data merge work/window_results --out work/merged --method nmm --metric ios --nms-thresh 0.6"
    ),
)
def merge_command(
    src: Annotated[
        Path, typer.Argument(help="Folder of Task2_{class}.txt window results: '{image}__{rate}__{left}___{up} "
                                  "score x1 y1 x2 y2' lines.")
    ],
    *,
    out: Annotated[Path, typer.Option("--out", help="Folder for the full-image Task2_{class}.txt files.")],
    nms_thresh: Annotated[
        Optional[float], typer.Option("--nms-thresh", help=f"Match threshold (strictly above). Default {MERGE.threshold:g}; "
                                                           f"{DEVKIT_OPTIONS.threshold:g} with --devkit.")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="nms (drop matches) or nmm (merge them).")] = MERGE.method.value,
    metric: Annotated[
        str, typer.Option("--metric", help="iou, or ios (intersection over the smaller box).")
    ] = MERGE.metric.value,
    max_per_image: Annotated[
        Optional[int], typer.Option("--max-per-image", help="Keep at most this many detections per image.")
    ] = MERGE.max_per_image,
    class_agnostic: Annotated[
        bool, typer.Option("--class-agnostic", help="Let boxes of different classes suppress each other.")
    ] = MERGE.class_agnostic,
    devkit: Annotated[
        bool, typer.Option("--devkit", help="DOTA_devkit's ResultMerge (mergebyrec): NMS at 0.1 with its "
                                           "(x2 - x1 + 1) * (y2 - y1 + 1) areas.")
    ] = False,
) -> None:
    """Merge window-level results of any detector into full-image results (class-wise NMS by default)."""
    from dotamini10.merge import merge_result_folder

    with domain_errors():
        options = merge_options(method, metric, nms_thresh, max_per_image, class_agnostic,
                                base=DEVKIT_OPTIONS if devkit else MERGE)
        summary = merge_result_folder(src, out, options=options)
    typer.echo(
        f"{summary.boxes_in:,} window detections of {summary.windows:,} windows -> {summary.boxes_out:,} "
        f"detections of {summary.images:,} images (merge {summary.seconds:.2f} s)"
    )
    typer.echo(f"wrote {len(summary.files)} files to {out}")


@app.command(
    "coco-gt",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data coco-gt --dota-root /data/DOTA-v1.0/val --out val_full.json\n\n"
        "  hsfpn-data coco-gt --dota-root /data/DOTA-v1.0 --split val --out val_full.json --classes plane,ship"
    ),
)
def coco_gt_command(
    *,
    dota_root: Annotated[
        Path, typer.Option("--dota-root", help="A split folder with images/ and labelTxt/, or a release root "
                                               "with --split.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The COCO ground-truth JSON to write.")],
    split: Annotated[Optional[str], typer.Option("--split", help="Split folder under a release root.")] = None,
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes. Defaults to the ten of DOTAmini10.")
    ] = None,
) -> None:
    """Full-image COCO ground truth of a DOTA split: clipped horizontal boxes, area w x h, difficult kept."""
    from dotamini10.classes import DOTAMINI10_CLASSES
    from dotamini10.coco_gt import write_coco_gt

    with domain_errors():
        summary = write_coco_gt(dota_root, out, classes=csv_list(classes, "--classes") or DOTAMINI10_CLASSES,
                                split=split)
    total = sum(summary.annotations.values())
    typer.echo(f"{summary.images:,} images, {total:,} annotations; objects of other classes {summary.other_classes:,}")
    if summary.partly_outside:
        typer.echo(f"{len(summary.partly_outside):,} objects reach outside their image (kept, clipped): "
                   + ", ".join(summary.partly_outside[:5]) + (", ..." if len(summary.partly_outside) > 5 else ""))
    for problem in summary.problems:
        typer.echo(f"not annotated: {problem.message()}")
    typer.echo(f"wrote {out}")
