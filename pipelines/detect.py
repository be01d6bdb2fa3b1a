"""Large-scene inference: ``hsfpn-repro detect``: windows -> batches -> MMDetection model -> merge -> outputs.

Each image is probed (header only), decoded once by the builder's decoder, scaled as the builder scales
(``scale.scaled_size`` and ``resize_image`` with its interpolation), and cut into the builder's windows
(``split.get_windows``: the same flush-to-edge rule; ``worker.crop_window``: the same bottom/right padding).
Windows are views of the decoded array (only edge windows of images smaller than a window are padded copies);
a background thread decodes, scales and prepares batches while the model runs earlier ones: in ``workers``
processes of one torch thread each on a CPU, in this process on a GPU (``pipelines.model_pool``; results come
back in window order and do not depend on the worker count). Detections are mapped back to full-image
coordinates with the exact per-axis ratios of the scaled size and merged across windows and scales by
:func:`dotamini10.merge.merge_detections`.

Outputs in ``OUT``:

* ``images/{name}.json`` per image (written atomically when the image is finished; ``--resume`` skips images
  whose file was written with the same model and options);
* ``previews/{name}.png``, the scene downscaled with its boxes drawn;
* ``results.bbox.json`` (COCO results; image ids from a ground-truth JSON when given, matched by file name,
  else the ids of ``images.json``) and ``Task2_{class}.txt`` (DOTA's server format), rebuilt from the
  per-image files at the end of every run;
* ``detect.json``: the options, the model, and every image's outcome.

Bad input (a missing, unreadable or truncated image, or one over ``max_side`` pixels a side at a scale) is
one line in the outcome and the other images go on; nothing of that image is written.
"""

from __future__ import annotations

import enum
import hashlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import atomic_write_bytes, folder_lock, read_json_if_valid, write_json
from dotamini10.merge import MergeOptions, merge_detections, task2_lines
from dotamini10.read import IMAGE_SUFFIXES, ImageProbeError, decode_image, probe_image
from dotamini10.scale import INTERPOLATIONS, factor_tag, resize_image, scaled_size
from dotamini10.split import get_windows
from dotamini10.worker import crop_window

from .errors import PipelineError
from .model_pool import ModelRunner, WindowDetections, default_workers

MAX_SIDE = 20_000
PREVIEW_SIDE = 2048
IMAGES_DIR, PREVIEWS_DIR = "images", "previews"
COCO_RESULTS, IMAGE_LIST, SUMMARY = "results.bbox.json", "images.json", "detect.json"
# Checkpoint contents torch's safe loader is allowed to rebuild besides tensors (mmengine's bookkeeping).
_SAFE_GLOBALS = ("mmengine.logging.history_buffer.HistoryBuffer", "numpy._core.multiarray._reconstruct",
                 "numpy.ndarray", "numpy.dtype", "numpy._core.multiarray.scalar")


class DetectError(PipelineError):
    """``detect`` cannot run: a bad config or checkpoint, options out of range, a checkpoint that does not fit."""


class ImageError(PipelineError):
    """One image cannot be detected (missing, unreadable, truncated, too large); the others go on."""


class Status(enum.Enum):
    """What happened to one image in a run."""

    DONE = "done"
    RESUMED = "skipped (finished before)"
    FAILED = "failed"


