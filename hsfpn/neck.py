"""The HS-FPN neck for MMDetection 3: a thin adapter over :mod:`hsfpn.nn`.

Importing this module registers ``'HSFPN'`` in ``mmdet.registry.MODELS`` (configs name
``custom_imports=dict(imports=['hsfpn.mmdet'])``, which imports it with the metric and the assigners).
"""

from __future__ import annotations

from typing import Union

from mmdet.models.necks import FPN
from mmdet.registry import MODELS
from mmdet.utils import ConfigType, MultiConfig, OptConfigType
from torch import Tensor

from .nn.neck import HSFPNStages, PerceptionOptions

__all__ = ["HSFPN"]


@MODELS.register_module()
class HSFPN(HSFPNStages, FPN):
    """High Frequency and Spatial Perception FPN (`HS-FPN, AAAI 2025 <https://arxiv.org/abs/2412.10116>`_).

    MMDetection's :class:`~mmdet.models.necks.FPN`, with FPN's constructor, lateral and output convs (any
    ``conv_cfg`` / ``norm_cfg`` / ``act_cfg``) and initialisation, running the forward pass of
    :class:`hsfpn.nn.HSFPN` (:class:`~hsfpn.nn.neck.HSFPNStages`): HFP on every used level, SDP from the top
    down, then FPN's top-down sum, output convs and extra levels. The HFP and SDP modules are
    :mod:`hsfpn.nn`'s, under the same names, so a state dict of this neck loads into :class:`hsfpn.nn.HSFPN`
    (with plain lateral and output convs) and gives equal outputs. The outputs reproduce the authors' release
    number for number.

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
    leave smaller remainder blocks in the last row/column (see :mod:`hsfpn.nn.sdp`), and the DCT cutoffs are
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
        self.build_stages(PerceptionOptions.resolve(levels, out_channels, ratio, channel_path, spatial_path, sdp,
                                                    dct_levels, pool_sizes, channel_fusion))

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Run the neck.

        Args:
            inputs (tuple[Tensor, ...]): Backbone maps ``(N, in_channels[i], H_i, W_i)``, finest first.

        Returns:
            tuple[Tensor, ...]: ``num_outs`` maps ``(N, out_channels, H, W)``, finest first.

        Raises:
            ValueError: When the number of maps is not ``len(in_channels)``.
        """
        return tuple(self.pyramid(inputs))
