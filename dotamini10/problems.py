"""Problem records for bad input data: collected into ``problems.jsonl`` or, in strict mode, fatal at once.

The one owner of the problems file: every builder (DOTAmini10, AI-TOD, the COCO slicer) records its problems
here, each with a reason code from its table below.

Notes:
    A problem names the file, the 1-based line (None when it concerns the whole file: ``null`` in
    ``problems.jsonl``; a 0 given by a caller means the same) and a reason code from
    ``REASONS``. Problems never raise Python exceptions beyond ``StrictModeError`` (a ``DatasetError``), so the
    command line turns the first one into a single line ``file:line: reason: detail`` with exit code 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from .errors import DatasetError

REASONS: dict[str, str] = {
    "token_count": "label line does not have 8 coordinates, a category and an optional difficult flag",
    "non_numeric": "a coordinate or the difficult flag is not a number",
    "unknown_category": "category is not a DOTA class",
    "degenerate_polygon": "polygon has zero area",
    "self_intersecting": "polygon edges cross each other",
    "outside_image": "polygon reaches outside the image; it was clipped to the image",
    "label_without_image": "label file has no image with the same name",
    "image_without_label": "image has no label file with the same name; the image is skipped",
    "duplicate_image": "several images share one name; the first in sorted order is used",
    "unreadable_label": "label file cannot be read as UTF-8 text",
    "unreadable_image": "image cannot be opened or decoded",
    "truncated_image": "image file ends before its data does",
}

# The AI-TOD build's reasons (``hsfpn-data build-aitod``).
AITOD_REASONS: dict[str, str] = {
    "missing_list": "an aitod_xview_{split}.txt list is not in --lists",
    "unparsable_list": "a list of xView windows does not parse as a Python list of names",
    "bad_list_entry": "a list entry is not an xView window name {id}__{x}_{y}.png",
    "missing_tif": "a tif named in a list is not in --xview",
    "unsupported_pixels": "a tif is not 3-channel 8-bit, which the official generation cannot cut either",
    "window_outside_tif": "a listed window starts outside its tif",
    "window_off_grid": "a listed window is not one the official rule cuts from this tif (a different tif?)",
    "unparsable_json": "an annotation json does not parse as a COCO document",
    "image_not_provided": "an annotation json names an image neither AI-TOD_wo_xview nor the xView lists provide",
    "image_missing": "an image an annotation json names is not in the output",
    "size_mismatch": "an image's size differs from the one its annotation json gives",
    "box_outside_image": "an annotation box falls outside its image",
    "annotation_without_image": "an annotation's image_id names no image of its json",
}
# The COCO slicer's reasons (``hsfpn-data slice``) beyond those above it shares (unreadable_image,
# truncated_image, outside_image, unparsable_json, size_mismatch).
SLICE_REASONS: dict[str, str] = {
    "missing_image": "an image the annotation json names is not in --images",
    "bad_annotation": "an annotation has no usable bbox (missing, not four numbers, negative size), category or image",
    "degenerate_box": "a box has zero area; it is left out",
}
_KNOWN = {**REASONS, **AITOD_REASONS, **SLICE_REASONS}


def count_reasons(problems: Iterable[Problem]) -> dict[str, int]:
    """Number of problems per reason, keys sorted (what records and summaries report)."""
    return dict(sorted(Counter(p.reason for p in problems).items()))


class StrictModeError(DatasetError):
    """Raised on the first problem when the build runs with ``--strict``."""


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in the input data.

    Attributes:
        file: Path of the offending file as given to the reader (the builder passes paths relative to the
            DOTA root).
        line: 1-based line number in a label file, None (or 0, stored as None) when the problem concerns the
            whole file.
        reason: A key of ``REASONS`` (DOTA sources), ``AITOD_REASONS`` or ``SLICE_REASONS``.
        detail: Human-readable specifics (the offending token, the image size, ...).
    """

    file: str
    line: int | None
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in _KNOWN:
            raise ValueError(f"reason: unknown problem reason {self.reason!r}")
        if not self.line:
            object.__setattr__(self, "line", None)

    def sort_key(self) -> tuple[str, int, str, str]:
        """File, line (a whole-file problem first), reason, detail."""
        return (self.file, self.line or 0, self.reason, self.detail)

    def message(self) -> str:
        """One line ``file:line: reason: detail``."""
        where = f"{self.file}:{self.line}" if self.line else self.file
        detail = f": {self.detail}" if self.detail else ""
        return f"{where}: {self.reason}{detail}"

    def to_dict(self) -> dict[str, object]:
        """The JSON record written to ``problems.jsonl``."""
        return asdict(self)


class ProblemLog:
    """Collects problems; in strict mode the first one raises ``StrictModeError``.

    Args:
        strict: Stop at the first problem. Defaults to False.
    """

    def __init__(self, *, strict: bool = False) -> None:
        self.strict = strict
        self._problems: list[Problem] = []

    def add(self, problem: Problem) -> None:
        """Record ``problem``; raise ``StrictModeError`` with its one-line message in strict mode."""
        if self.strict:
            raise StrictModeError(problem.message())
        self._problems.append(problem)

    def extend(self, problems: Iterable[Problem]) -> None:
        """Record several problems in order."""
        for problem in problems:
            self.add(problem)

    @property
    def problems(self) -> list[Problem]:
        """All problems, sorted by file, line, reason and detail (a stable order for ``problems.jsonl``)."""
        return sorted(self._problems, key=Problem.sort_key)

    def counts(self) -> dict[str, int]:
        """Number of problems per reason, keys sorted."""
        return count_reasons(self._problems)

    def __len__(self) -> int:
        return len(self._problems)
