"""Command-line entry points: ``hsfpn-data`` (dataset toolkit) and ``hsfpn-repro`` (reproduction).

Commands only parse arguments, call one library function and print its summary. Library modules are
imported inside each command so that ``--help`` answers without loading torch.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer

from pipelines.commands.common import VersionOption, domain_errors, progress_bar, version_report  # noqa: F401

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


@data_app.callback()
def _data_root(version: VersionOption = None) -> None:
    """Build and describe the DOTAmini10 dataset of the HS-FPN paper."""


@repro_app.callback()
def _repro_root(version: VersionOption = None) -> None:
    """Reproduce the HS-FPN paper: neck tools, AI-TOD evaluation and the paper's tables."""


# ---------------------------------------------------------------------------------------------
# hsfpn-data: dataset commands
# ---------------------------------------------------------------------------------------------


@data_app.command(
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
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first input problem.")] = False,
    scale_mode: Annotated[
        str, typer.Option("--scale-mode", help="random: one factor per image from --scale-range; fixed: each of --scales.")
    ] = "random",
    scales: Annotated[str, typer.Option("--scales", help="Comma-separated factors of --scale-mode fixed.")] = "0.5,1.0",
    scale_range: Annotated[
        str, typer.Option("--scale-range", help="low,high bounds of --scale-mode random.")
    ] = "0.5,1.0",
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes to keep. Defaults to the ten of DOTAmini10.")
    ] = None,
    crop_size: Annotated[int, typer.Option("--crop-size", help="Window size in pixels.")] = 1024,
    stride: Annotated[int, typer.Option("--stride", help="Window step in pixels.")] = 768,
    iof_threshold: Annotated[
        float, typer.Option("--iof-threshold", help="Minimum fraction of an object's area inside a window.")
    ] = 0.7,
    pad_value: Annotated[int, typer.Option("--pad-value", help="Gray value padding images smaller than a window.")] = 0,
    keep_empty_train: Annotated[
        bool, typer.Option("--keep-empty-train", help="Keep train windows without objects (val keeps them always).")
    ] = False,
    aug_copies: Annotated[
        int, typer.Option("--aug-copies", help="Augmented copies of train windows holding an --aug-classes object.")
    ] = 1,
    aug_classes: Annotated[
        Optional[str],
        typer.Option("--aug-classes", help="Comma-separated classes that trigger augmentation. "
                     "Defaults to basketball-court,baseball-diamond,helicopter."),
    ] = None,
    interpolation: Annotated[
        str, typer.Option("--interpolation", help="Resizing filter: area, cubic, linear or nearest.")
    ] = "area",
    png_compression: Annotated[
        int, typer.Option("--png-compression", help="Deflate level (0-3, ISA-L) of the PNG windows.")
    ] = 1,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted build in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a previous build in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Build the paper's DOTAmini10 dataset from DOTA: windows as PNG, DOTA txt and COCO json, with a manifest."""
    import os

    from dotamini10.build import BuildOptions, build_dotamini10
    from dotamini10.classes import AUGMENT_CLASSES, DOTAMINI10_CLASSES
    from dotamini10.errors import DatasetError

    def floats(text: str, option: str) -> tuple[float, ...]:
        try:
            return tuple(float(v) for v in text.split(",") if v.strip())
        except ValueError:
            raise DatasetError(f"{option}: expected comma-separated numbers, got {text!r}") from None

    def names(text: Optional[str], default: tuple[str, ...]) -> tuple[str, ...]:
        return default if text is None else tuple(v.strip() for v in text.split(",") if v.strip())

    with domain_errors():
        bounds = floats(scale_range, "--scale-range")
        if len(bounds) != 2:
            raise DatasetError(f"--scale-range: expected two numbers low,high, got {scale_range!r}")
        options = BuildOptions(
            classes=names(classes, DOTAMINI10_CLASSES),
            scale_mode=scale_mode,
            scales=floats(scales, "--scales"),
            scale_range=(bounds[0], bounds[1]),
            interpolation=interpolation,
            crop_size=crop_size,
            stride=stride,
            iof_threshold=iof_threshold,
            pad_value=pad_value,
            drop_empty_train=not keep_empty_train,
            aug_copies=aug_copies,
            aug_classes=names(aug_classes, AUGMENT_CLASSES),
            png_compression=png_compression,
            strict=strict,
        )
        n_workers = workers if workers is not None else (os.cpu_count() or 1)
        try:
            with progress_bar("windows", quiet) as progress:
                summary = build_dotamini10(
                    out, dota_root=dota_root, options=options, seed=seed, workers=n_workers,
                    resume=resume, overwrite=overwrite, progress=progress,
                )
        except KeyboardInterrupt:
            typer.secho(f"interrupted: finished windows are kept; add --resume to continue in {out}", err=True)
            raise typer.Exit(code=130) from None
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


