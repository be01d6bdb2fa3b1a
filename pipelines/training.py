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
from .detectors import DETECTORS, VARIANTS, apply_schedule, build_job_config
from .errors import PipelineError
from .job_folder import JobFolder
from .metrics import METRIC_COLUMNS
from .presets import Settings, resolve_settings
from .runner import EventFn, Job, JobResult, JobStatus, job_env, job_state, launch_command, run_jobs

NECKS: tuple[str, ...] = ("fpn", "hsfpn")


class TrainError(PipelineError):
    """A training request is invalid (unknown row, unusable config file, bad neck)."""


@dataclass
class TrainPlan:
    """One resolved training job, before it runs.

    Args:
        source: The ``--config`` given (row id or file).
        settings: The resolved run settings.
        layout: The dataset.
        job: The job (its folder is ``settings.work_dir``).
    """

    source: str
    settings: Settings
    layout: DatasetLayout
    job: Job
    notes: list[str] = field(default_factory=list)

    def describe(self, with_config: bool = False) -> str:
        """The plan as text: model, data, devices, schedule, state, the data check's notes; optionally the
        resolved config."""
        s, d = self.settings, self.layout
        state, detail = job_state(self.job)
        kept = "every epoch's checkpoint kept" if s.keep_checkpoints == "all" else "the last checkpoint kept"
        lines = [
            f"train {self.job.key} ({self.source}) on {d.root}: {len(d.classes)} classes {list(d.classes)}",
            f"data: train {d.train_ann} (images {d.train_img}), evaluation {d.test_ann} (images {d.test_img})",
            f"preset {s.preset}; {s.devices} x {s.batch_per_gpu} image(s) = effective batch {s.effective_batch}; "
            f"launcher {s.launcher}; {s.max_epochs} epochs, steps at {list(s.milestones)}; input {s.img_scale} px; "
            + (f"validation every {s.val_interval} epoch(s), best kept" if s.val_interval
               else "evaluated once at the end") + f"; {kept}",
            f"work dir: {self.job.work_dir} ({state}{': ' + detail if detail else ''})",
            *self.notes,
        ]
        if with_config and self.job.config_text is not None:
            lines += [f"\n# ---- resolved config (fingerprint {self.job.fingerprint})", self.job.config_text.rstrip()]
        return "\n".join(lines)


@dataclass
class TrainOutcome:
    """What a training run produced."""

    plan: TrainPlan
    result: JobResult | None = None
    outputs: dict[str, Path] = field(default_factory=dict)


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
    """Resolve the job: its config (row id or file), neck, dataset and schedule.

    Args:
        config: A Table 3 row id (``faster_rcnn``, ``cascade_rcnn``, ...) or the path of a config file.
        settings: The resolved settings (``work_dir`` is the job's folder).
        layout: The dataset (:func:`pipelines.datasets.coco_layout`).
        neck: ``"fpn"`` or ``"hsfpn"``; ``None`` keeps a file's own neck and gives a row the HS-FPN.

    Returns:
        The plan.

    Raises:
        TrainError: Unknown row or neck, a row that is not reproduced, an unusable config file.
    """
    if neck is not None and neck not in NECKS:
        raise TrainError(f"--neck must be one of {', '.join(NECKS)}, got {neck!r}")
    if config in DETECTORS and DETECTORS[config].reproduced:
        variant = neck or "hsfpn"
        cfg = build_job_config(DETECTORS[config], VARIANTS[variant], layout, settings)
        job = Job(f"{config}__{variant}", config, variant, settings.work_dir, config_text=cfg.pretty_text)
        return TrainPlan(config, settings, layout, job)
    cfg = _file_config(config, neck, layout, settings)  # a file, or the one-line error of what config is not
    path = Path(config)
    variant = neck or "own"
    job = Job(f"{path.stem}__{variant}", path.stem, variant, settings.work_dir, config_text=cfg.pretty_text)
    return TrainPlan(str(path), settings, layout, job)


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
        JobFolder(settings.work_dir).trusted_checkpoint()  # a checkpoint the job did not record is refused now
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
    record = dict(config=plan.source, key=plan.job.key, settings=settings.to_json(),
                  data=dict(_layout_json(data.layout), skipped=None if data.skipped is None else str(data.skipped)))
    write_json(plan.job.folder.train_record, record, indent=2, sort_keys=True)
    command = launch_command(settings.launcher, settings.gpus, nproc=settings.processes, srun_args=settings.srun_args)
    outcome.result = run_jobs(
        [plan.job], command, env=job_env(settings.gpus), progress=progress, report_every_s=report_every_s
    )[0]
    outcome.outputs = write_report(plan, outcome.result)
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


