"""HS-FPN in plain PyTorch: the neck and its modules for any detector, with torch as the only dependency.

``import hsfpn.nn`` loads neither MMCV, MMDetection, MMEngine nor torch-dct. The modules compute exactly what
the MMDetection neck (:mod:`hsfpn.neck`) computes, under the same parameter names.

Example:
    >>> import torch
    >>> from hsfpn.nn import HSFPN
    >>> neck = HSFPN([256, 512, 1024, 2048], 256, num_outs=5)
    >>> c2_to_c5 = [torch.rand(1, c, 64 >> i, 64 >> i) for i, c in enumerate([256, 512, 1024, 2048])]
    >>> [tuple(p.shape[1:]) for p in neck(c2_to_c5)]
    [(256, 64, 64), (256, 32, 32), (256, 16, 16), (256, 8, 8), (256, 4, 4)]
"""

from .dct import DCTHighPass, dct_basis, dct_cutoffs
from .hfp import CHANNEL_FUSIONS, HFP, ChannelPath, SpatialPath
from .layers import ConvActNorm
from .neck import HSFPN, EXTRA_CONV_SOURCES, HSFPNStages, PerceptionOptions
from .sdp import SDP, BlockCrossAttention, block_spans

__all__ = [
    "CHANNEL_FUSIONS",
    "EXTRA_CONV_SOURCES",
    "HFP",
    "HSFPN",
    "SDP",
    "BlockCrossAttention",
    "ChannelPath",
    "ConvActNorm",
    "DCTHighPass",
    "HSFPNStages",
    "PerceptionOptions",
    "SpatialPath",
    "block_spans",
    "dct_basis",
    "dct_cutoffs",
]