@data_app.command(
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


@data_app.command(
    "merge",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data merge work/window_results --out work/full_results\n\n"
        "  hsfpn-data merge work/window_results --out work/devkit_results --devkit\n\n"
        "  hsfpn-data merge work/window_results --out work/merged --method nmm --metric ios --nms-thresh 0.6"
    ),
)
def merge_command(
    src: Annotated[
        Path, typer.Argument(help="Folder of Task2_{class}.txt window results: '{image}__{rate}__{left}___{up} "
                                  "score x1 y1 x2 y2' lines.")
    ],
    *,
    out: Annotated[Path, typer.Option("--out", help="Folder for the full-image Task2_{class}.txt files.")],
    nms_thresh: Annotated[
        Optional[float], typer.Option("--nms-thresh", help="Match threshold (strictly above). Default 0.5; 0.1 "
                                                           "with --devkit.")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="nms (drop matches) or nmm (merge them).")] = "nms",
    metric: Annotated[str, typer.Option("--metric", help="iou, or ios (intersection over the smaller box).")] = "iou",
    max_per_image: Annotated[
        Optional[int], typer.Option("--max-per-image", help="Keep at most this many detections per image.")
    ] = None,
    class_agnostic: Annotated[
        bool, typer.Option("--class-agnostic", help="Let boxes of different classes suppress each other.")
    ] = False,
    devkit: Annotated[
        bool, typer.Option("--devkit", help="DOTA_devkit's ResultMerge (mergebyrec): NMS at 0.1 with its "
                                           "(x2 - x1 + 1) * (y2 - y1 + 1) areas.")
    ] = False,
) -> None:
    """Merge window-level results of any detector into full-image results (class-wise NMS by default)."""
    from dotamini10.merge import DEVKIT_OPTIONS, merge_result_folder

    with domain_errors():
        options = _merge_options(method, metric, nms_thresh, max_per_image, class_agnostic, devkit,
                                 base=DEVKIT_OPTIONS if devkit else None)
        summary = merge_result_folder(src, out, options=options)
    typer.echo(
        f"{summary.boxes_in:,} window detections of {summary.windows:,} windows -> {summary.boxes_out:,} "
        f"detections of {summary.images:,} images (merge {summary.seconds:.2f} s)"
    )
    typer.echo(f"wrote {len(summary.files)} files to {out}")


def _merge_options(method, metric, threshold, max_per_image, class_agnostic, devkit, *, base=None):
    """MergeOptions from command-line values (unknown names are one-line errors)."""
    import dataclasses

    from dotamini10.merge import MatchMetric, MergeError, MergeMethod, MergeOptions

    try:
        kinds = dict(method=MergeMethod(method), metric=MatchMetric(metric))
    except ValueError:
        raise MergeError(f"--method must be nms or nmm and --metric iou or ios, got {method!r}, {metric!r}") from None
    options = dataclasses.replace(base or MergeOptions(), **kinds, class_agnostic=class_agnostic,
                                  max_per_image=max_per_image)
    if threshold is not None:
        options = dataclasses.replace(options, threshold=threshold)
    return options


@data_app.command(
    "coco-gt",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-data coco-gt --dota-root /data/DOTA-v1.0/val --out val_full.json\n\n"
        "  hsfpn-data coco-gt --dota-root /data/DOTA-v1.0 --split val --out val_full.json --classes plane,ship"
    ),
)
def coco_gt_command(
    *,
    dota_root: Annotated[
        Path, typer.Option("--dota-root", help="A split folder with images/ and labelTxt/, or a release root "
                                               "with --split.")
    ],
    out: Annotated[Path, typer.Option("--out", help="The COCO ground-truth JSON to write.")],
    split: Annotated[Optional[str], typer.Option("--split", help="Split folder under a release root.")] = None,
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes. Defaults to the ten of DOTAmini10.")
    ] = None,
) -> None:
    """Full-image COCO ground truth of a DOTA split: clipped horizontal boxes, area w x h, difficult kept."""
    from dotamini10.classes import DOTAMINI10_CLASSES
    from dotamini10.coco_gt import write_coco_gt

    with domain_errors():
        summary = write_coco_gt(dota_root, out, classes=_csv_option(classes) or DOTAMINI10_CLASSES, split=split)
    total = sum(summary.annotations.values())
    typer.echo(f"{summary.images:,} images, {total:,} annotations; objects of other classes {summary.other_classes:,}")
    if summary.partly_outside:
        typer.echo(f"{len(summary.partly_outside):,} objects reach outside their image (kept, clipped): "
                   + ", ".join(summary.partly_outside[:5]) + (", ..." if len(summary.partly_outside) > 5 else ""))
    for problem in summary.problems:
        typer.echo(f"not annotated: {problem.message()}")
    typer.echo(f"wrote {out}")


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: neck tools, convert-checkpoint and table5
# ---------------------------------------------------------------------------------------------


