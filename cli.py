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
