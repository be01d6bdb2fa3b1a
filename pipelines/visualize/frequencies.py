"""High-frequency responses F2 for several alpha (the paper's Figure 8) and P2 features around HFP and SDP
(Figures 7 and 11-13).

Two sources:

* **a checkpoint** (``config`` + ``checkpoint``): the image goes through the model's data preprocessor,
  backbone and the neck's lateral 1x1 convs; ``C2`` is the finest lateral map and ``F2`` is HS-FPN's DCT
  high-pass of it (:class:`hsfpn.nn.DCTHighPass`, cutoff ``int(alpha * side)`` per axis) for each alpha. With
  an HS-FPN neck the P2 figure shows ``C2`` before HFP, after the level's HFP, and after HFP and SDP (the
  neck's :meth:`~hsfpn.neck.HSFPN.perceive`: what enters FPN's top-down sum at P2);
* **the image itself** (no checkpoint): ``F`` is the same high-pass applied to the image's gray values, and
  the figure's title says so. There is no P2 figure then.

A map of C channels is drawn as the mean over its channels of the absolute values, each panel on its own
colour scale (with its colour bar). Images whose longer side exceeds ``max_side`` are shrunk first (area
interpolation), as a detector's test-time resize would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import write_json

from . import VisualizeError
from .figure import downscale, new_figure, read_rgb, save_png, to_gray
from .image_dct import cutoffs, high_pass

DEFAULT_ALPHAS: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class FeatureMap:
    """One map to draw: its name, a (H, W) picture (channel mean of absolute values) and its numbers.

    Attributes:
        name: Panel title.
        picture: (H, W) float64.
        channels: Channels averaged into the picture (1 for gray images).
        mean_abs: Mean absolute value over every channel and position.
        energy_share: Sum of squares relative to the unfiltered map's (responses only; None otherwise).
    """

    name: str
    picture: np.ndarray
    channels: int
    mean_abs: float
    energy_share: float | None = None

    def numbers(self) -> dict[str, Any]:
        return {"name": self.name, "shape": [self.channels, *self.picture.shape], "mean_abs": self.mean_abs,
                "max_channel_mean_abs": float(self.picture.max()) if self.picture.size else 0.0,
                "energy_share": self.energy_share}  # fmt: skip


@dataclass(frozen=True)
class FrequencyResult:
    """What :func:`render_frequencies` wrote.

    Attributes:
        figures: ``frequencies.png`` and, with an HS-FPN checkpoint, ``p2_features.png``.
        numbers: The JSON files behind them (``frequencies.json``, ``p2_features.json``).
        source: ``"checkpoint"`` or ``"image"``.
    """

    figures: tuple[Path, ...]
    numbers: tuple[Path, ...]
    source: str


def parse_alphas(text: str) -> tuple[float, ...]:
    """``"0,0.25,0.5"`` as distinct values in [0, 1], in the given order.

    Raises:
        VisualizeError: Not numbers, outside [0, 1], repeated or empty.
    """
    try:
        alphas = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise VisualizeError(f"--alphas: expected comma-separated numbers, got {text!r}") from None
    if not alphas or not all(0.0 <= a <= 1.0 for a in alphas) or len(set(alphas)) != len(alphas):
        raise VisualizeError(f"--alphas: need distinct values in [0, 1], got {text!r}")
    return alphas


# ---------------------------------------------------------------------------------------------
# The image itself
# ---------------------------------------------------------------------------------------------


def image_responses(rgb: np.ndarray, alphas: Sequence[float]) -> tuple[FeatureMap, list[FeatureMap]]:
    """The gray image and its DCT high-pass for each alpha, as maps to draw."""
    gray = to_gray(rgb)
    energy = float(np.sum(gray * gray)) or 1.0
    height, width = gray.shape
    maps = []
    for alpha in alphas:
        response = high_pass(gray, alpha)
        share = float(np.sum(response * response)) / energy
        maps.append(FeatureMap(_alpha_name(alpha, height, width), np.abs(response), 1, float(np.abs(response).mean()),
                               share))
    return FeatureMap("gray image", gray, 1, float(np.abs(gray).mean())), maps


def _alpha_name(alpha: float, height: int, width: int) -> str:
    cut_h, cut_w = cutoffs(height, width, alpha)
    if cut_h == 0 or cut_w == 0:
        return f"alpha {alpha:g}: nothing zeroed (the input)"
    return f"alpha {alpha:g}: DCT[:{cut_h}, :{cut_w}] of {height} x {width} zeroed"


# ---------------------------------------------------------------------------------------------
# A checkpoint
# ---------------------------------------------------------------------------------------------


def p2_features(model: Any, rgb: np.ndarray, alphas: Sequence[float]) -> tuple[dict[str, FeatureMap], list[FeatureMap]]:
    """Run the backbone and the neck's lateral convs; C2, F2 per alpha, and C2 after HFP / HFP + SDP.

    Args:
        model: An MMDetection detector with an FPN-like neck (``lateral_convs``).
        rgb: (H, W, 3) uint8 image, as large as it will be fed.
        alphas: The cutoffs of F2.

    Returns:
        ``(p2, responses)``: ``p2`` maps ``"c2"`` and, where the neck has them, ``"after_hfp"`` and
        ``"after_hfp_sdp"``; ``responses`` one F2 per alpha.

    Raises:
        VisualizeError: The model has no FPN-like neck.
    """
    import torch

    from hsfpn.nn import DCTHighPass

    neck = getattr(model, "neck", None)
    if neck is None or not hasattr(neck, "lateral_convs"):
        raise VisualizeError("--config: the model has no FPN-like neck (lateral_convs) to read C2 from")
    tensor = torch.from_numpy(np.ascontiguousarray(rgb[..., ::-1].transpose(2, 0, 1)))  # BGR, as mmdet loads
    with torch.no_grad():
        inputs = model.data_preprocessor({"inputs": [tensor], "data_samples": None}, False)["inputs"]
        feats = model.backbone(inputs)
        laterals = [conv(feats[i + neck.start_level]) for i, conv in enumerate(neck.lateral_convs)]
        c2 = laterals[0]
        # The preprocessor pads to a multiple of 32: keep the part of the map that covers the image.
        stride = inputs.shape[-1] / c2.shape[-1]
        rows, cols = math.ceil(rgb.shape[0] / stride), math.ceil(rgb.shape[1] / stride)
        crop = (slice(None), slice(None), slice(0, rows), slice(0, cols))
        p2 = {"c2": _feature("C2: P2 lateral conv (before HFP)", c2[crop])}
        if getattr(neck, "hfps", None) is not None:
            p2["after_hfp"] = _feature("after HFP", neck.hfps[0](c2)[crop])
        if getattr(neck, "hfps", None) is not None and getattr(neck, "sdps", None) is not None:
            p2["after_hfp_sdp"] = _feature("after HFP + SDP", neck.perceive(laterals)[0][crop])
        energy = float((c2[crop] ** 2).sum()) or 1.0
        responses = []
        for alpha in alphas:
            # Filtered on the padded map, as the neck does it.
            f2 = DCTHighPass((alpha, alpha))(c2)
            name = "F2 " + _alpha_name(alpha, *c2.shape[-2:])
            responses.append(_feature(name, f2[crop], float((f2[crop] ** 2).sum()) / energy))
    return p2, responses


def _feature(name: str, x: Any, energy_share: float | None = None) -> FeatureMap:
    """A (1, C, H, W) tensor as a drawable map."""
    values = x[0].abs().double()
    return FeatureMap(name, values.mean(dim=0).numpy(), int(values.shape[0]), float(values.mean()), energy_share)


# ---------------------------------------------------------------------------------------------
# Figures and orchestration
# ---------------------------------------------------------------------------------------------


def render_maps(rgb: np.ndarray, maps: Sequence[FeatureMap], title: str, subtitle: str, columns: int = 3) -> Any:
    """The input image then one heat map per entry, ``columns`` panels a row, each with its colour bar."""
    panels = 1 + len(maps)
    rows = math.ceil(panels / columns)
    height, width = rgb.shape[:2]
    panel_w = 4.0
    panel_h = min(max(0.8 * panel_w * height / width, 1.6), 5.0) + 0.7  # the colour bar takes a fifth of the width
    figure = new_figure(columns * panel_w + 0.6, rows * panel_h + 1.0)
    grid = figure.add_gridspec(rows, columns, left=0.03, right=0.95, top=1 - 0.85 / (rows * panel_h + 1.0),
                               bottom=0.03, wspace=0.3, hspace=0.25)  # fmt: skip
    ax = figure.add_subplot(grid[0, 0])
    ax.imshow(rgb)
    ax.set_title(f"input ({width} x {height} px)", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    for i, fmap in enumerate(maps, start=1):
        ax = figure.add_subplot(grid[i // columns, i % columns])
        top = float(fmap.picture.max()) if fmap.picture.size else 0.0
        # The top of the scale is the 99.5th percentile, so that a few bright pixels do not darken the rest.
        scale = float(np.percentile(fmap.picture, 99.5)) if top > 0 else 1.0
        image = ax.imshow(fmap.picture, cmap="inferno", vmin=0.0, vmax=scale if scale > 0 else top)
        notes = [] if fmap.energy_share is None else [f"energy kept {100 * fmap.energy_share:.1f}%"]
        notes += ["all zero"] if top == 0 else []
        ax.set_title(fmap.name + ("\n" + ", ".join(notes) if notes else ""), fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        bar = figure.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
        bar.ax.tick_params(labelsize=7)
        label = f"mean |value| over {fmap.channels} channels" if fmap.channels > 1 else "|value|"
        bar.set_label(label + " (to 99.5th pct.)", fontsize=7)
    figure.suptitle(title, fontsize=11, y=1 - 0.12 / (rows * panel_h + 1.0), va="top")
    figure.text(0.5, 1 - 0.45 / (rows * panel_h + 1.0), subtitle, ha="center", va="top", fontsize=8.5)
    return figure


def render_frequencies(
    image: Path,
    out_dir: Path,
    *,
    alphas: Sequence[float] = DEFAULT_ALPHAS,
    config: str | None = None,
    checkpoint: Path | None = None,
    neck: str | None = None,
    max_side: int = 800,
) -> FrequencyResult:
    """Write Figure 8 (F2 per alpha) and, with an HS-FPN checkpoint, the P2 feature figure.

    Args:
        image: The input image.
        out_dir: Output folder.
        alphas: HFP cutoffs, each in [0, 1].
        config: Row id or config file (with ``checkpoint``). Defaults to the image's own high-pass.
        checkpoint: The weights of ``config``.
        neck: A neck variant of :data:`pipelines.detectors.VARIANTS`; None: ``hsfpn`` for a row id, a config
            file's own neck.
        max_side: Longer image side fed (larger images are shrunk). Defaults to 800.

    Returns:
        The figures and JSON files written.

    Raises:
        VisualizeError: Only one of config / checkpoint given, bad alphas, unreadable image or checkpoint.
    """
    if (config is None) != (checkpoint is None):
        raise VisualizeError("--config and --checkpoint go together (without both, the image's own DCT high-pass "
                             "is shown)")  # fmt: skip
    alphas = parse_alphas(",".join(str(a) for a in alphas))
    rgb = downscale(read_rgb(Path(image)), max_side)
    out_dir = Path(out_dir)
    if checkpoint is None:
        gray, maps = image_responses(rgb, alphas)
        title = "High-frequency response F for each alpha: DCT high-pass of the image itself"
        subtitle = (f"no checkpoint given: gray values of {Path(image).name}, not a network's C2 "
                    "(pass --config and --checkpoint for Figure 8's F2)")  # fmt: skip
        figure = save_png(render_maps(rgb, maps, title, subtitle), out_dir / "frequencies.png")
        numbers = out_dir / "frequencies.json"
        record = {"source": "image", "image": str(image), "input_size": list(rgb.shape[:2]), "alphas": list(alphas),
                  "maps": [m.numbers() for m in [gray, *maps]]}  # fmt: skip
        write_json(numbers, record, indent=2)
        return FrequencyResult((figure,), (numbers,), "image")
    from ..detectors import VARIANTS
    from ..models import load_model, resolve_config

    resolved = resolve_config(config, neck, necks=tuple(VARIANTS), error=VisualizeError)
    model = load_model(resolved, Path(checkpoint), error=VisualizeError).model
    p2, responses = p2_features(model, rgb, alphas)
    what = f"{Path(checkpoint).name} ({config})"
    figures = [save_png(render_maps(rgb, responses, "High-frequency response F2 for each alpha (paper Fig. 8)",
                                    f"F2 = DCT high-pass of C2, the P2 lateral conv of {what}; channel mean of |F2|"),
                        out_dir / "frequencies.png")]  # fmt: skip
    numbers = [out_dir / "frequencies.json"]
    base = {"source": "checkpoint", "image": str(image), "config": config, "checkpoint": str(checkpoint),
            "input_size": list(rgb.shape[:2])}  # fmt: skip
    write_json(numbers[0], {**base, "alphas": list(alphas), "maps": [m.numbers() for m in responses]}, indent=2)
    if len(p2) > 1:
        figures.append(save_png(render_maps(rgb, list(p2.values()), "P2 features before and after HFP and SDP "
                                            "(paper Figs. 7, 11-13)", f"{what}; channel mean of |value|",
                                            columns=len(p2) + 1), out_dir / "p2_features.png"))  # fmt: skip
        numbers.append(out_dir / "p2_features.json")
        write_json(numbers[1], {**base, "maps": {k: m.numbers() for k, m in p2.items()}}, indent=2)
    return FrequencyResult(tuple(figures), tuple(numbers), "checkpoint")
