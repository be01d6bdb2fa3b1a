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
from .job_folder import JobStatus
from .metrics import markdown_table
from .paper import TABLE_METRICS, paper_figures
from .presets import Settings
from .runner import EventFn, Job, JobResult, job_env, job_state, launch_command, run_jobs
from .seeds import (DEFAULT_SEEDS, Figures, Spread, format_spread, paired_gain, seed_figures, seed_key, seed_suffix,
                    spread)

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
            f"{s.effective_batch} (paper: 2); launcher {s.launcher}; {s.training_text}"
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
        jobs += _cell_jobs(row, variant, base / dataset_name, cfg_layout, settings)
    return Plan(spec, settings, layout, jobs, base, problem, notes)


def _cell_jobs(row: str, variant: str, folder: Path, layout: DatasetLayout, settings: Settings) -> list[Job]:
    """The jobs of one (row, neck): one per seed, or a single blocked one when the row cannot run."""
    detector = DETECTORS[row]
    name, key = f"{row}__{_SAME_NECK.get(variant, variant)}", f"{row}__{variant}"
    first = settings.seeds[0]
    blocked = dict(key=seed_key(key, first, settings.seeds), row=row, variant=variant, seed=first,
                   work_dir=folder / (name + seed_suffix(first)))
    if not detector.reproduced:
        return [Job(**blocked, blocked=JobStatus.NOT_REPRODUCED, reason="paper's figures only")]
    jobs = []
    for seed in settings.seeds:
        try:
            cfg = build_job_config(detector, VARIANTS[variant], layout, settings, seed)
        except NotAvailableError as exc:
            return [Job(**blocked, blocked=JobStatus.NOT_AVAILABLE, reason=str(exc))]
        jobs.append(Job(seed_key(key, seed, settings.seeds), row, variant, folder / (name + seed_suffix(seed)),
                        config_text=cfg.pretty_text, seed=seed))
    return jobs


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
        plan.jobs, command, env=job_env(settings.gpus, threads=settings.threads), progress=progress,
        report_every_s=report_every_s,
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
    """One flat row per (row, neck): ours, the paper's, ours - paper, gain over the row's FPN, status, wall time.

    With the default single seed a row holds that run's figures. With several seeds (``settings.seeds``) each
    figure is the mean over the seeds that finished, beside its sample std, its count and every seed's value;
    the gain is HS-FPN - FPN seed by seed, then averaged (:func:`pipelines.seeds.paired_gain`).

    Args:
        table: The table name.
        results: The runner's results (one per job; several seeds of a (row, neck) are several jobs).
        settings: The run settings (preset, seeds, effective batch, initialisation).

    Returns:
        Dicts with keys ``preset, method, backbone, row, neck, status, AP.. (ours), paper_AP..,
        delta_AP.. (ours - paper), gain_AP (HS-FPN variant - FPN of the same row, ours),
        paper_gain_AP, wall_s, effective_batch, init, log, error``; with several seeds also ``seeds``
        (planned), ``n`` (finished), ``missing`` (seeds without figures), ``AP_std``, ``AP_n``, ``AP_s{seed}``
        per metric and ``gain_AP_std``, ``gain_AP_n``.
    """
    cells: dict[tuple[str, str], list[JobResult]] = {}
    for r in results:
        cells.setdefault((r.job.row, r.job.variant), []).append(r)
    per_seed = {cell: seed_figures(rs) for cell, rs in cells.items()}
    multi = settings.seeds != DEFAULT_SEEDS
    out = []
    for (row_id, variant), rs in cells.items():
        row = _row_head(table, row_id, variant, settings)
        figures = per_seed[(row_id, variant)]
        fpn = per_seed.get((row_id, "fpn"), {})
        if multi:
            _add_seed_figures(row, table, figures, fpn, rs, settings)
        else:
            _add_single_figures(row, table, rs[0], fpn, settings)
        out.append(row)
    return out


