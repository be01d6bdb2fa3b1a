"""Stage 4: window positions and the assignment of objects to windows (pure functions, no I/O).

Notes:
    Windows are ``crop_size`` squares stepped by ``stride``; the last window of each axis is moved back to end
    flush with the image edge, and an axis shorter than a window gets a single window at 0 (the builder pads
    bottom/right). An object belongs to a window when area(polygon ∩ window) / area(polygon) >= iof_threshold.
    Objects whose bounding box lies inside the window are kept whole without calling shapely; objects whose box
    misses the window are skipped; only objects whose box crosses the window border are intersected.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DatasetError

# Ratios within this of the threshold count as reaching it, so that a cut at exactly 0.7 is not lost to
# floating-point rounding of the areas.
IOF_TOLERANCE = 1e-9


def window_starts(length: int, *, crop_size: int = 1024, stride: int = 768) -> np.ndarray:
    """Start offsets of the windows along one axis.

    Args:
        length: Axis length in pixels.
        crop_size: Window size. Defaults to 1024.
        stride: Step between windows. Defaults to 768.

    Returns:
        Increasing offsets, shape (K,), int64; the last one is ``max(length - crop_size, 0)``.
    """
    if crop_size <= 0 or stride <= 0:
        raise DatasetError(f"crop_size/stride: expected positive values, got {crop_size}, {stride}")
    last = max(length - crop_size, 0)
    starts = list(range(0, last, stride)) + [last]
    return np.array(starts, dtype=np.int64)


def get_windows(width: int, height: int, *, crop_size: int = 1024, stride: int = 768) -> np.ndarray:
    """All windows of an image, row by row (top to bottom, left to right within a row).

    Args:
        width: Image width.
        height: Image height.
        crop_size: Window size. Defaults to 1024.
        stride: Step between windows. Defaults to 768.

    Returns:
        Windows as ``[x0, y0, x1, y1]``, shape (N, 4), int64, with ``x1 - x0 == y1 - y0 == crop_size``
        (windows may reach past the image edge of a small image: that part is padding).
    """
    xs = window_starts(width, crop_size=crop_size, stride=stride)
    ys = window_starts(height, crop_size=crop_size, stride=stride)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    origins = np.stack([xx.ravel(), yy.ravel()], axis=1)
    return np.concatenate([origins, origins + crop_size], axis=1)


@dataclass
class ObjectSet:
    """Objects of one image at one scale, ready for assignment.

    Attributes:
        geoms: shapely polygons, shape (N,), object dtype.
        bounds: Bounding boxes ``[minx, miny, maxx, maxy]``, shape (N, 4).
        areas: Polygon areas, shape (N,), all > 0.
        outlines: Per object, ``polygon_rings(geom, orient=False)``: what a window that holds the object whole
            writes, shifted to its origin.
    """

    geoms: np.ndarray
    bounds: np.ndarray
    areas: np.ndarray
    outlines: list[list[np.ndarray]]

    @classmethod
    def from_geoms(cls, geoms: np.ndarray) -> ObjectSet:
        """Compute bounds, areas and outlines of ``geoms`` (vectorised)."""
        import shapely

        geoms = np.asarray(geoms, dtype=object)
        areas = shapely.area(geoms)
        return cls(geoms=geoms, bounds=shapely.bounds(geoms).reshape(-1, 4), areas=areas,
                   outlines=_outlines(geoms, areas))

    def __len__(self) -> int:
        return len(self.geoms)


@dataclass
class Assignment:
    """Objects kept in one window.

    Attributes:
        indices: Indices into the ``ObjectSet``, shape (K,), increasing.
        rings: Per kept object, its clipped outline(s) in window coordinates: a list of (M, 2) arrays, one per
            polygon part, each without the closing vertex and in the DOTA vertex order (clockwise on screen).
        truncated: Whether each kept object was clipped, shape (K,).
        iof: area(polygon ∩ window) / area(polygon) of each kept object, shape (K,).
        touched: Indices of every object overlapping the window, kept or not, shape (T,).
        touched_iof: Their area fractions inside the window, shape (T,).
    """

    indices: np.ndarray
    rings: list[list[np.ndarray]]
    truncated: np.ndarray
    iof: np.ndarray
    touched: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    touched_iof: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def __len__(self) -> int:
        return len(self.indices)


def assign_objects(objects: ObjectSet, window: np.ndarray, *, iof_threshold: float = 0.7) -> Assignment:
    """Keep the objects that lie at least ``iof_threshold`` inside a window, clipped to it.

    Args:
        objects: The image's objects.
        window: ``[x0, y0, x1, y1]``.
        iof_threshold: Minimum fraction of an object's area inside the window. Defaults to 0.7.

    Returns:
        The ``Assignment``; coordinates are relative to the window origin.
    """
    import shapely

    x0, y0, x1, y1 = (float(v) for v in window)
    b = objects.bounds
    if len(objects) == 0:
        return Assignment(np.zeros(0, dtype=np.int64), [], np.zeros(0, dtype=bool), np.zeros(0))
    inside = (b[:, 0] >= x0) & (b[:, 1] >= y0) & (b[:, 2] <= x1) & (b[:, 3] <= y1)
    touches = (b[:, 0] < x1) & (b[:, 2] > x0) & (b[:, 1] < y1) & (b[:, 3] > y0)
    crossing = np.flatnonzero(touches & ~inside)
    iof = inside.astype(np.float64)
    clipped: dict[int, object] = {}
    if len(crossing):
        box = shapely.box(x0, y0, x1, y1)
        parts = shapely.intersection(objects.geoms[crossing], box)
        iof[crossing] = shapely.area(parts) / objects.areas[crossing]
        clipped = dict(zip(crossing.tolist(), parts, strict=True))
    keep = np.flatnonzero(iof >= iof_threshold - IOF_TOLERANCE)
    origin = np.array([x0, y0])
    rings: list[list[np.ndarray]] = []
    truncated = np.zeros(len(keep), dtype=bool)
    for k, idx in enumerate(keep.tolist()):
        if idx in clipped:
            truncated[k] = iof[idx] < 1.0 - IOF_TOLERANCE
            parts = polygon_rings(clipped[idx])
        else:  # untouched objects keep their labelled vertex order (DOTA's first vertex marks the head)
            parts = objects.outlines[idx]
        rings.append([ring - origin for ring in parts])
    touched = np.flatnonzero(iof > 0)
    return Assignment(keep, rings, truncated, iof[keep], touched, iof[touched])


def _outlines(geoms: np.ndarray, areas: np.ndarray) -> list[list[np.ndarray]]:
    # ``polygon_rings(g, orient=False)`` for every object, with one shapely call for all plain polygons (every
    # object of a DOTA label is one); an object appears in about 1.5 windows, each of which needs it.
    import shapely

    outlines: list[list[np.ndarray] | None] = [None] * len(geoms)
    plain = np.flatnonzero((shapely.get_type_id(geoms) == 3) & (areas > 0))
    if len(plain):
        coords, owner = shapely.get_coordinates(shapely.get_exterior_ring(geoms[plain]), return_index=True)
        ends = np.searchsorted(owner, np.arange(1, len(plain) + 1))
        start = 0
        for k, idx in enumerate(plain.tolist()):
            outlines[idx] = [coords[start : ends[k] - 1]]  # without the closing vertex
            start = ends[k]
    return [o if o is not None else polygon_rings(g, orient=False) for o, g in zip(outlines, geoms, strict=True)]


def polygon_rings(geom, *, orient: bool = True) -> list[np.ndarray]:
    """Exterior rings of a (multi)polygon, each without its closing vertex.

    Args:
        geom: A shapely Polygon, MultiPolygon or GeometryCollection (non-areal parts are ignored).
        orient: Reverse rings that run counter-clockwise on screen. Defaults to True.

    Returns:
        One (M, 2) float64 array per polygon part with positive area.
    """
    import shapely

    result = []
    for part in shapely.get_parts(geom):
        if shapely.get_type_id(part) == 6:  # MultiPolygon inside a collection
            result.extend(polygon_rings(part, orient=orient))
            continue
        if shapely.get_type_id(part) != 3 or part.area <= 0:
            continue
        ring = np.asarray(part.exterior.coords, dtype=np.float64)[:-1]
        if orient and signed_area(ring) < 0:  # y grows downwards: a positive shoelace sum is clockwise on screen
            ring = ring[::-1]
        result.append(ring)
    return result


def signed_area(ring: np.ndarray) -> float:
    """Shoelace area of a polygon's vertices, shape (M, 2): positive for clockwise order on screen (y down)."""
    x, y = ring[:, 0], ring[:, 1]
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y) / 2.0)


