"""Where an AI-TOD build's inputs are: the xView tifs, AI-TOD_wo_xview's images and annotation jsons, the lists.

Layouts accepted (as released and as the AI-TOD README arranges them):

* ``--xview``: the xView training set, ``{id}.tif`` in ``DIR/train_images/`` or directly in ``DIR``.
* ``--aitod``: AI-TOD_wo_xview, ``images/{split}/*.png`` and ``annotations/*.json``; a json's split is the split
  name in its file name (``aitod_trainval_v1.json`` is trainval), trainval read before train.
* ``--lists``: the folder of ``aitod_xview_{split}.txt``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetError
from .lists import SPLITS

TIF_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".TIF", ".TIFF")
# trainval first: "aitod_trainval_v1" also contains "train" and "val".
_SPLIT_IN_NAME = re.compile(r"(?<![a-z])(trainval|train|val|test)(?![a-z])")


@dataclass(frozen=True)
class AitodInputs:
    """The three input folders, resolved and checked to exist.

    Attributes:
        tif_dir: The folder holding the xView tifs.
        aitod_root: The AI-TOD_wo_xview root (``images/``, ``annotations/``).
        lists_dir: The folder of the lists.
    """

    tif_dir: Path
    aitod_root: Path
    lists_dir: Path

    @classmethod
    def locate(cls, xview: Path, aitod: Path, lists: Path) -> AitodInputs:
        """Resolve the folders given on the command line.

        Raises:
            DatasetError: A folder is missing, or ``aitod`` has no ``annotations/`` folder.
        """
        for option, path in (("--xview", xview), ("--aitod", aitod), ("--lists", lists)):
            if not Path(path).is_dir():
                raise DatasetError(f"{option}: {path} is not a folder")
        xview = Path(xview).resolve()
        tif_dir = xview / "train_images" if (xview / "train_images").is_dir() else xview
        aitod = Path(aitod).resolve()
        if not (aitod / "annotations").is_dir():
            raise DatasetError(f"--aitod: {aitod} has no annotations/ folder (AI-TOD_wo_xview's jsons go there)")
        return cls(tif_dir, aitod, Path(lists).resolve())

    def tif(self, xview_id: str) -> Path | None:
        """The tif of ``xview_id``, or None when there is none."""
        for suffix in TIF_SUFFIXES:
            path = self.tif_dir / f"{xview_id}{suffix}"
            if path.is_file():
                return path
        return None

    def wo_xview_images(self, split: str) -> list[str]:
        """File names of AI-TOD_wo_xview's images of ``split``, sorted (none when the folder is missing)."""
        folder = self.aitod_root / "images" / split
        if not folder.is_dir():
            return []
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    def annotation_jsons(self) -> list[tuple[str | None, Path]]:
        """``(split, path)`` of every annotation json, in split order then name; split None when the name holds
        no split name."""
        found = []
        for path in sorted((self.aitod_root / "annotations").glob("*.json")):
            found.append((json_split(path.name), path))
        order = {split: i for i, split in enumerate(SPLITS)}
        return sorted(found, key=lambda item: (order.get(item[0], len(order)), item[1].name))


def json_split(name: str) -> str | None:
    """The split an annotation json's file name names (``aitod_trainval_v1.json`` -> ``trainval``), or None.

    >>> json_split("aitod_test_v1.json"), json_split("aitod_trainval_v1.json"), json_split("extra.json")
    ('test', 'trainval', None)
    """
    match = _SPLIT_IN_NAME.search(name.lower())
    return match[1] if match else None
