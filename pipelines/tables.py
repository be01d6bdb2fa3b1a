"""Tables 1-4 of the paper rebuilt: the plan of jobs of each table, its run, and its outputs.

``run_table("table3", settings)`` resolves every (row, neck) job of Table 3 (configs from
:mod:`pipelines.detectors`, dataset from :mod:`pipelines.datasets` or :mod:`pipelines.synthetic_coco`),
runs them with :mod:`pipelines.runner` and writes ``table3.md``, ``table3.csv`` and ``table3.png`` beside
the job folders in ``WORK_DIR/PRESET/``, with the paper's figures and the deltas.

Jobs are shared between tables: a job's folder is named by dataset, row and neck, so Table 1's Cascade
R-CNN FPN / HS-FPN runs are Table 3's, and Table 2's alpha = 0.25 run is Table 1's HFP run.
"""

from __future__ import annotations

import csv
import io
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_path, atomic_write_text, write_json

from .datasets import DatasetLayout, aitod_layout, dotamini10_layout
from .detectors import DETECTORS, VARIANTS, NotAvailableError, build_job_config
from .errors import PipelineError
from .paper import TABLE_METRICS, paper_figures
from .presets import Settings
from .job_folder import JobStatus
from .runner import EventFn, Job, JobResult, job_env, job_state, launch_command, run_jobs

SMOKE_BANNER = (
    "SMOKE PRESET: synthetic tiny-object data, small inputs, short schedule; these figures test the "
    "pipeline and say nothing about the paper's results."
)


class TableError(PipelineError):
    """A table request is invalid (unknown table, row or neck; missing data root)."""


@dataclass(frozen=True)
class TableSpec:
    """What one table trains.

    Args:
        name: ``"table1"`` .. ``"table4"``.
        title: Title of the outputs.
        dataset: ``"aitod"`` or ``"dotamini10"`` (the smoke preset replaces either by synthetic data).
        rows: Detector rows, in the paper's order.
        variants: Neck variants, in the paper's order.
    """

    name: str
    title: str
    dataset: str
    rows: tuple[str, ...]
    variants: tuple[str, ...]

    def pairs(self) -> list[tuple[str, str]]:
        """Every (row, variant) the paper reports, rows first."""
        return [(r, v) for r in self.rows for v in self.variants if paper_figures(self.name, r, v) is not None]


TABLE_SPECS: dict[str, TableSpec] = {
    "table1": TableSpec(
        "table1",
        "Table 1: HS-FPN components (CP, SP, SDP) on Cascade R-CNN R-50, AI-TOD test",
        "aitod",
        ("cascade_rcnn",),
        ("fpn", "cp", "sp", "hfp", "sdp", "hsfpn"),
    ),
    "table2": TableSpec(
        "table2",
        "Table 2: alpha of the high-pass filter (HFP only) on Cascade R-CNN R-50, AI-TOD test",
        "aitod",
        ("cascade_rcnn",),
        ("hfp_a0.00", "hfp_a0.25", "hfp_a0.50", "hfp_a0.75", "hfp_a1.00"),
    ),
    "table3": TableSpec(
        "table3",
        "Table 3: main results on AI-TOD (trained on trainval, evaluated on test)",
        "aitod",
        tuple(DETECTORS),
        ("fpn", "hsfpn"),
    ),
    "table4": TableSpec(
        "table4",
        "Table 4: results on DOTAmini10 (trained on train, evaluated on val)",
        "dotamini10",
        ("retinanet", "faster_rcnn", "cascade_rcnn"),
        ("fpn", "hsfpn"),
    ),
}

# Variants that build the same neck share one job folder.
_SAME_NECK = {"hfp_a0.25": "hfp"}


