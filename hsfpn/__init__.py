"""HS-FPN: the neck (:mod:`hsfpn.nn` in plain PyTorch, :mod:`hsfpn.neck` for MMDetection 3), tiny-object label
assigners and the AI-TOD metric (:mod:`hsfpn.aitod_eval`, numpy only).

Importing the package itself is light: ``import hsfpn.nn`` needs only torch and ``import hsfpn.aitod_eval`` only
numpy. The MMDetection components are registered by :mod:`hsfpn.mmdet`, which configs name in
``custom_imports``. Configs that name ``'hsfpn'`` itself keep working:

- when MMEngine is already imported (as it is while its config loader runs ``custom_imports``), importing
  ``hsfpn`` imports :mod:`hsfpn.mmdet` at once;
- otherwise ``hsfpn`` stays light and registers the components as soon as ``mmdet.models`` is imported, which
  MMDetection's registry does before it looks a name up. So a program that imported ``hsfpn.aitod_eval`` (or
  ``hsfpn.nn``) first, and later loads a config whose ``custom_imports`` re-imports the already imported
  ``hsfpn``, still finds ``HSFPN`` and ``AITODMetric``.

``hsfpn.HSFPN``, ``hsfpn.AITODMetric`` and ``hsfpn.assigners`` are loaded (and registered) on first access.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from typing import Any

_REGISTRATION = "hsfpn.mmdet"
# The module whose import triggers registration in a light process: every registry look-up of MMDetection
# imports it first (Registry.import_from_location), and once it has run, MMDetection's necks and task modules
# are importable without a circular import.
_TRIGGER = "mmdet.models"
_LAZY = {"HSFPN": "hsfpn.neck", "AITODMetric": "hsfpn.metric", "assigners": "hsfpn.assigners"}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from dotamini10 import __version__

        return __version__
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        return module if name == "assigners" else getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _register() -> None:
    if _REGISTRATION not in sys.modules:
        importlib.import_module(_REGISTRATION)


class _RegisterAfterImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``mmdet.models`` with the other finders, loads it with their loader, then registers HS-FPN (once)."""

    def __init__(self) -> None:
        self._loader: importlib.abc.Loader | None = None

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
        return self._loader.create_module(spec)  # type: ignore[union-attr]

    def exec_module(self, module: Any) -> None:
        loader = self._loader
        # The module keeps its own loader (for resources, source lookups); this finder is done.
        module.__loader__ = module.__spec__.loader = loader
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        loader.exec_module(module)  # type: ignore[union-attr]
        _register()


if "mmengine" in sys.modules:
    _register()
elif _TRIGGER not in sys.modules and importlib.util.find_spec("mmdet") is not None:
    sys.meta_path.insert(0, _RegisterAfterImport())
