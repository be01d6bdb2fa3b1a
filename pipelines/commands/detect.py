"""``hsfpn-repro detect``: a detector over full scenes, in the builder's windows, merged back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.detect.options import DetectOptions

from .common import csv_list, domain_errors, group, progress_bar
from .detections import merge_options

app = group()
# Every default of detect is DetectOptions' own.
DETECT = DetectOptions()


@app.command(
    "detect",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro detect --config cascade_rcnn --neck hsfpn --checkpoint cascade_hsfpn.pth "
        "--images /data/DOTA-v1.0/val/images --out runs/detect\n\n"
        "  hsfpn-repro detect --config my_config.py --checkpoint epoch_12.pth --images P0001.png --out runs/p1 "
        "--scales 0.5,1.0 --device cuda --batch 8\n\n"
        "  hsfpn-repro detect --config cascade_rcnn --checkpoint c.pth --images scenes/ --out runs/d --resume"
    ),
)
def detect_command(
    *,
    config: Annotated[str, typer.Option("--config", help="A row id (cascade_rcnn, faster_rcnn, ...) or any "
                                                         "MMDetection config file.")],
    checkpoint: Annotated[Path, typer.Option("--checkpoint", help="The weights (class names from its meta).")],
    images: Annotated[list[Path], typer.Option("--images", help="Image files or folders (repeat the option).")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")],
    neck: Annotated[Optional[str], typer.Option("--neck", help="fpn or hsfpn: swap the config's neck.")] = None,
    scales: Annotated[str, typer.Option("--scales", help="Comma-separated factors, each applied as the builder "
                                                         "scales.")] = ",".join(f"{s:g}" for s in DETECT.scales),
    window: Annotated[int, typer.Option("--window", help="Window side in pixels.")] = DETECT.window,
    stride: Annotated[int, typer.Option("--stride", help="Window step in pixels.")] = DETECT.stride,
    score: Annotated[float, typer.Option("--score", help="Drop detections scoring below this.")] = DETECT.score,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = DETECT.device,
    batch: Annotated[int, typer.Option("--batch", help="Windows per model call (1 is fastest on a CPU; raise it "
                                                       "on a GPU).")] = DETECT.batch,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Model processes on a CPU, one thread each "
                                                                     "(default: one per core, at most 8).")] = None,
    gt: Annotated[
        Optional[Path], typer.Option("--gt", help="COCO ground truth: the COCO results take its image and category "
                                     "ids (default: the training json's category ids), and the previews show TP, FP "
                                     "and FN from the AI-TOD evaluator's matching (IoU 0.5).")
    ] = None,
    preview_score: Annotated[
        float, typer.Option("--preview-score", help="The previews draw the detections scoring at least this.")
    ] = DETECT.preview_score,
    method: Annotated[str, typer.Option("--method", help="Merge: nms or nmm.")] = DETECT.merge.method.value,
    metric: Annotated[str, typer.Option("--metric", help="Merge: iou or ios.")] = DETECT.merge.metric.value,
    nms_thresh: Annotated[
        float, typer.Option("--nms-thresh", help="Merge threshold (strictly above).")
    ] = DETECT.merge.threshold,
    max_per_image: Annotated[
        int, typer.Option("--max-per-image", help="Detections kept per image.")
    ] = DETECT.merge.max_per_image,
    resume: Annotated[bool, typer.Option("--resume", help="Skip images finished by an earlier run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Detect on full scenes: the builder's windows, batched, merged back into full-image results."""
    from pipelines.detect import Status, detect_images

    factors = tuple(csv_list(scales, "--scales", float))
    with domain_errors():
        merge = merge_options(method, metric, nms_thresh, max_per_image, base=DETECT.merge)
        options = DetectOptions(scales=factors, window=window, stride=stride, score=score, batch=batch,
                                device=device, workers=workers, merge=merge, preview_score=preview_score)
        with progress_bar("windows", quiet) as progress:
            summary = detect_images(images, out, config=config, checkpoint=checkpoint, neck=neck, options=options,
                                    gt=gt, resume=resume, progress=progress,
                                    log=lambda line: typer.secho(f"error: {line}", fg=typer.colors.RED, err=True))
    for note in summary.notes:
        typer.echo(note)
    counts = {status: sum(o.status is status for o in summary.outcomes) for status in Status}
    typer.echo(", ".join(f"{n} {status.value}" for status, n in counts.items() if n) or "no images")
    typer.echo(f"{summary.windows:,} windows in {summary.seconds:.1f} s ({summary.windows_per_s:.2f} windows/s), "
               f"{sum(o.detections for o in summary.outcomes):,} detections")
    typer.echo(f"wrote {out} (results.bbox.json, Task2_*.txt, images/, previews/)")
    if counts[Status.FAILED]:
        raise typer.Exit(code=1)