@repro_app.command(
    "convert-checkpoint",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro convert-checkpoint release_cascade_hsfpn.pth cascade_hsfpn_mmdet3.pth\n\n"
        "  hsfpn-repro convert-checkpoint hs_fpn_neck.pth neck_ours.pth"
    ),
)
def convert_checkpoint_command(
    src: Annotated[Path, typer.Argument(help="Checkpoint saved with the authors' HS-FPN release names.")],
    dst: Annotated[Path, typer.Argument(help="Where to write the converted checkpoint.")],
) -> None:
    """Rename a release HS-FPN checkpoint (detector or bare neck) to HSFPN's names, checked by a strict load."""
    from hsfpn.convert import convert_checkpoint

    with domain_errors():
        report = convert_checkpoint(src, dst)
    cfg = report.neck_config
    typer.echo(
        f"{report.destination}: {report.layout} checkpoint, {report.renamed} neck entries renamed, "
        f"{report.unchanged} kept"
        + (f", dropped {', '.join(report.dropped)}" if report.dropped else "")
    )
    typer.echo(
        f"neck: in_channels={cfg['in_channels']} out_channels={cfg['out_channels']} num_outs>={cfg['num_outs']} "
        f"add_extra_convs={cfg['add_extra_convs']!r} channel_fusion={cfg['channel_fusion']!r}"
    )


@repro_app.command(
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
    ] = "concat",
) -> None:
    """Table 5: trainable parameters and FLOPs of Cascade R-CNN R50 with each HS-FPN component."""
    from pipelines.errors import PipelineError
    from pipelines.table5 import format_table5, table5, write_table5

    with domain_errors():
        if channel_fusion not in ("concat", "sum"):
            raise PipelineError(f"--channel-fusion must be concat or sum, got {channel_fusion!r}")
        rows = table5(size=size, proposals=proposals, channel_fusion=channel_fusion)
        typer.echo(format_table5(rows, "md"), nl=False)
        if out is not None:
            typer.echo(f"wrote {write_table5(rows, out)}")


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: AI-TOD evaluation
# ---------------------------------------------------------------------------------------------


def _figure(value: float) -> str:
    return "n/a" if value < 0 else f"{value:.4f}"


@repro_app.command(
    "eval",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro eval --ann data/aitod/annotations/aitod_test.json --dets work_dirs/hsfpn/preds.bbox.json\n\n"
        "  hsfpn-repro eval --ann gt.json --dets dets.json --out runs/eval/report.json\n\n"
        "  hsfpn-repro eval --protocol dota --dets runs/detect/ --ann /data/DOTA-v1.0/val/labelTxt --out dota.json"
    ),
)
def eval_command(
    *,
    ann: Annotated[
        Path,
        typer.Option("--ann", help="aitod: COCO ground truth JSON (images, categories, annotations with area); "
                                   "dota: folder of DOTA label files."),
    ],
    dets: Annotated[
        Path,
        typer.Option(
            "--dets",
            help="aitod: a COCO results list of {image_id, category_id, bbox (x, y, w, h), score} objects, or an "
            "object holding that list under 'annotations'; dota: folder of Task2_{class}.txt files.",
        ),
    ],
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Write the report (the figures and per_class) to this JSON file, atomically."),
    ] = None,
    protocol: Annotated[
        str, typer.Option("--protocol", help="aitod (AI-TOD metric) or dota (DOTA Task2, VOC07 AP at IoU > 0.5).")
    ] = "aitod",
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="dota: comma-separated classes (default: DOTAmini10's ten).")
    ] = None,
    imageset: Annotated[
        Optional[Path], typer.Option("--imageset", help="dota: file of image names (default: every label file).")
    ] = None,
) -> None:
    """Evaluate detections: the AI-TOD metric (default) or DOTA's Task2 protocol."""
    with domain_errors():
        if protocol == "dota":
            _eval_dota(ann, dets, out, classes, imageset)
        elif protocol == "aitod":
            if classes is not None or imageset is not None:
                from hsfpn.errors import HSFPNError

                raise HSFPNError("--classes and --imageset belong to --protocol dota")
            _eval_aitod(ann, dets, out)
        else:
            from hsfpn.errors import HSFPNError

            raise HSFPNError(f"--protocol must be aitod or dota, got {protocol!r}")
    if out is not None:
        typer.echo(f"wrote {out}")


