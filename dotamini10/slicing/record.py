"""``slicing/{split}/slice.json``: the record of one slice (its one owner: written and read here only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..build_record import JsonRecord
from ..errors import DatasetError
from ..io import read_json_if_valid

SLICE_JSON = "slice.json"


@dataclass(frozen=True)
class SliceRecord(JsonRecord):
    """What a slice did.

    Attributes:
        tool: Always ``"hsfpn-data slice"``.
        toolkit_version: The toolkit's version.
        options: :meth:`SliceOptions.to_dict`.
        source: The json (path and sha256) and the images folder.
        runtime: What did not affect the outputs (the worker count).
        counts: Images, windows, instances, ignore areas, source annotations by fate.
        problems: Problems per reason.
        outputs: sha256 of every output file of the split, by path relative to the output root.
    """

    FILE = SLICE_JSON

    tool: str = "hsfpn-data slice"
    toolkit_version: str | None = None
    options: Mapping[str, Any] | None = None
    source: Mapping[str, Any] | None = None
    runtime: Mapping[str, Any] | None = None
    counts: Mapping[str, Any] | None = None
    problems: Mapping[str, int] | None = None
    outputs: Mapping[str, str] | None = None

    @classmethod
    def read(cls, folder: Path) -> SliceRecord | None:
        """The record in ``folder``, or None when it has none (or a damaged one: the slice then runs again)."""
        path = Path(folder) / SLICE_JSON
        data = read_json_if_valid(path)
        if not isinstance(data, dict):
            return None
        try:
            return cls.from_dict(data, path=path)
        except DatasetError:
            return None
