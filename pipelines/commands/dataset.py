"""``hsfpn-data build-dotamini10``, ``stats`` and ``synthetic-dota``: build a dataset and describe it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from dotamini10.options import BuildOptions

from .common import csv_list, domain_errors, group, progress_bar, usage_error

app = group()
# Every default of build-dotamini10 is BuildOptions' own.
BUILD = BuildOptions()


def _floats(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


@app.command(
    "build-dotamini10",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data build-dotamini10 --out runs/demo/DOTAmini10\n\n"
        "  hsfpn-data build-dotamini10 --dota-root /data/DOTA-v1.0 --out data/DOTAmini10 --workers 8\n\n"
        "  hsfpn-data build-dotamini10 --dota-root /data/DOTA-v1.0 --out data/DOTAmini10 --resume"
    ),
)
def build_dotamini10_command(
    *,
    out: Annotated[Path, typer.Option("--out", help="Output folder of the dataset.")],
    dota_root: Annotated[
        Optional[Path],
        typer.Option(
            "--dota-root",
            help="DOTA release root (train/ and val/ with images/ + labelTxt/) or one split folder (built as "
            "train). Without it a synthetic DOTA sample is generated from --seed and built.",
        ),
    ] = None,
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Worker processes. Defaults to the number of CPU cores.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random draw.")] = 0,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first input problem.")] = BUILD.strict,
    scale_mode: Annotated[
        str, typer.Option("--scale-mode", help="random: one factor per image from --scale-range; fixed: each of --scales.")
    ] = BUILD.scale_mode,
    scales: Annotated[
        str, typer.Option("--scales", help="Comma-separated factors of --scale-mode fixed.")
    ] = _floats(BUILD.scales),
    scale_range: Annotated[
        str, typer.Option("--scale-range", help="low,high bounds of --scale-mode random.")
    ] = _floats(BUILD.scale_range),
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes to keep. Defaults to the ten of DOTAmini10.")
    ] = None,
    crop_size: Annotated[int, typer.Option("--crop-size", help="Window size in pixels.")] = BUILD.crop_size,
    stride: Annotated[int, typer.Option("--stride", help="Window step in pixels.")] = BUILD.stride,
    iof_threshold: Annotated[
        float, typer.Option("--iof-threshold", help="Minimum fraction of an object's area inside a window.")
    ] = BUILD.iof_threshold,
    pad_value: Annotated[
        int, typer.Option("--pad-value", help="Gray value padding images smaller than a window.")
    ] = BUILD.pad_value,
    keep_empty_train: Annotated[
        bool, typer.Option("--keep-empty-train", help="Keep train windows without objects (val keeps them always).")
    ] = not BUILD.drop_empty_train,
    aug_copies: Annotated[
        int, typer.Option("--aug-copies", help="Augmented copies of train windows holding an --aug-classes object.")
    ] = BUILD.aug_copies,
    aug_classes: Annotated[
        Optional[str],
        typer.Option("--aug-classes", help="Comma-separated classes that trigger augmentation. "
                     f"Defaults to {','.join(BUILD.aug_classes)}."),
    ] = None,
    interpolation: Annotated[
        str, typer.Option("--interpolation", help="Resizing filter: area, cubic, linear or nearest.")
    ] = BUILD.interpolation,
    png_compression: Annotated[
        int, typer.Option("--png-compression", help="Deflate level (0-3, ISA-L) of the PNG windows.")
    ] = BUILD.png_compression,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted build in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous build in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Build the paper's DOTAmini10 dataset from DOTA: windows as PNG, DOTA txt and COCO json, with a manifest."""
    from dotamini10.build import build_dotamini10

    bounds = csv_list(scale_range, "--scale-range", float)
    if len(bounds) != 2:
        raise usage_error(f"--scale-range: expected two numbers low,high, got {scale_range!r}")
    options = BuildOptions(
        classes=tuple(csv_list(classes, "--classes") or BUILD.classes),
        scale_mode=scale_mode,
        scales=tuple(csv_list(scales, "--scales", float)),
        scale_range=(bounds[0], bounds[1]),
        interpolation=interpolation,
        crop_size=crop_size,
        stride=stride,
        iof_threshold=iof_threshold,
        pad_value=pad_value,
        drop_empty_train=not keep_empty_train,
        aug_copies=aug_copies,
        aug_classes=tuple(csv_list(aug_classes, "--aug-classes") or BUILD.aug_classes),
        png_compression=png_compression,
        strict=strict,
    )
    with domain_errors():
        try:
            with progress_bar("windows", quiet) as progress:
                summary = build_dotamini10(
                    out, dota_root=dota_root, options=options, seed=seed, workers=workers or os.cpu_count() or 1,
                    resume=resume, overwrite=overwrite, progress=progress,
                )
        except KeyboardInterrupt:
            typer.secho(f"interrupted: finished windows are kept; add --resume to continue in {out}", err=True)
            raise typer.Exit(code=130) from None
    _print_build(out, summary)


