"""Command-line entry points: ``hsfpn-data`` (dataset toolkit) and ``hsfpn-repro`` (reproduction).

Commands only parse arguments, call one library function and print its summary. Library modules are
imported inside each command so that ``--help`` answers without loading torch.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

TOOLKIT = "hsfpn-toolkit"
KEY_DEPENDENCIES = ("torch", "mmcv", "mmdet", "mmengine", "torch-dct")

data_app = typer.Typer(
    name="hsfpn-data",
    help="Build and describe the DOTAmini10 dataset of the HS-FPN paper.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
repro_app = typer.Typer(
    name="hsfpn-repro",
    help="Reproduce the HS-FPN paper: neck tools, AI-TOD evaluation and the paper's tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def version_report() -> str:
    """The toolkit's version, its key dependencies' versions and whether mmcv's compiled ops load."""
    lines = [f"{TOOLKIT} {_dist_version(TOOLKIT)}"]
    lines += [f"{name} {_dist_version(name)}" for name in KEY_DEPENDENCIES]
    try:
        from mmcv.ops import nms  # noqa: F401  (loads mmcv._ext, the compiled ops)

        ops = "yes"
    except Exception as exc:  # any import failure means the ops are unusable
        ops = f"no ({type(exc).__name__}: {exc})"
    lines.append(f"mmcv compiled ops load: {ops}")
    return "\n".join(lines)


def _dist_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(version_report())
        raise typer.Exit()


VersionOption = Annotated[
    Optional[bool],
    typer.Option(
        "--version",
        callback=_version_callback,
        is_eager=True,
        help="Print the toolkit and key dependency versions, and whether mmcv's compiled ops load.",
    ),
]


@data_app.callback()
def _data_root(version: VersionOption = None) -> None:
    """Build and describe the DOTAmini10 dataset of the HS-FPN paper."""


@repro_app.callback()
def _repro_root(version: VersionOption = None) -> None:
    """Reproduce the HS-FPN paper: neck tools, AI-TOD evaluation and the paper's tables."""


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the libraries' expected failures into one line on stderr and exit code 1 (no traceback)."""
    from dotamini10.errors import DatasetError
    from hsfpn.errors import HSFPNError
    from pipelines.errors import PipelineError

    try:
        yield
    except (DatasetError, HSFPNError, PipelineError) as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


# ---------------------------------------------------------------------------------------------
# hsfpn-data: dataset commands (issue 3)
# ---------------------------------------------------------------------------------------------


@data_app.command(
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
    from dotamini10.paper import PAPER_IMAGES, PAPER_SHARE_BELOW, PAPER_TOTAL_INSTANCES

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
    typer.echo(
        f"paper: train {PAPER_IMAGES['train']:,} images / {PAPER_TOTAL_INSTANCES['train']:,} instances, "
        f"val {PAPER_IMAGES['val']:,} / {PAPER_TOTAL_INSTANCES['val']:,}; "
        f"< 16 px {100 * PAPER_SHARE_BELOW[16]:.1f}%, < 32 px {100 * PAPER_SHARE_BELOW[32]:.1f}%"
    )
    for path in [*run.report_files, *run.card_files]:
        typer.echo(f"wrote {path}")


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: neck tools, convert-checkpoint and table5 (issue 4)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: AI-TOD evaluation (issue 5)
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: table1 / table2 / table3 / table4 runners (issue 6)
# ---------------------------------------------------------------------------------------------


def data_main() -> None:
    """Console entry point of ``hsfpn-data``."""
    data_app()


def repro_main() -> None:
    """Console entry point of ``hsfpn-repro``."""
    repro_app()


if __name__ == "__main__":  # python cli.py data|repro ...
    import sys

    app = {"data": data_main, "repro": repro_main}.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if app is None:
        sys.exit("usage: python cli.py {data|repro} [ARGS]...")
    sys.argv = [f"hsfpn-{sys.argv[1]}", *sys.argv[2:]]
    app()
