"""The HS-FPN neck for MMDetection 3 (registered as ``'HSFPN'`` in ``mmdet.registry.MODELS``)."""

from __future__ import annotations

from typing import Union

import torch.nn.functional as F
from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, MultiConfig, OptConfigType
from torch import Tensor, nn

from .dct import DCTHighPass
from .hfp import CHANNEL_FUSIONS, HFP
from .sdp import SDP

__all__ = ["HSFPN"]


@MODELS.register_module()
class HSFPN(FPN):
    """High Frequency and Spatial Perception FPN (`HS-FPN, AAAI 2025 <https://arxiv.org/abs/2412.10116>`_).

    MMDetection's :class:`~mmdet.models.necks.FPN` with two stages inserted between the lateral 1x1 convs and
    the top-down sum, reproducing the authors' release number for number:

    1. every used level goes through its :class:`~hsfpn.hfp.HFP` (DCT high-pass at ``dct_levels``);
    2. from the top down, every level but the top is fused with the level above by
       :class:`~hsfpn.sdp.SDP`: ``L_i = SDP(HFP_i(L_i), up(L_{i+1}))`` where ``L_{i+1}`` is already the SDP
       output of the level above and ``up`` is nearest upsampling to ``L_i``'s size; blocks are the size of
       the top lateral map;
    3. then FPN's ordinary top-down sum, 3x3 output convs and extra levels (max-pool or convs) run unchanged.

    Inputs are the backbone maps highest resolution first (C2..C5 for ResNet); outputs are FPN's.

    Ablation variants (paper Tables 1, 2 and 5). With ``channel_path=spatial_path=sdp=False`` the neck has
    exactly FPN's modules and outputs. "Only SDP" (``channel_path=spatial_path=False``) has no HFP at all.
    "Only CP" is HFP = channel path + the 3x3 conv + GroupNorm (the spatial path, hence the two 1-channel
    mask convs of the coarse levels, is absent); "only SP" is HFP = spatial path + the 3x3 conv + GroupNorm
    (no grouped 1x1 convs). Per level with C = 256: 3x3 conv + bias + GN = 590,592 parameters, grouped convs
    2 x 2,048 (``'concat'`` fusion: 2,048 + 4,096), spatial mask conv 256 (non-DCT levels only); per SDP
    2 x (65,536 + 512) = 132,096. Over the authors' Cascade R-CNN R50 (8 classes, 5 anchors per location:
    68,950,592 trainable parameters with FPN) the release's form gives only CP 71,329,344, only SP 71,313,472,
    only HFP 71,329,856, only SDP 69,346,880 and all 71,726,144. The paper's Table 5 prints 71.34 / 71.31 /
    71.34 / 69.35 / 71.73 M: ``channel_fusion='concat'`` (the release's earlier form, +2,048 per level:
    71,337,536 / 71,313,472 / 71,338,048 / 69,346,880 / 71,734,336) rounds to all six exactly, so that form
    is what the table counted; the release's sum stays the default.

    Input sizes. Any size works: upsampling targets the next map's size, blocks that do not divide the map
    leave smaller remainder blocks in the last row/column (see :mod:`hsfpn.sdp`), and the DCT cutoffs are
    ``int(alpha * side)`` of each map (so a side below ``1 / alpha`` is not filtered). Where the release runs
    (image sides multiples of 32) the outputs equal its outputs.

    Args:
        in_channels (list[int]): Channels of each input level.
        out_channels (int): Channels of every output (divisible by 32 when HFP or SDP is on).
        num_outs (int): Number of outputs.
        start_level (int): First input level used. Defaults to 0.
        end_level (int): Last input level used (-1: the last). Defaults to -1.
        add_extra_convs (bool | str): As FPN: False, True / 'on_input', 'on_lateral' or 'on_output'.
            Defaults to False.
        relu_before_extra_convs (bool): As FPN. Defaults to False.
        no_norm_on_lateral (bool): As FPN. Defaults to False.
        conv_cfg (dict, optional): As FPN (lateral and output convs only). Defaults to None.
        norm_cfg (dict, optional): As FPN (lateral and output convs only). Defaults to None.
        act_cfg (dict, optional): As FPN (lateral and output convs only). Defaults to None.
        upsample_cfg (dict): As FPN (the top-down sum; SDP always uses nearest). Defaults to nearest.
        ratio (tuple[float, float]): The paper's alpha per axis (H, W). Defaults to ``(0.25, 0.25)``.
        channel_path (bool): HFP's channel path. Defaults to True.
        spatial_path (bool): HFP's spatial path. Defaults to True.
        sdp (bool): The SDP modules. Defaults to True.
        dct_levels (tuple[int, ...], optional): Indices of the used levels (0 = finest) whose HFP uses the DCT
            filter; the others use the non-DCT variant. Defaults to the two finest, ``(0, 1)``.
        pool_sizes (tuple[int, ...], optional): Channel-path pooling grid k, one per used level. Defaults to
            ``16 // 2**i`` at DCT levels and 1 (global pooling, the release's non-DCT variant) elsewhere,
            i.e. ``(16, 8, 1, 1)``.
        channel_fusion (str): ``'sum'`` (release) or ``'concat'`` (see above). Defaults to ``'sum'``.
        init_cfg (dict | list[dict]): Defaults to Xavier-uniform on every Conv2d (GroupNorms 1 / 0).

    Example:
        >>> import torch, hsfpn
        >>> neck = HSFPN([64, 128, 256, 512], 64, 5)
        >>> feats = [torch.rand(1, c, 160 // 2**i, 160 // 2**i) for i, c in enumerate([64, 128, 256, 512])]
        >>> [tuple(o.shape[2:]) for o in neck(feats)]
        [(160, 160), (80, 80), (40, 40), (20, 20), (10, 10)]
    """

    def __init__(
        self,
        in_channels: list[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: Union[bool, str] = False,
        relu_before_extra_convs: bool = False,
        no_norm_on_lateral: bool = False,
        conv_cfg: OptConfigType = None,
        norm_cfg: OptConfigType = None,
        act_cfg: OptConfigType = None,
        upsample_cfg: ConfigType = dict(mode="nearest"),
        ratio: tuple[float, float] = (0.25, 0.25),
        channel_path: bool = True,
        spatial_path: bool = True,
        sdp: bool = True,
        dct_levels: tuple[int, ...] | None = None,
        pool_sizes: tuple[int, ...] | None = None,
        channel_fusion: str = "sum",
        init_cfg: MultiConfig = dict(type="Xavier", layer="Conv2d", distribution="uniform"),
    ) -> None:
        if not isinstance(in_channels, (list, tuple)) or not in_channels:
            raise ValueError(f"HSFPN in_channels must be a non-empty list, got {in_channels!r}")
        super().__init__(
            list(in_channels),
            out_channels,
            num_outs,
            start_level=start_level,
            end_level=end_level,
            add_extra_convs=add_extra_convs,
            relu_before_extra_convs=relu_before_extra_convs,
            no_norm_on_lateral=no_norm_on_lateral,
            conv_cfg=conv_cfg,
            norm_cfg=norm_cfg,
            act_cfg=act_cfg,
            upsample_cfg=upsample_cfg,
            init_cfg=init_cfg,
        )
        levels = self.backbone_end_level - self.start_level
        ratio = tuple(float(r) for r in ratio)
        if len(ratio) != 2 or not all(0.0 <= r <= 1.0 for r in ratio):
            raise ValueError(f"HSFPN ratio must be (alpha_h, alpha_w) in [0, 1], got {ratio}")
        if dct_levels is None:
            dct_levels = tuple(range(min(2, levels)))
        dct_levels = tuple(dct_levels)
        if len(set(dct_levels)) != len(dct_levels) or not all(
            isinstance(i, int) and 0 <= i < levels for i in dct_levels
        ):
            raise ValueError(f"HSFPN dct_levels must be distinct level indices in [0, {levels}), got {dct_levels}")
        if pool_sizes is None:
            pool_sizes = tuple(max(16 >> i, 1) if i in dct_levels else 1 for i in range(levels))
        pool_sizes = tuple(pool_sizes)
        if len(pool_sizes) != levels or not all(isinstance(k, int) and k >= 1 for k in pool_sizes):
            raise ValueError(f"HSFPN pool_sizes needs {levels} ints >= 1 (one per used level), got {pool_sizes}")
        if channel_fusion not in CHANNEL_FUSIONS:
            raise ValueError(f"HSFPN channel_fusion must be one of {CHANNEL_FUSIONS}, got {channel_fusion!r}")
        if (channel_path or spatial_path or sdp) and out_channels % 32:
            raise ValueError(f"HSFPN out_channels must be divisible by 32 when HFP or SDP is on, got {out_channels}")

        self.ratio = ratio
        self.dct_levels = dct_levels
        self.pool_sizes = pool_sizes
        self.channel_fusion = channel_fusion
        self.hfps: nn.ModuleList | None = None
        self.sdps: nn.ModuleList | None = None
        if channel_path or spatial_path:
            self.hfps = nn.ModuleList(
                HFP(
                    out_channels,
                    DCTHighPass(ratio) if i in dct_levels else None,
                    channel_path=channel_path,
                    spatial_path=spatial_path,
                    pool_size=pool_sizes[i],
                    channel_fusion=channel_fusion,
                )
                for i in range(levels)
            )
        if sdp and levels > 1:
            # sdps[i] fuses used level i with level i + 1 (the one above it).
            self.sdps = nn.ModuleList(SDP(out_channels) for _ in range(levels - 1))

    def perceive(self, laterals: list[Tensor]) -> list[Tensor]:
        """The HS-FPN stages: HFP on every level, then SDP from the top down.

        Args:
            laterals (list[Tensor]): ``(N, C, H_i, W_i)`` lateral maps, finest first.

        Returns:
            list[Tensor]: Maps of the same shapes, ready for FPN's top-down sum.
        """
        if self.hfps is not None:
            laterals = [hfp(lat) for hfp, lat in zip(self.hfps, laterals)]
        if self.sdps is None:
            return list(laterals)
        block = tuple(laterals[-1].shape[-2:])
        out = list(laterals)
        for i in range(len(out) - 2, -1, -1):
            out[i] = self.sdps[i](out[i], out[i + 1], block)
        return out

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Run the neck.

        Args:
            inputs (tuple[Tensor, ...]): Backbone maps ``(N, in_channels[i], H_i, W_i)``, finest first.

        Returns:
            tuple[Tensor, ...]: ``num_outs`` maps ``(N, out_channels, H, W)``, finest first.
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"HSFPN expects {len(self.in_channels)} input maps, got {len(inputs)}")
        # Stage 1: lateral 1x1 convs.
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        # Stage 2: HFP and SDP (absent in the all-off variant).
        laterals = self.perceive(laterals)
        # Stage 3: FPN's top-down sum.
        levels = len(laterals)
        for i in range(levels - 1, 0, -1):
            if "scale_factor" in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        # Stage 4: output convs and extra levels, as FPN.
        outs = [self.fpn_convs[i](laterals[i]) for i in range(levels)]
        if self.num_outs > levels:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - levels):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {
                    "on_input": inputs[self.backbone_end_level - 1],
                    "on_lateral": laterals[-1],
                    "on_output": outs[-1],
                }[self.add_extra_convs]
                outs.append(self.fpn_convs[levels](source))
                for i in range(levels + 1, self.num_outs):
                    last = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](last))
        return tuple(outs)

    def extra_macs(self, inputs: tuple[Tensor, ...]) -> int:
        """MACs of one forward that conv/linear hook counters miss (DCT products and attention matmuls).

        Args:
            inputs (tuple[Tensor, ...]): The neck's inputs (only their shapes are used).

        Returns:
            int: Extra multiply-accumulates.
        """
        shapes = [
            (inputs[i + self.start_level].shape[0], self.out_channels, *inputs[i + self.start_level].shape[2:])
            for i in range(len(self.lateral_convs))
        ]
        total = 0
        if self.hfps is not None:
            total += sum(hfp.extra_macs(s) for hfp, s in zip(self.hfps, shapes))
        if self.sdps is not None:
            block = tuple(shapes[-1][2:])
            total += sum(sdp.extra_macs(s, block) for sdp, s in zip(self.sdps, shapes))
        return total
