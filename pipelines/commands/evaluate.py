"""``hsfpn-repro eval``: the AI-TOD metric on COCO results, or DOTA's Task2 protocol on Task2 files."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from .common import choice, csv_list, domain_errors, group, usage_error

app = group()


class Protocol(enum.Enum):
    """What ``--protocol`` names."""

    AITOD = "aitod"
    DOTA = "dota"


def _figure(value: float) -> str:
    return "n/a" if value < 0 else f"{value:.4f}"


@app.command(
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
    ] = Protocol.AITOD.value,
    classes: Annotated[
        Optional[str], typer.Option("--classes", help="dota: comma-separated classes (default: DOTAmini10's ten).")
    ] = None,
    imageset: Annotated[
        Optional[Path], typer.Option("--imageset", help="dota: file of image names (default: the detect run's "
                                                        "images, else the label files with an image).")
    ] = None,
    area_from_box: Annotated[
        bool, typer.Option("--area-from-box", help="aitod: use each ground-truth box's w x h as its area in the size "
                                                   "ranges (for jsons whose 'area' is something else).")
    ] = False,
) -> None:
    """Evaluate detections: the AI-TOD metric (default) or DOTA's Task2 protocol."""
    kind = choice(Protocol, protocol, "--protocol")
    if kind is Protocol.AITOD and (classes is not None or imageset is not None):
        raise usage_error("--classes and --imageset belong to --protocol dota")
    if kind is Protocol.DOTA and area_from_box:
        raise usage_error("--area-from-box belongs to --protocol aitod (Task2 has no size ranges)")
    with domain_errors():
        if kind is Protocol.DOTA:
            _eval_dota(ann, dets, out, csv_list(classes, "--classes"), imageset)
        else:
            _eval_aitod(ann, dets, out, area_from_box)
    if out is not None:
        typer.echo(f"wrote {out}")


def _eval_aitod(ann: Path, dets: Path, out: Optional[Path], area_from_box: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    from hsfpn.aitod_eval import FIGURES, PER_CLASS_KEYS, evaluate_files

    report = evaluate_files(ann, dets, out=out, area_from_box=area_from_box, note=typer.echo)
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


def _eval_dota(ann: Path, dets: Path, out: Optional[Path], classes: Optional[list[str]],
               imageset: Optional[Path]) -> None:
    from rich.console import Console
    from rich.table import Table

    from dotamini10.classes import DOTAMINI10_CLASSES
    from hsfpn.dota_eval import evaluate_task2_files
    from pipelines.detect.outputs import run_image_names

    run_images = None if imageset is not None else run_image_names(dets)
    report = evaluate_task2_files(dets, ann, classes or list(DOTAMINI10_CLASSES), imageset_file=imageset,
                                  run_images=run_images, out=out)
    for line in _dota_notes(report):
        typer.echo(line)
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


def _dota_notes(report: dict) -> list[str]:
    """What chose the image set, and what was done with oriented polygons: one line each."""
    chosen, left_out = report["imageset"], report["imageset"]["left_out_label_files"]
    lines = [f"image set: {report['images']} image(s), {chosen['source']}"]
    if left_out:
        shown = ", ".join(left_out[:5]) + (f", ... ({len(left_out) - 5} more)" if len(left_out) > 5 else "")
        lines[0] += f"; {len(left_out)} label file(s) of --ann left out ({shown}); --imageset chooses others"
    if report["rotated_polygons"]:
        lines.append(
            f"{report['rotated_polygons']:,} of {report['objects']:,} ground-truth polygons are not axis-aligned "
            "(oriented labels): each is scored as its enclosing axis-aligned box, as DOTA's HBB labels are made"
        )
    return lines
