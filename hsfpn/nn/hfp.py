"""High Frequency Perception module (HFP, paper section 3.1): channel path, spatial path and the 3x3 fuse.

Every convolution is followed by a ReLU, as in the authors' release (whose MMCV ``ConvModule`` adds one by
default, a detail the paper omits), so for example the channel weights are ``sigmoid(relu(.))`` and lie in
[0.5, 1]. Plain PyTorch: :class:`~hsfpn.nn.layers.ConvActNorm` keeps ``ConvModule``'s parameter names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .dct import DCTHighPass
from .layers import ConvActNorm
from .pool import adaptive_max_pool2d

__all__ = ["HFP", "ChannelPath", "SpatialPath", "CHANNEL_FUSIONS"]

#: How the channel path combines its max- and average-pooled scores (a closed set).
#: ``'sum'``: one shared grouped 1x1 conv scores both vectors and the scores are added (the release).
#: ``'concat'``: the two scores are concatenated and the second grouped conv reads 2C channels (the
#: release's earlier form, whose parameter count is the one printed in the paper's Table 5).
CHANNEL_FUSIONS = ("sum", "concat")

_GROUPS = 32  # grouped 1x1 convs and GroupNorms of the release: channels must divide by 32


def _check_channels(channels: int, where: str) -> None:
    if channels <= 0 or channels % _GROUPS:
        raise ValueError(f"{where} needs channels divisible by {_GROUPS} (grouped convs, GroupNorm), got {channels}")


class ChannelPath(nn.Module):
    """Channel path (CP): channel weights ``u_CP`` from the pooled high-frequency response.

    ``s_max = sum_cells relu(maxpool_k(S))``, ``s_avg = sum_cells relu(avgpool_k(S))`` where ``S`` is the
    response ``F`` at DCT levels and the lateral map ``C`` itself elsewhere (k = 1 there: global pooling);
    ``u_CP = sigmoid(relu(W2 * (relu(W1 * s_max) + relu(W1 * s_avg))))`` with grouped (32) bias-free 1x1
    convs ``W1``, ``W2``; output ``C * u_CP``.

    Args:
        channels (int): Channels C (divisible by 32).
        pool_size (int): Side k of the adaptive pooling grid. Defaults to 1.
        fusion (str): One of :data:`CHANNEL_FUSIONS`. Defaults to ``'sum'``.
    """

    def __init__(self, channels: int, pool_size: int = 1, fusion: str = "sum") -> None:
        super().__init__()
        _check_channels(channels, "ChannelPath")
        if not isinstance(pool_size, int) or pool_size < 1:
            raise ValueError(f"ChannelPath pool_size must be an int >= 1, got {pool_size!r}")
        if fusion not in CHANNEL_FUSIONS:
            raise ValueError(f"ChannelPath fusion must be one of {CHANNEL_FUSIONS}, got {fusion!r}")
        self.pool_size = pool_size
        self.fusion = fusion
        self.score_conv = ConvActNorm(channels, channels, 1, groups=_GROUPS, bias=False)
        weight_in = 2 * channels if fusion == "concat" else channels
        self.weight_conv = ConvActNorm(weight_in, channels, 1, groups=_GROUPS, bias=False)

    def extra_repr(self) -> str:
        return f"pool_size={self.pool_size}, fusion={self.fusion!r}"

    def channel_weights(self, source: Tensor) -> Tensor:
        """``u_CP`` of shape ``(N, C, 1, 1)`` from the pooled ``source`` ``(N, C, H, W)``."""
        k = self.pool_size
        s_max = F.relu(adaptive_max_pool2d(source, k)).sum(dim=(2, 3), keepdim=True)
        s_avg = F.relu(F.adaptive_avg_pool2d(source, k)).sum(dim=(2, 3), keepdim=True)
        n = source.shape[0]
        # One conv call for both vectors (the conv is shared): stack them along the batch axis.
        scores = self.score_conv(torch.cat([s_max, s_avg], dim=0))
        if self.fusion == "sum":
            fused = scores[:n] + scores[n:]
        else:
            fused = torch.cat([scores[:n], scores[n:]], dim=1)
        return torch.sigmoid(self.weight_conv(fused))

    def forward(self, x: Tensor, source: Tensor) -> Tensor:
        """Reweight the channels of ``x``.

        Args:
            x (Tensor): ``(N, C, H, W)`` lateral map C_i.
            source (Tensor): ``(N, C, H, W)`` map the weights are computed from (F_i or C_i).

        Returns:
            Tensor: ``(N, C, H, W)`` = ``x * u_CP``.
        """
        return x * self.channel_weights(source)


class SpatialPath(nn.Module):
    """Spatial path (SP): a spatial mask ``u_SP`` that multiplies the lateral map.

    At DCT levels the mask is the high-frequency response itself (``C * F``, no parameters, no sigmoid, as the
    release does); at the other levels it is ``sigmoid(relu(conv1x1(C)))`` with a bias-free 1-channel conv.

    Args:
        channels (int): Channels C.
        learned_mask (bool): True for the 1x1-conv mask (non-DCT levels), False to use ``F``.
    """

    def __init__(self, channels: int, learned_mask: bool) -> None:
        super().__init__()
        self.mask_conv = ConvActNorm(channels, 1, 1, bias=False) if learned_mask else None

    def forward(self, x: Tensor, response: Tensor | None) -> Tensor:
        """Mask ``x``.

        Args:
            x (Tensor): ``(N, C, H, W)`` lateral map.
            response (Tensor | None): ``(N, C, H, W)`` high-frequency response, used when there is no mask conv.

        Returns:
            Tensor: ``(N, C, H, W)`` masked map.
        """
        return x * self.mask(x, response)

    def mask(self, x: Tensor, response: Tensor | None) -> Tensor:
        """``u_SP``: ``(N, 1, H, W)`` learned mask, or the ``(N, C, H, W)`` response itself."""
        if self.mask_conv is not None:
            return torch.sigmoid(self.mask_conv(x))
        if response is None:
            raise ValueError("SpatialPath without a mask conv needs the high-frequency response")
        return response


class HFP(nn.Module):
    """High Frequency Perception module: ``C_HFP = GN32(relu(conv3x3(CP(C) + SP(C))))``.

    The high-pass response ``F = DCTHighPass(C)`` is computed once and shared by both paths (the filter is
    linear and both paths of the paper use the same ``F``). Without a high-pass filter (the release's coarse
    levels) the channel path pools ``C`` and the spatial path learns its mask.

    Args:
        channels (int): Channels C (divisible by 32).
        high_pass (DCTHighPass | None): The filter, or None for the non-DCT variant.
        channel_path (bool): Keep the channel path. Defaults to True.
        spatial_path (bool): Keep the spatial path. Defaults to True.
        pool_size (int): Channel-path pooling grid k. Defaults to 1.
        channel_fusion (str): See :data:`CHANNEL_FUSIONS`. Defaults to ``'sum'``.

    Notes:
        The 3x3 conv (with bias, then ReLU) and the GroupNorm are kept whenever either path is on: they are
        what the paper's Table 5 counts for "only CP" and "only SP" alike.

    Example:
        >>> hfp = HFP(64, DCTHighPass((0.25, 0.25)), pool_size=16)
        >>> hfp(torch.randn(1, 64, 40, 40)).shape
        torch.Size([1, 64, 40, 40])
    """

    def __init__(
        self,
        channels: int,
        high_pass: DCTHighPass | None,
        channel_path: bool = True,
        spatial_path: bool = True,
        pool_size: int = 1,
        channel_fusion: str = "sum",
    ) -> None:
        super().__init__()
        _check_channels(channels, "HFP")
        if not (channel_path or spatial_path):
            raise ValueError("HFP needs the channel path or the spatial path (or both)")
        self.high_pass = high_pass
        self.channel_path = ChannelPath(channels, pool_size, channel_fusion) if channel_path else None
        self.spatial_path = SpatialPath(channels, learned_mask=high_pass is None) if spatial_path else None
        self.fuse = ConvActNorm(channels, channels, 3, padding=1, bias=True, norm_groups=_GROUPS)

    def forward(self, x: Tensor) -> Tensor:
        """Apply HFP to one lateral map.

        Args:
            x (Tensor): ``(N, C, H, W)`` lateral map C_i.

        Returns:
            Tensor: ``(N, C, H, W)`` C_i^HFP.
        """
        response = self.high_pass(x) if self.high_pass is not None else None
        source = x if response is None else response
        if self.channel_path is None:
            combined = self.spatial_path(x, response)
        elif self.spatial_path is None:
            combined = self.channel_path(x, source)
        else:
            # x * u_CP + x * u_SP as one product: one full-size multiply fewer.
            combined = x * (self.channel_path.channel_weights(source) + self.spatial_path.mask(x, response))
        return self.fuse(combined)

    def extra_macs(self, shape: torch.Size | tuple[int, ...]) -> int:
        """MACs a conv/linear hook counter misses in one forward on ``shape``: the DCT filter's products."""
        return self.high_pass.macs(shape) if self.high_pass is not None else 0