def to_quadrilateral(rings: list[np.ndarray]) -> np.ndarray:
    """Four vertices describing an object for the DOTA text format.

    Args:
        rings: The object's outline parts (from ``Assignment.rings``).

    Returns:
        Vertices, shape (4, 2): the outline itself when it is one quadrilateral, otherwise its minimum-area
        rotated rectangle (a clipped quadrilateral can have up to eight vertices), clockwise on screen.
    """
    import shapely

    if len(rings) == 1 and len(rings[0]) == 4:
        return rings[0]
    hull = shapely.MultiPoint(np.concatenate(rings)).convex_hull
    rect = shapely.minimum_rotated_rectangle(hull)
    quad = polygon_rings(rect)
    if not quad or len(quad[0]) != 4:  # a collinear hull: fall back to its bounding box corners
        minx, miny, maxx, maxy = shapely.bounds(hull)
        return np.array([[minx, miny], [maxx, miny], [maxx, maxy], [minx, maxy]], dtype=np.float64)
    return quad[0]


def horizontal_box(rings: list[np.ndarray]) -> np.ndarray:
    """Axis-aligned box ``[x, y, w, h]`` around all vertices of ``rings``."""
    points = np.concatenate(rings)
    lo, hi = points.min(axis=0), points.max(axis=0)
    return np.array([lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1]], dtype=np.float64)
