"""One way to load a model: resolve ``--config`` (a row id or a config file) and ``--neck``, read a checkpoint
without running code from it, build the detector and load the weights.

``detect``, ``train`` and ``visualize`` resolve their models here. Weights files are read by
:func:`hsfpn.checkpoints.load_weights_file` (weights-only under an explicit allowlist; the toolkit's one
``torch.load``), and a job resumes inside :func:`hsfpn.checkpoints.checkpoint_globals`, only from a checkpoint whose
digest it recorded when it saved it (:meth:`pipelines.job_folder.JobFolder.trusted_checkpoint`), so a planted
file is refused by name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hsfpn.checkpoints import load_weights_file
from hsfpn.errors import first_line

from .errors import PipelineError


class ModelError(PipelineError):
    """A model cannot be resolved or loaded: unknown row or neck, a bad config, an unreadable or unfitting file."""


@dataclass(frozen=True)
class Checkpoint:
    """A weights file's content: the state dict (DDP's ``module.`` prefix removed) and its meta."""

    state: dict[str, Any]
    meta: dict[str, Any]

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names of the dataset it was trained on (``meta['dataset_meta']['classes']``), if given."""
        return tuple((self.meta.get("dataset_meta") or {}).get("classes") or ())

    @property
    def category_ids(self) -> tuple[int, ...] | None:
        """The training json's category id of each class (``meta['dataset_meta']['category_ids']``, written by
        the toolkit's jobs), or None when the file does not give one integer per class."""
        ids = (self.meta.get("dataset_meta") or {}).get("category_ids")
        if not isinstance(ids, (list, tuple)) or len(ids) != len(self.classes) or len(set(ids)) != len(ids):
            return None
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            return None
        return tuple(ids)


@dataclass
class ModelConfig:
    """A resolved ``--config`` / ``--neck``.

    Attributes:
        cfg: The mmengine ``Config``.
        source: What ``--config`` named (a row id or a file).
        row: Whether ``source`` is a row id of :data:`pipelines.detectors.DETECTORS` (its heads may then be
            sized to a checkpoint's classes).
        neck: The neck variant applied, or ``None`` when the config keeps its own.
    """

    cfg: Any
    source: str
    row: bool
    neck: str | None

    @property
    def label(self) -> str:
        return f"row {self.source}" if self.row else self.source


@dataclass
class LoadedModel:
    """A built detector in eval mode with its weights.

    Attributes:
        model: The MMDetection model.
        classes: Class names, in label order.
        cfg: Its config.
        identity: A digest of the resolved config and the weights file (what a resumed run compares).
        category_ids: The training json's category id of each class, when the checkpoint records them.
    """

    model: Any
    classes: tuple[str, ...]
    cfg: Any
    identity: str
    category_ids: tuple[int, ...] | None = None


def read_checkpoint(path: Path, *, what: str = "--checkpoint", error: type[Exception] = ModelError) -> Checkpoint:
    """Read a weights file (module notes: nothing in it runs).

    Args:
        path: The file: a state dict, or a dict with ``state_dict`` (and ``meta``), as MMEngine and this toolkit
            write them.
        what: The option that named it, for messages.
        error: The exception type to raise (each command raises its own domain error).

    Raises:
        error: Missing file, a file that is not a weights-only checkpoint (or holds other objects), no weights.
    """
    raw = load_weights_file(path, label=f"{what} {path}", error=error)
    state = raw.get("state_dict", raw) if isinstance(raw, dict) else None
    if not isinstance(state, dict) or not state:
        raise error(f"{what} {path}: expected a dict of weights or a 'state_dict' entry")
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    return Checkpoint({str(k).removeprefix("module."): v for k, v in state.items()}, meta)


# ---------------------------------------------------------------------------------------------
# Resolving --config and --neck
# ---------------------------------------------------------------------------------------------


