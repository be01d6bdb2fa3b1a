"""``build.json`` of an AI-TOD build (:class:`AitodRecord`), and AI-TOD's published figures.

The record is read back through :func:`dotamini10.build_record.read_build_record`, which tells it from a
DOTAmini10 record by its ``"dataset": "aitod"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..build_record import JsonRecord
from ..reference import Reference

#: AI-TOD v1 as published (Wang et al., "Tiny Object Detection in Aerial Images", ICPR 2020, and the AI-TOD
#: repository's README): 28,036 images of 800 x 800 px, 700,621 instances, 8 classes, mean size 12.8 px. The
#: figures cover the whole dataset, trainval + test; none is published per split or per class.
AITOD_REFERENCE = Reference(
    citation="AI-TOD v1 as published (ICPR 2020 paper and repository README)",
    instances={},
    total_instances={"all": 700_621},
    images={"all": 28_036},
    share_below={},
    whole=("trainval", "test"),
    classes=8,
    mean_size=12.8,
)
AITOD_LICENCE = (
    "AI-TOD is licensed CC BY-NC-SA 4.0 (non-commercial, share alike). Its xView-derived images may not be "
    "redistributed (xView's terms): share the recipe and this card, not the images."
)


@dataclass(frozen=True)
class AitodRecord(JsonRecord):
    """The record of an AI-TOD build (``build-aitod``).

    Attributes:
        dataset: Always ``"aitod"`` (what tells this record from a DOTAmini10 one).
        toolkit_version: The toolkit's version.
        options: ``colors`` (``official`` or ``true``), ``window``, ``gap`` and ``png_compression``.
        source: The three input folders.
        runtime: What did not affect the outputs (the worker count).
        complete: Every image every json names is present at its size and every annotation names one of its
            json's images and lies inside it.
        annotations: Split -> annotation json, relative to the output root, for the splits the jsons name.
        counts: Per split: images and instances (from its json), instances per class, mean size, xView windows
            and AI-TOD_wo_xview images written, and the verification's findings.
        totals: The whole dataset (trainval + test): images, instances, classes, mean size, beside
            ``published``.
        problems: Problems per reason.
        inputs: sha256 of every input file read (lists, jsons, tifs, AI-TOD_wo_xview images).
        outputs: sha256 of every output file.
    """

    dataset: str = "aitod"
    toolkit_version: str | None = None
    options: Mapping[str, Any] | None = None
    source: Mapping[str, Any] | None = None
    runtime: Mapping[str, Any] | None = None
    complete: bool | None = None
    annotations: Mapping[str, str] | None = None
    counts: Mapping[str, Mapping[str, Any]] | None = None
    totals: Mapping[str, Any] | None = None
    problems: Mapping[str, int] | None = None
    inputs: Mapping[str, str] | None = None
    outputs: Mapping[str, str] | None = None

    @property
    def colors(self) -> str | None:
        """``official`` or ``true``, as recorded."""
        return (self.options or {}).get("colors")

    def reference(self) -> Reference:
        """AI-TOD's published figures."""
        return AITOD_REFERENCE

    def annotation_files(self) -> dict[str, str] | None:
        """Split -> annotation json (relative to the dataset root), as the build wrote them."""
        return dict(self.annotations) if self.annotations else None
