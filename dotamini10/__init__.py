"""DOTAmini10: build the paper's ten-class DOTA subset (appendix A.3) with trustworthy statistics."""

__version__ = "0.1.0"
