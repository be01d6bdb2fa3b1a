"""A synthetic DOTA v1.0 release, generated from a seed: the embedded default input of the builder.

``hsfpn-data build-dotamini10`` without ``--dota-root`` builds from this sample, so the demo, the tests and the
benchmarks run on a fresh machine with no download. The scenes imitate what matters to the builder and to a
tiny-object detector: large images (2,000-5,000 px), all 15 DOTA v1.0 classes at realistic sizes with a size
distribution tilted toward tiny objects, rotated boxes written as DOTA polygons, ``imagesource:``/``gsd:``
headers, difficult flags, and objects deliberately placed across the borders of the 1,024 x 1,024 windows
(stride 768) so the splitter's intersection rule is exercised. Every object is drawn in the image (a class
coloured, class shaped mark on a textured background), so a detector can learn from the sample.

Example:
    >>> from pathlib import Path
    >>> root = generate_synthetic_dota(Path("/tmp/syn"), seed=0)  # doctest: +SKIP
    >>> sorted(p.name for p in root.iterdir())  # doctest: +SKIP
    ['train', 'val']
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .classes import DOTA_V1_0_CLASSES
from .png import encode_png
from .io import atomic_write_bytes

logger = logging.getLogger(__name__)

# DOTA v1.0's fifteen categories, with the exact spellings of the label files.
DOTA_V1_CLASSES: tuple[str, ...] = DOTA_V1_0_CLASSES


@dataclass(frozen=True)
class ClassLook:
    """How one class is sized and drawn.

    Attributes:
        length: (min, max) of the long side in pixels; sampled from a power law tilted toward ``min``.
        aspect: (min, max) of long side / short side.
        weight: Relative frequency among the objects of a scene.
        colour: BGR fill colour.
        mark: BGR colour of the class-specific inner mark.
        shape: One of ``rect``, ``plane``, ``rotor``, ``disc``, ``ring``, ``court``, ``track``, ``diamond``.
    """

    length: tuple[float, float]
    aspect: tuple[float, float]
    weight: float
    colour: tuple[int, int, int]
    mark: tuple[int, int, int]
    shape: str


# Long sides follow DOTA at ~0.1-0.3 m/px: cars 18-70 px, planes 40-130 px, courts and fields much larger, so
# that after the recipe's 0.5-1.0 rescale roughly a fifth to a third of the instances fall below 16 px, near the
# paper's 17.3% (the power law still tilts every class toward its small end). Weights follow DOTA's imbalance
# (vehicles and ships dominate, the three augmented classes are rare) without its 77:1 extreme; every scene
# still holds one object of every class.
CLASS_LOOKS: dict[str, ClassLook] = {
    "plane": ClassLook((40, 130), (1.0, 1.25), 6, (205, 205, 210), (120, 120, 130), "plane"),
    "baseball-diamond": ClassLook((50, 150), (1.0, 1.1), 0.3, (60, 140, 70), (90, 170, 215), "diamond"),
    "bridge": ClassLook((40, 300), (3.0, 8.0), 1.5, (150, 150, 150), (90, 90, 90), "rect"),
    "ground-track-field": ClassLook((120, 300), (1.6, 2.0), 1, (70, 80, 190), (80, 160, 60), "track"),
    "small-vehicle": ClassLook((18, 70), (1.8, 2.5), 30, (40, 40, 200), (20, 20, 20), "rect"),
    "large-vehicle": ClassLook((30, 160), (2.5, 4.0), 16, (200, 200, 60), (40, 40, 40), "rect"),
    "ship": ClassLook((18, 250), (2.5, 5.0), 22, (230, 230, 235), (60, 100, 160), "rect"),
    "tennis-court": ClassLook((25, 60), (2.0, 2.3), 3, (150, 90, 40), (245, 245, 245), "court"),
    "basketball-court": ClassLook((25, 60), (1.7, 1.9), 0.3, (60, 130, 200), (245, 245, 245), "court"),
    "storage-tank": ClassLook((16, 100), (1.0, 1.05), 7, (220, 225, 225), (160, 160, 165), "disc"),
    "soccer-ball-field": ClassLook((80, 200), (1.4, 1.6), 1, (60, 170, 60), (245, 245, 245), "court"),
    "roundabout": ClassLook((40, 150), (1.0, 1.05), 1, (110, 110, 110), (70, 150, 80), "ring"),
    "harbor": ClassLook((30, 200), (2.0, 6.0), 3, (120, 110, 100), (200, 190, 180), "rect"),
    "swimming-pool": ClassLook((20, 70), (1.3, 2.5), 4, (220, 170, 60), (250, 230, 170), "rect"),
    "helicopter": ClassLook((25, 70), (1.0, 1.5), 0.3, (50, 90, 60), (25, 25, 25), "rotor"),
}


#: The smallest scene side the generator accepts: a smaller scene could not hold even its smallest object (a
#: 16 px storage tank, up to 23 px across when rotated, plus the placement margins). Larger objects that do not
#: fit a scene are skipped, as are objects that find no free spot.
MIN_SCENE_SIDE = 32


@dataclass(frozen=True)
class SceneSpec:
    """One synthetic scene of the release.

    Attributes:
        name: Image stem (``{name}.png`` and ``{name}.txt``).
        split: ``train`` or ``val``.
        width: Image width in pixels.
        height: Image height in pixels.
        n_objects: Objects to place (a target: an object that finds no free spot after several tries is skipped).
        gsd: Ground sample distance written in the ``gsd:`` header (metres per pixel).
        source: Value of the ``imagesource:`` header.
    """

    name: str
    split: str
    width: int
    height: int
    n_objects: int
    gsd: float = 0.15
    source: str = "GoogleEarth"


# Four scenes, ~27 Mpx in all: enough windows for every stage of the builder, fast enough for `make demo`.
DEFAULT_SCENES: tuple[SceneSpec, ...] = (
    SceneSpec("S0000", "train", 2000, 2000, 320, gsd=0.132),
    SceneSpec("S0001", "train", 3072, 2560, 560, gsd=0.151, source="GF"),
    SceneSpec("S0002", "train", 4800, 2048, 640, gsd=0.118),
    SceneSpec("S0003", "val", 2600, 2200, 420, gsd=0.144),
)


@dataclass(frozen=True)
class SyntheticObject:
    """One labelled object.

    Attributes:
        polygon: ``(x1, y1, ..., x4, y4)``, corners clockwise in image coordinates, rounded to 0.1 px.
        category: DOTA category name.
        difficult: DOTA difficult flag (0 or 1).
    """

    polygon: tuple[float, ...]
    category: str
    difficult: int


def sample_power_law(rng: np.random.Generator, low: float, high: float, alpha: float, size: int) -> np.ndarray:
    """Sample from the density p(x) proportional to x**-alpha on [low, high] by inverting its CDF.

    Args:
        rng: Random generator.
        low: Lower end (> 0).
        high: Upper end (>= low).
        alpha: Exponent; larger values put more mass near ``low``. ``alpha == 1`` is the log-uniform law.
        size: Number of samples.

    Returns:
        Array of shape (size,) with values in [low, high].
    """
    if not 0 < low <= high:
        raise ValueError(f"need 0 < low <= high, got low={low}, high={high}")
    u = rng.random(size)
    if math.isclose(alpha, 1.0):
        return low * (high / low) ** u
    a = 1.0 - alpha
    return (low**a + u * (high**a - low**a)) ** (1.0 / a)


def rotated_rectangle(cx: float, cy: float, length: float, width: float, angle: float) -> np.ndarray:
    """Corners of a rotated rectangle, clockwise on screen (y points down).

    Args:
        cx: Centre x.
        cy: Centre y.
        length: Side along the rotated x axis.
        width: Side along the rotated y axis.
        angle: Rotation in radians (counter-clockwise in maths axes, clockwise on screen).

    Returns:
        Array of shape (4, 2) of (x, y) corners.
    """
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64) * [length / 2, width / 2]
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return half @ rot.T + [cx, cy]


def window_borders(size: int, *, crop_size: int = 1024, stride: int = 768) -> list[int]:
    """Interior pixel lines where a split window starts or ends along one axis.

    Windows start at 0, stride, 2*stride, ... and the last one is moved back to end flush with the image edge;
    an object centred on one of these lines is cut by some window.

    Args:
        size: Image size along the axis.
        crop_size: Window size. Defaults to 1024.
        stride: Window step. Defaults to 768.

    Returns:
        Sorted line positions strictly inside (0, size).
    """
    if size <= crop_size:
        return []
    starts = list(range(0, size - crop_size, stride)) + [size - crop_size]
    lines = set(starts) | {s + crop_size for s in starts}
    return sorted(v for v in lines if 0 < v < size)


def render_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A textured terrain: smooth colour fields, a few roads and fine grain.

    Args:
        width: Image width.
        height: Image height.
        rng: Random generator.

    Returns:
        uint8 BGR image of shape (height, width, 3).
    """
    palette = np.array([[70, 110, 95], [95, 120, 130], [60, 95, 70], [120, 135, 140]], dtype=np.float32)
    # Coarse weights over the palette, upsampled smoothly: fields, bare soil and urban patches.
    cells = rng.random((height // 160 + 2, width // 160 + 2, len(palette)), dtype=np.float32) ** 3
    coarse = (cells / cells.sum(axis=2, keepdims=True)) @ palette
    image = cv2.resize(coarse.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(max(2, (width + height) // 1200)):
        p0 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        shade = int(rng.integers(85, 125))
        cv2.line(image, p0, p1, (shade, shade, shade), int(rng.integers(8, 22)), lineType=cv2.LINE_AA)
    # Grain at half resolution keeps the PNGs small while still breaking up flat areas.
    grain = rng.integers(0, 13, size=((height + 1) // 2, (width + 1) // 2), dtype=np.uint8)
    grain = cv2.resize(grain, (width, height), interpolation=cv2.INTER_NEAREST)
    image = cv2.add(image, cv2.merge([grain, grain, grain]))
    return cv2.subtract(image, (6, 6, 6, 0))


def _sample_objects(
    rng: np.random.Generator, n_objects: int, *, alpha: float
) -> list[tuple[str, float, float, float]]:
    """Draw (category, length, width, angle) for a scene: one per class first, the rest by class weight."""
    classes = list(DOTA_V1_CLASSES)
    weights = np.array([CLASS_LOOKS[c].weight for c in classes])
    extra = max(0, n_objects - len(classes))
    picks = classes + [classes[i] for i in rng.choice(len(classes), size=extra, p=weights / weights.sum())]
    shapes = []
    for category in picks:
        look = CLASS_LOOKS[category]
        length = float(sample_power_law(rng, *look.length, alpha, 1)[0])
        aspect = float(rng.uniform(*look.aspect))
        angle = float(rng.uniform(0.0, math.pi))
        shapes.append((category, length, max(length / aspect, 3.0), angle))
    return shapes


def place_objects(
    width: int,
    height: int,
    n_objects: int,
    rng: np.random.Generator,
    *,
    alpha: float = 1.0,
    border_fraction: float = 0.12,
    crop_size: int = 1024,
    stride: int = 768,
    tries: int = 30,
) -> list[SyntheticObject]:
    """Place non-overlapping rotated objects in a scene.

    Args:
        width: Image width.
        height: Image height.
        n_objects: Objects to place; every class gets one before the rest are drawn by class weight.
        rng: Random generator.
        alpha: Power-law exponent of the long-side length. Defaults to 1.0 (log-uniform: as many objects
            per octave of size, so small ones dominate per pixel of size).
        border_fraction: Share of objects centred on a window border line. Defaults to 0.12.
        crop_size: Window size whose borders are targeted. Defaults to 1024.
        stride: Window step whose borders are targeted. Defaults to 768.
        tries: Placement attempts per object before it is skipped. Defaults to 30.

    Returns:
        The placed objects, largest first, each inside [1, width - 2] x [1, height - 2]. An object too large
        for the scene, or that finds no free spot in ``tries`` attempts, is skipped.

    Raises:
        ValueError: A side below :data:`MIN_SCENE_SIDE` or a negative ``n_objects``.

    Notes:
        The targeted borders are those of the unscaled scene, i.e. of a build at scale 1.0 (``--scale-mode
        fixed --scales 1.0``). Rescaled builds move the windows; there, objects cross window borders by chance,
        as in real DOTA scenes (hundreds of objects per scene make that common).
    """
    if width < MIN_SCENE_SIDE or height < MIN_SCENE_SIDE:
        raise ValueError(f"a synthetic scene needs sides of at least {MIN_SCENE_SIDE} px, got {width} x {height}")
    if n_objects < 0:
        raise ValueError(f"n_objects must be >= 0, got {n_objects}")
    borders = (window_borders(width, crop_size=crop_size, stride=stride),
               window_borders(height, crop_size=crop_size, stride=stride))
    occupied = np.zeros((height, width), dtype=bool)
    # Largest first: big fields would rarely find room among hundreds of cars placed before them.
    shapes = sorted(_sample_objects(rng, n_objects, alpha=alpha), key=lambda s: -s[1] * s[2])
    placed: list[SyntheticObject] = []
    for category, length, obj_width, angle in shapes:
        corners0 = rotated_rectangle(0.0, 0.0, length, obj_width, angle)
        half_w, half_h = np.abs(corners0).max(axis=0) + 1.0
        # The centre is drawn from [half + 1, size - half - 2]: an object that leaves that range empty is
        # skipped (only the minimum scene size below is promised room for an object).
        if 2 * half_w + 3 > width or 2 * half_h + 3 > height:
            continue
        on_border = rng.random() < border_fraction
        for _ in range(tries):
            cx = float(rng.uniform(half_w + 1, width - half_w - 2))
            cy = float(rng.uniform(half_h + 1, height - half_h - 2))
            axis = int(rng.integers(0, 2))
            if on_border and borders[axis]:
                line = borders[axis][int(rng.integers(0, len(borders[axis])))]
                # Straddle the line: the centre lies within a quarter of the object's extent from it.
                offset = float(rng.uniform(-0.25, 0.25)) * (2 * (half_w if axis == 0 else half_h))
                limit = (width - half_w - 2, height - half_h - 2)[axis]
                low = (half_w + 1, half_h + 1)[axis]
                value = min(max(line + offset, low), limit)
                cx, cy = (value, cy) if axis == 0 else (cx, value)
            corners = np.round(corners0 + [cx, cy], 1)
            x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
            x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
            if x0 < 0 or y0 < 0 or x1 > width or y1 > height or occupied[y0:y1, x0:x1].any():
                continue
            occupied[y0:y1, x0:x1] = True
            difficult = int(rng.random() < (0.25 if length < 12 else 0.04))
            placed.append(SyntheticObject(tuple(float(v) for v in corners.ravel()), category, difficult))
            break
    return placed


def _fill(image: np.ndarray, corners: np.ndarray, colour: tuple[int, int, int]) -> None:
    # 4 fractional bits: sub-pixel corners, so tiny objects keep their shape and orientation.
    pts = np.round(corners * 16).astype(np.int32)
    cv2.fillPoly(image, [pts], colour, lineType=cv2.LINE_AA, shift=4)


def _ellipse(image: np.ndarray, cx: float, cy: float, rx: float, ry: float, angle: float,
             colour: tuple[int, int, int], thickness: int) -> None:
    centre = (int(round(cx * 16)), int(round(cy * 16)))
    axes = (max(1, int(round(rx * 16))), max(1, int(round(ry * 16))))
    cv2.ellipse(image, centre, axes, math.degrees(angle), 0, 360, colour, thickness, cv2.LINE_AA, 4)


def draw_object(image: np.ndarray, obj: SyntheticObject, rng: np.random.Generator) -> None:
    """Draw one object in place on a scene the generator owns.

    Args:
        image: uint8 BGR scene of shape (H, W, 3), modified in place.
        obj: The object; its polygon is the drawn footprint.
        rng: Random generator (brightness jitter per object).
    """
    look = CLASS_LOOKS[obj.category]
    corners = np.asarray(obj.polygon, dtype=np.float64).reshape(4, 2)
    cx, cy = corners.mean(axis=0)
    length = float(np.linalg.norm(corners[1] - corners[0]))
    width = float(np.linalg.norm(corners[3] - corners[0]))
    angle = math.atan2(corners[1][1] - corners[0][1], corners[1][0] - corners[0][0])
    jitter = int(rng.integers(-18, 19))
    colour = tuple(int(np.clip(c + jitter, 0, 255)) for c in look.colour)
    mark = look.mark

    def part(along: float, across: float, l_frac: float, w_frac: float, col: tuple[int, int, int]) -> None:
        # A sub-rectangle in the object's frame: offsets and sizes are fractions of length/width.
        c, s = math.cos(angle), math.sin(angle)
        px = cx + along * length * c - across * width * s
        py = cy + along * length * s + across * width * c
        _fill(image, rotated_rectangle(px, py, l_frac * length, w_frac * width, angle), col)

    if look.shape == "plane":
        part(0.0, 0.0, 1.0, 0.22, colour)  # fuselage
        part(0.08, 0.0, 0.22, 1.0, colour)  # wings
        part(-0.42, 0.0, 0.12, 0.45, colour)  # tail
        part(0.4, 0.0, 0.1, 0.12, mark)  # cockpit: gives the nose a direction
    elif look.shape == "rotor":
        part(0.0, 0.0, 0.55, 0.45, colour)
        part(-0.27, 0.0, 0.45, 0.12, colour)  # tail boom, ending inside the labelled box
        _ellipse(image, cx, cy, 0.5 * width, 0.5 * width, 0.0, mark, 1)
    elif look.shape == "disc":
        _ellipse(image, cx, cy, 0.5 * length, 0.5 * width, angle, colour, -1)
        _ellipse(image, cx, cy, 0.3 * length, 0.3 * width, angle, mark, max(1, int(width // 12)))
    elif look.shape == "ring":
        _ellipse(image, cx, cy, 0.5 * length, 0.5 * width, angle, colour, -1)
        _ellipse(image, cx, cy, 0.3 * length, 0.3 * width, angle, mark, -1)
    elif look.shape == "court":
        _fill(image, corners, colour)
        thick = max(1, int(width // 25))
        inset = (corners - [cx, cy]) * 0.88 + [cx, cy]  # the court's outer line, just inside its edge
        pts = np.round(inset * 16).astype(np.int32)
        cv2.polylines(image, [pts], True, mark, thick, cv2.LINE_AA, 4)
        part(0.0, 0.0, 0.02, 0.88, mark)  # centre line
    elif look.shape == "track":
        _fill(image, corners, look.mark)
        _ellipse(image, cx, cy, 0.42 * length, 0.42 * width, angle, colour, max(2, int(width // 8)))
    elif look.shape == "diamond":
        _fill(image, corners, colour)
        inner = rotated_rectangle(cx, cy, 0.55 * length, 0.55 * width, angle + math.pi / 4)
        _fill(image, inner, mark)
    else:  # rect: a body with an off-centre stripe, so the front and the orientation are visible
        _fill(image, corners, colour)
        part(0.15, 0.0, 0.45, 0.45, mark)


def make_scene(
    width: int, height: int, *, n_objects: int, rng: np.random.Generator
) -> tuple[np.ndarray, list[SyntheticObject]]:
    """Render one scene and its objects.

    Args:
        width: Image width.
        height: Image height.
        n_objects: Objects to place (see :func:`place_objects`).
        rng: Random generator; the scene is a pure function of its state.

    Returns:
        ``(image, objects)``: uint8 BGR image of shape (height, width, 3) and the placed objects.
    """
    image = render_background(width, height, rng)
    objects = place_objects(width, height, n_objects, rng)
    for obj in objects:
        draw_object(image, obj, rng)
    return image, objects


def format_label_file(objects: Sequence[SyntheticObject], *, source: str, gsd: float) -> str:
    """The DOTA label text of one image.

    Args:
        objects: The image's objects.
        source: ``imagesource:`` header value.
        gsd: ``gsd:`` header value.

    Returns:
        Text with the two header lines and one ``x1 y1 ... x4 y4 category difficult`` line per object.
    """
    lines = [f"imagesource:{source}", f"gsd:{gsd}"]
    for obj in objects:
        coords = " ".join(f"{v:.1f}" for v in obj.polygon)
        lines.append(f"{coords} {obj.category} {obj.difficult}")
    return "\n".join(lines) + "\n"


def generate_synthetic_dota(
    out_dir: Path, *, seed: int = 0, scenes: Sequence[SceneSpec] = DEFAULT_SCENES, png_compression: int = 1
) -> Path:
    """Write a synthetic DOTA v1.0 release root.

    Args:
        out_dir: Release root to create (existing files of the same names are replaced).
        seed: Seed; scene ``i`` uses ``np.random.default_rng([seed, i])``, so the output is a pure function of
            ``(seed, scenes)``. Defaults to 0.
        scenes: The scenes to render. Defaults to :data:`DEFAULT_SCENES` (3 train + 1 val).
        png_compression: Deflate level (0-3) of the PNGs (lossless at every level). Defaults to 1.

    Returns:
        ``out_dir``, holding ``{split}/images/{name}.png`` and ``{split}/labelTxt/{name}.txt``.

    Notes:
        Outputs are byte-identical for the same seed and scenes with a given OpenCV build: PNGs are encoded
        by ``cv2.imencode`` with fixed parameters and no metadata, labels use fixed 0.1 px formatting.
    """
    out_dir = Path(out_dir)
    names = [s.name for s in scenes]
    if len(set(names)) != len(names):
        raise ValueError(f"scene names must be unique, got {names}")
    for index, spec in enumerate(scenes):
        if spec.split not in ("train", "val"):
            raise ValueError(f"scene {spec.name}: split must be 'train' or 'val', got {spec.split!r}")
        rng = np.random.default_rng([seed, index])
        image, objects = make_scene(spec.width, spec.height, n_objects=spec.n_objects, rng=rng)
        images_dir = out_dir / spec.split / "images"
        labels_dir = out_dir / spec.split / "labelTxt"
        images_dir.mkdir(parents=True, exist_ok=True)
        labels_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(images_dir / f"{spec.name}.png", encode_png(image, compression=png_compression))
        label = format_label_file(objects, source=spec.source, gsd=spec.gsd)
        atomic_write_bytes(labels_dir / f"{spec.name}.txt", label.encode("utf-8"))
        logger.debug("synthetic scene %s: %dx%d, %d objects", spec.name, spec.width, spec.height, len(objects))
    return out_dir
