"""``hsfpn-repro train``: one detector (FPN or HS-FPN) on any COCO-format dataset, as one job of the runner."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import domain_errors, group
from . import run_options as run

app = group()


@app.command(
    "train",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro train --config faster_rcnn --neck hsfpn --data-root data/VisDrone --work-dir runs/visdrone "
        "--pretrained weights/ --gpus 2 --launcher pytorch\n\n"
        "  hsfpn-repro train --config cascade_rcnn --data-root data/mine --train-ann ann/train.json "
        "--val-ann ann/val.json --train-images img/train --val-images img/val --work-dir runs/mine\n\n"
        "  hsfpn-repro train --config my_config.py --data-root data/mine --work-dir runs/mine --gpus 0 --nproc 2 "
        "--launcher pytorch --preset smoke\n\n"
        "  hsfpn-repro train --config faster_rcnn --data-root data/mine --work-dir runs/mine --seeds 3"
    ),
)
def train_command(
    *,
    config: Annotated[
        str, typer.Option("--config", help="A Table 3 row id (faster_rcnn, cascade_rcnn, retinanet, ...) or an "
                          "MMDetection 3 config file.")
    ],
    data_root: Annotated[Path, typer.Option("--data-root", help="Root of a COCO-format dataset.")],
    work_dir: Annotated[
        Path, typer.Option("--work-dir", help="The job's folder: checkpoints, logs, model.pth, train.md, training.png.")
    ],
    neck: Annotated[
        Optional[str], typer.Option("--neck", help="fpn or hsfpn; default hsfpn for a row id, the file's own neck for a file.")
    ] = None,
    train_ann: Annotated[
        Optional[str], typer.Option("--train-ann", help="Training json relative to the root (default annotations/train.json).")
    ] = None,
    val_ann: Annotated[
        Optional[str], typer.Option("--val-ann", help="Evaluation json relative to the root (default annotations/val.json).")
    ] = None,
    train_images: Annotated[
        Optional[str], typer.Option("--train-images", help="Training image folder (default: images/train, train or images).")
    ] = None,
    val_images: Annotated[
        Optional[str], typer.Option("--val-images", help="Evaluation image folder (default: images/val, val or images).")
    ] = None,
    preset: run.PresetOption = "paper",
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
        int, typer.Option("--val-interval", help="Validate every N epochs (and at the last), keeping the best "
                          "checkpoint; 0 evaluates once, after training.")
    ] = 1,
    srun_args: run.SrunArgsOption = "",
    keep_checkpoints: run.KeepCheckpointsOption = "last",
    skip_bad: run.SkipBadOption = False,
    area_from_box: Annotated[
        bool, typer.Option("--area-from-box", help="The evaluation uses each ground-truth box's w x h as its area in "
                                                   "the size ranges (for jsons whose 'area' is something else).")
    ] = False,
    seeds: run.SeedsOption = None,
    seed_list: run.SeedListOption = None,
    report_every: run.ReportEveryOption = 60.0,
    dry_run: run.DryRunOption = False,
) -> None:
    """Train a detector (FPN or HS-FPN) on any COCO-format dataset, evaluated with the AI-TOD metric."""
    from pipelines.job_folder import JobStatus
    from pipelines.training import summarize, train

    with domain_errors(), run.resume_hint(work_dir), run.job_progress(report_every) as (progress, every):
        outcome = train(
            config,
            data_root=data_root,
            work_dir=work_dir,
            preset=preset,
            neck=neck,
            data_paths=dict(train_ann=train_ann, val_ann=val_ann, train_images=train_images, val_images=val_images),
            dry_run=dry_run,
            progress=progress,
            report_every_s=every,
            note=typer.echo,
            pretrained=pretrained,
            **run.run_overrides(
                gpus=gpus, nproc=nproc, launcher=launcher, max_epochs=epochs, milestones=milestones,
                batch_per_gpu=batch_per_gpu, img_scale=img_scale, auto_scale_lr=auto_scale_lr,
                val_interval=val_interval, srun_args=srun_args, keep_checkpoints=keep_checkpoints,
                skip_bad=skip_bad, area_from_box=area_from_box, seeds=seeds, seed_list=seed_list,
            ),
        )
    if dry_run:
        typer.echo(outcome.plan.describe(with_config=True))
        return
    typer.echo(summarize(outcome))
    failed = [r for r in outcome.results if r.status is JobStatus.FAILED]
    if failed:
        logs = ", ".join(str(r.log) for r in failed)
        typer.secho(f"error: {len(failed)} training job(s) failed; see {logs}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)