def _print_build(out: Path, summary: object) -> None:
    if summary.already_complete:
        typer.echo(f"{out}: the build is already complete (nothing to resume)")
    for split, c in summary.counts.items():
        fate = c.get("source_objects", {})
        typer.echo(
            f"{split}: {c['images']:,} images ({c.get('augmented_images', 0):,} augmented), "
            f"{c['instances']:,} instances; source objects {fate.get('total', 0):,}: kept {fate.get('kept', 0):,}, "
            f"filtered {fate.get('filtered', 0):,}, dropped {fate.get('dropped', 0):,}, "
            f"invalid {fate.get('invalid', 0):,}"
        )
    n_problems = sum(summary.problems.values())
    if n_problems:
        listed = ", ".join(f"{reason} {count}" for reason, count in summary.problems.items())
        typer.echo(f"{n_problems} input problems ({listed}): see {out / 'problems.jsonl'}")
    else:
        typer.echo("no input problems")
    if not summary.already_complete:
        resumed = f", {summary.resumed_images} images resumed" if summary.resumed_images else ""
        typer.echo(f"wrote {out} in {summary.elapsed:.1f} s{resumed}")


@app.command(
    "stats",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data stats runs/demo/DOTAmini10\n\n"
        "  hsfpn-data stats runs/demo/DOTAmini10 --out runs/demo/stats --data-card data_cards/DOTAmini10.md"
    ),
)
def stats_command(
    dataset_dir: Annotated[
        Path, typer.Argument(help="Dataset root holding annotations/{split}.json (and build.json).")
    ],
    *,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Report folder. Defaults to DATASET_DIR/stats.")
    ] = None,
    data_card: Annotated[
        Optional[Path],
        typer.Option("--data-card", help="Also write the data card to this file (e.g. data_cards/DOTAmini10.md)."),
    ] = None,
) -> None:
    """Statistics of a built dataset beside the paper's figures: tables, size figure and data card."""
    from dotamini10.datacard import write_report_and_card

    command = " ".join(
        ["hsfpn-data stats", str(dataset_dir)]
        + ([f"--out {out}"] if out is not None else [])
        + ([f"--data-card {data_card}"] if data_card is not None else [])
    )
    with domain_errors():
        run = write_report_and_card(dataset_dir, out_dir=out, data_card=data_card, generated_by=command)
    for part in [*run.stats.splits.values(), run.stats.overall]:
        below = ", ".join(
            f"< {limit} px {100 * share:.1f}%"
            for limit in (16, 32)
            if (share := part.share_below(limit)) is not None
        )
        summary = f"{part.split}: {part.images:,} images, {part.total_instances:,} instances"
        typer.echo(summary + (f"; {below}" if below else ""))
    typer.echo(_published_line(run.stats.reference))
    for path in [*run.report_files, *run.card_files]:
        typer.echo(f"wrote {path}")


def _published_line(reference: object) -> str:
    """The published figures the statistics are compared with, on one line."""
    splits = ", ".join(f"{split} {reference.images[split]:,} images / {reference.total_instances[split]:,} instances"
                       for split in reference.images if split != "all")  # fmt: skip
    shares = ", ".join(f"< {limit} px {100 * share:.1f}%" for limit, share in reference.share_below.items())
    extra = [f"{reference.classes} classes" if reference.classes else "",
             f"mean object size {reference.mean_size:g} px" if reference.mean_size else ""]  # fmt: skip
    return "published: " + "; ".join(part for part in (splits, shares, *extra) if part)


@app.command(
    "synthetic-dota",
    epilog="Examples:\n\n  hsfpn-data synthetic-dota --out runs/demo/synthetic_dota\n\n"
           "  hsfpn-data synthetic-dota --out scenes --seed 3",
)
def synthetic_dota_command(
    *,
    out: Annotated[Path, typer.Option("--out", help="Release root to write (train/ and val/).")],
    seed: Annotated[int, typer.Option("--seed", help="Seed (0 is the sample build-dotamini10 uses).")] = 0,
) -> None:
    """Write the embedded synthetic DOTA sample (the full scenes build-dotamini10 builds from by default)."""
    from dotamini10.synthetic import DEFAULT_SCENES, generate_synthetic_dota

    root = generate_synthetic_dota(out, seed=seed)
    for scene in DEFAULT_SCENES:
        typer.echo(f"{scene.split}/images/{scene.name}.png: {scene.width:,} x {scene.height:,} px")
    typer.echo(f"wrote {root}")
