"""See what the detector does: the paper's analysis figures rebuilt on your data and your checkpoints.

Modules:
    error_view   True positives, false positives and misses per image (Figures 16-17), one or two detectors
                 side by side, with ``counts.csv``; matching is the AI-TOD evaluator's own.
    frequencies  High-frequency responses F2 for several alpha (Figure 8) and P2 features before / after
                 HFP and SDP (Figures 7, 11-13).
    scr          Signal-to-clutter ratio of tiny objects as low frequencies are filtered out (Figure 1).
    image_dct    The orthonormal 2-D DCT high-pass of images and patches, in numpy.
    figure       Shared figure plumbing: colours, deterministic PNG and CSV writing, image reading.

Every command writes PNG figures for people and the numbers behind them as CSV / JSON.
"""

from ..errors import PipelineError


class VisualizeError(PipelineError):
    """Bad input or options of an analysis figure (missing file, unknown option value)."""
