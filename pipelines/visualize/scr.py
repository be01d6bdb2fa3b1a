"""Signal-to-clutter ratio of tiny objects as low frequencies are filtered out (the paper's Figure 1, eq. 1).

``SCR = |mu_t - mu_b| / sigma_b`` (paper eq. 1). The regions, all squares centred on the object's centre pixel
(the integer part of its horizontal box's centre):

* **target region**: ``target`` x ``target`` pixels (40 x 40, the paper's), ``mu_t`` its mean gray value;
* **background** (the target's neighbourhood): the ring between the target region and a ``background`` x
  ``background`` square (80 x 80 by default, a 20 px wide ring of 4,800 pixels); ``mu_b`` and ``sigma_b`` are
  its mean and population standard deviation (ddof 0);
* **local window**: ``window`` x ``window`` pixels (512 x 512 by default; the whole side where the image is
  smaller) whose 2-D orthonormal DCT is filtered: ``DCT[:k, :k]`` is zeroed and the window transformed back
  before the regions are measured. The window is centred on the object where the image allows and shifted
  inward at the image edges (the target and the ring always stay centred); its sides must exceed the largest
  ``k``. Figure 1 cuts up to ``DCT[:100, :100]`` and still shows its target, so the window is several times
  larger than 100: in an N px window, ``DCT[:k, :k]`` removes what varies more slowly than a period of 2N / k
  px on both axes (at 512 px: 102 px for k = 10, 10 px for k = 100). The SCR depends on this choice (see the
  README), which is why it is an option.

Gray values are BT.601 luma of the RGB pixels, unrounded. Zeroing ``DCT[0, 0]`` (``k = 1``) only subtracts the
window's mean, so the SCR at ``k = 1`` always equals the SCR at ``k = 0``.

An object is measured when it is valid, of a chosen class, tiny (``sqrt(w * h)`` of its horizontal box below
``max_size``, 16 px) and its background square lies inside the image; every other object of the label files is
accounted for in ``objects.csv`` with its fate. An SCR whose ``sigma_b`` is 0 (a flat background) is undefined:
its row has no value and the statistics leave it out.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dotamini10.io import ProgressFn, write_json

from . import VisualizeError
from .figure import new_figure, read_rgb, save_png, to_gray, write_csv
from .image_dct import zero_low_corner


#: Figure 1's filtering ranges plus one more step: no filter, DCT[0, 0], DCT[:10, :10], [:50, :50], [:100, :100].
DEFAULT_RANGES: tuple[int, ...] = (0, 1, 10, 50, 100)

# sigma_b below this (in gray levels) is a flat background: the ratio is undefined rather than huge.
_FLAT = 1e-9


@dataclass(frozen=True)
class SCRGeometry:
    """Sizes of the SCR regions, in pixels (see the module notes).

    Args:
        target: Side of the target region. Defaults to 40 (the paper's).
        background: Outer side of the background ring. Defaults to 80.
        window: Side of the DCT-filtered local window (the image side where the image is smaller). Defaults
            to 512.
    """

    target: int = 40
    background: int = 80
    window: int = 512

    def __post_init__(self) -> None:
        if self.target < 2 or self.target % 2 or self.background % 2 or self.window % 2:
            raise VisualizeError(f"SCR regions need even sides, got target {self.target}, background "
                                 f"{self.background}, window {self.window}")  # fmt: skip
        if not self.target < self.background <= self.window:
            raise VisualizeError(f"SCR regions need target < background <= window, got {self.target}, "
                                 f"{self.background}, {self.window}")  # fmt: skip


class ObjectFate(enum.Enum):
    """What became of one object line of a label file."""

    MEASURED = "measured"
    INVALID = "invalid"  # the label line is malformed (see dotamini10.read)
    OTHER_CLASS = "other_class"
    NOT_TINY = "not_tiny"
    NEAR_BORDER = "near_border"  # its background square leaves the image
    IMAGE_TOO_SMALL = "image_too_small"  # an image side is not larger than the largest k
    NO_IMAGE = "no_image"  # the label file has no image


@dataclass(frozen=True)
class SCRCurve:
    """The SCR statistics of one filtering range ``k`` over the measured objects."""

    k: int
    defined: int
    median: float | None
    q1: float | None
    q3: float | None


@dataclass(frozen=True)
class ClaimVerdict:
    """Whether the median SCR first rises, then falls, as ``k`` grows (the paper's claim).

    Attributes:
        holds: The median peaks at an inner ``k``, strictly above both the first and the last ``k``.
        peak_k: The ``k`` of the highest median.
        objects_rise_fall: Measured objects whose own curve does the same.
        objects: Measured objects with every value defined.
    """

    holds: bool
    peak_k: int | None
    objects_rise_fall: int
    objects: int

    def describe(self, curves: Sequence[SCRCurve]) -> str:
        """One line for people: the verdict with the medians at the first, peak and last ``k``."""
        if self.peak_k is None:
            return "the paper's claim (SCR first rises, then falls) cannot be checked: no object was measured"
        trend = "median SCR by k: " + ", ".join(
            f"{c.k}: {c.median:.3g}" if c.median is not None else f"{c.k}: n/a" for c in curves
        ) + f" (peak at k={self.peak_k})"
        share = f"{self.objects_rise_fall} of {self.objects} objects rise then fall individually"
        word = "holds" if self.holds else "does not hold"
        return f"the paper's claim (SCR first rises, then falls) {word} on this data: {trend}; {share}"


@dataclass(frozen=True)
class SCRResult:
    """What :func:`analyze_scr` wrote and found."""

    scr_csv: Path
    objects_csv: Path
    summary_json: Path
    figure: Path
    curves: tuple[SCRCurve, ...]
    verdict: ClaimVerdict
    fates: dict[str, int]
    images: int
    problems: tuple[str, ...] = field(default=())


# ---------------------------------------------------------------------------------------------
# The measure
# ---------------------------------------------------------------------------------------------


def region_stats(neighbourhood: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(scr, mu_t, mu_b, sigma_b)`` of background squares (the target region centred in each).

    Args:
        neighbourhood: (..., B, B) gray values.
        target: Side of the target region.

    Returns:
        Four (...) float64 arrays; ``scr`` is NaN where ``sigma_b`` is 0 (flat background).
    """
    side = neighbourhood.shape[-1]
    lo = (side - target) // 2
    inside = np.zeros((side, side), dtype=bool)
    inside[lo:lo + target, lo:lo + target] = True
    flat = neighbourhood.reshape(*neighbourhood.shape[:-2], side * side)
    t_vals, b_vals = flat[..., inside.ravel()], flat[..., ~inside.ravel()]
    mu_t, mu_b = t_vals.mean(axis=-1), b_vals.mean(axis=-1)
    sigma_b = b_vals.std(axis=-1)
    scr = np.full(mu_t.shape, np.nan)
    np.divide(np.abs(mu_t - mu_b), sigma_b, out=scr, where=sigma_b > _FLAT)
    return scr, mu_t, mu_b, sigma_b


def window_shape(width: int, height: int, geometry: SCRGeometry) -> tuple[int, int]:
    """``(rows, cols)`` of the local window in an image: ``window`` a side, or the image side where smaller."""
    return min(height, geometry.window), min(width, geometry.window)


def filtered_neighbourhoods(gray: np.ndarray, centres: np.ndarray, ranges: Sequence[int],
                            geometry: SCRGeometry) -> np.ndarray:  # fmt: skip
    """Background squares of objects after zeroing ``DCT[:k, :k]`` of each object's local window.

    Args:
        gray: (H, W) gray image whose sides exceed the largest ``k``.
        centres: (N, 2) integer ``(x, y)`` centre pixels; each background square must lie inside the image.
        ranges: The ``k`` values.
        geometry: Region sizes.

    Returns:
        (N, K, B, B) float64: per object and ``k``, the filtered background square (target at its centre).
    """
    height, width = gray.shape
    win_h, win_w = window_shape(width, height, geometry)
    half_b, side = geometry.background // 2, geometry.background
    out = np.empty((len(centres), len(ranges), side, side))
    # Window origins: centred on the object, shifted inward at the image edges.
    wx = np.clip(centres[:, 0] - win_w // 2, 0, width - win_w)
    wy = np.clip(centres[:, 1] - win_h // 2, 0, height - win_h)
    step = max(1, (32 << 20) // (8 * win_h * win_w))  # about 32 MB of windows at a time
    for start in range(0, len(centres), step):
        idx = np.arange(start, min(start + step, len(centres)))
        windows = np.stack([gray[wy[i]:wy[i] + win_h, wx[i]:wx[i] + win_w] for i in idx])
        for j, k in enumerate(ranges):
            filtered = zero_low_corner(windows, k)
            for row, i in enumerate(idx):
                y0, x0 = centres[i, 1] - half_b - wy[i], centres[i, 0] - half_b - wx[i]
                out[i, j] = filtered[row, y0:y0 + side, x0:x0 + side]
    return out


def parse_ranges(text: str, geometry: SCRGeometry) -> tuple[int, ...]:
    """``"0,1,10,50,100"`` as increasing distinct integers in ``[0, window)``.

    Raises:
        VisualizeError: Not integers, not increasing, or one reaches the window side.
    """
    try:
        ranges = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise VisualizeError(f"--ranges: expected comma-separated integers, got {text!r}") from None
    if len(ranges) < 2 or any(b <= a for a, b in zip(ranges, ranges[1:])) or ranges[0] < 0:
        raise VisualizeError(f"--ranges: need at least two increasing values >= 0, got {text!r}")
    if ranges[-1] >= geometry.window:
        raise VisualizeError(f"--ranges: {ranges[-1]} reaches the {geometry.window} px local window (all of its "
                             "DCT would be zeroed); use a larger --window or smaller ranges")  # fmt: skip
    return ranges


# ---------------------------------------------------------------------------------------------
# Statistics and the claim
# ---------------------------------------------------------------------------------------------


def curves_of(scr: np.ndarray, ranges: Sequence[int]) -> tuple[SCRCurve, ...]:
    """Median and quartiles per ``k`` of an (N, K) SCR table (NaN = undefined, left out)."""
    curves = []
    for j, k in enumerate(ranges):
        values = scr[:, j][~np.isnan(scr[:, j])] if len(scr) else np.zeros(0)
        if values.size:
            q1, median, q3 = (float(v) for v in np.quantile(values, (0.25, 0.5, 0.75)))
            curves.append(SCRCurve(k, int(values.size), median, q1, q3))
        else:
            curves.append(SCRCurve(k, 0, None, None, None))
    return tuple(curves)


def claim_verdict(scr: np.ndarray, curves: Sequence[SCRCurve]) -> ClaimVerdict:
    """Check "SCR first rises, then falls" on the medians and on each object's curve."""
    medians = [c.median for c in curves]
    complete = scr[~np.isnan(scr).any(axis=1)] if len(scr) else np.zeros((0, len(curves)))
    per_object = int(sum(_rises_then_falls(row) for row in complete))
    if any(m is None for m in medians):
        return ClaimVerdict(False, None, per_object, len(complete))
    values = np.asarray(medians)
    return ClaimVerdict(_rises_then_falls(values), int(curves[_peak(values)].k), per_object, len(complete))


def _rises_then_falls(values: np.ndarray) -> bool:
    """The first maximum lies strictly inside and clearly above both ends (relative tolerance 1e-9).

    The tolerance makes values equal up to rounding count as equal: the SCR at ``k = 1`` is the SCR at
    ``k = 0`` computed through a DCT, so the two differ in their last digits only.
    """
    top = float(np.max(values))
    tol = 1e-9 * max(abs(top), 1e-300)
    peak = int(np.flatnonzero(values >= top - tol)[0])
    return bool(0 < peak < len(values) - 1 and top > values[0] + tol and top > values[-1] + tol)


def _peak(values: np.ndarray) -> int:
    top = float(np.max(values))
    return int(np.flatnonzero(values >= top - 1e-9 * max(abs(top), 1e-300))[0])


# ---------------------------------------------------------------------------------------------
# DOTA objects in, tables and figure out
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ImageObjects:
    """The objects of one label file: rows of ``objects.csv`` and the centres of those measured."""

    image: str
    lines: np.ndarray
    categories: list[str]
    sizes: np.ndarray
    centres: np.ndarray
    fates: list[ObjectFate]


def select_objects(label_path: Path, image_size: tuple[int, int] | None, classes: set[str] | None,
                   geometry: SCRGeometry, max_size: float, max_k: int) -> ImageObjects:  # fmt: skip
    """Read a label file and decide each object's fate (``image_size`` is ``(width, height)``, None: no image)."""
    from dotamini10.read import read_label_file

    labels = read_label_file(label_path)
    coords = labels.coords
    with np.errstate(invalid="ignore"):
        x0, y0 = coords[..., 0].min(axis=1), coords[..., 1].min(axis=1)
        x1, y1 = coords[..., 0].max(axis=1), coords[..., 1].max(axis=1)
        sizes = np.sqrt((x1 - x0) * (y1 - y0))
    centres = np.stack([np.floor((x0 + x1) / 2), np.floor((y0 + y1) / 2)], axis=1)
    half = geometry.background // 2
    fates = []
    for i, category in enumerate(labels.categories):
        fates.append(_fate(labels.invalid[i], category, sizes[i], centres[i], image_size, classes, max_size,
                           max_k, half))  # fmt: skip
    ok = np.isfinite(centres).all(axis=1)
    centres = np.where(ok[:, None], centres, 0).astype(np.int64)
    return ImageObjects(label_path.stem, labels.lines, labels.categories, sizes, centres, fates)


def _fate(invalid: str | None, category: str, size: float, centre: np.ndarray, image_size: tuple[int, int] | None,
          classes: set[str] | None, max_size: float, max_k: int, half: int) -> ObjectFate:  # fmt: skip
    if invalid is not None:
        return ObjectFate.INVALID
    if classes is not None and category not in classes:
        return ObjectFate.OTHER_CLASS
    if not size < max_size:
        return ObjectFate.NOT_TINY
    if image_size is None:
        return ObjectFate.NO_IMAGE
    width, height = image_size
    if min(width, height) <= max_k:
        return ObjectFate.IMAGE_TOO_SMALL
    cx, cy = centre
    if cx - half < 0 or cy - half < 0 or cx + half > width or cy + half > height:
        return ObjectFate.NEAR_BORDER
    return ObjectFate.MEASURED


@dataclass
class _Measured:
    """Accumulated measurements: one entry per measured object."""

    keys: list[tuple[str, int, str, float, int, int]] = field(default_factory=list)
    stats: list[np.ndarray] = field(default_factory=list)  # (K, 4) scr, mu_t, mu_b, sigma_b
    # The image file of each object: the figure's example is filtered again from it (keeping every object's
    # filtered squares would take K x 51 kB per object).
    images: list[Path] = field(default_factory=list)


def analyze_scr(
    dota_root: Path,
    out_dir: Path,
    *,
    classes: Sequence[str] | None = None,
    ranges: Sequence[int] = DEFAULT_RANGES,
    geometry: SCRGeometry | None = None,
    max_size: float = 16.0,
    progress: ProgressFn | None = None,
) -> SCRResult:
    """Figure 1 on real data: the SCR of every tiny object of a DOTA folder for each filtering range ``k``.

    Args:
        dota_root: A DOTA split folder (``images/`` + ``labelTxt/``) or release root (``train/``, ``val/``).
        out_dir: Output folder: ``scr.csv``, ``objects.csv``, ``scr_summary.json``, ``scr.png``.
        classes: Classes to measure. Defaults to every class.
        ranges: The ``k`` values (``DCT[:k, :k]`` zeroed), increasing, below ``geometry.window``.
        geometry: Region sizes. Defaults to :class:`SCRGeometry` (40 / 80 / 160 px).
        max_size: Objects with ``sqrt(w * h)`` below this are tiny. Defaults to 16.
        progress: Called as ``progress(done, total)`` after each image.

    Returns:
        The files written, the statistics per ``k`` and the verdict on the paper's claim.

    Raises:
        VisualizeError: Bad ranges; dotamini10's DatasetError for a missing folder or unknown class.
    """
    from dotamini10.classes import check_class_list
    from dotamini10.read import ImageProbeError, find_splits, pair_files, probe_image

    geometry = geometry or SCRGeometry()
    ranges = parse_ranges(",".join(str(k) for k in ranges), geometry)
    wanted = None if classes is None else set(check_class_list(classes, name="--classes"))
    pairs = [pair for split in find_splits(Path(dota_root)) for pair in pair_files(split)[0]]
    measured, object_rows, problems = _Measured(), [], []
    for done, pair in enumerate(pairs, start=1):
        if pair.label is None:
            problems.append(f"{pair.image}: image without a label file, skipped")
        else:
            size = None
            if pair.image is None:
                problems.append(f"{pair.label}: label file without an image, its objects are not measured")
            else:
                try:
                    info = probe_image(pair.image)
                    size = (info.width, info.height)
                except ImageProbeError as exc:
                    problems.append(f"{pair.image}: unreadable image ({exc.detail}), its objects are not measured")
            objects = select_objects(pair.label, size, wanted, geometry, max_size, ranges[-1])
            object_rows += _object_rows(objects)
            if ObjectFate.MEASURED in objects.fates:
                _measure_image(pair.image, objects, ranges, geometry, measured)
        if progress is not None:
            progress(done, len(pairs))
    return _write_outputs(Path(out_dir), measured, object_rows, ranges, geometry, max_size, problems,
                          len([p for p in pairs if p.image is not None and p.label is not None]))  # fmt: skip


def _measure_image(image: Path, objects: ImageObjects, ranges: Sequence[int], geometry: SCRGeometry,
                   measured: _Measured) -> None:  # fmt: skip
    rows = [i for i, fate in enumerate(objects.fates) if fate is ObjectFate.MEASURED]
    squares = filtered_neighbourhoods(to_gray(read_rgb(image)), objects.centres[rows], ranges, geometry)
    stats = np.stack(region_stats(squares, geometry.target), axis=-1)  # (N, K, 4)
    for n, i in enumerate(rows):
        measured.keys.append((objects.image, int(objects.lines[i]), objects.categories[i], float(objects.sizes[i]),
                              int(objects.centres[i, 0]), int(objects.centres[i, 1])))  # fmt: skip
        measured.stats.append(stats[n])
        measured.images.append(image)


def _object_rows(objects: ImageObjects) -> list[list[Any]]:
    rows = []
    for i, fate in enumerate(objects.fates):
        size = objects.sizes[i]
        rows.append([objects.image, int(objects.lines[i]), objects.categories[i],
                     round(float(size), 3) if math.isfinite(size) else "", fate.value])  # fmt: skip
    return rows


def _write_outputs(out_dir: Path, measured: _Measured, object_rows: list[list[Any]], ranges: Sequence[int],
                   geometry: SCRGeometry, max_size: float, problems: list[str], images: int) -> SCRResult:  # fmt: skip
    stats = np.stack(measured.stats) if measured.stats else np.zeros((0, len(ranges), 4))
    scr = stats[..., 0]
    curves = curves_of(scr, ranges)
    verdict = claim_verdict(scr, curves)
    scr_rows = []
    for key, per_k in zip(measured.keys, stats, strict=True):
        for k, (value, mu_t, mu_b, sigma_b) in zip(ranges, per_k, strict=True):
            scr_rows.append([*key[:3], round(key[3], 3), key[4], key[5], k, "" if math.isnan(value) else float(value),
                             float(mu_t), float(mu_b), float(sigma_b)])  # fmt: skip
    header = ["image", "line", "category", "size_px", "cx", "cy", "k", "scr", "mu_t", "mu_b", "sigma_b"]
    scr_csv = write_csv(out_dir / "scr.csv", header, scr_rows)
    objects_csv = write_csv(out_dir / "objects.csv", ["image", "line", "category", "size_px", "fate"], object_rows)
    fates = {fate.value: sum(row[-1] == fate.value for row in object_rows) for fate in ObjectFate}
    summary = {
        "geometry": asdict(geometry), "ranges": list(ranges), "max_size_px": max_size, "images": images,
        "objects": fates, "curves": [asdict(c) for c in curves], "verdict": asdict(verdict),
        "verdict_text": verdict.describe(curves), "problems": problems,
    }  # fmt: skip
    write_json(out_dir / "scr_summary.json", summary, indent=2)
    example = _typical_object(scr, curves)
    figure = render_scr(curves, verdict, geometry, images, measured, example, ranges)
    png = save_png(figure, out_dir / "scr.png")
    return SCRResult(scr_csv, objects_csv, out_dir / "scr_summary.json", png, curves, verdict, fates, images,
                     tuple(problems))  # fmt: skip


def _typical_object(scr: np.ndarray, curves: Sequence[SCRCurve]) -> int | None:
    """The measured object whose (log) SCR curve is closest to the median curve; None without one."""
    if not len(scr) or any(c.median is None for c in curves):
        return None
    complete = ~np.isnan(scr).any(axis=1) & (scr > 0).all(axis=1)
    if not complete.any():
        return None
    medians = np.log(np.maximum([c.median for c in curves], 1e-12))
    distance = np.where(complete, np.abs(np.log(np.where(complete[:, None], scr, 1.0)) - medians).sum(axis=1), np.inf)
    return int(np.argmin(distance))


# ---------------------------------------------------------------------------------------------
# Figure
# ---------------------------------------------------------------------------------------------


def render_scr(curves: Sequence[SCRCurve], verdict: ClaimVerdict, geometry: SCRGeometry, images: int,
               measured: _Measured, example: int | None, ranges: Sequence[int]) -> Any:  # fmt: skip
    """Median and quartiles of the SCR per ``k`` (left) and one typical object filtered at each ``k`` (right)."""
    n_k = len(curves)
    figure = new_figure(max(11.0, 4.8 + 1.6 * n_k), 4.4)
    grid = figure.add_gridspec(1, 1 + n_k, width_ratios=[3.2] + [1] * n_k, left=0.065, right=0.99, top=0.8,
                               bottom=0.2, wspace=0.12)  # fmt: skip
    ax = figure.add_subplot(grid[0, 0])
    x = np.arange(n_k)
    defined = [c.median is not None for c in curves]
    xs = x[defined]
    if xs.size:
        q1 = [c.q1 for c in curves if c.median is not None]
        q3 = [c.q3 for c in curves if c.median is not None]
        med = [c.median for c in curves if c.median is not None]
        ax.fill_between(xs, q1, q3, color="#90caf9", alpha=0.6, label="quartiles (25-75%)")
        ax.plot(xs, med, "o-", color="#0d47a1", label="median")
        for xi, m in zip(xs, med, strict=True):
            ax.annotate(f"{m:.2f}", (xi, m), textcoords="offset points", xytext=(0, 6), ha="center", fontsize=8)
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xticks(x, [_k_label(c.k) for c in curves], fontsize=8)
    ax.set_xlabel("k: DCT[:k, :k] of the local window zeroed", fontsize=9)
    ax.set_ylabel("SCR = |mu_t - mu_b| / sigma_b")
    n_objects = max((c.defined for c in curves), default=0)
    ax.set_title(f"{n_objects:,} tiny objects in {images} image(s)", fontsize=10)
    if example is not None:
        _draw_example(figure, grid, measured, example, curves, geometry, ranges)
    word = "holds" if verdict.holds else "does not hold"
    figure.suptitle(f"SCR of tiny objects as low frequencies are filtered out (paper Fig. 1): the claim "
                    f"'first rises, then falls' {word} here", fontsize=11, y=0.98)  # fmt: skip
    figure.text(0.5, 0.9, f"target {geometry.target} x {geometry.target} px, background ring to "
                f"{geometry.background} x {geometry.background} px, DCT over a {geometry.window} x "
                f"{geometry.window} px local window (image side if smaller); {verdict.objects_rise_fall} of "
                f"{verdict.objects} objects rise then fall individually", ha="center", fontsize=8.5)  # fmt: skip
    return figure


def _k_label(k: int) -> str:
    return {0: "0\n(none)", 1: "1\n(DCT[0,0])"}.get(k, str(k))


def _draw_example(figure: Any, grid: Any, measured: _Measured, example: int, curves: Sequence[SCRCurve],
                  geometry: SCRGeometry, ranges: Sequence[int]) -> None:  # fmt: skip
    from matplotlib.patches import Rectangle

    image, line, category, size, cx, cy = measured.keys[example]
    gray = to_gray(read_rgb(measured.images[example]))
    squares = filtered_neighbourhoods(gray, np.array([[cx, cy]]), ranges, geometry)[0]
    stats = measured.stats[example]
    lo = (geometry.background - geometry.target) / 2
    for j, curve in enumerate(curves):
        ax = figure.add_subplot(grid[0, 1 + j])
        ax.imshow(squares[j], cmap="gray", interpolation="nearest")
        ax.add_patch(Rectangle((lo - 0.5, lo - 0.5), geometry.target, geometry.target, fill=False,
                               edgecolor="#ffd600", linewidth=0.8))  # fmt: skip
        value = stats[j, 0]
        ax.text(0.5, 0.04, "undefined" if math.isnan(value) else f"SCR {value:.2f}", color="red", fontsize=9,
                ha="center", va="bottom", transform=ax.transAxes, fontweight="bold",
                bbox=dict(facecolor="white", alpha=0.7, edgecolor="none", pad=1))  # fmt: skip
        ax.set_title("no filter" if curve.k == 0 else f"DCT[:{curve.k}, :{curve.k}] zeroed", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    left = grid[0, 1].get_position(figure).x0
    right = grid[0, len(curves)].get_position(figure).x1
    figure.text((left + right) / 2, 0.13, f"typical object (its SCR curve closest to the median): {image}, label "
                f"line {line}, {category}, {size:.1f} px\n{geometry.background} x {geometry.background} px "
                f"background square, {geometry.target} x {geometry.target} px target region outlined; each panel "
                "scaled to its own range", ha="center", va="top", fontsize=8)  # fmt: skip