def _row_head(table: str, row_id: str, variant_id: str, settings: Settings) -> dict[str, Any]:
    paper = paper_figures(table, row_id, variant_id)
    detector = DETECTORS[row_id]
    variant = VARIANTS[variant_id]
    neck_label = variant.label if variant.hsfpn else detector.baseline_neck
    if settings.compact is not None:  # what was trained, not the paper's backbone
        backbone = f"R-{settings.compact.depth} compact + {neck_label}"
    else:
        backbone = paper.backbone if paper and paper.backbone else f"{detector.backbone} + {neck_label}"
    return dict(preset=settings.preset, method=detector.label, backbone=backbone, row=row_id, neck=variant_id)


def _paper_gain(table: str, row_id: str, variant: str) -> float | None:
    paper, fpn = paper_figures(table, row_id, variant), paper_figures(table, row_id, "fpn")
    if variant == "fpn" or paper is None or fpn is None:
        return None
    return _delta(paper.values.get("AP"), fpn.values.get("AP"))


def _tail(row: dict[str, Any], settings: Settings, wall_s: float | None, log: Path | None, error: str | None) -> None:
    row.update(
        wall_s=wall_s,
        effective_batch=settings.effective_batch,
        init="random" if settings.pretrained is None else "pretrained",
        log=None if log is None else str(log),
        error=error,
    )


def _add_single_figures(row: dict[str, Any], table: str, r: JobResult, fpn: Figures, settings: Settings) -> None:
    # One seed: the run's own figures (the layout of the tables before seeds existed).
    metrics = TABLE_METRICS[table]
    paper = paper_figures(table, r.job.row, r.job.variant)
    row["status"] = r.status
    for m in metrics:
        row[m] = r.metrics.get(m)
    for m in metrics:
        row[f"paper_{m}"] = None if paper is None else paper.values.get(m)
    for m in metrics:
        row[f"delta_{m}"] = _delta(row[m], row[f"paper_{m}"])
    gain = r.job.variant != "fpn"
    fpn_ap = next(iter(fpn.values()), {}).get("AP")
    row["gain_AP"] = _delta(row["AP"], fpn_ap) if gain else None
    row["paper_gain_AP"] = _paper_gain(table, r.job.row, r.job.variant)
    _tail(row, settings, r.wall_s, r.log, r.error)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _cell_status(results: Sequence[JobResult], done: Sequence[int], seeds: Sequence[int]) -> str:
    # "done" when every seed finished; else how many jobs ended how ("2 done, 1 failed").
    if len(results) == 1 and results[0].job.blocked is not None:
        return str(results[0].status)
    if len(done) == len(seeds):
        return str(JobStatus.DONE)
    ends = ["done" if r.job.seed in done else str(r.status) for r in results]
    return ", ".join(f"{ends.count(e)} {e}" for e in dict.fromkeys(ends))


def _add_seed_figures(row: dict[str, Any], table: str, figures: Figures, fpn: Figures, results: Sequence[JobResult],
                      settings: Settings) -> None:
    # Several seeds: mean, sample std, count and every seed's value of each metric; the paired gain.
    metrics, seeds = TABLE_METRICS[table], settings.seeds
    paper = paper_figures(table, row["row"], row["neck"])
    done = sorted(figures)
    row.update(status=_cell_status(results, done, seeds), seeds=";".join(map(str, seeds)), n=len(done),
               missing=";".join(str(s) for s in seeds if s not in figures))
    spreads = {m: spread({s: figures[s].get(m) for s in done}) for m in metrics}
    for m in metrics:
        row.update({m: _round(spreads[m].mean), f"{m}_std": _round(spreads[m].std), f"{m}_n": spreads[m].n})
    for m in metrics:
        row[f"paper_{m}"] = None if paper is None else paper.values.get(m)
    for m in metrics:
        row[f"delta_{m}"] = _delta(row[m], row[f"paper_{m}"])
    for m in metrics:
        row.update({f"{m}_s{s}": (figures.get(s) or {}).get(m) for s in seeds})
    gain = Spread()
    if row["neck"] != "fpn":
        gain = paired_gain({s: v.get("AP") for s, v in fpn.items()}, {s: v.get("AP") for s, v in figures.items()})
    row.update(gain_AP=_round(gain.mean), gain_AP_std=_round(gain.std), gain_AP_n=gain.n,
               paper_gain_AP=_paper_gain(table, row["row"], row["neck"]))
    walls = [r.wall_s for r in results if r.wall_s is not None]
    failed = [r for r in results if r.error]
    errors = "; ".join(f"seed {r.job.seed}: {r.error}" for r in failed) or None
    logs = [r.log for r in [*failed, *results] if r.log is not None]  # a failure's log first
    _tail(row, settings, round(sum(walls), 1) if walls else None, logs[0] if logs else None, errors)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}"
    return str(v)


