"""HS-FPN for MMDetection 3: the neck, its modules, tiny-object label assigners and the AI-TOD metric.

Importing this package registers every component in MMDetection's registries, so a config can say
``neck=dict(type='HSFPN', ...)`` after ``custom_imports=dict(imports=['hsfpn'])``.
"""

from dotamini10 import __version__  # noqa: F401  (the toolkit has one version)

# Registered components (each import registers its classes with MMDetection / MMEngine).
from . import assigners  # noqa: F401
from .neck import HSFPN  # noqa: F401
from .metric import AITODMetric  # noqa: F401
