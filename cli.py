"""Command-line entry points: ``hsfpn-data`` (datasets) and ``hsfpn-repro`` (models, tables, evaluation).

This module only assembles the two applications from the command groups of :mod:`pipelines.commands`, one
module per group, as Typer's pattern for bigger applications does. Commands parse their arguments, call one
library function and print its summary; library modules are imported inside each command so that ``--help``
answers without loading torch.
"""

from __future__ import annotations

import sys

import typer

from pipelines.commands import (
    aitod,
    convert,
    dataset,
    detect,
    detections,
    evaluate,
    export,
    slicing,
    tables,
    train,
    visualize,
)
from pipelines.commands.common import VersionOption

data_app = typer.Typer(
    name="hsfpn-data",
    help="Build and describe the HS-FPN paper's datasets (DOTAmini10, AI-TOD) and slice any large-image COCO set.",
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


@data_app.callback()
def _data_root(version: VersionOption = None) -> None:
    """Build and describe the HS-FPN paper's datasets (DOTAmini10, AI-TOD) and slice any large-image COCO set."""


@repro_app.callback()
def _repro_root(version: VersionOption = None) -> None:
    """Reproduce the HS-FPN paper: neck tools, AI-TOD evaluation and the paper's tables."""


# hsfpn-data, in the order of --help.
for _group in (dataset, aitod, slicing, detections):
    data_app.add_typer(_group.app)
# hsfpn-repro, in the order of --help.
for _group in (convert, export, tables, evaluate, detect, train):
    repro_app.add_typer(_group.app)
repro_app.add_typer(visualize.visualize_app)
repro_app.add_typer(visualize.analyze_app)


def data_main() -> None:
    """Console entry point of ``hsfpn-data``."""
    data_app()


def repro_main() -> None:
    """Console entry point of ``hsfpn-repro``."""
    repro_app()


if __name__ == "__main__":  # python cli.py data|repro ...
    app = {"data": data_main, "repro": repro_main}.get(sys.argv[1] if len(sys.argv) > 1 else "")
    if app is None:
        sys.exit("usage: python cli.py {data|repro} [ARGS]...")
    sys.argv = [f"hsfpn-{sys.argv[1]}", *sys.argv[2:]]
    app()
