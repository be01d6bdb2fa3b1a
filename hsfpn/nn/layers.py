"""The one building block of HS-FPN's modules: a convolution, optionally followed by a ReLU and a GroupNorm.

The authors' release builds every convolution with MMCV's ``ConvModule``, whose default activation is a ReLU and
which names its parts ``conv`` and (for GroupNorm) ``gn``. :class:`ConvActNorm` computes the same thing in plain
PyTorch under the same parameter names, so a state dict of the MMDetection neck loads into :mod:`hsfpn.nn` and
back without renaming.

While a graph is exported to ONNX the GroupNorm is written out as its statistics (:func:`onnx_group_norm`):
onnxruntime's ``InstanceNormalization`` and ``ReduceMean`` add up a whole group (8 channels of a 200 x 200 map,
320,000 values) in one float32 sum, and lost up to 9e-4 on such maps, where PyTorch's result is within 1.2e-6
of float64.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["ConvActNorm", "onnx_group_norm"]


def onnx_group_norm(x: Tensor, norm: nn.GroupNorm) -> Tensor:
    """``norm(x)`` for an ONNX graph: each mean taken over one axis at a time, so no float32 sum is long.

    The mean over a group of ``(N, C, H, W)`` is the mean over W, then H, then the group's channels (all of equal
    length, so the mean of means is the mean); the variance is the mean of the centred squares, taken the same
    way. Within 2e-6 of float64 in onnxruntime where its own normalisation loses 9e-4 (see the module notes).

    Args:
        x (Tensor): ``(N, C, H, W)`` map.
        norm (nn.GroupNorm): The affine GroupNorm whose groups, epsilon and parameters are used.

    Returns:
        Tensor: ``(N, C, H, W)``, equal to ``norm(x)`` up to float32 rounding.
    """
    n, c, h, w = x.shape
    groups = norm.num_groups
    grouped = (n, groups, c // groups, h, w)

    def group_mean(t: Tensor) -> Tensor:
        return t.mean(dim=-1, keepdim=True).mean(dim=-2, keepdim=True).reshape(n, groups, -1, 1, 1).mean(
            dim=2, keepdim=True)

    centred = x.reshape(grouped) - group_mean(x)
    variance = group_mean(centred * centred)
    normed = (centred * torch.rsqrt(variance + norm.eps)).reshape(n, c, h, w)
    return normed * norm.weight.reshape(1, c, 1, 1) + norm.bias.reshape(1, c, 1, 1)


class ConvActNorm(nn.Module):
    """``GroupNorm(relu(conv(x)))``, with the ReLU and the GroupNorm each optional (in that order).

    Parameter names are those of MMCV's ``ConvModule`` with ``order=('conv', 'act', 'norm')``: ``conv.weight``,
    ``conv.bias`` and ``gn.weight``, ``gn.bias``. The ReLU is applied in place to the conv's fresh output, as
    ``ConvModule`` does (the conv's backward does not need its output).

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Square kernel side.
        stride (int): Conv stride. Defaults to 1.
        padding (int): Zero padding on every side. Defaults to 0.
        groups (int): Conv groups. Defaults to 1.
        bias (bool): Conv bias. Defaults to True.
        relu (bool): ReLU after the conv. Defaults to True.
        norm_groups (int, optional): Groups of a GroupNorm after the ReLU (eps 1e-5, affine); None for no norm.
            Defaults to None.

    Shape:
        - Input: ``(N, in_channels, H, W)``.
        - Output: ``(N, out_channels, H_out, W_out)`` with ``H_out = (H + 2 * padding - kernel_size) // stride + 1``.

    Example:
        >>> import torch
        >>> block = ConvActNorm(64, 64, 3, padding=1, norm_groups=32)
        >>> block(torch.randn(2, 64, 10, 10)).shape
        torch.Size([2, 64, 10, 10])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        bias: bool = True,
        relu: bool = True,
        norm_groups: int | None = None,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, groups=groups,
                              bias=bias)
        self.relu = relu
        self.gn = nn.GroupNorm(norm_groups, out_channels) if norm_groups else None

    def extra_repr(self) -> str:
        return f"relu={self.relu}"

    def forward(self, x: Tensor) -> Tensor:
        """Apply conv, then ReLU and GroupNorm where present.

        Args:
            x (Tensor): ``(N, in_channels, H, W)``.

        Returns:
            Tensor: ``(N, out_channels, H_out, W_out)``.
        """
        x = self.conv(x)
        if self.relu:
            x = F.relu(x, inplace=True)
        if self.gn is not None:
            x = onnx_group_norm(x, self.gn) if torch.onnx.is_in_onnx_export() else self.gn(x)
        return x
