"""hsfpn-data slice (any COCO set of large images into windows) and hsfpn-data convert visdrone."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import csv_list, domain_errors, group, progress_bar

app = group()
convert_app = group("convert", help="Convert other datasets' annotations to COCO.")
app.add_typer(convert_app)


@app.command(
    "slice",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data slice --ann SODA-D/annotations/train.json --images SODA-D/images --out data/soda-sliced\n\n"
        "  hsfpn-data slice --ann visdrone_train.json --images VisDrone2019-DET-train/images --out data/visdrone "
        "--split train --window 800 --stride 600 --scales 1.0,0.5\n\n"
        "  hsfpn-repro train --data-root data/visdrone ..."
    ),
)
def slice_command(
    *,
    ann: Annotated[Path, typer.Option("--ann", help="COCO detection json of the large images.")],
    images: Annotated[Path, typer.Option("--images", help="Folder the json's file_name entries are relative to.")],
    out: Annotated[Path, typer.Option("--out", help="Output root: images/{split}/, annotations/{split}.json and "
                                      "slicing/{split}/ (manifest, problems, record).")],
    split: Annotated[Optional[str], typer.Option("--split", help="Output split name. Defaults to the json's "
                                                 "file name without .json.")] = None,
    window: Annotated[int, typer.Option("--window", help="Window size in pixels (square).")] = 1024,
    stride: Annotated[int, typer.Option("--stride", help="Step between windows in pixels; the last window of "
                                        "each row and column is moved flush to the image edge.")] = 768,
    scales: Annotated[str, typer.Option("--scales", help="Comma-separated factors each image is sliced at.")] = "1.0",
    iof: Annotated[float, typer.Option("--iof", help="Keep a box in a window when area(box ∩ window) / area(box) "
                                       ">= this; it is clipped to the window. Ignore areas (iscrowd/ignore) are "
                                       "kept wherever they overlap.")] = 0.7,
    drop_empty: Annotated[bool, typer.Option("--drop-empty", help="Write no window without an object "
                                             "(by default every window is written).")] = False,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Worker processes. Defaults to the number of CPU cores.")
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted slice of this split.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace this split's previous outputs.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Slice a COCO set of large images into windows with the builder's windowing, clipping and iof rule."""
    from dotamini10.slicing.build import SliceOptions, slice_coco

    factors = csv_list(scales, "--scales", float)
    with domain_errors():
        options = SliceOptions(window=window, stride=stride, scales=tuple(factors or ()), iof=iof,
                               drop_empty=drop_empty)
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        try:
            with progress_bar("windows", quiet) as progress:
                summary = slice_coco(ann, images, out, split=split, options=options, workers=n_workers,
                                     resume=resume, overwrite=overwrite, progress=progress)
        except KeyboardInterrupt:
            typer.secho(f"interrupted: finished images are kept; add --resume to continue in {out}", err=True)
            raise typer.Exit(code=130) from None
    c = summary.counts
    fates = c.get("source_annotations", {})
    if summary.already_complete:
        typer.echo(f"{out}: the slice of {summary.split} is already complete (nothing to resume)")
    typer.echo(f"{summary.split}: {c.get('sliced_images', 0):,} of {c.get('source_images', 0):,} images -> "
               f"{c.get('windows', 0):,} windows, {c.get('instances', 0):,} instances, "
               f"{c.get('ignore_areas', 0):,} ignore areas; source annotations {fates.get('total', 0):,}: kept "
               f"{fates.get('kept', 0):,}, dropped {fates.get('dropped', 0):,}, invalid {fates.get('invalid', 0):,}")
    if summary.problems:
        listed = ", ".join(f"{reason} {count}" for reason, count in summary.problems.items())
        typer.echo(f"{sum(summary.problems.values())} problems ({listed}): see "
                   f"{out / 'slicing' / summary.split / 'problems.jsonl'}")
    if not summary.already_complete:
        typer.echo(f"wrote {out} in {summary.elapsed:.1f} s")


@convert_app.command(
    "visdrone",
    epilog="Examples:\n\n  hsfpn-data convert visdrone --root VisDrone2019-DET-train --out visdrone_train.json\n\n"
           "  hsfpn-data slice --ann visdrone_train.json --images VisDrone2019-DET-train/images --out data/visdrone "
           "--split train",
)
def convert_visdrone_command(
    *,
    root: Annotated[Path, typer.Option("--root", help="A VisDrone-DET split folder (images/, annotations/).")],
    out: Annotated[Path, typer.Option("--out", help="The COCO json to write.")],
) -> None:
    """VisDrone-DET text annotations to COCO.

    Categories 1-10 (pedestrian ... motor) become objects with their ids. "Ignored regions" (0), "others" (11)
    and lines with score 0 become ignore areas, not objects: iscrowd 1 and ignore 1, written once per category,
    so COCO evaluation and MMDetection ignore detections there whatever their class.
    """
    from dotamini10.visdrone import convert_visdrone

    with domain_errors():
        summary = convert_visdrone(root, out)
    classes = ", ".join(f"{name} {count:,}" for name, count in summary.per_class.items())
    typer.echo(f"{summary.images:,} images, {summary.objects:,} objects ({classes}), "
               f"{summary.ignore_regions:,} ignore areas")
    typer.echo(f"wrote {summary.out}")
