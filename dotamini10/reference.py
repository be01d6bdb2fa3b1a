"""The published figures a dataset's statistics are compared with: one :class:`Reference` per dataset.

``stats`` and the data card put our counts beside these. DOTAmini10's come from the HS-FPN paper
(:mod:`dotamini10.paper`); AI-TOD's from its paper and repository (:mod:`dotamini10.aitod.record`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .paper import PAPER_CITATION, PAPER_IMAGES, PAPER_INSTANCES, PAPER_SHARE_BELOW, PAPER_TOTAL_INSTANCES


@dataclass(frozen=True)
class Reference:
    """The published figures a dataset's statistics are shown beside.

    Attributes:
        citation: Where the figures were published.
        instances: Per split (and ``"all"``), instances per class; empty where nothing per class was published.
        total_instances: Instances per split and for ``"all"``.
        images: Images per split and for ``"all"``.
        share_below: Share of instances strictly smaller than each limit of :data:`dotamini10.stats.SHARE_LIMITS` (px).
        whole: The splits that together are the dataset, summed into ``"all"`` (AI-TOD's train and val are parts
            of its trainval); None sums every split.
        classes: Number of classes, when published.
        mean_size: Mean object size sqrt(w * h) in px, when published.
    """

    citation: str
    instances: Mapping[str, Mapping[str, int]]
    total_instances: Mapping[str, int]
    images: Mapping[str, int]
    share_below: Mapping[int, float]
    whole: tuple[str, ...] | None = None
    classes: int | None = None
    mean_size: float | None = None


def _with_all(per_split: Mapping[str, int]) -> dict[str, int]:
    return {**per_split, "all": sum(per_split.values())}


#: The HS-FPN paper's DOTAmini10 figures (appendix A.3, Table 7).
DOTAMINI10_REFERENCE = Reference(
    citation=PAPER_CITATION,
    instances={**PAPER_INSTANCES,
               "all": {c: sum(PAPER_INSTANCES[s][c] for s in PAPER_INSTANCES) for c in PAPER_INSTANCES["train"]}},
    total_instances=_with_all(PAPER_TOTAL_INSTANCES),
    images=_with_all(PAPER_IMAGES),
    share_below=PAPER_SHARE_BELOW,
)
