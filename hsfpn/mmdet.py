"""Registers HS-FPN's MMDetection components: name this module in a config's ``custom_imports``.

.. code-block:: python

    custom_imports = dict(imports=['hsfpn.mmdet'], allow_failed_imports=False)
    model = dict(neck=dict(type='HSFPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5))
    val_evaluator = dict(type='AITODMetric', ann_file='data/AI-TOD/annotations/aitod_test_v1.json')

Importing it registers the ``HSFPN`` neck (``mmdet.registry.MODELS``), the ``AITODMetric`` evaluator
(``METRICS``) and the tiny-object label assigners and overlap calculators (``TASK_UTILS``). Without
MMDetection, use :mod:`hsfpn.nn` instead.
"""

from __future__ import annotations

from . import assigners  # noqa: F401  (each import registers its classes)
from .metric import AITODMetric
from .neck import HSFPN

__all__ = ["AITODMetric", "HSFPN", "assigners"]
