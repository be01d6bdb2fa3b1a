"""Train a detector on one's own COCO-format data (``hsfpn-repro train``): one job of the table runner.

``train("faster_rcnn", neck="hsfpn", data_root=..., work_dir=...)`` resolves the config (a Table 3 row id, or an
MMDetection 3 config file), points it at the dataset (:func:`pipelines.datasets.coco_layout`: classes from the
json), applies the preset's schedule and the command line's overrides, and runs it as one job of
:mod:`pipelines.runner`: the same launchers (one process, torchrun, srun; GPUs or CPU processes), resume,
progress and AI-TOD evaluation as the tables. ``WORK_DIR`` is the job's folder; besides the runner's files it
ends with:

* ``model.pth`` and ``job_config.py``: what ``init_detector`` / ``hsfpn-repro detect`` take;
* ``train.json``: the settings and the dataset, as resolved;
* ``train.md`` and ``training.png``: the metrics, and the loss and validation AP over the run.

With several seeds (``--seeds N``) every seed is a job of its own in ``WORK_DIR/s{seed}/`` (each with the files
above), and ``WORK_DIR`` holds ``train.json`` and the summary: ``train.md`` (mean ± sample std over the seeds and
every seed's figures) and ``training.png`` (every seed's curves). Every job also logs its scalars to TensorBoard
(``tensorboard --logdir WORK_DIR``).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dotamini10.io import atomic_path, atomic_write_text, write_json

from .datasets import DatasetLayout, apply_dataset, coco_layout
from .detectors import DETECTORS, VARIANTS, apply_schedule, apply_seed, build_job_config
from .errors import PipelineError
from .job_folder import JobFolder
from .metrics import METRIC_COLUMNS, markdown_table
from .presets import Settings, resolve_settings
from .runner import EventFn, Job, JobResult, JobStatus, job_env, job_state, launch_command, run_jobs
from .seeds import DEFAULT_SEEDS, format_spread, seed_figures, seed_key, spread

NECKS: tuple[str, ...] = ("fpn", "hsfpn")


class TrainError(PipelineError):
    """A training request is invalid (unknown row, unusable config file, bad neck)."""


@dataclass
class TrainPlan:
    """The resolved training jobs (one per seed), before they run.

    Args:
        source: The ``--config`` given (row id or file).
        settings: The resolved run settings.
        layout: The dataset.
        jobs: One job per seed: in ``settings.work_dir`` itself for the single default seed, else in its
            ``s{seed}`` subfolders (:func:`seed_dir`).
    """

    source: str
    settings: Settings
    layout: DatasetLayout
    jobs: list[Job]
    notes: list[str] = field(default_factory=list)

    @property
    def job(self) -> Job:
        """The first seed's job (the only one with a single seed)."""
        return self.jobs[0]

    @property
    def folder(self) -> JobFolder:
        """The run's folder (``WORK_DIR``): the job's own with one default seed, the seeds' parent otherwise."""
        return JobFolder(self.settings.work_dir)

    @property
    def several_seeds(self) -> bool:
        return self.settings.seeds != DEFAULT_SEEDS

    def describe(self, with_config: bool = False) -> str:
        """The plan as text: model, data, devices, schedule, state, the data check's notes; optionally the
        resolved config."""
        s, d = self.settings, self.layout
        kept = "every epoch's checkpoint kept" if s.keep_checkpoints == "all" else "the last checkpoint kept"
        lines = [
            f"train {_base_key(self.job)} ({self.source}) on {d.root}: {len(d.classes)} classes {list(d.classes)}",
            f"data: train {d.train_ann} (images {d.train_img}), evaluation {d.test_ann} (images {d.test_img})",
            f"preset {s.preset}; {s.devices} x {s.batch_per_gpu} image(s) = effective batch {s.effective_batch}; "
            f"launcher {s.launcher}; {s.training_text}; "
            + (f"validation every {s.val_interval} epoch(s), best kept" if s.val_interval
               else "evaluated once at the end") + f"; {kept}",
            *self.notes,
        ]
        for job in self.jobs:
            state, detail = job_state(job)
            seed = f"seed {job.seed} " if self.several_seeds else ""
            lines.append(f"{seed}work dir: {job.work_dir} ({state}{': ' + detail if detail else ''})")
        if with_config:
            for job in self.jobs:
                seed = f" of seed {job.seed}" if self.several_seeds else ""
                lines += [f"\n# ---- resolved config{seed} (fingerprint {job.fingerprint})",
                          str(job.config_text).rstrip()]
        return "\n".join(lines)


