"""Parameter and FLOP counting for detectors with HS-FPN (Table 5 of the paper).

FLOPs follow the convention of hook-based counters such as MMCV's ``get_model_complexity_info``, which the
paper's numbers come from: one multiply-accumulate counts as one FLOP; a conv costs
``output elements x (C_in / groups) x k_h x k_w`` plus one per output element for its bias; a linear layer
costs ``input elements x out_features``. The "full" count adds what such counters cannot see because no conv
or linear layer performs it: the DCT filter's matrix products (:meth:`hsfpn.nn.DCTHighPass.macs`) and the
SDP attention matmuls (:meth:`hsfpn.nn.BlockCrossAttention.macs`). Normalisation, activation, pooling and
softmax are counted in neither. SDP's two 1x1 projections are counted as the paper formulates them, both at
the finer level's resolution, although the key projection actually runs before the upsampling (see
:meth:`hsfpn.nn.SDP.forward`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .nn.hfp import HFP
from .nn.sdp import SDP

__all__ = ["MacCount", "count_macs", "count_parameters"]


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@dataclass(frozen=True)
class MacCount:
    """Multiply-accumulates of one forward.

    Attributes:
        conv_linear (int): Conv and linear MACs (with conv biases), as hook-based counters report.
        extra (int): DCT products and attention matmuls of HS-FPN, which those counters miss.
    """

    conv_linear: int
    extra: int

    @property
    def full(self) -> int:
        """``conv_linear + extra``."""
        return self.conv_linear + self.extra


def _conv_macs(module: nn.Conv2d, output: torch.Tensor) -> int:
    kernel = module.kernel_size[0] * module.kernel_size[1]
    per_output = (module.in_channels // module.groups) * kernel
    macs = output.numel() * per_output
    if module.bias is not None:
        macs += output.numel()
    return macs


def count_macs(model: nn.Module, run: Callable[[], Any]) -> MacCount:
    """Count MACs of everything ``run()`` executes inside ``model``, with forward hooks.

    Args:
        model (nn.Module): The model whose submodules are hooked.
        run (Callable[[], Any]): Runs one forward (e.g. ``lambda: model(x)``); its result is discarded.

    Returns:
        MacCount: Conv/linear MACs and the HS-FPN extras.
    """
    totals = {"base": 0, "extra": 0}

    def conv_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        totals["base"] += _conv_macs(module, output)  # type: ignore[arg-type]

    def linear_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        totals["base"] += inputs[0].numel() * module.out_features  # type: ignore[union-attr]

    def hfp_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        totals["extra"] += module.extra_macs(inputs[0].shape)  # type: ignore[operator]

    def sdp_hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        projections, attention = module.macs(inputs[0].shape, tuple(inputs[2]))  # type: ignore[operator]
        totals["base"] += projections
        totals["extra"] += attention

    # SDP's projections are counted by its own hook, as the paper formulates them (see SDP.macs).
    inside_sdp = {id(c) for m in model.modules() if isinstance(m, SDP) for c in m.modules()}
    handles = []
    for m in model.modules():
        if id(m) in inside_sdp and not isinstance(m, SDP):
            continue
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, HFP):
            handles.append(m.register_forward_hook(hfp_hook))
        elif isinstance(m, SDP):
            handles.append(m.register_forward_hook(sdp_hook))
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return MacCount(conv_linear=totals["base"], extra=totals["extra"])