def _signed(v: float | None) -> str:
    return "-" if v is None else f"{v:+.1f}"


def render_markdown(table: str, rows: Sequence[dict[str, Any]], settings: Settings) -> str:
    """The markdown report of a table: title, smoke banner, settings, and ours / paper / delta per metric; with
    several seeds, mean ± std per cell and a second table of every seed's figures."""
    spec = TABLE_SPECS[table]
    metrics = TABLE_METRICS[table]
    smoke = settings.smoke_figures
    multi = settings.seeds != DEFAULT_SEEDS
    lines = [f"# {'[SMOKE] ' if smoke else ''}{spec.title}", ""]
    if smoke:
        lines += [f"**{SMOKE_BANNER}**", ""]
    lines += [
        f"- preset: {settings.preset}",
        f"- effective batch: {settings.effective_batch} ({settings.devices} x {settings.batch_per_gpu}); "
        "the paper used 2 (2 GPUs x 1)",
        f"- schedule: {settings.training_text}",
        f"- backbone init: {_init_text(settings)}",
    ]
    if multi:
        lines += [
            f"- seeds: {', '.join(map(str, settings.seeds))}, one job each per row and neck",
            "- cells: mean ± sample std over the seeds that finished (paper, mean - paper); metrics in percent "
            "(AI-TOD protocol); every seed's figures follow the table",
            "- gain: HS-FPN - FPN seed by seed, mean ± std over the seeds both finished (n), (paper's gain)",
        ]
    else:
        lines.append("- cells: ours (paper, ours - paper); metrics in percent (AI-TOD protocol)")
    lines.append("")
    seeds_column = ["Seeds"] if multi else []
    head = ["Method", "Backbone", "Status", *seeds_column, *metrics, "Gain AP vs FPN (paper)", "Wall time"]
    lines += markdown_table(head, [_md_cells(row, metrics, multi) for row in rows])
    if multi:
        lines += ["", "Every seed's figures:", ""]
        seed_rows = [[row["method"], row["backbone"], str(s), *(_fmt(row[f"{m}_s{s}"]) for m in metrics)]
                     for row in rows if row["status"] not in _BLOCKED for s in settings.seeds]
        lines += markdown_table(["Method", "Backbone", "Seed", *metrics], seed_rows)
    failed = [r for r in rows if r["error"]]
    if failed:
        lines += ["", "Notes:"]
        lines += [f"- {r['row']} / {r['neck']}: {r['error']}" + (f" (log: {r['log']})" if r["log"] else "") for r in failed]
    return "\n".join(lines) + "\n"


_BLOCKED = (JobStatus.NOT_REPRODUCED, JobStatus.NOT_AVAILABLE)


