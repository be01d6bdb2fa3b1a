"""``build.json``: the one owner of its schema, written by the builders and read by ``stats`` and the data card.

Two builders write one: ``build-dotamini10`` (:class:`BuildRecord`) and ``build-aitod``
(:class:`dotamini10.aitod.record.AitodRecord`, marked by ``"dataset": "aitod"``). Readers call
:func:`read_build_record` and get the typed record back; nobody else opens the file or guesses its keys.

Notes:
    A DOTAmini10 record has no ``dataset`` key (records written before AI-TOD existed read the same way), and its
    key order and layout are those of every earlier build, so its bytes do not change. Every field may be missing
    from a record written by hand or by an older toolkit: the reader leaves it ``None`` and the card says "not
    recorded". A field of the wrong type is a one-line :class:`DatasetError` naming the file and the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from .errors import DatasetError
from .io import read_json, write_json
from .options import BuildOptions
from .reference import DOTAMINI10_REFERENCE, Reference

BUILD_JSON = "build.json"
_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(BuildOptions))


class JsonRecord:
    """A frozen dataclass kept as one JSON document ``FILE``: its fields in order, one-space indent."""

    FILE = BUILD_JSON

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, fields in declaration order."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def write(self, folder: Path) -> None:
        """Write ``folder/FILE`` atomically (deterministic JSON)."""
        write_json(Path(folder) / self.FILE, self.to_dict(), indent=1)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, path: Path) -> Any:
        """The record in ``data`` (the parsed file at ``path``); missing fields keep their defaults.

        Raises:
            DatasetError: A field holds the wrong JSON type.
        """
        return cls(**typed_fields(cls, data, path))


@dataclass(frozen=True)
class BuildRecord(JsonRecord):
    """The record of a DOTAmini10 build (``build-dotamini10``).

    Attributes:
        toolkit_version: The toolkit's version.
        seed: The build seed.
        options: Every output-affecting option, :meth:`BuildOptions.to_dict` (read them with :meth:`option`).
        source: The DOTA root or the synthetic sample, its layout, splits and DOTA version.
        runtime: What did not affect the outputs (the worker count).
        counts: Per split: images, augmented images, instances, source images, object fates, instances per class.
        problems: Input problems per reason.
        inputs: sha256 of every input file, by path relative to the DOTA root.
        outputs: sha256 of every output file, by path relative to the output folder.
    """

    toolkit_version: str | None = None
    seed: int | None = None
    options: Mapping[str, Any] | None = None
    source: Mapping[str, Any] | None = None
    runtime: Mapping[str, Any] | None = None
    counts: Mapping[str, Mapping[str, Any]] | None = None
    problems: Mapping[str, int] | None = None
    inputs: Mapping[str, str] | None = None
    outputs: Mapping[str, str] | None = None

    dataset = "dotamini10"

    def option(self, name: str) -> Any:
        """The recorded value of build option ``name`` (a :class:`BuildOptions` field), None when not recorded.

        Raises:
            KeyError: ``name`` is not a build option (a caller's typo, never bad input).
        """
        if name not in _OPTION_NAMES:
            raise KeyError(f"{name!r} is not a BuildOptions field")
        return (self.options or {}).get(name)

    def reference(self) -> Reference:
        """The published figures this dataset is compared with: the HS-FPN paper's DOTAmini10."""
        return DOTAMINI10_REFERENCE

    def annotation_files(self) -> None:
        """None: the statistics read every ``annotations/{split}.json``."""
        return None


#: What :func:`read_build_record` returns: one record type per builder.
AnyRecord = Union[BuildRecord, "AitodRecord"]  # noqa: F821 (imported lazily below)


def read_build_record(dataset_dir: Path) -> AnyRecord | None:
    """The typed ``build.json`` of a dataset root, or None when it has none.

    Raises:
        DatasetError: ``build.json`` is not valid JSON, not an object, names an unknown dataset or holds a field
            of the wrong type.
    """
    path = Path(dataset_dir) / BUILD_JSON
    if not path.is_file():
        return None
    data = read_json(path, what="build record", error=DatasetError)
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object")
    kind = data.get("dataset", BuildRecord.dataset)
    if kind == BuildRecord.dataset:
        return BuildRecord.from_dict(data, path=path)
    if kind == "aitod":
        from .aitod.record import AitodRecord

        return AitodRecord.from_dict(data, path=path)
    raise DatasetError(f"{path}: 'dataset' is {kind!r}, expected 'dotamini10' or 'aitod'")


# JSON type of each annotated field type (the annotation text, as ``from __future__`` keeps it).
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "Mapping": (dict,),
    "list": (list,),
}


def typed_fields(cls: type, data: Mapping[str, Any], path: Path) -> dict[str, Any]:
    """The dataclass fields of ``cls`` found in ``data``, each checked against its annotated type."""
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data or data[f.name] is None:
            continue
        value = data[f.name]
        base = str(f.type).split("[", 1)[0].split(" | ", 1)[0]
        allowed = _JSON_TYPES.get(base)
        if allowed is not None and (not isinstance(value, allowed) or (base == "int" and isinstance(value, bool))):
            raise DatasetError(f"{path}: '{f.name}' should be a JSON {_json_name(base)}, got {value!r:.60}")
        values[f.name] = value
    return values


def _json_name(base: str) -> str:
    return {"str": "string", "int": "integer", "float": "number", "bool": "boolean", "Mapping": "object",
            "list": "array"}[base]
