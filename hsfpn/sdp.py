"""Old import path of :mod:`hsfpn.nn.sdp` (the plain-PyTorch module), kept for code that imports it from here."""

from .nn.sdp import SDP, BlockCrossAttention, block_spans  # noqa: F401