@dataclass(frozen=True)
class DetectOptions:
    """How scenes are cut, run and merged.

    Args:
        scales: Factors the scene is run at (each as the builder scales). Defaults to ``(1.0,)``.
        window: Window side in pixels. Defaults to 1024.
        stride: Window step. Defaults to 768.
        score: Drop detections scoring below this. Defaults to 0.05.
        batch: Windows per model call. Defaults to 1: on a CPU, batches make the convolutions slower (measured
            in ``benchmarks/bench_detect.py``); on a GPU a larger batch pays.
        device: ``cpu`` or ``cuda`` (``cuda:N``).
        workers: Model processes on a CPU, one torch thread each (``model_pool`` notes: results do not depend
            on it). None: one per core, at most 8. Ignored on a GPU, where the model runs in this process.
        merge: The merge; defaults to class-wise NMS at IoU 0.5 with at most 10,000 detections per image.
        interpolation: The builder's resizing filter. Defaults to ``area``.
        pad_value: Padding of windows past a small image's edge. Defaults to 0 (the builder's).
        max_side: Largest side accepted at any scale. Defaults to 20,000.
        preview_side: Longest side of the previews. Defaults to 2048.
    """

    scales: tuple[float, ...] = (1.0,)
    window: int = 1024
    stride: int = 768
    score: float = 0.05
    batch: int = 1
    device: str = "cpu"
    workers: int | None = None
    merge: MergeOptions = MergeOptions(max_per_image=10_000)
    interpolation: str = "area"
    pad_value: int = 0
    max_side: int = MAX_SIDE
    preview_side: int = PREVIEW_SIDE

    def __post_init__(self) -> None:
        if not self.scales or any(not s > 0 for s in self.scales):
            raise DetectError(f"--scales: expected positive factors, got {list(self.scales)}")
        if self.window < 32 or not 0 < self.stride <= self.window:
            raise DetectError(f"--window/--stride: expected window >= 32 and 0 < stride <= window, got "
                              f"{self.window}, {self.stride}")
        if self.batch < 1:
            raise DetectError(f"--batch: expected at least 1, got {self.batch}")
        if self.workers is not None and self.workers < 1:
            raise DetectError(f"--workers: expected at least 1, got {self.workers}")
        if self.interpolation not in INTERPOLATIONS:
            raise DetectError(f"interpolation: expected one of {', '.join(INTERPOLATIONS)}")

    @property
    def model_workers(self) -> int:
        """The model processes this run uses."""
        return default_workers(self.device) if self.workers is None else self.workers

    def to_json(self) -> dict[str, Any]:
        """The options that decide the outputs (batch, device and workers do not)."""
        return dict(scales=list(self.scales), window=self.window, stride=self.stride, score=self.score,
                    merge=self.merge.to_json(), interpolation=self.interpolation, pad_value=self.pad_value,
                    max_side=self.max_side)


@dataclass
class ImageOutcome:
    """One image's fate.

    Attributes:
        path: The image as given.
        name: Its name without suffix (the per-image file's name, the Task2 image field).
        status: Done, resumed or failed.
        windows: Windows run.
        detections: Detections kept.
        error: The one-line reason of a failure.
    """

    path: Path
    name: str
    status: Status
    windows: int = 0
    detections: int = 0
    error: str = ""


@dataclass
class DetectSummary:
    """A run's result: every image's outcome, the files written and the throughput."""

    out: Path
    classes: tuple[str, ...]
    outcomes: list[ImageOutcome] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    windows: int = 0
    seconds: float = 0.0

    @property
    def windows_per_s(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Detector:
    """A loaded model with its class names and window pipeline."""

    model: Any
    classes: tuple[str, ...]
    pipeline: Any
    identity: str


def load_detector(config: str, checkpoint: Path, *, neck: str | None = None, device: str = "cpu") -> Detector:
    """Build the model of ``config`` (a row id of ``pipelines.detectors`` or an MMDetection config file) and
    load ``checkpoint`` into it.

    Class names come from the checkpoint's ``meta['dataset_meta']['classes']`` when it has them; a row id's heads
    are then sized to them. Raises :class:`DetectError` for a missing file, an unknown row, or a checkpoint that
    does not fit the model (another class count, another neck).
    """
    from mmdet.registry import MODELS
    from mmengine.config import ConfigDict
    from mmengine.registry import init_default_scope

    state, meta = _read_checkpoint(Path(checkpoint))
    cfg, label = _config(config)
    classes = tuple(meta.get("dataset_meta", {}).get("classes", ()) or ())
    if neck is not None:
        from .detectors import VARIANTS, swap_neck

        if neck not in ("fpn", "hsfpn"):
            raise DetectError(f"--neck must be fpn or hsfpn, got {neck!r}")
        current = cfg.model.get("neck", {}).get("type")
        if current is None:
            raise DetectError(f"--neck {neck}: config {label} has no neck to swap")
        if neck == "fpn" and current == "HSFPN":
            raise DetectError(f"--neck fpn: config {label} has an HS-FPN neck; give a config with an FPN")
        if not (neck == "hsfpn" and current == "HSFPN"):  # a config's own HS-FPN is kept as it is
            cfg.model = ConfigDict(swap_neck(cfg.model.to_dict(), VARIANTS[neck]))
    counts = _num_classes(cfg.model)
    if classes and label.startswith("row ") and counts:
        _set_num_classes(cfg.model, len(classes))
    elif classes and counts and counts[0] != len(classes):
        raise DetectError(f"checkpoint {checkpoint} has {len(classes)} classes, config {label} has {counts[0]}")
    if not classes:
        classes = _config_classes(cfg) or tuple(f"class_{k}" for k in range(counts[0] if counts else 1))
    init_default_scope(cfg.get("default_scope", "mmdet"))
    _import_custom(cfg)
    model = MODELS.build(cfg.model)
    _load_state(model, state, checkpoint, label, len(classes), _num_classes(cfg.model))
    model.cfg = cfg
    model.dataset_meta = dict(classes=classes)
    model.to(device)
    model.eval()
    # The resolved config's content (pretty_text would run a code formatter: seconds for nothing) and the file.
    text = json.dumps(cfg.to_dict(), sort_keys=True, default=str) + _file_identity(Path(checkpoint))
    identity = hashlib.sha256(text.encode()).hexdigest()[:16]
    return Detector(model, classes, _window_pipeline(cfg), identity)


def _read_checkpoint(path: Path) -> tuple[dict, dict]:
    import torch

    if not path.is_file():
        raise DetectError(f"--checkpoint {path}: file not found")
    try:
        with torch.serialization.safe_globals([g for g in map(_resolve, _SAFE_GLOBALS) if g is not None]):
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... for bad files
        if not _toolkit_checkpoint(path):
            raise DetectError(f"--checkpoint {path}: not a loadable weights file ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160]})") from None
        # The toolkit's own job checkpoint (written by ``hsfpn-repro table*`` into a job folder): trusted.
        raw = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(raw, dict):
        raise DetectError(f"--checkpoint {path}: expected a dict of weights, got {type(raw).__name__}")
    state = raw.get("state_dict", raw)
    meta = raw.get("meta") if isinstance(raw.get("meta"), dict) else {}
    return {k.removeprefix("module."): v for k, v in state.items()}, meta


def _resolve(name: str) -> Any:
    import importlib

    module, _, attr = name.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError):
        return None


