"""Old import path of :mod:`hsfpn.nn.hfp` (the plain-PyTorch module), kept for code that imports it from here."""

from .nn.hfp import CHANNEL_FUSIONS, HFP, ChannelPath, SpatialPath  # noqa: F401