@dataclass
class Plan:
    """A table's resolved jobs, before running.

    Args:
        spec: The table.
        settings: The resolved run settings.
        layout: The dataset (``None`` with a data-root problem in a dry run).
        jobs: One job per (row, variant).
        out_dir: Where the outputs go (``WORK_DIR/PRESET``).
        data_problem: The data-root error a real run would stop at (dry runs only).
        data_notes: The dataset check's lines (:meth:`pipelines.dataset_check.DatasetCheck.notes`).
    """

    spec: TableSpec
    settings: Settings
    layout: DatasetLayout | None
    jobs: list[Job]
    out_dir: Path
    data_problem: str | None = None
    data_notes: list[str] = field(default_factory=list)

    def describe(self, with_configs: bool = False) -> str:
        """The plan as text: settings, dataset, each job's state and (optionally) its resolved config."""
        s = self.settings
        lines = [f"{self.spec.title}" + ("  [SMOKE]" if s.smoke_figures else "")]
        if s.smoke_figures:
            lines.append(SMOKE_BANNER)
        lines.append(
            f"preset {s.preset}; {s.devices} x {s.batch_per_gpu} image(s) = effective batch "
            f"{s.effective_batch} (paper: 2); launcher {s.launcher}; {s.max_epochs} epochs, steps at "
            f"{list(s.milestones)}; input {s.img_scale} x {s.img_scale}"
        )
        lines.append(f"backbone init: {_init_text(s)}")
        if self.layout is not None:
            lines.append(
                f"data: {self.layout.name} at {self.layout.root} (train {self.layout.train_ann}, "
                f"eval {self.layout.test_ann})"
            )
        if self.data_problem:
            lines.append(f"data: PROBLEM: {self.data_problem} (a real run stops here)")
        lines += self.data_notes
        lines.append(f"outputs: {self.out_dir}")
        width = len(f"[{len(self.jobs)}/{len(self.jobs)}]")
        for i, job in enumerate(self.jobs, start=1):
            state, detail = job_state(job)
            index = f"[{i}/{len(self.jobs)}]"
            lines.append(f"  {index:<{width}} {job.key:<26} {state:<15} {job.work_dir}" + (f"  ({detail})" if detail else ""))
        if with_configs:
            for job in self.jobs:
                if job.config_text is not None:
                    lines.append(f"\n# ---- resolved config of {job.key} (fingerprint {job.fingerprint})")
                    lines.append(job.config_text.rstrip())
        return "\n".join(lines)


@dataclass
class TableOutcome:
    """What a table run produced."""

    plan: Plan
    results: list[JobResult] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)


def _init_text(s: Settings) -> str:
    if s.pretrained is None:
        return "random init (no --pretrained): not comparable with the paper's ImageNet-pretrained backbones"
    return f"pretrained backbones from {s.pretrained}"


def _select(spec: TableSpec, rows: Sequence[str] | None, necks: Sequence[str] | None) -> list[tuple[str, str]]:
    if rows:
        unknown = [r for r in rows if r not in spec.rows]
        if unknown:
            raise TableError(f"{spec.name}: unknown row(s) {', '.join(unknown)}; rows are {', '.join(spec.rows)}")
    if necks:
        unknown = [n for n in necks if n not in spec.variants]
        if unknown:
            raise TableError(
                f"{spec.name}: unknown neck(s) {', '.join(unknown)}; necks are {', '.join(spec.variants)}"
            )
    return [(r, v) for r, v in spec.pairs() if (not rows or r in rows) and (not necks or v in necks)]


def _layout(
    spec: TableSpec, settings: Settings, data_paths: dict[str, str | None], dry_run: bool = False
) -> DatasetLayout:
    if settings.is_smoke:
        from .synthetic_coco import CLASSES, write_synthetic_coco

        root = settings.work_dir / "smoke" / "synthetic_data"
        if dry_run:  # a dry run writes nothing: describe the set a real run would generate
            return DatasetLayout(
                "synthetic", root.resolve(), CLASSES, "annotations/train.json", "images/train/",
                "annotations/test.json", "images/test/",
            )
        return write_synthetic_coco(root, settings.synthetic)
    if settings.data_root is None:
        raise TableError(f"{spec.name}: --data-root is required with the paper preset ({spec.dataset} root)")
    if spec.dataset == "aitod":
        return aitod_layout(settings.data_root, **{k: v for k, v in data_paths.items() if v is not None})
    return dotamini10_layout(settings.data_root)


