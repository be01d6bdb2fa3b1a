"""Large-scene inference, ``hsfpn-repro detect``: windows -> batches -> model -> merge -> outputs.

Modules, in the order a scene goes through them:
    options     What detect is asked (:class:`DetectOptions`) and reports (outcomes, summary); no torch.
    windows     The producer: probe, decode once, scale and cut as the builder does, prepare batches ahead.
    model_pool  Where the model runs: one-thread worker processes on a CPU, this process on a GPU.
    scenes      The consumer: detections back in scene pixels, merged across windows and scales, previews.
    outputs     The output folder: per-image records, COCO results, Task2 files, detect.json.
    run         :func:`detect_images`, the run that joins them.
"""

from __future__ import annotations

import importlib
from typing import Any

# Loaded on first use: the command line imports .options for its defaults without loading the rest.
_EXPORTS = {
    "DetectError": "options", "DetectOptions": "options", "DetectSummary": "options", "ImageError": "options",
    "ImageOutcome": "options", "Status": "options", "detect_images": "run", "expand_images": "run",
}  # fmt: skip
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
