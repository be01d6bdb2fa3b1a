"""HS-FPN: the neck (:mod:`hsfpn.nn` in plain PyTorch, :mod:`hsfpn.neck` for MMDetection 3), tiny-object label
assigners and the AI-TOD metric (:mod:`hsfpn.aitod_eval`, numpy only).

Importing the package itself is light: ``import hsfpn.nn`` needs only torch and ``import hsfpn.aitod_eval`` only
numpy. The MMDetection components are registered by :mod:`hsfpn.mmdet`, which configs name in
``custom_imports``. Configs that name ``'hsfpn'`` itself keep working:

- when MMEngine is already imported (as it is while its config loader runs ``custom_imports``) and MMDetection
  is installed, importing ``hsfpn`` imports :mod:`hsfpn.mmdet` at once;
- otherwise ``hsfpn`` stays light and registers the components as soon as ``mmdet.models`` is imported, which
  MMDetection's model registry does before it looks a name up. So a program that imported ``hsfpn.aitod_eval``
  (or ``hsfpn.nn``) first, and later loads a config whose ``custom_imports`` re-imports the already imported
  ``hsfpn``, still finds ``HSFPN`` once it builds a model. (A program that only builds an evaluator that way
  should name ``hsfpn.mmdet``.)

``hsfpn.HSFPN``, ``hsfpn.AITODMetric`` and ``hsfpn.assigners`` are loaded (and registered) on first access.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

# What hsfpn.mmdet imports: each of these modules registers its classes when it is imported.
_COMPONENTS = ("hsfpn.assigners", "hsfpn.metric", "hsfpn.neck")
# The module whose import triggers registration in a light process: every registry look-up of MMDetection
# imports it first (Registry.import_from_location), and once it has run, MMDetection's necks and task modules
# are importable without a circular import.
_TRIGGER = "mmdet.models"
_LAZY = {"HSFPN": "hsfpn.neck", "AITODMetric": "hsfpn.metric", "assigners": "hsfpn.assigners"}


def __getattr__(name: str) -> Any:
    if name == "__version__":  # the distribution's version (pyproject.toml), as installed
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("hsfpn-toolkit")
        except PackageNotFoundError:  # a source tree that was never installed
            return "unknown"
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if name == "assigners" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register() -> None:
    for name in _COMPONENTS:
        # One that is in sys.modules is imported or being imported (it is what imported mmdet.models): it
        # registers its classes when it finishes; importing it again here would see it half-initialised.
        if name not in sys.modules:
            importlib.import_module(name)


class _RegisterAfterImport:
    """Finds ``mmdet.models`` with the other finders, loads it with their loader, then registers HS-FPN (once).

    A meta-path finder and loader by protocol (subclassing ``importlib.abc``'s would import
    ``importlib.resources``, tens of milliseconds of every light start-up).
    """

    def __init__(self) -> None:
        self._loader: Any = None

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _TRIGGER or self._loader is not None:
            return None
        spec = None
        for finder in sys.meta_path:
            if finder is not self and hasattr(finder, "find_spec"):
                spec = finder.find_spec(fullname, path, target)
                if spec is not None:
                    break
        if spec is None or spec.loader is None:
            return spec
        self._loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        loader = self._loader
        # The module keeps its own loader (for resources, source lookups); this finder is done.
        module.__loader__ = module.__spec__.loader = loader
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        loader.exec_module(module)
        _register()


def _mmdet_installed() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("mmdet") is not None
    except (ImportError, ValueError):
        return False


if _TRIGGER in sys.modules or ("mmengine" in sys.modules and _mmdet_installed()):
    _register()
else:
    sys.meta_path.insert(0, _RegisterAfterImport())