def _md_cells(row: dict[str, Any], metrics: Sequence[str], multi: bool) -> list[str]:
    cells = [row["method"], row["backbone"], str(row["status"])]
    if multi and row["status"] in _BLOCKED:
        cells.append("-")
    elif multi:
        planned = len(row["seeds"].split(";"))
        missing = f" (missing {', '.join('s' + s for s in row['missing'].split(';'))})" if row["missing"] else ""
        cells.append(f"{row['n']}/{planned}{missing}")
    for m in metrics:
        ours = _spread_text(row, m) if multi else _fmt(row[m])
        cells.append(f"{ours} ({_fmt(row[f'paper_{m}'])}, {_signed(row[f'delta_{m}'])})")
    if multi and row["gain_AP_n"]:
        gain = _spread_text(row, "gain_AP", signed=True)
        cells.append(f"{gain} (n={row['gain_AP_n']}) ({_signed(row['paper_gain_AP'])})")
    else:
        cells.append(f"{_signed(row['gain_AP'])} ({_signed(row['paper_gain_AP'])})")
    wall = row["wall_s"]
    cells.append("-" if wall is None else f"{wall / 60:.1f} min")
    return cells


def _spread_text(row: dict[str, Any], key: str, signed: bool = False) -> str:
    return format_spread(Spread({}, row[key], row[f"{key}_std"]), signed=signed)


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
            xs, ys, cells = [], [], []
            for gi, group in enumerate(groups):
                match = [r for r in rows if (r["row"] if by_row else r["neck"]) == group and (not by_row or r["neck"] == neck)]
                value = match[0][key] if match else None
                xs.append(gi + (si * 2 + kind - (cols - 1) / 2) * width)
                ys.append(float("nan") if value is None else value)
                cells.append(match[0] if match else None)
            label_neck = VARIANTS[neck].label if by_row else ""
            label = f"{'ours' if kind == 0 else 'paper'}{(' ' + label_neck) if label_neck else ''}"
            ax.bar(xs, ys, width, label=label, color=colours(si), alpha=alpha, hatch=hatch, edgecolor="black", linewidth=0.4)
            if kind == 0 and settings.seeds != DEFAULT_SEEDS:
                _seed_marks(ax, xs, cells, settings.seeds)
    names = [DETECTORS[g].label + ("" if DETECTORS[g].backbone == "R-50" else f" ({DETECTORS[g].backbone})") for g in groups] if by_row else [VARIANTS[g].label for g in groups]
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(names, rotation=35, ha="right", fontsize=8)
    ax.set_ylabel("AP (%)")
    ax.margins(y=0.18)  # room for the legend above the tallest bar
    title = spec.title if not settings.smoke_figures else f"[SMOKE: synthetic data, not the paper's setting] {spec.title}"
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    _atomic_save(fig, path)
    plt.close(fig)


def _seed_marks(ax: Any, xs: Sequence[float], cells: Sequence[dict[str, Any] | None], seeds: Sequence[int]) -> None:
    """Over each bar of ours: the sample std as an error bar, every seed's AP as a dot, and "n/N seeds" in red
    where seeds are missing. The first bar's marks carry the legend's labels."""
    labelled = bool(ax.get_legend_handles_labels()[1].count("each seed"))
    for x, row in zip(xs, cells):
        if row is None or row["status"] in _BLOCKED:
            continue
        if row["AP"] is not None and row["AP_std"] is not None:
            ax.errorbar([x], [row["AP"]], yerr=[row["AP_std"]], color="black", capsize=3, linewidth=1.0,
                        label=None if labelled else "sample std")
        values = [row[f"AP_s{s}"] for s in seeds if row[f"AP_s{s}"] is not None]
        ax.scatter([x] * len(values), values, s=9, color="black", zorder=3, label=None if labelled else "each seed")
        labelled = True
        if row["n"] < len(seeds):
            top = max([*values, (row["AP"] or 0.0) + (row["AP_std"] or 0.0), 0.0])
            ax.annotate(f"{row['n']}/{len(seeds)} seeds", (x, top), xytext=(0, 4), textcoords="offset points",
                        ha="center", fontsize=7, color="red", rotation=90)


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
    lines.append(f"curves: tensorboard --logdir {outcome.plan.out_dir}")
    return "\n".join(lines)
