"""What every command group shares: one-line domain errors, the progress bar, comma lists and ``--version``.

Nothing here imports torch or OpenMMLab: ``hsfpn-data`` commands run where neither is installed.
"""

from __future__ import annotations

import contextlib
import enum
import importlib.metadata
import sys
from collections.abc import Callable, Iterator
from typing import Annotated, Optional, TypeVar

import typer

TOOLKIT = "hsfpn-toolkit"
KEY_DEPENDENCIES = ("torch", "mmcv", "mmdet", "mmengine", "torch-dct")

# (module, class) of each package's domain-error base.
_DOMAIN_ERRORS = (
    ("dotamini10.errors", "DatasetError"),
    ("hsfpn.errors", "HSFPNError"),
    ("pipelines.errors", "PipelineError"),
)

T = TypeVar("T")
E = TypeVar("E", bound=enum.Enum)


def group(name: str = "", help: str = "") -> typer.Typer:
    """A command group's ``app``: no completion, no pretty tracebacks, help when called bare (named groups)."""
    return typer.Typer(name=name or None, help=help or None, no_args_is_help=bool(name), add_completion=False,
                       pretty_exceptions_enable=False)


@contextlib.contextmanager
def domain_errors() -> Iterator[None]:
    """Turn the libraries' expected failures into one line on stderr and exit code 1 (no traceback)."""
    try:
        yield
    except Exception as exc:
        # An error of a package's base class means that package is already imported: look the bases up in
        # sys.modules rather than importing them (importing hsfpn loads torch and mmdet, seconds per command).
        bases = tuple(
            getattr(sys.modules[module], name) for module, name in _DOMAIN_ERRORS if module in sys.modules
        )
        # An OSError that names its file (a full disk, a read-only folder, --out naming a folder) is the
        # machine's answer about that file, not a bug: one line too.
        named_os_error = isinstance(exc, OSError) and exc.filename is not None
        if not (isinstance(exc, bases) or named_os_error):
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from None


def usage_error(message: str) -> typer.Exit:
    """Print ``error: message`` on stderr and return the exit (code 1) to raise: bad command-line values."""
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def csv_list(text: Optional[str], option: str, kind: Callable[[str], T] = str) -> Optional[list[T]]:
    """``"a, b,c"`` -> ``[kind("a"), kind("b"), kind("c")]``; None stays None (the option was not given).

    The one parser of comma-separated options; a value ``kind`` refuses is a one-line error naming ``option``.
    """
    if text is None:
        return None
    items = [item.strip() for item in text.split(",") if item.strip()]
    try:
        return [kind(item) for item in items]
    except ValueError:
        noun = {int: "integers", float: "numbers"}.get(kind, "values")
        raise usage_error(f"{option}: expected comma-separated {noun}, got {text!r}") from None


def choice(kind: type[E], value: str, option: str) -> E:
    """The member of the enum ``kind`` whose value is ``value``; anything else is a one-line error naming the
    option and its choices (exit code 1, as every bad value of these commands)."""
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(str(member.value) for member in kind)
        raise usage_error(f"{option} must be one of {names}, got {value!r}") from None


@contextlib.contextmanager
def progress_bar(label: str, quiet: bool) -> Iterator[Optional[Callable[[int, int], None]]]:
    """Yield a ``progress(done, total)`` callback drawing a rich bar of ``label`` with ETA on stderr (None when
    quiet): the one bar of the commands that count work (windows, images, figures).

    The bar starts at the first call: its refresh thread would otherwise exist when the builder starts its
    workers, which rules out forking them straight from this process (``dotamini10.pool.fork_is_safe``).
    """
    if quiet:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn())
    bar = Progress(*columns, console=Console(stderr=True), transient=False)
    task = None

    def update(done: int, total: int) -> None:
        nonlocal task
        if task is None:
            bar.start()
            task = bar.add_task(label, total=None)
        bar.update(task, completed=done, total=total)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


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