def seed_dir(work_dir: Path, seed: int, seeds: Sequence[int]) -> Path:
    """A seed's job folder: ``work_dir`` itself for the single default seed, else ``work_dir/s{seed}``."""
    return Path(work_dir) if tuple(seeds) == DEFAULT_SEEDS else Path(work_dir) / f"s{seed}"


def _base_key(job: Job) -> str:
    return f"{job.row}__{job.variant}"


@dataclass
class TrainOutcome:
    """What a training run produced: one result per seed (``result`` is the first)."""

    plan: TrainPlan
    results: list[JobResult] = field(default_factory=list)
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def result(self) -> JobResult | None:
        return self.results[0] if self.results else None


def _file_config(path: str, neck: str | None, layout: DatasetLayout, settings: Settings) -> Any:
    from .detectors import localize_weights
    from .models import resolve_config

    cfg = resolve_config(path, neck, necks=NECKS, error=TrainError).cfg
    try:
        # A stock config's backbone asks for torchvision:// or open-mmlab:// weights, which the job would try to
        # download (and fail on, deep in its log): say so now, or take the file from --pretrained.
        localize_weights(cfg, settings.pretrained, label=f"--config {path}")
    except PipelineError as exc:
        raise TrainError(str(exc)) from None
    try:
        imports = list(cfg.get("custom_imports", {}).get("imports", []))
        cfg.custom_imports = dict(imports=sorted({*imports, "hsfpn"}), allow_failed_imports=False)
        for name in ("val_evaluator", "test_evaluator"):
            cfg[name] = dict(type="AITODMetric", classwise=False)
        apply_dataset(cfg, layout)
        apply_schedule(cfg, settings)
    except (KeyError, AttributeError, TypeError, ValueError) as exc:
        raise TrainError(
            f"--config {path}: not an MMDetection 3 detector config the presets can drive "
            f"({type(exc).__name__}: {exc}); start from one of pipelines/configs/"
        ) from None
    return cfg


def plan_training(
    config: str, settings: Settings, layout: DatasetLayout, *, neck: str | None = None
) -> TrainPlan:
    """Resolve the jobs (one per seed): config (row id or file), neck, dataset, schedule and seed.

    Args:
        config: A Table 3 row id (``faster_rcnn``, ``cascade_rcnn``, ...) or the path of a config file.
        settings: The resolved settings (``work_dir`` is the job's folder, or its seeds' parent; ``seeds``).
        layout: The dataset (:func:`pipelines.datasets.coco_layout`).
        neck: ``"fpn"`` or ``"hsfpn"``; ``None`` keeps a file's own neck and gives a row the HS-FPN.

    Returns:
        The plan.

    Raises:
        TrainError: Unknown row or neck, a row that is not reproduced, an unusable config file.
    """
    if neck is not None and neck not in NECKS:
        raise TrainError(f"--neck must be one of {', '.join(NECKS)}, got {neck!r}")
    seeds = settings.seeds
    if config in DETECTORS and DETECTORS[config].reproduced:
        variant = neck or "hsfpn"
        texts = {seed: build_job_config(DETECTORS[config], VARIANTS[variant], layout, settings, seed).pretty_text
                 for seed in seeds}
        row, source = config, config
    else:
        cfg = _file_config(config, neck, layout, settings)  # a file, or the one-line error of what config is not
        texts = {}
        for seed in seeds:
            apply_seed(cfg, seed)
            texts[seed] = cfg.pretty_text
        row, source, variant = Path(config).stem, str(Path(config)), neck or "own"
    jobs = [Job(seed_key(f"{row}__{variant}", seed, seeds), row, variant, seed_dir(settings.work_dir, seed, seeds),
                config_text=texts[seed], seed=seed) for seed in seeds]
    return TrainPlan(source, settings, layout, jobs)