def _eval_aitod(ann: Path, dets: Path, out: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    from hsfpn.aitod_eval import FIGURES, PER_CLASS_KEYS, evaluate_files

    report = evaluate_files(ann, dets, out=out)
    console = Console()
    summary = Table(title="AI-TOD evaluation (fractions; n/a: no ground truth in that range)")
    summary.add_column("figure")
    summary.add_column("value", justify="right")
    summary.add_column("slice: IoU, area, max detections")
    for figure in FIGURES:
        summary.add_row(figure.key, _figure(report[figure.key]), figure.describe())
    console.print(summary)
    per_class = Table(title="per class (max_dets 1500)")
    per_class.add_column("class")
    for key in PER_CLASS_KEYS:
        per_class.add_column(key, justify="right")
    for name, figures in report["per_class"].items():
        per_class.add_row(name, *(_figure(figures[key]) for key in PER_CLASS_KEYS))
    console.print(per_class)


def _eval_dota(ann: Path, dets: Path, out: Optional[Path], classes: Optional[str], imageset: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    from dotamini10.classes import DOTAMINI10_CLASSES
    from hsfpn.dota_eval import evaluate_task2_files

    names = _csv_option(classes) or list(DOTAMINI10_CLASSES)
    report = evaluate_task2_files(dets, ann, names, imageset_file=imageset, out=out)
    table = Table(title=f"DOTA Task2 ({report['images']} images): {report['metric']}")
    for column in ("class", "AP", "ground truth", "detections", "true positives"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, ap in report["per_class"].items():
        c = report["counts"][name]
        table.add_row(name, f"{ap:.4f}", f"{c['ground_truth']:,}", f"{c['detections']:,}", f"{c['true_positives']:,}")
    table.add_row("mAP", f"{report['mAP']:.4f}", "", "", "")
    Console().print(table)
    if report["missing_files"]:
        typer.echo(f"no result file (no detections) for: {', '.join(report['missing_files'])}")


@repro_app.command(
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
                                                         "scales.")] = "1.0",
    window: Annotated[int, typer.Option("--window", help="Window side in pixels.")] = 1024,
    stride: Annotated[int, typer.Option("--stride", help="Window step in pixels.")] = 768,
    score: Annotated[float, typer.Option("--score", help="Drop detections scoring below this.")] = 0.05,
    device: Annotated[str, typer.Option("--device", help="cpu or cuda.")] = "cpu",
    batch: Annotated[int, typer.Option("--batch", help="Windows per model call (1 is fastest on a CPU; raise it "
                                                       "on a GPU).")] = 1,
    workers: Annotated[Optional[int], typer.Option("--workers", help="Model processes on a CPU, one thread each "
                                                                     "(default: one per core, at most 8).")] = None,
    gt: Annotated[
        Optional[Path], typer.Option("--gt", help="COCO ground truth whose image ids the COCO results take.")
    ] = None,
    method: Annotated[str, typer.Option("--method", help="Merge: nms or nmm.")] = "nms",
    metric: Annotated[str, typer.Option("--metric", help="Merge: iou or ios.")] = "iou",
    nms_thresh: Annotated[float, typer.Option("--nms-thresh", help="Merge threshold (strictly above).")] = 0.5,
    max_per_image: Annotated[int, typer.Option("--max-per-image", help="Detections kept per image.")] = 10000,
    resume: Annotated[bool, typer.Option("--resume", help="Skip images finished by an earlier run.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Detect on full scenes: the builder's windows, batched, merged back into full-image results."""
    from dotamini10.errors import DatasetError
    from pipelines.detect import DetectOptions, Status, detect_images

    with domain_errors():
        try:
            factors = tuple(float(v) for v in scales.split(",") if v.strip())
        except ValueError:
            raise DatasetError(f"--scales: expected comma-separated numbers, got {scales!r}") from None
        merge = _merge_options(method, metric, nms_thresh, max_per_image, False, False)
        options = DetectOptions(scales=factors, window=window, stride=stride, score=score, batch=batch,
                                device=device, workers=workers, merge=merge)
        with progress_bar("windows", quiet) as progress:
            summary = detect_images(images, out, config=config, checkpoint=checkpoint, neck=neck, options=options,
                                    gt=gt, resume=resume, progress=progress,
                                    log=lambda line: typer.secho(f"error: {line}", fg=typer.colors.RED, err=True))
    counts = {status: sum(o.status is status for o in summary.outcomes) for status in Status}
    typer.echo(", ".join(f"{n} {status.value}" for status, n in counts.items() if n) or "no images")
    typer.echo(f"{summary.windows:,} windows in {summary.seconds:.1f} s ({summary.windows_per_s:.2f} windows/s), "
               f"{sum(o.detections for o in summary.outcomes):,} detections")
    typer.echo(f"wrote {out} (results.bbox.json, Task2_*.txt, images/, previews/)")
    if counts[Status.FAILED]:
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: table1 / table2 / table3 / table4 runners
# ---------------------------------------------------------------------------------------------

_TABLE_HELP = {
    "table1": "Table 1: HS-FPN component ablation (CP, SP, SDP) on Cascade R-CNN R-50, AI-TOD.",
    "table2": "Table 2: alpha of the HFP high-pass filter (0 to 1) on Cascade R-CNN R-50, AI-TOD.",
    "table3": "Table 3: every detector with FPN and HS-FPN on AI-TOD, beside the paper's figures.",
    "table4": "Table 4: RetinaNet*, Faster R-CNN and Cascade R-CNN with FPN and HS-FPN on DOTAmini10.",
}


def _csv_option(value: Optional[str]) -> Optional[list[str]]:
    return None if value is None else [v.strip() for v in value.split(",") if v.strip()]


# A row each table has, for its --help example (Tables 1 and 2 are Cascade R-CNN ablations).
_EXAMPLE_ROW = {"table1": "cascade_rcnn", "table2": "cascade_rcnn", "table3": "faster_rcnn", "table4": "faster_rcnn"}

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
    typer.Option("--pretrained", help="Folder of backbone weights (resnet50-0676ba61.pth, ...); default random init."),
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


def _run_overrides(**options: object) -> dict[str, object]:
    """The command line's Settings overrides (``None``: not given, the preset decides)."""
    milestones = options.pop("milestones")
    options["milestones"] = None if milestones is None else [int(m) for m in _csv_option(str(milestones)) or []]
    options["auto_scale_lr"] = options["auto_scale_lr"] or None
    options["srun_args"] = options["srun_args"] or None
    return options


def _print_event(event: object) -> None:
    from pipelines.runner import format_event

    typer.echo(format_event(event))


@contextlib.contextmanager
def _job_progress(report_every: float) -> Iterator[tuple[object, float]]:
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

    from pipelines.runner import EventKind, format_duration, format_event

    bar = Progress(TextColumn("{task.description}"), BarColumn(bar_width=24), TextColumn("{task.fields[info]}"),
                   console=Console(stderr=True), transient=True)
    task = bar.add_task("", total=None, info="")

    def update(event: object) -> None:
        if event.state is not EventKind.RUNNING:
            bar.console.print(format_event(event), highlight=False)
            return
        etas = f"job ETA {format_duration(event.job_eta_s)}  all ETA {format_duration(event.plan_eta_s)}"
        p = event.progress
        done, total = (None, None) if p is None else (p.train_iter, p.train_iters)
        bar.update(task, description=f"[{event.index}/{event.total}] {event.key}", completed=done or 0,
                   total=total, info=f"{event.detail}  {etas}")

    with bar:
        yield update, min(report_every, 2.0)


def _register_table_command(table: str) -> None:
    data = "DOTAMINI10_DIR" if table == "table4" else "AITOD_DIR"
    epilog = (
        "Examples:\n\n"
        f"  hsfpn-repro {table} --data-root {data} --work-dir runs/ --pretrained weights/ --gpus 2 --launcher pytorch\n\n"
        f"  hsfpn-repro {table} --preset smoke --work-dir runs/ --rows {_EXAMPLE_ROW[table]}\n\n"
        f"  hsfpn-repro {table} --preset smoke --work-dir runs/ --rows {_EXAMPLE_ROW[table]} --nproc 2 --launcher pytorch\n\n"
        f"  hsfpn-repro {table} --data-root {data} --dry-run"
    )

    def command(
        *,
        data_root: Annotated[
            Optional[Path],
            typer.Option("--data-root", help="Dataset root (AI-TOD, or DOTAmini10 for table4); not with --preset smoke."),
        ] = None,
        work_dir: WorkDirOption = Path("runs"),
        preset: PresetOption = "paper",
        rows: Annotated[
            Optional[str], typer.Option("--rows", help="Comma-separated row ids (default: all of the table's rows).")
        ] = None,
        necks: Annotated[
            Optional[str], typer.Option("--necks", help="Comma-separated neck variants (default: all, e.g. fpn,hsfpn).")
        ] = None,
        gpus: GpusOption = None,
        nproc: NprocOption = None,
        launcher: LauncherOption = "none",
        pretrained: PretrainedOption = None,
        epochs: EpochsOption = None,
        milestones: MilestonesOption = None,
        batch_per_gpu: BatchOption = None,
        img_scale: ImgScaleOption = None,
        auto_scale_lr: AutoScaleOption = False,
        val_interval: Annotated[
            Optional[int],
            typer.Option("--val-interval", help="Also validate every N epochs while training, keeping the best "
                         "checkpoint (default 0: evaluate once, after training)."),
        ] = None,
        srun_args: SrunArgsOption = "",
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
        report_every: ReportEveryOption = 60.0,
        dry_run: DryRunOption = False,
    ) -> None:
        from pipelines.runner import JobStatus
        from pipelines.tables import reproduce, summarize

        with domain_errors(), _job_progress(report_every) as (progress, every):
            outcome = reproduce(
                table,
                preset=preset,
                work_dir=work_dir,
                rows=_csv_option(rows),
                necks=_csv_option(necks),
                data_paths=dict(
                    train_ann=train_ann, test_ann=test_ann, train_images=train_images, test_images=test_images
                ),
                dry_run=dry_run,
                progress=progress,
                report_every_s=every,
                data_root=data_root,
                pretrained=pretrained,
                **_run_overrides(
                    gpus=gpus, nproc=nproc, launcher=launcher, max_epochs=epochs, milestones=milestones,
                    batch_per_gpu=batch_per_gpu, img_scale=img_scale, auto_scale_lr=auto_scale_lr,
                    val_interval=val_interval, srun_args=srun_args,
                ),
            )
        if dry_run:
            typer.echo(outcome.plan.describe(with_configs=True))
            return
        typer.echo(summarize(outcome))
        failed = [r for r in outcome.results if r.status is JobStatus.FAILED]
        if failed:
            typer.secho(f"error: {len(failed)} job(s) failed; see the logs named in the table", fg=typer.colors.RED, err=True)
            raise typer.Exit(code=1)

    command.__doc__ = _TABLE_HELP[table]
    repro_app.command(table, epilog=epilog)(command)


for _table in ("table3", "table1", "table2", "table4"):
    _register_table_command(_table)


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: train on one's own COCO-format data
# ---------------------------------------------------------------------------------------------


@repro_app.command(
    "train",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro train --config faster_rcnn --neck hsfpn --data-root data/VisDrone --work-dir runs/visdrone "
        "--pretrained weights/ --gpus 2 --launcher pytorch\n\n"
        "  hsfpn-repro train --config cascade_rcnn --data-root data/mine --train-ann ann/train.json "
        "--val-ann ann/val.json --train-images img/train --val-images img/val --work-dir runs/mine\n\n"
        "  hsfpn-repro train --config my_config.py --data-root data/mine --work-dir runs/mine --gpus 0 --nproc 2 "
        "--launcher pytorch --preset smoke"
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
    preset: PresetOption = "paper",
    gpus: GpusOption = None,
    nproc: NprocOption = None,
    launcher: LauncherOption = "none",
    pretrained: PretrainedOption = None,
    epochs: EpochsOption = None,
    milestones: MilestonesOption = None,
    batch_per_gpu: BatchOption = None,
    img_scale: ImgScaleOption = None,
    auto_scale_lr: AutoScaleOption = False,
    val_interval: Annotated[
        int, typer.Option("--val-interval", help="Validate every N epochs (and at the last), keeping the best "
                          "checkpoint; 0 evaluates once, after training.")
    ] = 1,
    srun_args: SrunArgsOption = "",
    report_every: ReportEveryOption = 60.0,
    dry_run: DryRunOption = False,
) -> None:
    """Train a detector (FPN or HS-FPN) on any COCO-format dataset, evaluated with the AI-TOD metric."""
    from pipelines.runner import JobStatus
    from pipelines.training import summarize, train

    with domain_errors(), _job_progress(report_every) as (progress, every):
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
            pretrained=pretrained,
            **_run_overrides(
                gpus=gpus, nproc=nproc, launcher=launcher, max_epochs=epochs, milestones=milestones,
                batch_per_gpu=batch_per_gpu, img_scale=img_scale, auto_scale_lr=auto_scale_lr,
                val_interval=val_interval, srun_args=srun_args,
            ),
        )
    if dry_run:
        typer.echo(outcome.plan.describe(with_config=True))
        return
    typer.echo(summarize(outcome))
    if outcome.result is not None and outcome.result.status is JobStatus.FAILED:
        typer.secho(f"error: the training failed; see {outcome.result.log}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1)


# ---------------------------------------------------------------------------------------------
# hsfpn-repro: see what the detector does (visualize errors / frequencies, analyze scr)
# ---------------------------------------------------------------------------------------------

visualize_app = typer.Typer(
    name="visualize",
    help="The paper's pictures on your data: TP/FP/FN per image, high-frequency responses, P2 features.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
analyze_app = typer.Typer(
    name="analyze",
    help="The paper's analyses on real data: the signal-to-clutter ratio of tiny objects (Figure 1).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
repro_app.add_typer(visualize_app, name="visualize")
repro_app.add_typer(analyze_app, name="analyze")


@visualize_app.command(
    "errors",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro visualize errors --ann val.json --dets fpn.bbox.json --dets hsfpn.bbox.json "
        "--images DOTAmini10/images/val --out runs/errors --labels FPN,HS-FPN\n\n"
        "  hsfpn-repro visualize errors --ann scenes_gt.json --dets detect/results.json --images scenes/ "
        "--out runs/errors --score 0.5 --max-images 5"
    ),
)
def visualize_errors_command(
    *,
    ann: Annotated[Path, typer.Option("--ann", help="COCO ground truth (windows, or full scenes from coco-gt).")],
    dets: Annotated[
        list[Path], typer.Option("--dets", help="COCO results JSON; give it twice to compare (e.g. FPN, then HS-FPN).")
    ],
    images: Annotated[Path, typer.Option("--images", help="Folder the ground truth's file_name entries are in.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (counts.csv, summary.json, totals.png, images/).")],
    iou: Annotated[float, typer.Option("--iou", help="IoU threshold of a match.")] = 0.5,
    score: Annotated[float, typer.Option("--score", help="Drop detections scoring below this before matching.")] = 0.3,
    area: Annotated[
        str, typer.Option("--area", help="Area range of the figures and tp/fp/fn: all, verytiny, tiny, small, medium.")
    ] = "all",
    max_images: Annotated[int, typer.Option("--max-images", help="Figures for this many top-ranked images.")] = 20,
    max_crops: Annotated[int, typer.Option("--max-crops", help="Zoomed crops per figure.")] = 8,
    labels: Annotated[
        Optional[str], typer.Option("--labels", help="Comma-separated detector names. Defaults to the file stems.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """True positives (green), false positives (blue) and misses (red) per image, as the AI-TOD evaluator counts them."""
    from pipelines.visualize.error_view import ErrorViewOptions, render_error_views

    with domain_errors():
        options = ErrorViewOptions(iou=iou, score=score, area=area, max_images=max_images, max_crops=max_crops)
        with progress_bar("figures", quiet) as progress:
            result = render_error_views(ann, dets, images, out, options=options, labels=_csv_option(labels),
                                        progress=progress)  # fmt: skip
    for label, t in result.totals.items():
        typer.echo(f"{label}: TP {t['tp']:,}  FP {t['fp']:,}  FN {t['fn']:,} on {result.images:,} images "
                   f"(IoU {iou:g}, score >= {score:g}, area {area})")  # fmt: skip
    for problem in result.problems:
        typer.secho(f"skipped: {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(f"wrote {len(result.figures)} figures in {out / 'images'}, {result.counts_csv}, {result.totals_png}, "
               f"{result.summary_json}")  # fmt: skip


@visualize_app.command(
    "frequencies",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro visualize frequencies --image P0706.png --out runs/freq\n\n"
        "  hsfpn-repro visualize frequencies --image P0706.png --config cascade_rcnn --checkpoint epoch_12.pth "
        "--alphas 0,0.25,0.5,0.75,1 --out runs/freq"
    ),
)
def visualize_frequencies_command(
    *,
    image: Annotated[Path, typer.Option("--image", help="Input image.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (frequencies.png/json, p2_features.png/json).")],
    config: Annotated[
        Optional[str], typer.Option("--config", help="A row id (e.g. cascade_rcnn) or an MMDetection config file.")
    ] = None,
    checkpoint: Annotated[
        Optional[Path], typer.Option("--checkpoint", help="Weights of --config. Without both: the image's own DCT.")
    ] = None,
    neck: Annotated[str, typer.Option("--neck", help="Neck variant of a row id: hsfpn, fpn, hfp, sdp, ...")] = "hsfpn",
    alphas: Annotated[str, typer.Option("--alphas", help="Comma-separated HFP cutoffs in [0, 1].")] = "0,0.25,0.5,0.75,1",
    max_side: Annotated[int, typer.Option("--max-side", help="Shrink larger images to this longer side first.")] = 800,
) -> None:
    """Figure 8 (F2 for each alpha) and Figures 7/11-13 (P2 before and after HFP and SDP) for one image."""
    from pipelines.visualize.frequencies import parse_alphas, render_frequencies

    with domain_errors():
        result = render_frequencies(image, out, alphas=parse_alphas(alphas), config=config, checkpoint=checkpoint,
                                    neck=neck, max_side=max_side)  # fmt: skip
    source = "the checkpoint's C2" if result.source == "checkpoint" else "the image itself (no checkpoint)"
    typer.echo(f"high-frequency responses of {source}")
    for path in [*result.figures, *result.numbers]:
        typer.echo(f"wrote {path}")


@analyze_app.command(
    "scr",
    epilog=(
        "Examples:\n\n"
        "  hsfpn-repro analyze scr --dota-root tests/data/dota_sample --out runs/scr\n\n"
        "  hsfpn-repro analyze scr --dota-root /data/DOTA-v1.0/val --classes ship,small-vehicle "
        "--ranges 0,1,10,50,100 --out runs/scr"
    ),
)
def analyze_scr_command(
    *,
    dota_root: Annotated[Path, typer.Option("--dota-root", help="DOTA split folder (images/, labelTxt/) or release root.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder (scr.csv, objects.csv, scr_summary.json, scr.png).")],
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="Comma-separated classes to measure. Defaults to all.")
    ] = None,
    ranges: Annotated[str, typer.Option("--ranges", help="Comma-separated k: DCT[:k, :k] zeroed.")] = "0,1,10,50,100",
    window: Annotated[int, typer.Option("--window", help="Side of the DCT-filtered local window, px.")] = 512,
    background: Annotated[int, typer.Option("--background", help="Outer side of the background ring, px.")] = 80,
    target: Annotated[int, typer.Option("--target", help="Side of the target region, px.")] = 40,
    max_size: Annotated[float, typer.Option("--max-size", help="Tiny objects: sqrt(w * h) below this, px.")] = 16.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Figure 1 on real data: the signal-to-clutter ratio of every tiny object as low frequencies are zeroed."""
    from pipelines.visualize.scr import SCRGeometry, analyze_scr, parse_ranges

    with domain_errors():
        geometry = SCRGeometry(target=target, background=background, window=window)
        with progress_bar("images", quiet) as progress:
            result = analyze_scr(dota_root, out, classes=_csv_option(classes), ranges=parse_ranges(ranges, geometry),
                                 geometry=geometry, max_size=max_size, progress=progress)  # fmt: skip
    fates = ", ".join(f"{name} {count:,}" for name, count in result.fates.items() if count)
    typer.echo(f"{result.images} images; objects: {fates}")
    for problem in result.problems:
        typer.secho(f"skipped: {problem}", fg=typer.colors.YELLOW, err=True)
    typer.echo(result.verdict.describe(result.curves))
    for path in (result.figure, result.scr_csv, result.objects_csv, result.summary_json):
        typer.echo(f"wrote {path}")


repro_app.add_typer(__import__("pipelines.commands.export", fromlist=["app"]).app)  # hsfpn-repro export


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
