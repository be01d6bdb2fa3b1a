"""Problem records for bad input data: collected into ``problems.jsonl`` or, in strict mode, fatal at once.

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
        reason: A key of ``REASONS``.
        detail: Human-readable specifics (the offending token, the image size, ...).
    """

    file: str
    line: int | None
    reason: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
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
        return dict(sorted(Counter(p.reason for p in self._problems).items()))

    def __len__(self) -> int:
        return len(self._problems)