def train(
    config: str,
    *,
    data_root: Path,
    work_dir: Path,
    preset: str = "paper",
    neck: str | None = None,
    data_paths: dict[str, str | None] | None = None,
    dry_run: bool = False,
    progress: EventFn | None = None,
    report_every_s: float = 300.0,
    note: Callable[[str], None] | None = None,
    **overrides: Any,
) -> TrainOutcome:
    """Resolve, check, run (or dry-run) and report one training job on a COCO-format dataset.

    Before anything is written: the GPUs asked for must be here (:func:`pipelines.runner.check_gpus`), the
    dataset is scanned (:func:`pipelines.dataset_check.check_dataset`: every image and annotation; ``skip_bad``
    drops the bad ones into copies in the job's ``data_check/``) and the config must need no download.

    Args:
        config: Row id or config file (see :func:`plan_training`).
        data_root: Dataset root.
        work_dir: The job's folder.
        preset: ``"paper"`` (800 px, 12 epochs) or ``"smoke"`` (256 px, 6 epochs, for a quick look).
        neck: ``"fpn"`` or ``"hsfpn"`` (see :func:`plan_training`).
        data_paths: :func:`pipelines.datasets.coco_layout` overrides (``train_ann``, ``val_ann``,
            ``train_images``, ``val_images``).
        dry_run: Only plan (nothing is written or run).
        progress: Receives the runner's progress events.
        report_every_s: Seconds between progress events of the running job.
        note: Receives the data check's lines (images checked, areas far from w x h, what --skip-bad dropped)
            before the job starts; a dry run keeps them in the plan instead.
        **overrides: :class:`~pipelines.presets.Settings` fields (``None`` = not given).

    Returns:
        The plan, the job's result and the report files (none in a dry run).

    Raises:
        PipelineError: Bad settings, dataset or config, GPUs that are not here (one line each; the dataset's
            problems a line each).
    """
    from .dataset_check import check_dataset
    from .runner import check_gpus, gpu_shortfall

    settings = resolve_settings(preset, Path(work_dir), **overrides)
    if not dry_run:
        check_gpus(settings.gpus, settings.launcher)
        for seed in settings.seeds:  # a checkpoint a job did not record is refused before anything is written
            folder = JobFolder(seed_dir(settings.work_dir, seed, settings.seeds))
            if folder.done() is None:  # a finished job is reported again, not resumed
                folder.trusted_checkpoint()
    layout = coco_layout(data_root, **{k: v for k, v in (data_paths or {}).items() if v is not None})
    data = check_dataset(layout, skip_bad=settings.skip_bad,
                         out=None if dry_run else JobFolder(settings.work_dir).data_check)
    plan = plan_training(config, settings, data.layout, neck=neck)
    plan.notes = data.notes(settings.area_from_box)
    outcome = TrainOutcome(plan)
    if dry_run:
        shortfall = gpu_shortfall(settings.gpus, settings.launcher)
        plan.notes += [f"PROBLEM: {shortfall} (a real run stops here)"] if shortfall else []
        return outcome
    for line in plan.notes:
        (note or (lambda _: None))(line)
    record = dict(config=plan.source, key=_base_key(plan.job), settings=settings.to_json(),
                  data=dict(_layout_json(data.layout), skipped=None if data.skipped is None else str(data.skipped)))
    plan.folder.path.mkdir(parents=True, exist_ok=True)
    write_json(plan.folder.train_record, record, indent=2, sort_keys=True)
    command = launch_command(settings.launcher, settings.gpus, nproc=settings.processes, srun_args=settings.srun_args)
    outcome.results = run_jobs(
        plan.jobs, command, env=job_env(settings.gpus, threads=settings.threads), progress=progress,
        report_every_s=report_every_s,
    )
    outcome.outputs = write_report(plan, outcome.results)
    return outcome


def _layout_json(layout: DatasetLayout) -> dict[str, Any]:
    return dict(root=str(layout.root), classes=list(layout.classes), train_ann=layout.train_ann,
                train_images=layout.train_img, val_ann=layout.test_ann, val_images=layout.test_img)


# ---------------------------------------------------------------------------------------------
# Report: train.md and training.png
# ---------------------------------------------------------------------------------------------


@dataclass
class Curves:
    """The run's logged figures, every attempt merged (a later attempt's value wins at the same step).

    Args:
        loss: ``iteration -> training loss``.
        ap: ``epoch -> validation AP`` (fractions, as AITODMetric reports them).
    """

    loss: dict[int, float] = field(default_factory=dict)
    ap: dict[int, float] = field(default_factory=dict)