def _toolkit_checkpoint(path: Path) -> bool:
    # A job folder of pipelines.runner holds the job's identity file beside its checkpoints.
    from .runner import IDENTITY

    return (path.resolve().parent / IDENTITY).is_file()


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def _config(config: str) -> tuple[Any, str]:
    from mmengine.config import Config

    from .detectors import DETECTORS, load_detector_config

    if config in DETECTORS:
        return load_detector_config(DETECTORS[config]), f"row {config}"
    path = Path(config)
    if not path.is_file():
        raise DetectError(f"--config {config}: neither a row id ({', '.join(DETECTORS)}) nor a config file")
    try:
        return Config.fromfile(str(path)), str(path)
    except Exception as exc:  # mmengine raises many kinds for a broken config file
        raise DetectError(f"--config {path}: cannot load ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from None


def _import_custom(cfg: Any) -> None:
    imports = cfg.get("custom_imports")
    if imports:
        from mmengine.utils import import_modules_from_strings

        import_modules_from_strings(**imports)


def _num_classes(model: Any) -> list[int]:
    found: list[int] = []

    def visit(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "num_classes" in node and key != "rpn_head":
                found.append(int(node["num_classes"]))
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item, key)

    visit(model)
    return found


def _set_num_classes(model: Any, count: int) -> None:
    def visit(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            if "num_classes" in node and key != "rpn_head":
                node["num_classes"] = count
            for k, v in node.items():
                visit(v, k)
        elif isinstance(node, (list, tuple)):
            for item in node:
                visit(item, key)

    visit(model)


def _config_classes(cfg: Any) -> tuple[str, ...]:
    try:
        return tuple(cfg.test_dataloader.dataset.metainfo.classes)
    except (AttributeError, KeyError, TypeError):
        return ()


def _load_state(model: Any, state: dict, checkpoint: Path, label: str, n_classes: int, counts: list[int]) -> None:
    own = model.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise DetectError(
                f"checkpoint {checkpoint} does not fit config {label}: {key} is {tuple(value.shape)} there and "
                f"{tuple(own[key].shape)} in the model (another class count? the checkpoint names {n_classes} "
                f"classes{', the config ' + str(counts[0]) if counts else ''})"
            )
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if missing or unexpected:
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise DetectError(f"checkpoint {checkpoint} does not fit config {label}: {len(missing)} weights missing, "
                          f"{len(unexpected)} unexpected ({what}; another neck or detector?)")
    model.load_state_dict(state, strict=True)


def _window_pipeline(cfg: Any) -> Any:
    """The config's test pipeline for in-memory windows: loading from an array, no annotations."""
    import copy

    from mmcv.transforms import Compose

    steps = copy.deepcopy(cfg.test_dataloader.dataset.pipeline)
    steps = [s for s in steps if "LoadAnnotations" not in s["type"]]
    steps[0] = dict(type="mmdet.LoadImageFromNDArray")
    return Compose(steps)


# ---------------------------------------------------------------------------------------------------------------
# Producer: images -> windows -> prepared batches
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class ImagePlan:
    """One image to run: its header size and, per scale, the scaled size and windows."""

    path: Path
    name: str
    size: tuple[int, int]
    scales: list[tuple[float, tuple[int, int], np.ndarray]]

    @property
    def windows(self) -> int:
        return sum(len(w) for _, _, w in self.scales)


@dataclass
class Batch:
    """Prepared windows of one image: model inputs and where each window lies."""

    name: str
    data: dict[str, list]
    origins: list[tuple[int, int, float, float, int, int]]  # x0, y0, ratio x, ratio y, valid w, valid h


@dataclass
class ImageEnd:
    """An image's last batch has been queued; ``preview`` is its downscaled copy."""

    plan: ImagePlan
    preview: np.ndarray
    preview_scale: float


@dataclass
class ImageFailed:
    """An image could not be read."""

    plan: ImagePlan
    error: str


def plan_image(path: Path, options: DetectOptions) -> ImagePlan:
    """Probe one image and lay out its windows at every scale.

    Raises:
        ImageError: Missing, unreadable or truncated file, or a side over ``options.max_side`` at a scale.
    """
    if not path.is_file():
        raise ImageError(f"{path}: image file not found")
    try:
        info = probe_image(path)
    except ImageProbeError as exc:
        raise ImageError(f"{path}: {exc.reason.replace('_', ' ')}: {exc.detail}") from None
    scales = []
    for factor in sorted(set(options.scales)):
        sw, sh = scaled_size(info.width, info.height, factor)
        if max(sw, sh) > options.max_side:
            raise ImageError(f"{path}: {sw:,} x {sh:,} px at scale {factor_tag(factor)} is over the "
                             f"{options.max_side:,} px limit a side")
        scales.append((factor, (sw, sh), get_windows(sw, sh, crop_size=options.window, stride=options.stride)))
    return ImagePlan(path, path.stem, (info.width, info.height), scales)


def produce(plans: Sequence[ImagePlan], pipeline: Any, options: DetectOptions) -> Iterator[Batch | ImageEnd | ImageFailed]:
    """Decode, scale, cut and prepare every planned image, one image in memory at a time."""
    for plan in plans:
        try:
            image = decode_image(plan.path, channels="bgr")
            if (image.shape[1], image.shape[0]) != plan.size:
                raise ImageProbeError("unreadable_image", f"decoded size {image.shape[1]} x {image.shape[0]} "
                                      f"differs from the header's {plan.size[0]} x {plan.size[1]}")
        except ImageProbeError as exc:
            yield ImageFailed(plan, f"{plan.path}: {exc.reason.replace('_', ' ')}: {exc.detail}")
            continue
        preview, preview_scale = _downscale(image, options.preview_side)
        for factor, (sw, sh), windows in plan.scales:
            pixels = resize_image(image, (sw, sh), interpolation=options.interpolation)
            for start in range(0, len(windows), options.batch):
                part = windows[start:start + options.batch]
                yield _prepare(plan, pixels, part, pipeline, options.pad_value, factor)
            del pixels
        del image
        yield ImageEnd(plan, preview, preview_scale)


def _prepare(plan: ImagePlan, pixels: np.ndarray, windows: np.ndarray, pipeline: Any, pad_value: int,
             factor: float) -> Batch:
    inputs, samples, origins = [], [], []
    sh, sw = pixels.shape[:2]
    # Exact per-axis ratios of the rounded scaled size, as the builder scales polygons.
    rx, ry = plan.size[0] / sw, plan.size[1] / sh
    for x0, y0, x1, y1 in windows.tolist():
        crop = crop_window(pixels, np.array([x0, y0, x1, y1]), pad_value=pad_value)
        packed = pipeline(dict(img=crop, img_id=0))
        sample = packed["data_samples"]
        sample.set_metainfo(dict(scene=plan.name, scene_size=plan.size, scaled_size=(sw, sh),
                                 window=(x0, y0, x1, y1), scene_scale=factor))
        inputs.append(packed["inputs"])
        samples.append(sample)
        origins.append((x0, y0, rx, ry, min(x1, sw) - x0, min(y1, sh) - y0))
    return Batch(plan.name, dict(inputs=inputs, data_samples=samples), origins)


def _downscale(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    import cv2

    scale = min(1.0, side / max(image.shape[:2]))
    if scale == 1.0:
        return image.copy(), 1.0
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _background(items: Iterator[Any], depth: int = 2) -> Iterator[Any]:
    # Runs the producer in a thread (decoding, resizing and the pipeline release the GIL in their heavy parts),
    # at most ``depth`` items ahead of the model, so memory holds one image plus a couple of batches.
    box: queue.Queue = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def work() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        box.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            box.put(done)
        except BaseException as exc:  # handed to the consumer, which raises it
            box.put(exc)

    thread = threading.Thread(target=work, name="detect-producer", daemon=True)
    thread.start()
    try:
        while True:
            item = box.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------------------------
# Consumer: model, mapping back, merge, outputs
# ---------------------------------------------------------------------------------------------------------------


@dataclass
class _Pending:
    """Full-image detections of the image being run."""

    boxes: list[np.ndarray] = field(default_factory=list)
    scores: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    windows: int = 0


def add_batch(batch: Batch, found: list[WindowDetections], score: float, pending: _Pending) -> None:
    """Add one batch's detections (window pixels, as :func:`model_pool.infer` gives them) to ``pending``, in
    full-image coordinates."""
    for (boxes, scores, labels), (x0, y0, rx, ry, vw, vh) in zip(found, batch.origins, strict=True):
        boxes, scores = boxes.astype(np.float64), scores.astype(np.float64)
        keep = scores >= score
        boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        # Clip to the window's part of the image (padding is not image), then back to full-image pixels.
        boxes = np.clip(boxes, 0.0, np.array([vw, vh, vw, vh], dtype=np.float64))
        boxes = (boxes + np.array([x0, y0, x0, y0])) * np.array([rx, ry, rx, ry])
        pending.boxes.append(boxes)
        pending.scores.append(scores)
        pending.labels.append(labels)
        pending.windows += 1


def _finish_image(end: ImageEnd, pending: _Pending, detector: Detector, options: DetectOptions, out: Path,
                  fingerprint: str) -> ImageOutcome:
    boxes = np.concatenate(pending.boxes) if pending.boxes else np.zeros((0, 4))
    scores = np.concatenate(pending.scores) if pending.scores else np.zeros(0)
    labels = np.concatenate(pending.labels) if pending.labels else np.zeros(0, dtype=np.int64)
    merged = merge_detections(boxes, scores, labels, options=options.merge)
    plan = end.plan
    record = dict(
        image=plan.path.name, path=str(plan.path), width=plan.size[0], height=plan.size[1],
        fingerprint=fingerprint, scales=[s for s, _, _ in plan.scales], windows=pending.windows,
        classes=list(detector.classes), window_detections=int(len(boxes)),
        detections=dict(bbox=np.round(merged.boxes, 3).tolist(), score=np.round(merged.scores, 6).tolist(),
                        label=merged.labels.tolist()),
    )
    _write_preview(out / PREVIEWS_DIR / f"{plan.name}.png", end, merged, detector.classes, options.score)
    write_json(out / IMAGES_DIR / f"{plan.name}.json", record)
    return ImageOutcome(plan.path, plan.name, Status.DONE, pending.windows, len(merged))


def _write_preview(path: Path, end: ImageEnd, merged: Any, classes: Sequence[str], score: float) -> None:
    import cv2

    from dotamini10.png import encode_png

    canvas = np.ascontiguousarray(end.preview)
    palette = _palette(len(classes))
    s = end.preview_scale
    for box, label in zip(merged.boxes.tolist(), merged.labels.tolist(), strict=True):
        x1, y1, x2, y2 = (int(round(v * s)) for v in box)
        cv2.rectangle(canvas, (x1, y1), (max(x2, x1 + 1), max(y2, y1 + 1)), palette[label % len(palette)], 2)
    caption = f"{end.plan.path.name}: {len(merged):,} detections, score >= {score:g}"
    scale = max(canvas.shape[1] / 1400, 0.5)  # readable once the preview is shown a screen wide
    (w, h), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
    cv2.rectangle(canvas, (0, 0), (w + 16, h + 16), (0, 0, 0), -1)
    cv2.putText(canvas, caption, (8, h + 8), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 2, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, encode_png(canvas, compression=1, channels="bgr"))


def _palette(n: int) -> list[tuple[int, int, int]]:
    import colorsys

    return [tuple(int(255 * c) for c in colorsys.hsv_to_rgb(k / max(n, 1), 0.9, 1.0))[::-1] for k in range(n)]


# ---------------------------------------------------------------------------------------------------------------
# The run
# ---------------------------------------------------------------------------------------------------------------


def expand_images(paths: Sequence[Path]) -> list[Path]:
    """Image files of the arguments: files as given, folders as their image files in name order."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += [p for p in sorted(path.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            found.append(path)
    return found


def detect_images(
    images: Sequence[Path],
    out: Path,
    *,
    config: str,
    checkpoint: Path,
    neck: str | None = None,
    options: DetectOptions = DetectOptions(),
    gt: Path | None = None,
    resume: bool = False,
    progress: Callable[[int, int], None] | None = None,
    log: Callable[[str], None] | None = None,
) -> DetectSummary:
    """``hsfpn-repro detect``: run a detector over full scenes and write the merged results (module notes).

    Args:
        images: Image files or folders of images.
        out: Output folder.
        config: A row id (``cascade_rcnn``) or an MMDetection config file.
        checkpoint: The weights.
        neck: ``fpn`` or ``hsfpn`` to swap the config's neck; None keeps it.
        options: Cutting, batching and merging.
        gt: A COCO ground truth JSON whose image ids the COCO results take (matched by file name).
        resume: Skip images finished by an earlier run with the same model and options.
        progress: Called with (windows done, windows in all) after every batch.
        log: Receives one line per failed image.

    Returns:
        The summary.

    Raises:
        DetectError: The model cannot be loaded or the options are invalid.
    """
    out = Path(out)
    detector = load_detector(config, checkpoint, neck=neck, device=options.device)
    fingerprint = hashlib.sha256(json.dumps([detector.identity, options.to_json()]).encode()).hexdigest()[:16]
    log = log or (lambda _: None)
    with folder_lock(out, what="detect output", error=DetectError):  # one run at a time writes a folder
        summary = DetectSummary(out, detector.classes)
        plans = _plan_all(expand_images(images), options, out, fingerprint, resume, summary, log)
        collector = _Collector(detector, options, out, fingerprint, summary, sum(p.windows for p in plans),
                               progress, log)
        start = time.perf_counter()
        # The runner forks its model processes before the producer thread starts (module notes of model_pool).
        with ModelRunner(detector.model, options.device, options.model_workers) as runner:
            items = _background(produce(plans, detector.pipeline, options))
            for item, found in runner.ordered(items, lambda item: item.data if isinstance(item, Batch) else None):
                collector.take(item, found)
        summary.seconds = time.perf_counter() - start
        summary.windows = sum(o.windows for o in summary.outcomes if o.status is Status.DONE)
        summary.files = write_outputs(out, summary, gt)
        write_json(out / SUMMARY, _summary_record(summary, config, checkpoint, options, fingerprint), indent=2)
    return summary


@dataclass
class _Collector:
    """The consumer side of a run: takes the ordered stream, gathers the image being run, merges and writes it
    at its end, and fills the summary."""

    detector: Detector
    options: DetectOptions
    out: Path
    fingerprint: str
    summary: DetectSummary
    total: int
    progress: Callable[[int, int], None] | None
    log: Callable[[str], None]
    pending: _Pending = field(default_factory=_Pending)
    done: int = 0

    def take(self, item: Batch | ImageEnd | ImageFailed, found: list[WindowDetections] | None) -> None:
        if isinstance(item, Batch):
            add_batch(item, found, self.options.score, self.pending)
            self._advance(len(item.origins))
        elif isinstance(item, ImageEnd):
            self.summary.outcomes.append(_finish_image(item, self.pending, self.detector, self.options, self.out,
                                                       self.fingerprint))
            self.pending = _Pending()
        else:
            self.summary.outcomes.append(ImageOutcome(item.plan.path, item.plan.name, Status.FAILED,
                                                      error=item.error))
            self.log(item.error)
            self._advance(item.plan.windows)

    def _advance(self, windows: int) -> None:
        self.done += windows
        if self.progress is not None:
            self.progress(self.done, self.total)


def _plan_all(paths, options, out, fingerprint, resume, summary, log) -> list[ImagePlan]:
    plans, names = [], set()
    for path in paths:
        name = Path(path).stem
        try:
            if name in names:
                raise ImageError(f"{path}: another image of this run is named {name!r}")
            names.add(name)
            if resume:
                record = read_json_if_valid(out / IMAGES_DIR / f"{name}.json")
                if isinstance(record, dict) and record.get("fingerprint") == fingerprint:
                    summary.outcomes.append(ImageOutcome(path, name, Status.RESUMED, record.get("windows", 0),
                                                         len(record["detections"]["score"])))
                    continue
            plans.append(plan_image(Path(path), options))
        except ImageError as exc:
            summary.outcomes.append(ImageOutcome(Path(path), name, Status.FAILED, error=str(exc)))
            log(str(exc))
    return plans


def write_outputs(out: Path, summary: DetectSummary, gt: Path | None) -> list[Path]:
    """Rebuild ``results.bbox.json``, ``images.json`` and ``Task2_{class}.txt`` from the per-image files."""
    records = []
    for outcome in summary.outcomes:
        if outcome.status is not Status.FAILED:
            record = read_json_if_valid(out / IMAGES_DIR / f"{outcome.name}.json")
            if isinstance(record, dict):
                records.append((outcome.name, record))
    records.sort(key=lambda r: r[0])
    classes = list(summary.classes)
    image_ids, category_ids = _ids(records, classes, gt)
    coco, lines = [], {c: [] for c in classes}
    for name, record in records:
        det = record["detections"]
        boxes = np.array(det["bbox"], dtype=np.float64).reshape(-1, 4)
        scores = np.array(det["score"], dtype=np.float64)
        labels = np.array(det["label"], dtype=np.int64)
        for label, cls in enumerate(classes):
            mine = labels == label
            lines[cls] += task2_lines([name], np.zeros(int(mine.sum()), dtype=np.int64), scores[mine], boxes[mine])
        if record["image"] not in image_ids:
            continue
        for box, s, label in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            if classes[label] in category_ids:
                coco.append(dict(image_id=image_ids[record["image"]], category_id=category_ids[classes[label]],
                                 bbox=[round(box[0], 3), round(box[1], 3), round(box[2] - box[0], 3),
                                       round(box[3] - box[1], 3)], score=s))
    files = [out / COCO_RESULTS, out / IMAGE_LIST]
    write_json(files[0], coco)
    write_json(files[1], [dict(id=image_ids.get(r["image"]), file_name=r["image"], width=r["width"],
                               height=r["height"]) for _, r in records])
    for cls, cls_lines in lines.items():
        path = out / f"Task2_{cls}.txt"
        atomic_write_bytes(path, "".join(line + "\n" for line in cls_lines).encode("utf-8"))
        files.append(path)
    return files


def _ids(records, classes: list[str], gt: Path | None) -> tuple[dict[str, int], dict[str, int]]:
    if gt is None:
        return ({r["image"]: k + 1 for k, (_, r) in enumerate(records)},
                {c: k + 1 for k, c in enumerate(classes)})
    from dotamini10.io import read_json

    coco = read_json(gt, what="ground truth", error=DetectError)
    try:
        images = {Path(i["file_name"]).name: int(i["id"]) for i in coco["images"]}
        categories = {c["name"]: int(c["id"]) for c in coco["categories"]}
    except (KeyError, TypeError, ValueError):
        raise DetectError(f"--gt {gt}: expected COCO 'images' (id, file_name) and 'categories' (id, name)") from None
    return images, categories


def _summary_record(summary: DetectSummary, config, checkpoint, options: DetectOptions, fingerprint) -> dict:
    return dict(
        config=str(config), checkpoint=str(checkpoint), classes=list(summary.classes), fingerprint=fingerprint,
        options=options.to_json(), batch=options.batch, device=options.device, workers=options.model_workers,
        images=[dict(path=str(o.path), name=o.name, status=o.status.value, windows=o.windows,
                     detections=o.detections, error=o.error) for o in summary.outcomes],
        windows=summary.windows, seconds=round(summary.seconds, 3),
        windows_per_s=round(summary.windows_per_s, 3),
    )
