"""``hsfpn-repro table1`` .. ``table4`` (train and evaluate every job of a table) and ``table5`` (parameters and
FLOPs). Each table's title, dataset and rows come from :data:`pipelines.tables.TABLE_SPECS`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.tables import TABLE_SPECS, TableSpec

from .common import csv_list, domain_errors, group, usage_error
from . import run_options as run

app = group()


def _register_table_command(spec: TableSpec) -> None:
    table, row = spec.name, spec.rows[0]
    data = "DOTAMINI10_DIR" if spec.dataset == "dotamini10" else "AITOD_DIR"
    epilog = (
        "Examples:\n\n"
        f"  hsfpn-repro {table} --data-root {data} --work-dir runs/ --pretrained weights/ --gpus 2 --launcher pytorch\n\n"
        f"  hsfpn-repro {table} --preset smoke --work-dir runs/ --rows {row}\n\n"
        f"  hsfpn-repro {table} --preset smoke --work-dir runs/ --rows {row} --seeds 3\n\n"
        f"  hsfpn-repro {table} --preset smoke --work-dir runs/ --rows {row} --nproc 2 --launcher pytorch\n\n"
        f"  hsfpn-repro {table} --data-root {data} --dry-run"
    )

    def command(
        *,
        data_root: Annotated[
            Optional[Path],
            typer.Option("--data-root", help="Dataset root (AI-TOD, or DOTAmini10 for table4); not with --preset smoke."),
        ] = None,
        work_dir: run.WorkDirOption = Path("runs"),
        preset: run.PresetOption = "paper",
        rows: Annotated[
            Optional[str], typer.Option("--rows", help="Comma-separated row ids (default: all of the table's rows).")
        ] = None,
        necks: Annotated[
            Optional[str], typer.Option("--necks", help="Comma-separated neck variants (default: all, e.g. fpn,hsfpn).")
        ] = None,
        gpus: run.GpusOption = None,
        nproc: run.NprocOption = None,
        launcher: run.LauncherOption = "none",
        pretrained: run.PretrainedOption = None,
        epochs: run.EpochsOption = None,
        milestones: run.MilestonesOption = None,
        batch_per_gpu: run.BatchOption = None,
        img_scale: run.ImgScaleOption = None,
        auto_scale_lr: run.AutoScaleOption = False,
        val_interval: Annotated[
            Optional[int],
            typer.Option("--val-interval", help="Also validate every N epochs while training, keeping the best "
                         "checkpoint (default 0: evaluate once, after training)."),
        ] = None,
        srun_args: run.SrunArgsOption = "",
        seeds: run.SeedsOption = None,
        seed_list: run.SeedListOption = None,
        train_ann: Annotated[
            Optional[str], typer.Option("--train-ann", help="AI-TOD train-val json, relative to the data root.")
        ] = None,
        test_ann: Annotated[
            Optional[str], typer.Option("--test-ann", help="AI-TOD test json, relative to the data root.")
        ] = None,
        train_images: Annotated[
            Optional[str], typer.Option("--train-images", help="AI-TOD train-val image folder (default: found).")
        ] = None,
        test_images: Annotated[
            Optional[str], typer.Option("--test-images", help="AI-TOD test image folder (default: found).")
        ] = None,
        keep_checkpoints: run.KeepCheckpointsOption = "last",
        skip_bad: run.SkipBadOption = False,
        report_every: run.ReportEveryOption = 60.0,
        dry_run: run.DryRunOption = False,
    ) -> None:
        from pipelines.job_folder import JobStatus
        from pipelines.tables import reproduce, summarize

        overrides = run.run_overrides(
            gpus=gpus, nproc=nproc, launcher=launcher, max_epochs=epochs, milestones=milestones,
            batch_per_gpu=batch_per_gpu, img_scale=img_scale, auto_scale_lr=auto_scale_lr,
            val_interval=val_interval, srun_args=srun_args, keep_checkpoints=keep_checkpoints, skip_bad=skip_bad,
            seeds=seeds, seed_list=seed_list,
        )
        data_paths = dict(train_ann=train_ann, test_ann=test_ann, train_images=train_images, test_images=test_images)
        with domain_errors(), run.resume_hint(), run.job_progress(report_every) as (progress, every):
            outcome = reproduce(
                table, preset=preset, work_dir=work_dir, rows=csv_list(rows, "--rows"),
                necks=csv_list(necks, "--necks"), data_paths=data_paths, dry_run=dry_run, progress=progress,
                report_every_s=every, note=typer.echo, data_root=data_root, pretrained=pretrained, **overrides,
            )
        if dry_run:
            typer.echo(outcome.plan.describe(with_configs=True))
            return
        typer.echo(summarize(outcome))
        failed = [r for r in outcome.results if r.status is JobStatus.FAILED]
        if failed:
            typer.secho(f"error: {len(failed)} job(s) failed; see the logs named in the table", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1)

    command.__doc__ = spec.title + "."
    app.command(table, epilog=epilog)(command)


for _table in ("table3", "table1", "table2", "table4"):
    _register_table_command(TABLE_SPECS[_table])


CHANNEL_FUSIONS = ("concat", "sum")


@app.command(
    "table5",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro table5\n\n"
        "  hsfpn-repro table5 --out runs/table5.md\n\n"
        "  hsfpn-repro table5 --channel-fusion sum --out runs/table5_release.csv"
    ),
)
def table5_command(
    *,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Also write the table here (.csv or .md, by suffix).")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Square input side in pixels.")] = 800,
    proposals: Annotated[int, typer.Option("--proposals", help="Fixed proposal count for the R-CNN stages.")] = 1000,
    channel_fusion: Annotated[
        str,
        typer.Option(
            "--channel-fusion",
            help="HFP channel-path fusion: concat (what the paper's Table 5 counts) or sum (the authors' release, "
            "2,048 parameters fewer per level).",
        ),
    ] = CHANNEL_FUSIONS[0],
) -> None:
    """Table 5: trainable parameters and FLOPs of Cascade R-CNN R50 with each HS-FPN component."""
    from pipelines.table5 import format_table5, table5, write_table5

    if channel_fusion not in CHANNEL_FUSIONS:
        raise usage_error(f"--channel-fusion must be one of {', '.join(CHANNEL_FUSIONS)}, got {channel_fusion!r}")
    with domain_errors():
        rows = table5(size=size, proposals=proposals, channel_fusion=channel_fusion)
        typer.echo(format_table5(rows, "md"), nl=False)
        if out is not None:
            typer.echo(f"wrote {write_table5(rows, out)}")
