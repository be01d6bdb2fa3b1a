"""What the commands that train share (``table1``-``table4`` and ``train``): the run options, their overrides
of the preset, and the progress display of running jobs."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .common import csv_list, usage_error

# Options shared by the table commands and `train` (same names, same meaning).
WorkDirOption = Annotated[Path, typer.Option("--work-dir", help="Job folders and outputs go to WORK_DIR/PRESET/.")]
PresetOption = Annotated[
    str, typer.Option("--preset", help="paper (full settings), smoke (small inputs, short schedule, CPU minutes) or "
                                       "demo (the smoke schedule on a DOTAmini10 --data-root, as make demo runs it).")
]
GpusOption = Annotated[
    Optional[int], typer.Option("--gpus", help="GPUs per job (0 = CPU); default 1 (paper) or 0 (smoke).")
]
NprocOption = Annotated[
    Optional[int],
    typer.Option("--nproc", help="Processes per job: default one per GPU, or 1 on CPU; --gpus 0 --nproc 2 runs "
                 "2 CPU processes (gloo) under --launcher pytorch or slurm."),
]
LauncherOption = Annotated[
    str, typer.Option("--launcher", help="none (one process), pytorch (torchrun) or slurm (srun).")
]
PretrainedOption = Annotated[
    Optional[Path],
    typer.Option("--pretrained", help="Folder of backbone weights (resnet50-0676ba61.pth, ...): a row's backbone, or "
                 "the files a config file's init_cfg would download (torchvision://resnet50: resnet50-*.pth); "
                 "default random init for rows."),
]
EpochsOption = Annotated[Optional[int], typer.Option("--epochs", help="Override the preset's epoch count.")]
MilestonesOption = Annotated[
    Optional[str], typer.Option("--milestones", help="Comma-separated lr step epochs (with --epochs).")
]
BatchOption = Annotated[
    Optional[int], typer.Option("--batch-per-gpu", help="Images per process, i.e. per GPU (paper: 1).")
]
ImgScaleOption = Annotated[
    Optional[int], typer.Option("--img-scale", help="Input side in pixels, a multiple of 32 (paper: 800).")
]
AutoScaleOption = Annotated[
    bool,
    typer.Option("--auto-scale-lr", help="Scale lr by effective batch / 2 (the paper's 2 GPUs x 1 image)."),
]
SrunArgsOption = Annotated[str, typer.Option("--srun-args", help="Extra srun arguments for --launcher slurm (quoted).")]
ReportEveryOption = Annotated[
    float, typer.Option("--report-every", help="Seconds between progress lines of a running job.")
]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Print the plan and the resolved configs; run nothing.")]
KeepCheckpointsOption = Annotated[
    str, typer.Option("--keep-checkpoints", help="last (the last epoch's, and the best when validating) or all.")
]
SkipBadOption = Annotated[
    bool, typer.Option("--skip-bad", help="Drop the images and annotations the dataset check finds bad (missing or "
                                          "truncated images, bad boxes; recorded in data_check/skipped.json) "
                                          "instead of stopping.")
]
SeedsOption = Annotated[
    Optional[int],
    typer.Option("--seeds", help="Train each (row, neck) N times with seeds 0..N-1, each run a job of its own; results "
                 "report mean ± sample std and every seed (default 1: seed 0)."),
]
SeedListOption = Annotated[
    Optional[str], typer.Option("--seed-list", help="Comma-separated training seeds instead of --seeds, e.g. 0,1,2.")
]


def run_overrides(**options: Any) -> dict[str, Any]:
    """The command line's Settings overrides (``None``: not given, the preset decides); ``seeds`` (``--seeds``) and
    ``seed_list`` (``--seed-list``) become the ``seeds`` setting."""
    from pipelines.seeds import SeedError, resolve_seeds

    options["milestones"] = csv_list(options["milestones"], "--milestones", int)
    try:
        options["seeds"] = resolve_seeds(options["seeds"], csv_list(options.pop("seed_list"), "--seed-list", int))
    except SeedError as exc:
        raise usage_error(str(exc)) from None
    options["auto_scale_lr"] = options["auto_scale_lr"] or None
    options["srun_args"] = options["srun_args"] or None
    return options


@contextlib.contextmanager
def resume_hint(work_dir: Optional[Path] = None) -> Iterator[None]:
    """Ctrl-C: stop with one line naming the checkpoint a rerun of the same command resumes from, exit code 130.

    The runner has stopped the running job and recorded the attempt (:class:`pipelines.runner.JobInterrupted`
    names the job); an interrupt before any job ran falls back on ``work_dir``'s folder (``train``).
    """
    try:
        yield
    except KeyboardInterrupt as exc:
        from pipelines.job_folder import JobFolder

        job = getattr(exc, "job", None)
        folder = job.folder if job is not None else (JobFolder(work_dir) if work_dir is not None else None)
        typer.secho(interrupted_line(folder, None if job is None else job.key), fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(code=130) from None


def interrupted_line(folder: Any, key: Optional[str] = None) -> str:
    """``interrupted; rerun the same command to resume from epoch_2.pth`` (or to start again without one)."""
    checkpoint = folder.last_checkpoint() if folder is not None else None
    where = f" during {key}" if key else ""
    if checkpoint is None:
        return f"interrupted{where}; no checkpoint yet: rerun the same command to start again"
    return f"interrupted{where}; rerun the same command to resume from {checkpoint.name}"


def _print_event(event: Any) -> None:
    from pipelines.runner import format_event

    typer.echo(format_event(event))


@contextlib.contextmanager
def job_progress(report_every: float) -> Iterator[tuple[Any, float]]:
    """Yield the runner's progress callback and its report interval.

    On a terminal a rich bar follows the running job (training iterations, loss, speed, the job's and the
    plan's ETA; evaluations as they run) every 2 s and state changes print as lines above it; elsewhere (logs,
    Slurm batch output) every event is one line, running ones every ``report_every`` seconds.
    """
    if not sys.stderr.isatty():
        yield _print_event, report_every
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn

    from pipelines.job_folder import JobStatus
    from pipelines.runner import format_duration, format_event

    bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), TextColumn("{task.fields[info]}"),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("", total=None, info="")

    def update(event: Any) -> None:
        if event.state is not JobStatus.RUNNING:
            bar.console.print(format_event(event), highlight=False)
            return
        etas = f"job ETA {format_duration(event.job_eta_s)}  all ETA {format_duration(event.plan_eta_s)}"
        p = event.progress
        done, total = (None, None) if p is None else (p.train_iter, p.train_iters)
        bar.update(task, description=f"[{event.index}/{event.total}] {event.key}", completed=done or 0,
                   total=total, info=f"{event.detail}  {etas}")

    with bar:
        yield update, min(report_every, 2.0)
