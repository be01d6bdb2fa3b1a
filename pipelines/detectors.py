"""The detectors of Tables 1-4 and their neck variants, and the resolution of one job's config.

A job is one (row, variant): a detector config from ``pipelines/configs/`` plus a neck variant. The neck
is a parameter: :func:`swap_neck` turns the config's FPN (RFP for DetectoRS) into an ``HSFPN`` with the
same in/out channels and levels, so no config is copied per neck. :func:`build_job_config` applies the
neck, the label-assignment method (NWD / RFLA rows), the dataset layout, the pretrained backbone and the
preset's schedule to a freshly loaded config.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .datasets import DatasetLayout, apply_dataset
from .errors import PipelineError
from .presets import CompactModel, Settings

CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# Standard file names of pretrained backbones, looked up in --pretrained DIR (first found wins).
# ResNets: torchvision's ImageNet files (the ones mmdet's ``torchvision://resnetXX`` names);
# MobileNetV2: the OpenMMLab classification file that mmdet's ``open-mmlab://mmdet/mobilenet_v2`` names
# (torchvision's MobileNetV2 file uses other parameter names than mmdet's backbone).
BACKBONE_WEIGHTS: dict[str, tuple[str, ...]] = {
    "R-50": ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth"),
    "R-101": ("resnet101-63fe2227.pth", "resnet101-5d3b4d8f.pth", "resnet101-cd907fc2.pth"),
    "MobileNetV2": ("mobilenet_v2_batch256_imagenet-ff34753d.pth",),
}


# AdamW's learning rate (Settings.optimizer "adamw"), before the lr factor: the usual value for detectors trained
# with AdamW at small batches.
ADAMW_LR = 1e-3


class NotAvailableError(PipelineError):
    """A row needs a component that is not in this installation (e.g. the NWD / RFLA assigners)."""


@dataclass(frozen=True)
class Detector:
    """One detector row.

    Args:
        key: Row id used by ``--rows`` and in work dir names (``"faster_rcnn_nwd"``).
        label: Method as the paper prints it.
        backbone: Backbone name, a key of :data:`BACKBONE_WEIGHTS`.
        config: Config file name in ``pipelines/configs/``; ``None`` for rows that are not reproduced.
        assigner: ``(detector, method)`` for ``hsfpn.assigners.presets.label_assignment_overrides``,
            or ``None`` for the detector's own assignment.
        baseline_neck: What the paper's "FPN" row uses (``"FPN"``, or ``"RFP"`` for DetectoRS).
    """

    key: str
    label: str
    backbone: str
    config: str | None
    assigner: tuple[str, str] | None = None
    baseline_neck: str = "FPN"

    @property
    def reproduced(self) -> bool:
        """Whether the toolkit trains this row (MENet is shown with the paper's figures only)."""
        return self.config is not None


_FRCNN = "faster-rcnn_r50_fpn_1x_aitod.py"
_CRCNN = "cascade-rcnn_r50_fpn_1x_aitod.py"
_DRS = "detectors_cascade-rcnn_r50_1x_aitod.py"

# Table 3's rows, in the paper's order.
DETECTORS: dict[str, Detector] = {
    d.key: d
    for d in (
        Detector("atss", "ATSS", "R-50", "atss_r50_fpn-p2_1x_aitod.py"),
        Detector("menet", "MENet", "R-50", None),
        Detector("retinanet", "RetinaNet*", "R-50", "retinanet_r50_fpn-p2_1x_aitod.py"),
        Detector("cascade_rpn", "Cascade RPN", "R-50", "cascade-rpn_faster-rcnn_r50_fpn_1x_aitod.py"),
        Detector("grid_rcnn", "Grid R-CNN", "R-50", "grid-rcnn_r50_fpn_gn-head_1x_aitod.py"),
        Detector("faster_rcnn", "Faster R-CNN", "R-50", _FRCNN),
        Detector("faster_rcnn_nwd", "Faster R-CNN w/NWD", "R-50", _FRCNN, ("faster_rcnn", "nwd")),
        Detector("faster_rcnn_rfla", "Faster R-CNN w/RFLA", "R-50", _FRCNN, ("faster_rcnn", "rfla")),
        Detector("faster_rcnn_mnv2", "Faster R-CNN", "MobileNetV2", "faster-rcnn_mobilenetv2_fpn_1x_aitod.py"),
        Detector("faster_rcnn_r101", "Faster R-CNN", "R-101", "faster-rcnn_r101_fpn_1x_aitod.py"),
        Detector("cascade_rcnn", "Cascade R-CNN", "R-50", _CRCNN),
        Detector("cascade_rcnn_nwd", "Cascade R-CNN w/NWD", "R-50", _CRCNN, ("cascade_rcnn", "nwd")),
        Detector("cascade_rcnn_rfla", "Cascade R-CNN w/RFLA", "R-50", _CRCNN, ("cascade_rcnn", "rfla")),
        Detector("detectors", "DetectoRS", "R-50", _DRS, baseline_neck="RFP"),
        Detector("detectors_rfla", "DetectoRS w/RFLA", "R-50", _DRS, ("detectors", "rfla"), baseline_neck="RFP"),
    )
}


@dataclass(frozen=True)
class NeckVariant:
    """One neck setting: the baseline FPN, or the HS-FPN with some components and a given alpha.

    Args:
        key: Variant id used by ``--necks`` and in work dir names.
        label: Short text for tables.
        hsfpn: ``False`` keeps the config's own neck (FPN / RFP).
        alpha: The high-pass cutoff of the DCT filter (``ratio=(alpha, alpha)``).
        channel_path: HFP channel path (CP) on.
        spatial_path: HFP spatial path (SP) on.
        sdp: Spatial dependency perception (SDP) on.
    """

    key: str
    label: str
    hsfpn: bool
    alpha: float = 0.25
    channel_path: bool = True
    spatial_path: bool = True
    sdp: bool = True


VARIANTS: dict[str, NeckVariant] = {
    v.key: v
    for v in (
        NeckVariant("fpn", "FPN", False),
        NeckVariant("hsfpn", "HS-FPN", True),
        NeckVariant("cp", "CP", True, channel_path=True, spatial_path=False, sdp=False),
        NeckVariant("sp", "SP", True, channel_path=False, spatial_path=True, sdp=False),
        NeckVariant("hfp", "CP + SP (HFP)", True, sdp=False),
        NeckVariant("sdp", "SDP", True, channel_path=False, spatial_path=False, sdp=True),
        *(
            NeckVariant(f"hfp_a{a:.2f}", f"HFP, alpha {a:.2f}", True, alpha=a, sdp=False)
            for a in (0.0, 0.25, 0.5, 0.75, 1.0)
        ),
    )
}

# FPN constructor arguments that the HS-FPN takes too (it has FPN's constructor plus its own options).
_FPN_ARGS = (
    "in_channels",
    "out_channels",
    "num_outs",
    "start_level",
    "end_level",
    "add_extra_convs",
    "relu_before_extra_convs",
    "no_norm_on_lateral",
    "conv_cfg",
    "norm_cfg",
    "act_cfg",
    "upsample_cfg",
)


def swap_neck(model: dict[str, Any], variant: NeckVariant) -> dict[str, Any]:
    """A copy of a model config whose neck follows ``variant``.

    The FPN's levels and channels are kept; only the type changes to ``HSFPN`` with the variant's
    ``ratio``, ``channel_path``, ``spatial_path`` and ``sdp``. DetectoRS' RFP (an FPN that feeds back into
    an unrolled backbone) is replaced by the HS-FPN as in the paper's "R-50 w/SAC + HS-FPN" row: the SAC
    backbone stays and stops emitting the input image that only RFP consumes.

    Args:
        model: The ``model`` dict of a detector config (not changed).
        variant: The neck variant.

    Returns:
        The new model dict (the same content when ``variant.hsfpn`` is ``False``).

    Raises:
        PipelineError: The config's neck is neither ``FPN`` nor ``RFP``.
    """
    out = copy.deepcopy(dict(model))
    if not variant.hsfpn:
        return out
    neck = out["neck"]
    if neck.get("type") not in ("FPN", "RFP"):
        raise PipelineError(f"cannot swap neck {neck.get('type')!r} for the HS-FPN: only FPN and RFP are supported")
    new = {k: copy.deepcopy(neck[k]) for k in _FPN_ARGS if k in neck}
    new.update(
        type="HSFPN",
        ratio=(variant.alpha, variant.alpha),
        channel_path=variant.channel_path,
        spatial_path=variant.spatial_path,
        sdp=variant.sdp,
    )
    if neck.get("type") == "RFP":
        out["backbone"]["output_img"] = False
    out["neck"] = new
    return out


def label_assignment(detector: Detector) -> dict[str, Any]:
    """The model overrides of a row's label-assignment method (NWD / RFLA; empty for the detector's own)."""
    if detector.assigner is None:
        return {}
    from hsfpn.assigners.presets import label_assignment_overrides

    return label_assignment_overrides(*detector.assigner)


def pretrained_file(detector: Detector, pretrained_dir: Path | None) -> Path | None:
    """The pretrained backbone file of a row in ``pretrained_dir``, or ``None`` without a folder.

    Raises:
        PipelineError: The folder is given but holds none of the standard names for this backbone.
    """
    if pretrained_dir is None:
        return None
    names = BACKBONE_WEIGHTS[detector.backbone]
    for name in names:
        if (pretrained_dir / name).is_file():
            return (pretrained_dir / name).resolve()
    raise PipelineError(
        f"--pretrained {pretrained_dir}: no {detector.backbone} weights; expected one of {', '.join(names)}"
    )


def _apply_pretrained(model: dict[str, Any], path: Path | None) -> None:
    init = None if path is None else dict(type="Pretrained", checkpoint=str(path))
    model["backbone"]["init_cfg"] = init
    if path is None and model["backbone"].get("type") == "ResNet":
        # From random init nothing may stay frozen: a frozen stem would be random filters for good, and BN in eval
        # mode would normalise by its initial statistics (mean 0, variance 1) instead of the batches'.
        model["backbone"].update(frozen_stages=-1, norm_eval=False)
    neck = model.get("neck", {})
    if neck.get("type") == "RFP":
        # RFP's unrolled backbone is initialised by RFP itself from its ``pretrained`` path.
        neck["rfp_backbone"]["pretrained"] = None if path is None else str(path)


# Where a config's weights would be downloaded from (MMEngine's schemes and plain URLs): nothing is downloaded here.
REMOTE_SCHEMES = ("torchvision://", "open-mmlab://", "openmmlab://", "mmcls://", "mmpretrain://", "modelzoo://",
                  "http://", "https://", "s3://")


def weights_sources(cfg: Any) -> list[tuple[str, dict[str, Any], str]]:
    """Every weights file a config would load before training: ``(where, holder, key)`` with
    ``holder[key]`` the path or URL (an ``init_cfg`` of type ``Pretrained`` anywhere in the model, a
    ``pretrained=`` string, the top-level ``load_from``)."""
    found: list[tuple[str, dict[str, Any], str]] = []

    def visit(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if node.get("type") == "Pretrained" and isinstance(node.get("checkpoint"), str):
                found.append((f"{where}.checkpoint", node, "checkpoint"))
            if isinstance(node.get("pretrained"), str):
                found.append((f"{where}.pretrained", node, "pretrained"))
            for key, value in node.items():
                visit(value, f"{where}.{key}")
        elif isinstance(node, (list, tuple)):
            for k, item in enumerate(node):
                visit(item, f"{where}[{k}]")

    visit(cfg.model, "model")
    if isinstance(cfg.get("load_from"), str):
        found.append(("load_from", cfg, "load_from"))
    return found


def _weights_file(source: str) -> tuple[str, tuple[str, ...]]:
    # The file a download stands for: a glob pattern and the standard names tried first.
    name = source.split("://", 1)[-1]
    if source.startswith("torchvision://"):
        standard = {"resnet50": "R-50", "resnet101": "R-101"}.get(name, "")
        return f"{name}-*.pth", BACKBONE_WEIGHTS.get(standard, ())
    if source.startswith(("open-mmlab://", "openmmlab://")):
        from mmengine.runner.checkpoint import get_external_models

        name = get_external_models().get(name, name)
    return name.rsplit("/", 1)[-1], ()


def local_weights(source: str, folder: Path | None) -> Path | None:
    """The file in ``folder`` that stands for a download: ``torchvision://resnet50`` is torchvision's
    ``resnet50-*.pth`` (its standard names first), ``open-mmlab://name`` and a URL their file's name; None when
    there is no folder or no such file."""
    if folder is None:
        return None
    pattern, standard = _weights_file(source)
    candidates = [folder / n for n in standard] + sorted(folder.glob(pattern))
    return next((c.resolve() for c in candidates if c.is_file()), None)


def localize_weights(cfg: Any, folder: Path | None, *, label: str) -> None:
    """Point every download a config asks for at its file in ``folder`` (``--pretrained``), in place.

    Raises:
        PipelineError: A download with no file in ``folder`` (or no folder), or a local file that does not exist;
            one line naming the config field, the source and both ways out.
    """
    for where, holder, key in weights_sources(cfg):
        source = holder[key]
        if not source.startswith(REMOTE_SCHEMES):
            if not Path(source).expanduser().is_file():
                raise PipelineError(f"{label}: {where} names {source}, which does not exist")
            continue
        path = local_weights(source, folder)
        if path is None:
            pattern = _weights_file(source)[0]
            given = f"--pretrained {folder} has no {pattern}" if folder else f"give --pretrained DIR holding {pattern}"
            raise PipelineError(f"{label}: {where} wants pretrained weights from {source}, which cannot be "
                                f"downloaded here; {given}, or remove {where.rsplit('.', 1)[0]} (random init)")
        holder[key] = str(path)


# Keys of the heads' channel counts that follow the neck's output channels (RPN, RoI extractor, box heads).
_HEAD_CHANNEL_KEYS = ("in_channels", "feat_channels", "out_channels")


def apply_compact(model: dict[str, Any], compact: CompactModel) -> None:
    """Make a ResNet row's model the :class:`~pipelines.presets.CompactModel` (in place): backbone depth and width,
    the neck's in/out channels, and every head channel count that followed the neck's, and the box heads' width.

    Raises:
        PipelineError: The row's backbone is not a plain ResNet (MobileNetV2, DetectoRS' SAC ResNet).
    """
    backbone, neck = model["backbone"], model["neck"]
    if backbone.get("type") != "ResNet":
        raise PipelineError(f"the compact model replaces ResNet backbones only, got {backbone.get('type')!r}")
    expansion = 1 if compact.depth in (18, 34) else 4
    backbone.update(depth=compact.depth, base_channels=compact.base_channels)
    stages = [compact.base_channels * expansion * 2**i for i in range(backbone.get("num_stages", 4))]
    used = backbone.get("out_indices", (0, 1, 2, 3))
    old = neck["out_channels"]
    neck.update(in_channels=[stages[i] for i in used], out_channels=compact.neck_channels)

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key in _HEAD_CHANNEL_KEYS:
                if node.get(key) == old:
                    node[key] = compact.neck_channels
            if "fc_out_channels" in node:
                node["fc_out_channels"] = compact.head_channels
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)

    for key, part in model.items():
        if key not in ("backbone", "neck", "data_preprocessor", "train_cfg", "test_cfg"):
            visit(part)


def load_detector_config(detector: Detector) -> Any:
    """Load a row's config file as an mmengine ``Config`` (requires mmengine)."""
    if detector.config is None:
        raise NotAvailableError(f"{detector.label} is not reproduced (the paper's figures only)")
    from mmengine.config import Config

    return Config.fromfile(str(CONFIG_DIR / detector.config))


def apply_schedule(cfg: Any, settings: Settings) -> None:
    """Apply the preset's input size, schedule, batch, logging, the checkpoints kept and the evaluator's area rule
    to a config (in place)."""
    scale = (settings.img_scale, settings.img_scale)
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        for step in cfg[loader].dataset.pipeline:
            if step["type"] == "Resize":
                step["scale"] = scale
    if settings.train_crop is not None:
        # Crops that hold no object are drawn again (the dataset refetches), so no iteration is spent on background.
        train = cfg.train_dataloader.dataset.pipeline
        at = next(i for i, step in enumerate(train) if step["type"] == "Resize") + 1
        train.insert(at, dict(type="RandomCrop", crop_size=(settings.train_crop, settings.train_crop),
                              allow_negative_crop=False))
    cfg.train_dataloader.batch_size = settings.batch_per_gpu
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader"):
        cfg[loader].num_workers = settings.num_workers
        cfg[loader].persistent_workers = settings.num_workers > 0
    cfg.train_cfg.max_epochs = settings.max_epochs
    cfg.train_cfg.val_interval = settings.val_interval or settings.max_epochs
    # Every epoch is saved (a job resumes from its last); "last" removes the one before once the next is written
    # (a stock config keeps them all: 2.4 GB for a short run), the best is kept beside it.
    cfg.default_hooks.checkpoint.max_keep_ckpts = 1 if settings.keep_checkpoints == "last" else -1
    if settings.val_interval:
        # Keep the best epoch by AI-TOD AP; the job saves each epoch's checkpoint after its validation, so the
        # best record travels with the checkpoint a resume starts from.
        cfg.default_hooks.checkpoint.save_best = "aitod/AP"
        cfg.default_hooks.checkpoint.rule = "greater"
    if settings.area_from_box:
        for name in ("val_evaluator", "test_evaluator"):
            cfg[name].area_from_box = True
    warmup, steps = cfg.param_scheduler
    warmup["end"] = settings.warmup_iters
    steps["end"] = settings.max_epochs
    steps["milestones"] = list(settings.milestones)
    if settings.optimizer == "adamw":
        cfg.optim_wrapper.optimizer = dict(type="AdamW", lr=ADAMW_LR, weight_decay=0.05)
    cfg.optim_wrapper.optimizer.lr = round(cfg.optim_wrapper.optimizer.lr * settings.lr_factor, 10)
    if settings.clip_grad is not None:
        cfg.optim_wrapper.clip_grad = dict(max_norm=settings.clip_grad, norm_type=2)
    cfg.auto_scale_lr = dict(enable=settings.auto_scale_lr, base_batch_size=2)
    cfg.default_hooks.logger.interval = settings.log_interval
    add_tensorboard(cfg)
    if settings.max_per_img is not None:
        cap_per_image(cfg.model, settings.max_per_img)
    if settings.backend == "gloo":
        # The NCCL backend does not exist on CPU; gloo serves CPU-only distributed runs.
        cfg.env_cfg.dist_cfg = dict(backend="gloo")
    # The process count sets the iterations per epoch and the effective batch: part of the job's identity (its
    # fingerprint), so a job is never resumed with another count, where its epochs would have another length.
    # pipelines.job reads val_interval from here (0: evaluate once, after training).
    cfg.job = dict(
        processes=settings.processes, effective_batch=settings.effective_batch, val_interval=settings.val_interval
    )
    resolve_variables(cfg)


def resolve_variables(cfg: Any) -> None:
    """Rewrite the base config's top-level variables with the values the job uses (in place).

    A config file's variables (``data_root``, ``metainfo``, ``img_scale``, ``train_pipeline``, ``max_epochs``...)
    were copied into the loaders and schedule when it was loaded; the job changes those copies, and the
    variables would stay in ``job_config.py`` with the base's values (AI-TOD's root and classes, 800 px, 12
    epochs). Each one present is set to what the job reads, so the file read alone tells the truth.
    """
    train, test = cfg.train_dataloader.dataset, cfg.test_dataloader.dataset
    values = dict(data_root=train.get("data_root"), metainfo=train.get("metainfo"),
                  train_pipeline=train.get("pipeline"), test_pipeline=test.get("pipeline"),
                  max_epochs=cfg.train_cfg.get("max_epochs"))
    values["classes"] = (values["metainfo"] or {}).get("classes")
    scales = [step["scale"] for step in train.get("pipeline") or () if step.get("type") == "Resize" and "scale" in step]
    values["img_scale"] = scales[0] if scales else None
    for key, value in values.items():
        if key in cfg and value is not None:
            cfg[key] = copy.deepcopy(value)


def add_tensorboard(cfg: Any) -> None:
    """Log the job's scalars through MMEngine's TensorBoard backend too (in place; the toolkit's configs name it
    already, a user's config file may not)."""
    visualizer = cfg.get("visualizer")
    if visualizer is None:
        return
    backends = list(visualizer.get("vis_backends") or [])
    if not any(b.get("type") == "TensorboardVisBackend" for b in backends):
        visualizer["vis_backends"] = [*backends, dict(type="TensorboardVisBackend")]


def apply_seed(cfg: Any, seed: int) -> None:
    """Seed a job (in place): mmengine's ``randomness`` (init, augmentation draws) and the train sampler's shuffle.

    The sampler's seed is given explicitly: left ``None`` it would be drawn from numpy's global state, so the data
    order would hang on every numpy draw made before the loader is built. ``deterministic`` stays off (module
    notes of :mod:`pipelines.seeds`).
    """
    cfg.randomness = dict(seed=seed)
    sampler = cfg.train_dataloader.get("sampler")
    if sampler is not None:
        sampler["seed"] = seed


def cap_per_image(model: dict[str, Any], cap: int) -> None:
    """Cap every ``nms_pre`` / ``max_per_img`` in a model's train / test settings at ``cap`` (in place)."""

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("nms_pre", "max_per_img"):
                if isinstance(node.get(key), int) and node[key] > cap:
                    node[key] = cap
            for value in node.values():
                visit(value)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item)

    for part in ("train_cfg", "test_cfg"):
        visit(model.get(part))


def build_job_config(
    detector: Detector, variant: NeckVariant, layout: DatasetLayout, settings: Settings, seed: int = 0
) -> Any:
    """The fully resolved config of one job.

    Args:
        detector: The row.
        variant: The neck variant.
        layout: The dataset to train and evaluate on.
        settings: The resolved run settings.
        seed: The job's training seed (:func:`apply_seed`).

    Returns:
        An mmengine ``Config`` ready for ``Runner.from_cfg`` (``work_dir`` is set by the job).

    Raises:
        NotAvailableError: The row is not reproduced (the paper's figures only).
        PipelineError: Pretrained weights are missing from ``--pretrained``.
    """
    cfg = load_detector_config(detector)
    overrides = label_assignment(detector)
    if overrides:
        cfg.merge_from_dict(dict(model=overrides))
    model = cfg.model.to_dict()
    if settings.compact is not None:
        apply_compact(model, settings.compact)
    model = swap_neck(model, variant)
    _apply_pretrained(model, pretrained_file(detector, settings.pretrained))
    from mmengine.config import ConfigDict

    cfg.model = ConfigDict(model)
    apply_dataset(cfg, layout)
    apply_schedule(cfg, settings)
    apply_seed(cfg, seed)
    return cfg