def _load_file(path: Path, error: type[Exception]) -> Any:
    from mmengine.config import Config

    try:
        return Config.fromfile(str(path))
    except Exception as exc:  # mmengine raises many kinds for a broken config file
        raise error(f"--config {path}: cannot load it ({first_line(exc)})") from None


def resolve_config(
    config: str,
    neck: str | None = None,
    *,
    necks: Collection[str] = ("fpn", "hsfpn"),
    row_neck: str | None = "hsfpn",
    error: type[Exception] = ModelError,
) -> ModelConfig:
    """The config ``--config`` names, with ``--neck`` applied.

    Args:
        config: A row id of :data:`pipelines.detectors.DETECTORS` or a config file.
        neck: A neck variant of :data:`pipelines.detectors.VARIANTS`; None: ``row_neck`` for a row, the file's
            own neck for a file.
        necks: The variants the caller accepts.
        row_neck: The variant a row gets without ``--neck`` (None: the row config's own FPN).
        error: The exception type to raise.

    Returns:
        The resolved config. A file's own HS-FPN is kept under ``--neck hsfpn``; ``--neck fpn`` asks for a
        file whose neck is an FPN.

    Raises:
        error: Neither a row id nor a file, a row without a config, an unknown neck, a neck that cannot be
            swapped (no neck, or another kind).
    """
    from .detectors import DETECTORS, VARIANTS, load_detector_config, swap_neck

    if neck is not None and neck not in necks:
        raise error(f"--neck must be one of {', '.join(necks)}, got {neck!r}")
    if config in DETECTORS:
        if not DETECTORS[config].reproduced:
            raise error(f"--config {config}: {DETECTORS[config].label} has no config in this toolkit")
        cfg, variant = load_detector_config(DETECTORS[config]), neck or row_neck
    elif Path(config).is_file():
        cfg, variant = _load_file(Path(config), error), neck
        if not isinstance(cfg.get("model"), dict):  # ConfigDict is a dict
            raise error(f"--config {config}: no 'model' dict in the file: not an MMDetection detector config")
    else:
        rows = ", ".join(k for k, d in DETECTORS.items() if d.reproduced)
        raise error(f"--config {config}: neither a row id ({rows}) nor a config file")
    resolved = ModelConfig(cfg, config, config in DETECTORS, variant)
    if variant is None:
        return resolved
    neck_cfg = cfg.model.get("neck")
    if isinstance(neck_cfg, (list, tuple)):  # a chain of necks, such as Libra R-CNN's FPN then BFP
        raise error(f"--neck {variant}: config {resolved.label} chains {len(neck_cfg)} necks; --neck swaps a "
                    "single FPN neck")
    current = neck_cfg.get("type") if isinstance(neck_cfg, dict) else None
    if current is None:
        raise error(f"--neck {variant}: config {resolved.label} has no neck to swap")
    wanted = VARIANTS[variant]
    if not wanted.hsfpn and current not in ("FPN", "RFP"):
        raise error(f"--neck {variant}: config {resolved.label} has a {current} neck; give a config with an FPN")
    if wanted.hsfpn and current == "HSFPN" and variant == "hsfpn":
        return resolved  # a config's own HS-FPN is kept as it is
    try:
        from mmengine.config import ConfigDict

        cfg.model = ConfigDict(swap_neck(cfg.model.to_dict(), wanted))
    except PipelineError as exc:
        raise error(f"--neck {variant}: config {resolved.label}: {exc}") from None
    return resolved


# ---------------------------------------------------------------------------------------------
# Building and loading
# ---------------------------------------------------------------------------------------------


def _visit_num_classes(node: Any, found: list[int], count: int | None, key: str = "") -> None:
    # Every head's num_classes (an RPN's is its objectness, not a class count); set to ``count`` when given.
    if isinstance(node, dict):
        if "num_classes" in node and key != "rpn_head":
            found.append(int(node["num_classes"]))
            if count is not None:
                node["num_classes"] = count
        for k, v in node.items():
            _visit_num_classes(v, found, count, k)
    elif isinstance(node, (list, tuple)):
        for item in node:
            _visit_num_classes(item, found, count, key)


