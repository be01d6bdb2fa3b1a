"""DOTA class lists (v1.0, v1.5, v2.0) and the DOTAmini10 subset of the HS-FPN paper (appendix A.3).

Notes:
    Spellings are exactly those of the DOTA label files. ``DOTAMINI10_CLASSES`` follows the row order of the
    paper's Table 7, which is also the order of the COCO category ids (1..10) the builder writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .errors import DatasetError

DOTA_V1_0_CLASSES: tuple[str, ...] = (
    "plane",
    "baseball-diamond",
    "bridge",
    "ground-track-field",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "basketball-court",
    "storage-tank",
    "soccer-ball-field",
    "roundabout",
    "harbor",
    "swimming-pool",
    "helicopter",
)
DOTA_V1_5_CLASSES: tuple[str, ...] = (*DOTA_V1_0_CLASSES, "container-crane")
DOTA_V2_0_CLASSES: tuple[str, ...] = (*DOTA_V1_5_CLASSES, "airport", "helipad")

# Every category any DOTA release uses: a label naming anything else is reported as ``unknown_category``.
DOTA_ALL_CLASSES: frozenset[str] = frozenset(DOTA_V2_0_CLASSES)

# Table 7 order of the paper; COCO category id = position + 1.
DOTAMINI10_CLASSES: tuple[str, ...] = (
    "plane",
    "small-vehicle",
    "large-vehicle",
    "ship",
    "tennis-court",
    "baseball-diamond",
    "swimming-pool",
    "basketball-court",
    "storage-tank",
    "helicopter",
)

# AI-TOD's eight classes in its category id order (ids 1..8).
AITOD_CLASSES: tuple[str, ...] = (
    "airplane",
    "bridge",
    "storage-tank",
    "ship",
    "swimming-pool",
    "vehicle",
    "person",
    "wind-mill",
)

# The rare classes the paper augments with HSV jitter and flips.
AUGMENT_CLASSES: tuple[str, ...] = ("basketball-court", "baseball-diamond", "helicopter")


def detect_dota_version(categories: Iterable[str]) -> str:
    """Name the oldest DOTA release whose class list covers the categories seen in the labels.

    Args:
        categories: Category names found in the label files (unknown names are ignored).

    Returns:
        ``"1.0"``, ``"1.5"`` or ``"2.0"``.
    """
    seen = set(categories)
    if seen & {"airport", "helipad"}:
        return "2.0"
    if "container-crane" in seen:
        return "1.5"
    return "1.0"


def check_class_list(classes: Sequence[str], *, name: str = "classes") -> tuple[str, ...]:
    """Validate a user-given class list: known DOTA spellings, no duplicates, not empty.

    Args:
        classes: Class names in the order of their output ids.
        name: Option name used in error messages. Defaults to ``"classes"``.

    Returns:
        The classes as a tuple, order kept.

    Raises:
        DatasetError: When the list is empty, repeats a name or names a class no DOTA release has.
    """
    result = tuple(c.strip() for c in classes)
    if not result:
        raise DatasetError(f"{name}: the class list is empty")
    unknown = [c for c in result if c not in DOTA_ALL_CLASSES]
    if unknown:
        raise DatasetError(
            f"{name}: {', '.join(repr(c) for c in unknown)} is not a DOTA class "
            f"(known: {', '.join(DOTA_V2_0_CLASSES)})"
        )
    dupes = sorted({c for c in result if result.count(c) > 1})
    if dupes:
        raise DatasetError(f"{name}: {', '.join(dupes)} listed more than once")
    return result
