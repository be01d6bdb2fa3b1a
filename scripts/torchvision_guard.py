"""Lets ``import torchvision`` work where its compiled ops cannot load; scripts/setup.sh installs it in a venv.

The package index serves torchvision only as a CUDA build. Beside the CPU torch of this machine its compiled ops
do not load, and its import then stops at "operator torchvision::nms does not exist": it registers a fake kernel
for that operator without checking that the ops loaded (pytorch/vision issue 9085). MMEngine's runner imports
torchvision to log the environment and catches only ModuleNotFoundError, so every training run would stop there.

setup.sh copies this file into the venv's site-packages as ``hsfpn_torchvision_guard.py``, with a ``.pth`` line that
imports it at start-up, and only where ``import torchvision`` fails. It adds a finder for the name ``torchvision``
alone (nothing else is imported at start-up): the import runs as usual, and only if it fails that way are the two
operator schemas declared, without a kernel, and the import run again. torchvision then behaves as with its ops
missing: models, ``FeaturePyramidNetwork``, ``IntermediateLayerGetter`` and ``roi_align``'s Python path work, and
``torchvision.ops.nms`` raises torchvision's own "Couldn't load custom C++ ops". :func:`hsfpn.torchvision.
load_torchvision` does the same for one process where this guard is not installed.
"""

import sys

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # the torch.library fragment holding the schemas, kept alive for the process


class _TorchvisionGuard:
    """A meta-path finder for ``torchvision``: the other finders' spec, loaded through :class:`_RetryingLoader`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torchvision":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RetryingLoader(spec.loader)
                return spec
        return None


class _RetryingLoader:
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        global _library
        # The module keeps its own loader (importlib.resources and source look-ups use it).
        module.__loader__ = module.__spec__.loader = self.loader
        try:
            self.loader.exec_module(module)
        except RuntimeError as exc:
            if "torchvision::nms does not exist" not in str(exc) or _library is not None:
                raise
            for name in [m for m in sys.modules if m.startswith("torchvision.")]:
                del sys.modules[name]  # the half-imported submodules run again from the start
            import torch

            _library = torch.library.Library("torchvision", "FRAGMENT")
            for schema in _SCHEMAS:
                _library.define(schema)
            self.loader.exec_module(module)


if not any(isinstance(f, _TorchvisionGuard) for f in sys.meta_path):
    sys.meta_path.insert(0, _TorchvisionGuard())