def num_classes(model_cfg: Any, set_to: int | None = None) -> list[int]:
    """The class counts of a model config's heads (and set them to ``set_to`` when given); returns the counts
    found before any change."""
    found: list[int] = []
    _visit_num_classes(model_cfg, found, set_to)
    return found


def _config_classes(cfg: Any) -> tuple[str, ...]:
    try:
        return tuple(cfg.test_dataloader.dataset.metainfo.classes)
    except (AttributeError, KeyError, TypeError):
        return ()


def build_model(cfg: Any) -> Any:
    """The detector of a config, randomly initialised, on the CPU (HS-FPN and the config's imports registered)."""
    import hsfpn.mmdet  # noqa: F401  (registers HSFPN, the metric and the assigners)
    from mmdet.registry import MODELS
    from mmengine.registry import init_default_scope

    init_default_scope(cfg.get("default_scope", "mmdet"))
    imports = cfg.get("custom_imports")
    if imports:  # modules a config file the user gave names: part of trusting that file
        from mmengine.utils import import_modules_from_strings

        import_modules_from_strings(**imports)
    return MODELS.build(cfg.model)


def _load_state(model: Any, checkpoint: Checkpoint, path: Path, resolved: ModelConfig, error: type[Exception]) -> None:
    own = model.state_dict()
    for key, value in checkpoint.state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            counts = num_classes(resolved.cfg.model)
            raise error(
                f"checkpoint {path} does not fit config {resolved.label}: {key} is {tuple(value.shape)} there and "
                f"{tuple(own[key].shape)} in the model (another class count? the checkpoint names "
                f"{len(checkpoint.classes)} classes{', the config ' + str(counts[0]) if counts else ''})"
            )
    missing = sorted(set(own) - set(checkpoint.state))
    unexpected = sorted(set(checkpoint.state) - set(own))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise error(f"checkpoint {path} does not fit config {resolved.label}: {len(missing)} weights missing, "
                    f"{len(unexpected)} unexpected ({what}; another neck or detector?)")
    model.load_state_dict(checkpoint.state, strict=True)


def load_model(resolved: ModelConfig, checkpoint: Path, *, device: str = "cpu",
               error: type[Exception] = ModelError) -> LoadedModel:
    """Build ``resolved``'s detector and load ``checkpoint`` into it, strictly, in eval mode on ``device``.

    Class names come from the checkpoint's ``meta['dataset_meta']['classes']`` when it has them; a row's heads
    are then sized to them. A config file must already have that many classes.

    Raises:
        error: An unreadable checkpoint (:func:`read_checkpoint`), another class count, weights that do not fit.
    """
    checkpoint = Path(checkpoint)
    weights = read_checkpoint(checkpoint, error=error)
    cfg, classes = resolved.cfg, weights.classes
    counts = num_classes(cfg.model)
    if classes and counts and counts[0] != len(classes):
        if not resolved.row:
            raise error(f"checkpoint {checkpoint} has {len(classes)} classes, config {resolved.label} has {counts[0]}")
        num_classes(cfg.model, set_to=len(classes))
    if not classes:
        classes = _config_classes(cfg) or tuple(f"class_{k}" for k in range(counts[0] if counts else 1))
    model = build_model(cfg)
    _load_state(model, weights, checkpoint, resolved, error)
    model.cfg = cfg
    ids = weights.category_ids if weights.classes == classes else None
    model.dataset_meta = dict(classes=classes) if ids is None else dict(classes=classes, category_ids=list(ids))
    model.to(device)
    model.eval()
    # The resolved config's content (pretty_text would run a code formatter: seconds for nothing) and the file.
    stat = checkpoint.stat()
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str) + f"{checkpoint.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    return LoadedModel(model, classes, cfg, hashlib.sha256(text.encode()).hexdigest()[:16], ids)
