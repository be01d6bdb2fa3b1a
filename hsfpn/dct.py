"""Old import path of :mod:`hsfpn.nn.dct` (the plain-PyTorch module), kept for code that imports it from here."""

from .nn.dct import DCTHighPass, dct_basis, dct_cutoffs  # noqa: F401
