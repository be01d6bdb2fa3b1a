"""Run settings of the table runners, resolved in one place: defaults, then the preset, then the CLI.

Two presets exist:

* ``paper``: the paper's settings (800 x 800 inputs, 12 epochs with steps at 8 and 11, 500 warm-up
  iterations, 1 image per GPU) on the real datasets.
* ``smoke``: the same detector configs on a seeded synthetic tiny-object COCO dataset that the toolkit
  generates itself (:mod:`pipelines.synthetic_coco`), with small inputs and a short schedule, so that a
  whole table runs on a CPU-only laptop in minutes. Its figures measure nothing about the paper and are
  labelled "smoke" in every output.

* ``demo``: a short CPU schedule of a compact detector (:class:`CompactModel`) on a DOTAmini10 build given with
  ``--data-root`` (``make demo`` trains on the build of the embedded synthetic sample), tuned to learn visibly
  within minutes. Its figures are smoke figures and labelled so.

The resolved :class:`Settings` are written next to the results (``settings.json``) so a table can be
traced back to exactly what produced it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import PipelineError

PRESETS: tuple[str, ...] = ("paper", "smoke", "demo")
LAUNCHERS: tuple[str, ...] = ("none", "pytorch", "slurm")
KEEP_CHECKPOINTS: tuple[str, ...] = ("last", "all")
OPTIMIZERS: tuple[str, ...] = ("sgd", "adamw")


class SettingsError(PipelineError):
    """A run setting is invalid (unknown preset or launcher, non-positive counts, bad milestones)."""


@dataclass(frozen=True)
class SyntheticSpec:
    """Shape of the synthetic smoke dataset (see :func:`pipelines.synthetic_coco.write_synthetic_coco`).

    Args:
        num_train: Training images.
        num_test: Test images.
        image_size: Side of the square images in pixels.
        objects_per_image: Inclusive range of objects per image.
        object_size: Inclusive range of object sides in pixels (tiny: < 16 px mostly).
        seed: Seed of the generator; same seed -> byte-identical dataset.
    """

    num_train: int = 48
    num_test: int = 16
    image_size: int = 256
    objects_per_image: tuple[int, int] = (4, 10)
    object_size: tuple[int, int] = (8, 24)
    seed: int = 0


@dataclass(frozen=True)
class CompactModel:
    """A smaller detector for short CPU runs (the demo preset): the row's config with a thinner, shallower ResNet,
    neck and box head; anchors, assigners, samplers and losses stay the row's.

    Args:
        depth: ResNet depth (18 or 34: basic blocks; 50 or 101: bottlenecks).
        base_channels: Channels of the first stage (standard ResNets: 64); every stage doubles them.
        neck_channels: Output channels of the FPN / HS-FPN and input of the heads (a multiple of 32: HS-FPN).
        head_channels: Width of the box heads' fully connected layers (standard: 1024).
    """

    depth: int = 18
    base_channels: int = 32
    neck_channels: int = 64
    head_channels: int = 256


@dataclass(frozen=True)
class Settings:
    """Every non-MMDetection setting of a table run.

    Args:
        preset: ``"paper"`` or ``"smoke"``.
        work_dir: Root of the job work dirs and the table outputs.
        data_root: Dataset root (AI-TOD or DOTAmini10); ``None`` for the smoke preset, which generates
            its own dataset under ``work_dir``.
        pretrained: Folder of pretrained backbone files (standard names); ``None`` -> random init.
        gpus: GPUs per job (0 = CPU).
        nproc: Processes per job (one per GPU; on CPU, gloo processes). ``None`` resolves to ``gpus`` when
            GPUs are used and to 1 on CPU; read :attr:`processes` for the resolved count.
        launcher: ``"none"`` (one process), ``"pytorch"`` (torchrun) or ``"slurm"`` (srun).
        img_scale: Input side after resizing (keep ratio) in pixels.
        max_epochs: Training epochs.
        milestones: Epochs after which lr is divided by 10.
        warmup_iters: Linear warm-up iterations.
        batch_per_gpu: Images per process (per GPU; per CPU process on CPU).
        num_workers: Data loader workers per process.
        optimizer: ``"sgd"``: each config's SGD (momentum 0.9, weight decay 1e-4; the paper's); ``"adamw"``: AdamW
            at lr 1e-3 (times ``lr_factor``), weight decay 0.05, which from random init learns in a few hundred
            iterations where SGD at the paper's lr does not (the demo preset).
        lr_factor: Multiplies the learning rate (SGD: each config's, 0.005 two-stage, 0.001 one-stage); the smoke
            preset's short schedule from random init uses 2x.
        clip_grad: Clip the gradient norm at this value; ``None`` keeps each config's own setting (the
            paper's configs clip only Cascade RPN). The smoke preset clips: random-init HS-FPN runs
            diverged without it.
        auto_scale_lr: Scale lr linearly with the effective batch against the paper's batch of 2.
        val_interval: Validate every this many epochs while training (and at the last epoch), keeping the
            best checkpoint by AI-TOD AP (``save_best``); 0 evaluates once, after training, as the tables do.
        log_interval: Iterations between mmengine log lines.
        max_per_img: Cap on proposals and detections per image (``nms_pre``, ``max_per_img``); ``None``
            keeps the configs' 3000 (AI-TOD images hold hundreds of objects).
        srun_args: Extra arguments for ``srun`` (slurm launcher), e.g. ``"-p gpu --time 48:00:00"``.
        keep_checkpoints: ``"last"`` keeps the last epoch's checkpoint (and the best, when validating); ``"all"``
            keeps every epoch's.
        skip_bad: Drop the images and annotations the dataset check finds bad (recorded) instead of stopping.
        area_from_box: The evaluation uses each box's w x h as its area in the size ranges.
        synthetic: Shape of the smoke dataset.
        seeds: Training seeds; every (row, neck) runs once per seed, each run a job of its own
            (:mod:`pipelines.seeds`). The default, one run with seed 0, keeps the job folders of a single run.
        compact: Train a smaller version of each row's detector (:class:`CompactModel`); ``None`` keeps the row's.
        train_crop: Train on random square crops of this side, cut after the resize to ``img_scale`` (the
            objects keep the size they have at test time); ``None`` trains on whole images.
        threads: Intra-op threads of each job process (``OMP_NUM_THREADS``); ``None`` leaves torch's default (one
            per core). One thread keeps a CPU job's speed when other work shares the cores: torch's threads meet
            at a barrier after every operation, so one descheduled thread stalls them all (the demo model, 2
            cores at load 3: 0.9 s per iteration with one thread, 3.5-5 s with two).
    """

    preset: str
    work_dir: Path
    data_root: Path | None = None
    pretrained: Path | None = None
    gpus: int = 1
    nproc: int | None = None
    launcher: str = "none"
    img_scale: int = 800
    max_epochs: int = 12
    milestones: tuple[int, ...] = (8, 11)
    warmup_iters: int = 500
    batch_per_gpu: int = 1
    num_workers: int = 2
    optimizer: str = "sgd"
    lr_factor: float = 1.0
    clip_grad: float | None = None
    auto_scale_lr: bool = False
    val_interval: int = 0
    log_interval: int = 50
    max_per_img: int | None = None
    srun_args: str = ""
    keep_checkpoints: str = "last"
    skip_bad: bool = False
    area_from_box: bool = False
    synthetic: SyntheticSpec = field(default_factory=SyntheticSpec)
    seeds: tuple[int, ...] = (0,)
    compact: CompactModel | None = None
    train_crop: int | None = None
    threads: int | None = None

    @property
    def processes(self) -> int:
        """Processes per job: ``nproc`` when given, else one per GPU, else 1 (CPU)."""
        if self.nproc is not None:
            return self.nproc
        return max(self.gpus, 1)

    @property
    def effective_batch(self) -> int:
        """Images per optimizer step over all processes (the paper used 2 = 2 GPUs x 1 image)."""
        return self.processes * self.batch_per_gpu

    @property
    def devices(self) -> str:
        """What runs a job, for reports: ``"2 GPU(s)"``, ``"1 CPU process"``, ``"2 CPU processes (gloo)"``."""
        if self.gpus == 0:
            return "1 CPU process" if self.processes == 1 else f"{self.processes} CPU processes (gloo)"
        return f"{self.gpus} GPU(s)"

    @property
    def backend(self) -> str:
        """The ``torch.distributed`` backend of a multi-process job: NCCL on GPUs, gloo on CPU."""
        return "nccl" if self.gpus > 0 else "gloo"

    @property
    def smoke_figures(self) -> bool:
        """Whether the outputs must be labelled as smoke figures (the smoke and demo presets' short runs)."""
        return self.preset in ("smoke", "demo")

    @property
    def is_smoke(self) -> bool:
        """Whether these settings produce smoke figures (synthetic data, short schedule)."""
        return self.preset == "smoke"

    @property
    def training_text(self) -> str:
        """The schedule and what differs from the rows' own training, in words, for plans and reports."""
        parts = [f"{self.max_epochs} epochs, lr steps at {list(self.milestones)}",
                 f"input {self.img_scale} x {self.img_scale}"
                 + (f", trained on random {self.train_crop} px crops" if self.train_crop else ""),
                 "AdamW" if self.optimizer == "adamw" else "SGD"]
        if self.compact is not None:
            c = self.compact
            parts.append(f"compact detector (ResNet-{c.depth} at {c.base_channels} base channels, neck "
                         f"{c.neck_channels}, box head {c.head_channels})")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        """JSON-ready dict of every setting (paths as strings), plus the effective batch."""
        out = dataclasses.asdict(self)
        for key in ("work_dir", "data_root", "pretrained"):
            out[key] = None if out[key] is None else str(out[key])
        out["processes"] = self.processes
        out["effective_batch"] = self.effective_batch
        return out


# Each preset's values; anything not named keeps the dataclass default (the paper's value).
PRESET_VALUES: dict[str, dict[str, Any]] = {
    "paper": {},
    "smoke": dict(
        gpus=0,
        img_scale=256,
        max_epochs=6,
        milestones=(4, 5),
        warmup_iters=50,
        batch_per_gpu=2,
        num_workers=0,
        lr_factor=2.0,
        clip_grad=35.0,
        max_per_img=300,
        log_interval=10,
    ),
    # make demo: FPN and HS-FPN trained on the demo DOTAmini10 build, both within about 6 CPU minutes, to figures
    # that show learning (AP50 above 30 on its val). What gets there (README "make demo"): a compact ResNet-18
    # detector, AdamW, random 384 px crops of the windows at full resolution (the objects keep their test-time
    # size) and an lr step before the end; SGD at the paper's lr, or whole windows resized to 256 px, stay near 0.
    # One thread per job: a shared 2-core machine stalls two (see Settings.threads).
    "demo": dict(
        gpus=0,
        img_scale=1024,
        train_crop=384,
        compact=CompactModel(),
        optimizer="adamw",
        threads=1,
        max_epochs=8,
        milestones=(6,),
        warmup_iters=50,
        batch_per_gpu=2,
        num_workers=0,
        clip_grad=35.0,
        max_per_img=300,
        log_interval=5,
    ),
}


def resolve_settings(preset: str, work_dir: Path, **overrides: Any) -> Settings:
    """Defaults, then the preset's values, then every override that is not ``None``.

    Args:
        preset: ``"paper"`` or ``"smoke"``.
        work_dir: Root of the job work dirs and outputs.
        **overrides: Any :class:`Settings` field; ``None`` means "not given on the command line".

    Returns:
        The validated settings.

    Raises:
        SettingsError: Unknown preset, field or launcher; non-positive counts; milestones that are not
            increasing or exceed ``max_epochs``; a smoke run given a data root.
    """
    if preset not in PRESET_VALUES:
        raise SettingsError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SettingsError(f"unknown setting(s): {', '.join(unknown)}")
    values: dict[str, Any] = dict(PRESET_VALUES[preset])
    values.update({k: v for k, v in overrides.items() if v is not None})
    for key in ("work_dir", "data_root", "pretrained"):
        if values.get(key) is not None:
            values[key] = Path(values[key])
    for key in ("milestones", "seeds"):
        if key in values:
            values[key] = tuple(int(v) for v in values[key])
    settings = Settings(preset=preset, work_dir=Path(work_dir), **values)
    _validate(settings)
    return settings


def _validate_processes(s: Settings) -> None:
    if s.nproc is not None and s.nproc < 1:
        raise SettingsError(f"nproc must be >= 1, got {s.nproc}")
    if s.gpus > 0 and s.nproc is not None and s.nproc != s.gpus:
        # One process drives one GPU: any other count leaves GPUs idle or shares one between processes.
        raise SettingsError(f"--nproc {s.nproc} with --gpus {s.gpus}: on GPUs a job runs one process per GPU")
    if s.launcher != "none" and s.processes < 2 and s.gpus < 1:
        raise SettingsError(
            f"launcher {s.launcher!r} needs --gpus >= 1, or --nproc >= 2 for CPU processes, got --gpus {s.gpus}"
        )
    if s.launcher == "none" and s.processes > 1:
        # One plain process: several need torchrun or srun (else the recorded batch would be wrong).
        what = f"--gpus {s.gpus}" if s.gpus > 1 else f"--nproc {s.processes}"
        raise SettingsError(f"{what} needs --launcher pytorch or slurm (launcher none runs one process)")


def _validate(s: Settings) -> None:
    if s.launcher not in LAUNCHERS:
        raise SettingsError(f"launcher must be one of {', '.join(LAUNCHERS)}, got {s.launcher!r}")
    if s.optimizer not in OPTIMIZERS:
        raise SettingsError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {s.optimizer!r}")
    if s.gpus < 0:
        raise SettingsError(f"gpus must be >= 0, got {s.gpus}")
    if s.keep_checkpoints not in KEEP_CHECKPOINTS:
        raise SettingsError(
            f"keep_checkpoints must be one of {', '.join(KEEP_CHECKPOINTS)}, got {s.keep_checkpoints!r}")
    _validate_processes(s)
    for name in ("img_scale", "max_epochs", "batch_per_gpu", "log_interval"):
        if getattr(s, name) < 1:
            raise SettingsError(f"{name} must be >= 1, got {getattr(s, name)}")
    if s.img_scale % 32:
        # The HS-FPN's SDP cuts P2-P4 into blocks the size of C5: sides must divide by 32.
        raise SettingsError(f"img_scale must be a multiple of 32 (HS-FPN block attention), got {s.img_scale}")
    if s.warmup_iters < 0 or s.num_workers < 0 or s.val_interval < 0:
        raise SettingsError("warmup_iters, num_workers and val_interval must be >= 0")
    ms = s.milestones
    if any(b <= a for a, b in zip(ms, ms[1:])) or any(m < 1 or m > s.max_epochs for m in ms):
        raise SettingsError(
            f"milestones must be increasing epochs within 1..max_epochs={s.max_epochs}, got {list(ms)}"
        )
    if s.max_per_img is not None and s.max_per_img < 1:
        raise SettingsError(f"max_per_img must be >= 1, got {s.max_per_img}")
    if s.clip_grad is not None and s.clip_grad <= 0:
        raise SettingsError(f"clip_grad must be > 0, got {s.clip_grad}")
    if s.lr_factor <= 0:
        raise SettingsError(f"lr_factor must be > 0, got {s.lr_factor}")
    if s.threads is not None and s.threads < 1:
        raise SettingsError(f"threads must be >= 1, got {s.threads}")
    if s.train_crop is not None and not (32 <= s.train_crop <= s.img_scale and s.train_crop % 32 == 0):
        raise SettingsError(
            f"train_crop must be a multiple of 32 within 32..img_scale={s.img_scale}, got {s.train_crop}"
        )
    if s.compact is not None and (s.compact.depth not in (18, 34, 50, 101) or s.compact.neck_channels % 32
                                  or min(s.compact.base_channels, s.compact.head_channels) < 1):
        raise SettingsError(
            f"compact model: depth 18, 34, 50 or 101 and neck channels a multiple of 32, got {s.compact}"
        )
    if not s.seeds or len(set(s.seeds)) != len(s.seeds) or min(s.seeds) < 0:
        raise SettingsError(f"seeds must be distinct integers >= 0, at least one, got {list(s.seeds)}")
    if s.is_smoke and s.data_root is not None:
        raise SettingsError("the smoke preset generates its own synthetic dataset: drop --data-root")
