"""Tiny-object label assignment for MMDetection 3: NWD (NWD-RKA) and RFLA.

Importing this package registers in ``mmdet.registry.TASK_UTILS``: ``NWDOverlaps`` and ``RFDOverlaps``
(IoU-calculator-style similarities), ``RankingAssigner`` (NWD top-k), ``HieAssigner`` (RFLA's
hierarchical assigner) and ``RFGenerator`` (receptive-field priors for anchor-based heads).
:func:`label_assignment_overrides` gives the config changes for the w/NWD and w/RFLA rows of Table 3.
"""

from .gaussian import (
    AITOD_NWD_CONSTANT,
    box_gaussians,
    kl_divergence,
    normalized_wasserstein,
    receptive_field_similarity,
    rescale_boxes,
    wasserstein_squared,
)
from .nwd import NWDOverlaps, RankingAssigner
from .presets import apply_label_assignment, label_assignment_overrides
from .rfla import HieAssigner, RFDOverlaps, RFGenerator, resnet_receptive_fields

__all__ = [
    "AITOD_NWD_CONSTANT",
    "HieAssigner",
    "NWDOverlaps",
    "RFDOverlaps",
    "RFGenerator",
    "RankingAssigner",
    "apply_label_assignment",
    "box_gaussians",
    "kl_divergence",
    "label_assignment_overrides",
    "normalized_wasserstein",
    "receptive_field_similarity",
    "rescale_boxes",
    "resnet_receptive_fields",
    "wasserstein_squared",
]