def read_curves(job_dir: Path) -> Curves:
    """Loss per iteration and validation AP per epoch from mmengine's ``*/vis_data/scalars.json`` files."""
    curves = Curves()
    for path in sorted(Path(job_dir).glob("*/vis_data/scalars.json")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
                step = int(entry["step"])
            except (ValueError, KeyError, TypeError):
                continue
            if "loss" in entry:
                curves.loss[step] = float(entry["loss"])
            elif "aitod/AP" in entry:
                curves.ap[step] = float(entry["aitod/AP"])
    return curves


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _header(plan: TrainPlan, title: str) -> list[str]:
    s = plan.settings
    lines = [f"# {title} on {plan.layout.root.name}", ""]
    if s.smoke_figures:
        lines += ["**SMOKE PRESET: small inputs and a short schedule; the figures test the pipeline.**", ""]
    return lines + [
        f"- config: {plan.source}; classes: {', '.join(plan.layout.classes)}",
        f"- data: {plan.layout.root} (train {plan.layout.train_ann}, evaluation {plan.layout.test_ann})",
        f"- effective batch {s.effective_batch} ({s.devices} x {s.batch_per_gpu}); {s.training_text}",
    ]


def render_markdown(plan: TrainPlan, result: JobResult) -> str:
    """One job's report: what was trained on what, the status and the AI-TOD figures (percent)."""
    job = result.job
    seed = f", seed {job.seed}" if plan.several_seeds else ""
    lines = _header(plan, f"Training {_base_key(job)}{seed}")
    lines += [f"- status: {result.status}" + (f" ({result.error})" if result.error else ""), ""]
    if result.metrics:
        names = [n for n in METRIC_COLUMNS if n in result.metrics]
        lines += markdown_table(names, [[_fmt(result.metrics[n]) for n in names]])
        lines += ["", f"Model: `{job.folder.model}` with `{job.folder.config}`."]
    return "\n".join(lines) + "\n"


def _no_ap_text(settings: Settings) -> str:
    if not settings.val_interval:
        return "no validation during training\n(--val-interval 0: evaluated once, after training)"
    every = settings.val_interval
    return f"no validation finished:\nthe run stopped before its first\n(validation every {every} epoch(s))"


def render_summary(plan: TrainPlan, results: Sequence[JobResult]) -> str:
    """The report of several seeds: mean ± sample std of each figure over the seeds that finished, and every
    seed's figures, status and folder."""
    finished = seed_figures(results)
    seeds = plan.settings.seeds
    lines = _header(plan, f"Training {_base_key(plan.job)}, {len(seeds)} seeds")
    missing = [str(s) for s in seeds if s not in finished]
    lines += [f"- seeds: {', '.join(map(str, seeds))}; {len(finished)} finished"
              + (f", missing {', '.join(missing)}" if missing else ""),
              "- mean ± sample std over the seeds that finished (n - 1 in the denominator); metrics in percent", ""]
    spreads = {n: spread({s: m.get(n) for s, m in finished.items()}) for n in METRIC_COLUMNS}
    rows = [[f"mean ± std (n={len(finished)})", "", *(format_spread(spreads[n]) for n in METRIC_COLUMNS), ""]]
    for r in results:
        figures = r.metrics if r.job.seed in finished else {}
        rows.append([f"seed {r.job.seed}", str(r.status), *(_fmt(figures.get(n)) for n in METRIC_COLUMNS),
                     f"`{r.job.work_dir}`"])
    lines += markdown_table(["", "status", *METRIC_COLUMNS, "folder"], rows)
    return "\n".join(lines) + "\n"


def render_png(title: str, curves: dict[str, Curves], path: Path, settings: Settings, failed: bool = False) -> None:
    """Training loss by iteration and validation AP (percent) by epoch, side by side, one line per run (seed); a
    single run's AP points are labelled, and an empty panel says why it is empty.

    Args:
        title: The figure's title.
        curves: ``label -> curves`` (label ``""`` for a single run).
        path: The PNG to write.
        settings: The run's settings (smoke figures are marked, the validation interval explains an empty panel).
        failed: The run failed (said in an empty loss panel).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    colours = plt.get_cmap("tab10")
    top = 5.0  # at least 0-5 %: a run at 0.3 % AP on a 0-1 axis would read as a fraction
    for i, (label, run) in enumerate(curves.items()):
        steps = sorted(run.loss)
        # Markers: a short run logs a handful of points, which a bare line would not show.
        left.plot(steps, [run.loss[k] for k in steps], color=colours(i), linewidth=1.2, marker=".", label=label or None)
        epochs = sorted(run.ap)
        if epochs:
            values = [100.0 * run.ap[e] for e in epochs]  # AITODMetric logs fractions
            right.plot(epochs, values, marker="o", color=colours(i) if label else "tab:green", label=label or None)
            if len(curves) == 1:
                for epoch, value in zip(epochs, values, strict=True):
                    right.annotate(f"{value:.1f}", (epoch, value), textcoords="offset points", xytext=(0, 6),
                                   ha="center", fontsize=8)
            right.set_xticks(epochs)
            top = max(top, 1.25 * max(values))
    if any(run.loss for run in curves.values()):
        left.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations are whole: no 1.2, 1.4 on a short run
    else:
        left.text(0.5, 0.5, "no training iteration logged" + ("\n(the job failed: see job.log)" if failed else ""),
                  ha="center", va="center", transform=left.transAxes)
        left.set_xticks([])
        left.set_yticks([])
    if any(run.ap for run in curves.values()):
        right.set_ylim(0.0, top)
    else:
        right.text(0.5, 0.5, _no_ap_text(settings), ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    if len(curves) > 1:
        left.legend(fontsize=7)
    left.set_xlabel("iteration")
    left.set_ylabel("training loss")
    left.set_title("loss (all attempts)", fontsize=9)
    right.set_xlabel("epoch")
    right.set_ylabel("AP, percent (0-100)")
    right.set_title("validation AP (AI-TOD)", fontsize=9)
    smoke = "[SMOKE] " if settings.smoke_figures else ""
    fig.suptitle("\n".join(textwrap.wrap(f"{smoke}{title}", 90)), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_report(plan: TrainPlan, results: Sequence[JobResult]) -> dict[str, Path]:
    """Write ``train.md`` and ``training.png`` into every job's folder and, with several seeds, the summary into the
    run's folder; returns the run's report paths and the first finished seed's model and config."""
    curves = {}
    for result in results:
        folder = result.job.folder
        run = read_curves(folder.path)
        curves[f"seed {result.job.seed}"] = run
        atomic_write_text(folder.report, render_markdown(plan, result))
        seed = f", seed {result.job.seed}" if plan.several_seeds else ""
        render_png(f"{_base_key(result.job)}{seed} on {plan.layout.root.name}", {"": run}, folder.figure,
                   plan.settings, failed=result.status is JobStatus.FAILED)
    if plan.several_seeds:
        atomic_write_text(plan.folder.report, render_summary(plan, results))
        render_png(f"{_base_key(plan.job)} on {plan.layout.root.name}, {len(results)} seeds", curves,
                   plan.folder.figure, plan.settings)
    paths = {"md": plan.folder.report, "png": plan.folder.figure}
    for result in results:
        folder = result.job.folder
        if result.status.finished and folder.model.is_file():
            paths.update(model=folder.model, config=folder.config)
            break
    return paths


def summarize(outcome: TrainOutcome) -> str:
    """A few lines: each seed's status and figures (and their mean ± std), files, the TensorBoard command and the
    ``detect`` command that uses the model."""
    if not outcome.results:
        return ""
    lines = []
    for result in outcome.results:
        lines.append(f"{result.job.key}: {result.status}" + (f" ({result.error})" if result.error else ""))
        if result.metrics:
            lines.append("  ".join(f"{n} {_fmt(result.metrics[n])}" for n in METRIC_COLUMNS if n in result.metrics))
    if outcome.plan.several_seeds:
        finished = list(seed_figures(outcome.results).values())
        spreads = {n: spread(dict(enumerate(m.get(n) for m in finished))) for n in ("AP", "AP50")}
        lines.append(f"over {len(finished)} of {len(outcome.results)} seeds: "
                     + "  ".join(f"{n} {format_spread(v)}" for n, v in spreads.items()))
    lines += [f"wrote {p}" for p in outcome.outputs.values()]
    lines.append(f"curves: tensorboard --logdir {outcome.plan.folder.path}")
    if "model" in outcome.outputs:
        lines.append(
            f"detect with: hsfpn-repro detect --config {outcome.outputs['config']} --checkpoint {outcome.outputs['model']}"
            " --images IMAGE... --out DIR"
        )
    return "\n".join(lines)


__all__: Sequence[str] = ("TrainError", "TrainOutcome", "TrainPlan", "plan_training", "read_curves", "train")
