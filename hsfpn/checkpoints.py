"""Reading weights files without running code from them: the toolkit's one ``torch.load``.

Every weights file (a checkpoint handed to ``detect``, ``train``, ``visualize``, ``export`` or
``convert-checkpoint``, and a job's own checkpoint when it resumes) is read with ``torch.load(weights_only=True)``:
tensors, plain containers and the globals of :data:`SAFE_GLOBALS` are rebuilt, and a file that holds anything else
is refused before any of it runs. The list holds what the toolkit's ``model.pth`` and MMEngine 0.10's checkpoints
contain besides tensors: numpy arrays, dtypes and scalars, MMEngine's ``HistoryBuffer`` (the message hub's logs,
whose four statistics methods are pickled as ``getattr`` look-ups: a stand-in resolves exactly those) and the
``collections`` types of optimizer and scheduler states. None of them runs code when rebuilt.
"""

from __future__ import annotations

import contextlib
import importlib
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import HSFPNError, first_line

# What a weights-only load may rebuild besides tensors, by import path (resolved when first needed, and
# skipped where an installed numpy or mmengine does not have the name).
SAFE_GLOBALS: tuple[str, ...] = (
    "numpy.ndarray",
    "numpy.dtype",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.multiarray.scalar",
    "numpy.core.multiarray._reconstruct",  # checkpoints pickled under numpy 1.x
    "numpy.core.multiarray.scalar",
    "mmengine.logging.history_buffer.HistoryBuffer",
    "collections.Counter",
    "collections.OrderedDict",
    "collections.defaultdict",
)
# numpy pickles a dtype by its class (numpy.dtypes.Float64DType, ...): these are the ones checkpoints hold.
_NUMPY_DTYPES = ("float64", "float32", "float16", "int64", "int32", "int16", "int8", "uint8", "bool")
# The statistics a HistoryBuffer pickles by name (``_statistics_method``).
_HISTORY_STATISTICS = ("min", "max", "current", "mean")


def _statistics_method(owner: Any, name: str) -> Any:
    """Stands in for ``builtins.getattr`` while a checkpoint loads: MMEngine pickles each ``HistoryBuffer``'s
    statistics methods as ``getattr(HistoryBuffer, 'mean')``. Those four resolve; any other attribute (the
    first step of every getattr gadget chain) is refused."""
    from mmengine.logging import HistoryBuffer

    if owner is HistoryBuffer and name in _HISTORY_STATISTICS:
        return getattr(HistoryBuffer, name)
    raise pickle.UnpicklingError(f"a checkpoint may not look up {name!r} on {owner!r}")


def _safe_globals() -> list[Any]:
    import numpy as np

    found: list[Any] = [type(np.dtype(name)) for name in _NUMPY_DTYPES]
    for name in SAFE_GLOBALS:
        module, _, attr = name.rpartition(".")
        try:
            found.append((getattr(importlib.import_module(module), attr), name))
        except (ImportError, AttributeError):
            continue
    if any(name.startswith("mmengine.") for _, name in found[len(_NUMPY_DTYPES):]):
        found.append((_statistics_method, "builtins.getattr"))
    return found


@contextlib.contextmanager
def checkpoint_globals() -> Iterator[None]:
    """Within the block, weights-only loads (torch's default) also rebuild :data:`SAFE_GLOBALS`.

    A job resumes inside it: MMEngine's ``load_checkpoint`` calls ``torch.load`` with torch's default
    ``weights_only=True``, which then accepts MMEngine's own checkpoints and still refuses any other object.
    """
    import torch

    with torch.serialization.safe_globals(_safe_globals()):
        yield


def load_weights_file(path: Path, *, kind: str = "checkpoint", label: str | None = None,
                      error: type[Exception] = HSFPNError) -> Any:
    """The content of a weights file, read weights-only under :data:`SAFE_GLOBALS` (module notes).

    Args:
        path: The file.
        kind: What it is, for messages ("checkpoint", "weights").
        label: How messages name it (the option and the path, say). Defaults to the path.
        error: The exception type to raise (each command raises its own domain error).

    Raises:
        error: The file is missing, or holds anything but weights (nothing of it has run).
    """
    import torch

    path = Path(path)
    label = label or str(path)
    if not path.is_file():
        raise error(f"{label}: no such {kind} file")
    try:
        with checkpoint_globals():
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError ... for such files
        raise error(f"{label}: not a readable weights-only {kind} file ({first_line(exc)})") from None
