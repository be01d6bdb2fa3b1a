"""Adaptive max pooling that exports: HFP's channel path pools the high-frequency response to a k x k grid.

ONNX has ``GlobalMaxPool`` and ``MaxPool`` with one fixed kernel, and PyTorch's exporter has no function for
``aten.adaptive_max_pool2d`` with an output other than 1 x 1, so a neck that pools to 16 x 16 does not export.
Adaptive pooling is a max over fixed windows once the input size is known: output cell ``i`` of an axis of length
``n`` pooled to ``k`` cells covers ``[floor(i * n / k), ceil((i + 1) * n / k))``. While a graph is exported, the
windows are taken from the static shape and the pooling is written with ops every exporter has:

- every window the same size (``k`` divides the side): one ``max_pool2d`` with kernel = stride = ``n / k``;
- otherwise: a max over each row window, then over each column window (a max over a rectangle is the max of
  its row maxima), ``2k`` slices and reductions in all.

A maximum is exact, so both forms give the same numbers as ``F.adaptive_max_pool2d``, bit for bit. Outside an
export (eager, ``torch.compile``) the native op runs: it is faster and its backward sends each gradient to one
element, as it always has (a max reduction would share it between tied elements).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["adaptive_bins", "adaptive_max_pool2d", "exporting", "static_adaptive_max_pool2d"]


def exporting() -> bool:
    """True while a graph is traced for export: ``torch.export``, ``torch.onnx.export`` (either exporter)."""
    # torch.compiler.is_exporting is newer than the oldest torch the neck runs on: absent, nothing exports.
    is_exporting = getattr(torch.compiler, "is_exporting", None)
    return (is_exporting is not None and is_exporting()) or torch.onnx.is_in_onnx_export()


def adaptive_bins(length: int, cells: int) -> list[tuple[int, int]]:
    """The window ``[start, stop)`` of every output cell when an axis of ``length`` is pooled to ``cells``.

    Args:
        length (int): Input side n, at least 1.
        cells (int): Output side k, at least 1.

    Returns:
        list[tuple[int, int]]: ``k`` windows ``(floor(i * n / k), ceil((i + 1) * n / k))``; they cover the axis,
        and overlap by one element where ``k`` does not divide ``n``.

    Example:
        >>> adaptive_bins(5, 3)
        [(0, 2), (1, 4), (3, 5)]
    """
    if length < 1 or cells < 1:
        raise ValueError(f"adaptive_bins needs length >= 1 and cells >= 1, got {length}, {cells}")
    return [((i * length) // cells, -(-((i + 1) * length) // cells)) for i in range(cells)]


def static_adaptive_max_pool2d(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """``F.adaptive_max_pool2d(x, size)`` (values only) from windows fixed by ``x``'s shape: exportable ops.

    Args:
        x (Tensor): ``(..., H, W)`` map.
        size (int | tuple[int, int]): Output ``k`` or ``(k_h, k_w)``.

    Returns:
        Tensor: ``(..., k_h, k_w)`` equal to the native op's output.
    """
    cells_h, cells_w = (size, size) if isinstance(size, int) else size
    height, width = x.shape[-2:]
    if height % cells_h == 0 and width % cells_w == 0:
        kernel = (height // cells_h, width // cells_w)
        return F.max_pool2d(x, kernel, stride=kernel)
    rows = torch.cat([x[..., a:b, :].amax(dim=-2, keepdim=True) for a, b in adaptive_bins(height, cells_h)], dim=-2)
    return torch.cat([rows[..., a:b].amax(dim=-1, keepdim=True) for a, b in adaptive_bins(width, cells_w)], dim=-1)


def adaptive_max_pool2d(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """Adaptive max pooling: the native op, or :func:`static_adaptive_max_pool2d` while a graph is exported.

    The exported graph is then specialised to the traced input size, as the rest of the neck is (see
    :mod:`hsfpn.export`).
    """
    if exporting():
        return static_adaptive_max_pool2d(x, size)
    return F.adaptive_max_pool2d(x, size)
