"""hsfpn-data build-aitod: AI-TOD from the xView training tifs, AI-TOD_wo_xview and the lists of xView windows."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import domain_errors, group, progress_bar

app = group()


@app.command(
    "build-aitod",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data build-aitod --xview /data/xView --aitod /data/AI-TOD_wo_xview "
        "--lists AI-TOD/aitodtoolkit/aitod_xview --out data/AI-TOD\n\n"
        "  hsfpn-data build-aitod --xview /data/xView --aitod /data/AI-TOD_wo_xview "
        "--lists AI-TOD/aitodtoolkit/aitod_xview --out data/AI-TOD --resume\n\n"
        "  hsfpn-repro table3 --data-root data/AI-TOD"
    ),
)
def build_aitod_command(
    *,
    xview: Annotated[Path, typer.Option("--xview", help="The xView training set: {id}.tif in DIR/train_images/ "
                                        "or directly in DIR.")],
    aitod: Annotated[Path, typer.Option("--aitod", help="AI-TOD_wo_xview as released: images/{split}/*.png and "
                                        "annotations/*.json.")],
    lists: Annotated[Path, typer.Option("--lists", help="The folder of aitod_xview_{train,val,trainval,test}.txt "
                                        "(aitodtoolkit/aitod_xview in the AI-TOD repository).")],
    out: Annotated[Path, typer.Option("--out", help="Output data root (hsfpn-repro table1/2/3 --data-root).")],
    workers: Annotated[
        Optional[int], typer.Option("--workers", help="Worker processes. Defaults to the number of CPU cores.")
    ] = None,
    colors: Annotated[
        str, typer.Option("--colors", help="official: the pixels the official generation stores (red and blue "
                          "swapped against the tifs, what AI-TOD models saw); true: the tifs' own colours.")
    ] = "official",
    resume: Annotated[bool, typer.Option("--resume", help="Continue an unfinished build in --out, redoing only "
                                         "what did not finish or met a problem.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous build in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Build AI-TOD: cut the xView windows as the official script stores them, add AI-TOD_wo_xview, verify.

    Exits 0 only when every image every annotation json names is present at its size and every box lies inside
    its image; otherwise it says what is missing and keeps everything it made (--resume fills the holes).
    """
    from dotamini10.aitod.build import AitodOptions, build_aitod

    with domain_errors():
        options = AitodOptions(colors=colors)
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        try:
            with progress_bar("images", quiet) as progress:
                summary = build_aitod(out, xview=xview, aitod=aitod, lists=lists, options=options,
                                      workers=n_workers, resume=resume, overwrite=overwrite, progress=progress)
        except KeyboardInterrupt:
            typer.secho(f"interrupted: finished images are kept; add --resume to continue in {out}", err=True)
            raise typer.Exit(code=130) from None
    if summary.already_complete:
        typer.echo(f"{out}: the build is already complete (nothing to resume)")
    for check in summary.checks:
        typer.echo(f"{check.split or check.json}: {check.images:,} images, {check.instances:,} instances"
                   + (f"; {check.missing:,} missing" if check.missing else ""))
    t = summary.totals
    if t.get("splits"):
        mean = "-" if t["mean_size"] is None else f"{t['mean_size']:.1f}"
        typer.echo(f"AI-TOD ({' + '.join(t['splits'])}): {t['images']:,} images (published {t['published_images']:,}), "
                   f"{t['instances']:,} instances ({t['published_instances']:,}), {t['classes']} classes "
                   f"({t['published_classes']}), mean size {mean} px ({t['published_mean_size']})")
    if summary.problems:
        listed = ", ".join(f"{reason} {count}" for reason, count in summary.problems.items())
        typer.echo(f"{sum(summary.problems.values())} problems ({listed}): see {out / 'problems.jsonl'}")
    if not summary.already_complete:
        resumed = f", {summary.resumed_tasks} tasks resumed" if summary.resumed_tasks else ""
        typer.echo(f"wrote {summary.windows_written:,} xView windows ({colors} colours) and copied "
                   f"{summary.images_copied:,} images into {out} in {summary.elapsed:.1f} s{resumed}")
    if not summary.complete:
        typer.secho(f"incomplete: {summary.failure_line()}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


@app.command(
    "synthetic-aitod",
    epilog="Examples:\n\n  hsfpn-data synthetic-aitod --out runs/aitod_source\n\n"
           "  hsfpn-data build-aitod --xview runs/aitod_source/xview --aitod runs/aitod_source/aitod "
           "--lists runs/aitod_source/lists --out runs/AI-TOD",
)
def synthetic_aitod_command(
    *,
    out: Annotated[Path, typer.Option("--out", help="Folder to write xview/, aitod/ and lists/ into.")],
    seed: Annotated[int, typer.Option("--seed", help="Seed of every pixel and box.")] = 0,
) -> None:
    """Write a small synthetic AI-TOD source (xView-like tifs, lists, AI-TOD_wo_xview, jsons) to try build-aitod."""
    from dotamini10.aitod.synthetic import write_synthetic_aitod

    with domain_errors():
        source = write_synthetic_aitod(out, seed=seed)
    for xview_id, pixels in source.rgb.items():
        typer.echo(f"xview/train_images/{xview_id}.tif: {pixels.shape[1]:,} x {pixels.shape[0]:,} px")
    typer.echo(f"wrote {out}: build it with hsfpn-data build-aitod --xview {source.xview} --aitod {source.aitod} "
               f"--lists {source.lists} --out DIR")
