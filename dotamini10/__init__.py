"""DOTAmini10: build the paper's ten-class DOTA subset (appendix A.3) with trustworthy statistics."""

from importlib.metadata import PackageNotFoundError, version

# One source of truth: the version in pyproject.toml, as installed (the setup installs the project editable).
try:
    __version__ = version("hsfpn-toolkit")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "unknown"