def plan_table(
    table: str,
    settings: Settings,
    *,
    rows: Sequence[str] | None = None,
    necks: Sequence[str] | None = None,
    data_paths: dict[str, str | None] | None = None,
    dry_run: bool = False,
) -> Plan:
    """Resolve a table's jobs (configs built, nothing trained).

    Args:
        table: ``"table1"`` .. ``"table4"``.
        settings: Resolved settings.
        rows: Only these rows (default: all of the table's rows).
        necks: Only these neck variants (default: all).
        data_paths: AI-TOD layout overrides (``train_ann``, ``test_ann``, ``train_images``, ``test_images``).
        dry_run: Report a data-root problem in the plan instead of raising (configs still resolve).

    Returns:
        The plan.

    Raises:
        TableError: Unknown table, row or neck; missing data root (not in dry runs).
        PipelineError: A bad data root or pretrained folder (data roots: not in dry runs).
    """
    if table not in TABLE_SPECS:
        raise TableError(f"table must be one of {', '.join(TABLE_SPECS)}, got {table!r}")
    spec = TABLE_SPECS[table]
    pairs = _select(spec, rows, necks)
    problem, notes = None, []
    dataset_name = "synthetic" if settings.is_smoke else spec.dataset
    base = settings.work_dir / settings.preset
    try:
        layout = _layout(spec, settings, data_paths or {}, dry_run)
        if not settings.is_smoke:  # the synthetic set is written by the toolkit itself
            from .dataset_check import check_dataset

            checked = check_dataset(layout, skip_bad=settings.skip_bad, out=None if dry_run else base / "data_check")
            layout, notes = checked.layout, checked.notes(settings.area_from_box)
    except PipelineError as exc:
        if not dry_run:
            raise
        problem, layout = str(exc), None
    # Dry runs without usable data still resolve configs against the layout a run would use.
    cfg_layout = layout or DatasetLayout(
        spec.dataset,
        Path(settings.data_root or ".").resolve(),
        (),
        "?",
        "?",
        "?",
        "?",
    )
    jobs = []
    for row, variant in pairs:
        detector = DETECTORS[row]
        work = base / dataset_name / f"{row}__{_SAME_NECK.get(variant, variant)}"
        key = f"{row}__{variant}"
        if not detector.reproduced:
            jobs.append(Job(key, row, variant, work, blocked=JobStatus.NOT_REPRODUCED, reason="paper's figures only"))
            continue
        try:
            cfg = build_job_config(detector, VARIANTS[variant], cfg_layout, settings)
        except NotAvailableError as exc:
            jobs.append(Job(key, row, variant, work, blocked=JobStatus.NOT_AVAILABLE, reason=str(exc)))
            continue
        jobs.append(Job(key, row, variant, work, config_text=cfg.pretty_text))
    return Plan(spec, settings, layout, jobs, base, problem, notes)


def run_table(
    table: str,
    settings: Settings,
    *,
    rows: Sequence[str] | None = None,
    necks: Sequence[str] | None = None,
    data_paths: dict[str, str | None] | None = None,
    dry_run: bool = False,
    progress: EventFn | None = None,
    report_every_s: float = 300.0,
    note: Callable[[str], None] | None = None,
) -> TableOutcome:
    """Plan a table, run its unfinished jobs and write its md / csv / png outputs.

    Args:
        table: ``"table1"`` .. ``"table4"``.
        settings: Resolved settings.
        rows: Only these rows.
        necks: Only these neck variants.
        data_paths: AI-TOD layout overrides.
        dry_run: Only plan (nothing is run or written).
        progress: Receives the runner's progress events.
        report_every_s: Seconds between "running" progress events of one job.
        note: Receives the dataset check's lines before the first job starts.

    Returns:
        The plan, the results, the table rows and the output paths (empty in a dry run).

    Raises:
        RunnerError: GPUs asked for that this machine lacks (before anything is written).
    """
    if not dry_run:
        from .runner import check_gpus

        check_gpus(settings.gpus, settings.launcher)
    plan = plan_table(table, settings, rows=rows, necks=necks, data_paths=data_paths, dry_run=dry_run)
    outcome = TableOutcome(plan)
    if dry_run:
        return outcome
    for line in plan.data_notes:
        (note or (lambda _: None))(line)
    plan.out_dir.mkdir(parents=True, exist_ok=True)
    write_json(plan.out_dir / "settings.json", settings.to_json(), indent=2, sort_keys=True)
    command = launch_command(settings.launcher, settings.gpus, nproc=settings.processes, srun_args=settings.srun_args)
    outcome.results = run_jobs(
        plan.jobs, command, env=job_env(settings.gpus), progress=progress, report_every_s=report_every_s
    )
    outcome.rows = table_rows(table, outcome.results, settings)
    outcome.outputs = write_outputs(table, outcome.rows, settings, plan.out_dir)
    return outcome


# ---------------------------------------------------------------------------------------------
# Table rows and outputs
# ---------------------------------------------------------------------------------------------