def render_markdown(plan: TrainPlan, result: JobResult) -> str:
    """The report: what was trained on what, the status and the AI-TOD figures (percent)."""
    s = plan.settings
    lines = [f"# Training {plan.job.key} on {plan.layout.root.name}", ""]
    if s.is_smoke:
        lines += ["**SMOKE PRESET: small inputs and a short schedule; the figures test the pipeline.**", ""]
    lines += [
        f"- config: {plan.source}; classes: {', '.join(plan.layout.classes)}",
        f"- data: {plan.layout.root} (train {plan.layout.train_ann}, evaluation {plan.layout.test_ann})",
        f"- effective batch {s.effective_batch} ({s.devices} x {s.batch_per_gpu}); {s.max_epochs} epochs, "
        f"lr steps at {list(s.milestones)}; input {s.img_scale} px",
        f"- status: {result.status}" + (f" ({result.error})" if result.error else ""),
        "",
    ]
    if result.metrics:
        names = [n for n in METRIC_COLUMNS if n in result.metrics]
        lines += ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
        lines.append("| " + " | ".join(_fmt(result.metrics[n]) for n in names) + " |")
        lines += ["", f"Model: `{plan.job.folder.model}` with `{plan.job.folder.config}`."]
    return "\n".join(lines) + "\n"


def _no_ap_text(settings: Settings) -> str:
    if not settings.val_interval:
        return "no validation during training\n(--val-interval 0: evaluated once, after training)"
    every = settings.val_interval
    return f"no validation finished:\nthe run stopped before its first\n(validation every {every} epoch(s))"


def render_png(plan: TrainPlan, curves: Curves, path: Path, result: JobResult | None = None) -> None:
    """Training loss by iteration and validation AP (percent, each point labelled) by epoch, side by side; an
    empty panel says why it is empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    steps = sorted(curves.loss)
    # Markers: a short run logs a handful of points, which a bare line would not show.
    left.plot(steps, [curves.loss[i] for i in steps], color="tab:blue", linewidth=1.2, marker=".")
    if not steps:
        failed = result is not None and result.status is JobStatus.FAILED
        left.text(0.5, 0.5, "no training iteration logged" + ("\n(the job failed: see job.log)" if failed else ""),
                  ha="center", va="center", transform=left.transAxes)
        left.set_xticks([])
        left.set_yticks([])
    left.set_xlabel("iteration")
    left.set_ylabel("training loss")
    left.set_title("loss (all attempts)", fontsize=9)
    epochs = sorted(curves.ap)
    if epochs:
        values = [100.0 * curves.ap[e] for e in epochs]  # AITODMetric logs fractions
        right.plot(epochs, values, marker="o", color="tab:green")
        for epoch, value in zip(epochs, values, strict=True):
            right.annotate(f"{value:.1f}", (epoch, value), textcoords="offset points", xytext=(0, 6), ha="center",
                           fontsize=8)
        right.set_xticks(epochs)
        # At least 0-5 %: a run at 0.3 % AP on a 0-1 axis would read as a fraction.
        right.set_ylim(0.0, max(5.0, 1.25 * max(values)))
    else:
        right.text(0.5, 0.5, _no_ap_text(plan.settings), ha="center", va="center", transform=right.transAxes)
        right.set_xticks([])
        right.set_yticks([])
    right.set_xlabel("epoch")
    right.set_ylabel("AP, percent (0-100)")
    right.set_title("validation AP (AI-TOD)", fontsize=9)
    title = f"{'[SMOKE] ' if plan.settings.is_smoke else ''}{plan.job.key} on {plan.layout.root.name}"
    fig.suptitle("\n".join(textwrap.wrap(title, 90)), fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)


def write_report(plan: TrainPlan, result: JobResult) -> dict[str, Path]:
    """Write ``train.md`` and ``training.png`` into the job's folder; returns their paths."""
    folder = plan.job.folder
    paths = {"md": folder.report, "png": folder.figure}
    atomic_write_text(paths["md"], render_markdown(plan, result))
    render_png(plan, read_curves(folder.path), paths["png"], result)
    if result.status in (JobStatus.DONE, JobStatus.SKIPPED) and folder.model.is_file():
        paths["model"] = folder.model
        paths["config"] = folder.config
    return paths


def summarize(outcome: TrainOutcome) -> str:
    """A few lines: status, figures, files and the ``detect`` command that uses the model."""
    result = outcome.result
    if result is None:
        return ""
    lines = [f"{outcome.plan.job.key}: {result.status}" + (f" ({result.error})" if result.error else "")]
    if result.metrics:
        lines.append("  ".join(f"{n} {_fmt(result.metrics[n])}" for n in METRIC_COLUMNS if n in result.metrics))
    lines += [f"wrote {p}" for p in outcome.outputs.values()]
    if "model" in outcome.outputs:
        lines.append(
            f"detect with: hsfpn-repro detect --config {outcome.outputs['config']} --checkpoint {outcome.outputs['model']}"
            " --images IMAGE... --out DIR"
        )
    return "\n".join(lines)


__all__: Sequence[str] = ("TrainError", "TrainOutcome", "TrainPlan", "plan_training", "read_curves", "train")