def _delta(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def table_rows(table: str, results: Sequence[JobResult], settings: Settings) -> list[dict[str, Any]]:
    """One flat row per job: ours, the paper's, ours - paper, gain over the row's FPN, status, wall time.

    Args:
        table: The table name.
        results: The runner's results.
        settings: The run settings (preset, effective batch, initialisation).

    Returns:
        Dicts with keys ``preset, method, backbone, row, neck, status, AP.. (ours), paper_AP..,
        delta_AP.. (ours - paper), gain_AP (HS-FPN variant - FPN of the same row, ours),
        paper_gain_AP, wall_s, effective_batch, init, log, error``.
    """
    metrics = TABLE_METRICS[table]
    ours_by_key = {(r.job.row, r.job.variant): r.metrics for r in results}
    out = []
    for r in results:
        paper = paper_figures(table, r.job.row, r.job.variant)
        detector = DETECTORS[r.job.row]
        variant = VARIANTS[r.job.variant]
        neck_label = variant.label if variant.hsfpn else detector.baseline_neck
        row: dict[str, Any] = dict(
            preset=settings.preset,
            method=detector.label,
            backbone=paper.backbone if paper and paper.backbone else f"{detector.backbone} + {neck_label}",
            row=r.job.row,
            neck=r.job.variant,
            status=r.status,
        )
        fpn_ours = ours_by_key.get((r.job.row, "fpn"), {})
        fpn_paper = paper_figures(table, r.job.row, "fpn")
        for m in metrics:
            row[m] = r.metrics.get(m)
        for m in metrics:
            row[f"paper_{m}"] = None if paper is None else paper.values.get(m)
        for m in metrics:
            row[f"delta_{m}"] = _delta(row[m], row[f"paper_{m}"])
        gain = r.job.variant != "fpn"
        row["gain_AP"] = _delta(row["AP"], fpn_ours.get("AP")) if gain else None
        row["paper_gain_AP"] = _delta(row["paper_AP"], fpn_paper.values.get("AP")) if gain and fpn_paper else None
        row.update(
            wall_s=r.wall_s,
            effective_batch=settings.effective_batch,
            init="random" if settings.pretrained is None else "pretrained",
            log=None if r.log is None else str(r.log),
            error=r.error,
        )
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def render_markdown(table: str, rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """The markdown report of a table: title, smoke banner, settings, and ours / paper / delta per metric."""
    spec = TABLE_SPECS[table]
    metrics = TABLE_METRICS[table]
    smoke = settings.smoke_figures
    lines = [f"# {'[SMOKE] ' if smoke else ''}{spec.title}", ""]
    if smoke:
        lines += [f"**{SMOKE_BANNER}**", ""]
    lines += [
        f"- preset: {settings.preset}",
        f"- effective batch: {settings.effective_batch} ({settings.devices} x {settings.batch_per_gpu}); "
        "the paper used 2 (2 GPUs x 1)",
        f"- schedule: {settings.max_epochs} epochs, lr steps at {list(settings.milestones)}, "
        f"input {settings.img_scale} x {settings.img_scale}",
        f"- backbone init: {_init_text(settings)}",
        "- cells: ours (paper, ours - paper); metrics in percent (AI-TOD protocol)",
        "",
    ]
    head = ["Method", "Backbone", "Status", *metrics, "Gain AP vs FPN (paper)", "Wall time"]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for row in rows:
        cells = [row["method"], row["backbone"], row["status"]]
        for m in metrics:
            cells.append(f"{_fmt(row[m])} ({_fmt(row[f'paper_{m}'])}, {_signed(row[f'delta_{m}'])})")
        cells.append(f"{_signed(row['gain_AP'])} ({_signed(row['paper_gain_AP'])})")
        wall = row["wall_s"]
        cells.append("-" if wall is None else f"{wall / 60:.1f} min")
        lines.append("| " + " | ".join(cells) + " |")
    failed = [r for r in rows if r["error"]]
    if failed:
        lines += ["", "Notes:"]
        lines += [f"- {r['row']} / {r['neck']}: {r['error']}" + (f" (log: {r['log']})" if r["log"] else "") for r in failed]
    return "\n".join(lines) + "\n"


def render_csv(table: str, rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """The CSV of a table (one row per detector and neck); smoke files start with a ``#`` banner line."""
    buf = io.StringIO()
    if settings.smoke_figures:
        buf.write(f"# {SMOKE_BANNER}\n")
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue()


def render_png(table: str, rows: Sequence[dict[str, Any]], settings: Settings, path: Path) -> None:
    """Bar chart of AP: per detector (or per neck variant), ours beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    spec = TABLE_SPECS[table]
    # Tables 3 and 4 compare detectors (bars per neck); Tables 1 and 2 compare necks of one detector.
    by_row = len(spec.rows) > 1
    groups = list(dict.fromkeys(r["row"] if by_row else r["neck"] for r in rows))
    series = list(dict.fromkeys(r["neck"] for r in rows)) if by_row else ["all"]
    cols = len(series) * 2
    width = 0.8 / max(cols, 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(groups) + 2), 4.2))
    colours = plt.get_cmap("tab10")
    for si, neck in enumerate(series):
        for kind, (key, alpha, hatch) in enumerate((("AP", 1.0, None), ("paper_AP", 0.45, "//"))):
            xs, ys = [], []
            for gi, group in enumerate(groups):
                match = [r for r in rows if (r["row"] if by_row else r["neck"]) == group and (not by_row or r["neck"] == neck)]
                value = match[0][key] if match else None
                xs.append(gi + (si * 2 + kind - (cols - 1) / 2) * width)
                ys.append(float("nan") if value is None else value)
            label_neck = VARIANTS[neck].label if by_row else ""
            label = f"{'ours' if kind == 0 else 'paper'}{(' ' + label_neck) if label_neck else ''}"
            ax.bar(xs, ys, width, label=label, color=colours(si), alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.4)
    names = [DETECTORS[g].label + ("" if DETECTORS[g].backbone == "R-50" else f" ({DETECTORS[g].backbone})") for g in groups] if by_row else [VARIANTS[g].label for g in groups]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("AP (%)")
    title = spec.title if not settings.smoke_figures else f"[SMOKE: synthetic data, not the paper's setting] {spec.title}"
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _atomic_save(fig, path)
    plt.close(fig)


def _atomic_save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        # No "Software" entry (it carries the version) keeps the PNG bytes identical for identical figures.
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})


def write_outputs(table: str, rows: Sequence[dict[str, Any]], settings: Settings, out_dir: Path) -> dict[str, Path]:
    """Write ``{table}.md``, ``{table}.csv`` and ``{table}.png`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {ext: out_dir / f"{table}.{ext}" for ext in ("md", "csv", "png")}
    atomic_write_text(paths["md"], render_markdown(table, rows, settings))
    atomic_write_text(paths["csv"], render_csv(table, rows, settings))
    render_png(table, rows, settings, paths["png"])
    return paths


def reproduce(
    table: str,
    *,
    preset: str,
    work_dir: Path,
    rows: Sequence[str] | None = None,
    necks: Sequence[str] | None = None,
    data_paths: dict[str, str | None] | None = None,
    dry_run: bool = False,
    progress: EventFn | None = None,
    report_every_s: float = 300.0,
    note: Callable[[str], None] | None = None,
    **overrides: Any,
) -> TableOutcome:
    """Resolve the settings (defaults, preset, overrides) and run (or dry-run) one table.

    Args:
        table: ``"table1"`` .. ``"table4"``.
        preset: ``"paper"`` or ``"smoke"``.
        work_dir: Root of job folders and outputs.
        rows: Only these rows.
        necks: Only these neck variants.
        data_paths: AI-TOD layout overrides.
        dry_run: Plan only.
        progress: Progress callback.
        report_every_s: Seconds between "running" progress events of one job.
        note: Receives the dataset check's lines before the first job starts.
        **overrides: :class:`~pipelines.presets.Settings` fields given on the command line (``None`` = not given).

    Returns:
        The outcome (see :func:`run_table`).
    """
    from .presets import resolve_settings

    settings = resolve_settings(preset, work_dir, **overrides)
    return run_table(
        table,
        settings,
        rows=rows,
        necks=necks,
        data_paths=data_paths,
        dry_run=dry_run,
        progress=progress,
        report_every_s=report_every_s,
        note=note,
    )


def summarize(outcome: TableOutcome) -> str:
    """A short text summary of a finished table run: counts per status and the output files."""
    counts: dict[str, int] = {}
    for r in outcome.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    smoke = " [SMOKE: synthetic data, not the paper's setting]" if outcome.plan.settings.smoke_figures else ""
    lines = [f"{outcome.plan.spec.name}{smoke}: " + ", ".join(f"{n} {s}" for s, n in counts.items())]
    lines += [f"wrote {p}" for p in outcome.outputs.values()]
    return "\n".join(lines)
