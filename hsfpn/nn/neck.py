"""The HS-FPN neck in plain PyTorch (:class:`HSFPN`), and the stages it shares with the MMDetection neck.

An FPN with two stages inserted between the lateral 1x1 convs and the top-down sum (paper fig. 2):

1. every used level goes through its :class:`~hsfpn.nn.hfp.HFP` (DCT high-pass at ``dct_levels``);
2. from the top down, every level but the top is fused with the level above by :class:`~hsfpn.nn.sdp.SDP`:
   ``L_i = SDP(HFP_i(L_i), up(L_{i+1}))``, where ``L_{i+1}`` is already the SDP output of the level above and
   ``up`` is nearest upsampling to ``L_i``'s size; blocks are the size of the top lateral map;
3. then FPN's ordinary top-down sum, 3x3 output convs and extra levels (max-pool or stride-2 convs).

:class:`HSFPNStages` holds that forward pass once. Both :class:`HSFPN` here and the registered MMDetection
neck (:class:`hsfpn.neck.HSFPN`, an ``mmdet`` ``FPN``) inherit it; they have the same submodules under the same
names (``lateral_convs``, ``fpn_convs``, ``hfps``, ``sdps``), so one state dict loads into both and gives the
same outputs.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import torch.nn.functional as F
from torch import Tensor, nn

from .dct import DCTHighPass
from .hfp import CHANNEL_FUSIONS, HFP
from .layers import ConvActNorm
from .sdp import SDP

__all__ = ["HSFPN", "HSFPNStages", "PerceptionOptions", "EXTRA_CONV_SOURCES"]

#: Where the first extra conv level reads from (FPN's ``add_extra_convs``): the last used backbone map, the
#: last lateral map (after HFP, SDP and the top-down sum), or the last output.
EXTRA_CONV_SOURCES = ("on_input", "on_lateral", "on_output")

Maps = Union[Sequence[Tensor], Mapping[str, Tensor]]


@dataclass(frozen=True)
class PerceptionOptions:
    """The HS-FPN switches of a neck with ``levels`` used levels, checked and with their defaults filled in.

    Attributes:
        ratio (tuple[float, float]): The paper's alpha per axis (H, W), each in [0, 1].
        channel_path (bool): HFP's channel path.
        spatial_path (bool): HFP's spatial path.
        sdp (bool): The SDP modules.
        dct_levels (tuple[int, ...]): Used levels (0 = finest) whose HFP uses the DCT filter.
        pool_sizes (tuple[int, ...]): Channel-path pooling grid k of each used level.
        channel_fusion (str): One of :data:`~hsfpn.nn.hfp.CHANNEL_FUSIONS`.
    """

    ratio: tuple[float, float]
    channel_path: bool
    spatial_path: bool
    sdp: bool
    dct_levels: tuple[int, ...]
    pool_sizes: tuple[int, ...]
    channel_fusion: str

    @classmethod
    def resolve(
        cls,
        levels: int,
        out_channels: int,
        ratio: Sequence[float] = (0.25, 0.25),
        channel_path: bool = True,
        spatial_path: bool = True,
        sdp: bool = True,
        dct_levels: Sequence[int] | None = None,
        pool_sizes: Sequence[int] | None = None,
        channel_fusion: str = "sum",
    ) -> PerceptionOptions:
        """Check the switches and fill the defaults (see :class:`HSFPN`'s arguments).

        Raises:
            ValueError: Naming the argument that is out of range.
        """
        ratio = tuple(float(r) for r in ratio)
        if len(ratio) != 2 or not all(0.0 <= r <= 1.0 for r in ratio):
            raise ValueError(f"HSFPN ratio must be (alpha_h, alpha_w) in [0, 1], got {ratio}")
        dct_levels = tuple(range(min(2, levels))) if dct_levels is None else tuple(dct_levels)
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
        return cls(ratio, bool(channel_path), bool(spatial_path), bool(sdp), dct_levels, pool_sizes, channel_fusion)


class HSFPNStages:
    """The forward pass of HS-FPN, shared by :class:`HSFPN` and the MMDetection neck (a mixin).

    The class that mixes it in is an ``nn.Module`` with FPN's attributes: ``in_channels`` (list), ``num_outs``,
    ``start_level``, ``backbone_end_level``, ``add_extra_convs`` (False or one of :data:`EXTRA_CONV_SOURCES`),
    ``relu_before_extra_convs``, ``upsample_cfg`` (keyword arguments of ``F.interpolate``), ``lateral_convs`` and
    ``fpn_convs``; :meth:`build_stages` adds ``hfps`` and ``sdps``.
    """

    in_channels: list[int]
    out_channels: int
    num_outs: int
    start_level: int
    backbone_end_level: int
    add_extra_convs: bool | str
    relu_before_extra_convs: bool
    upsample_cfg: dict[str, Any]
    lateral_convs: nn.ModuleList
    fpn_convs: nn.ModuleList

    def build_stages(self, options: PerceptionOptions) -> None:
        """Create ``hfps`` (one HFP per used level, or None) and ``sdps`` (one SDP per level but the top, or None).

        ``sdps[i]`` fuses used level i with level i + 1, the one above it.
        """
        levels = self.backbone_end_level - self.start_level
        channels = self.out_channels
        self.options = options
        self.hfps: nn.ModuleList | None = None
        self.sdps: nn.ModuleList | None = None
        if options.channel_path or options.spatial_path:
            self.hfps = nn.ModuleList(
                HFP(
                    channels,
                    DCTHighPass(options.ratio) if i in options.dct_levels else None,
                    channel_path=options.channel_path,
                    spatial_path=options.spatial_path,
                    pool_size=options.pool_sizes[i],
                    channel_fusion=options.channel_fusion,
                )
                for i in range(levels)
            )
        if options.sdp and levels > 1:
            self.sdps = nn.ModuleList(SDP(channels) for _ in range(levels - 1))

    def perceive(self, laterals: list[Tensor]) -> list[Tensor]:
        """The HS-FPN stages: HFP on every level, then SDP from the top down.

        Args:
            laterals (list[Tensor]): ``(N, C, H_i, W_i)`` lateral maps, finest first.

        Returns:
            list[Tensor]: Maps of the same shapes, ready for FPN's top-down sum.
        """
        # One list, updated in place: a map nothing reads any more (a level's lateral map once HFP has run, its
        # HFP output once SDP has) is freed at once instead of living to the end of the neck.
        if self.hfps is not None:
            laterals = [hfp(lat) for hfp, lat in zip(self.hfps, laterals)]
        else:
            laterals = list(laterals)
        if self.sdps is not None:
            block = (laterals[-1].shape[-2], laterals[-1].shape[-1])
            for i in range(len(laterals) - 2, -1, -1):
                laterals[i] = self.sdps[i](laterals[i], laterals[i + 1], block)
        return laterals

    def pyramid(self, inputs: Sequence[Tensor]) -> list[Tensor]:
        """Lateral convs, HFP and SDP, FPN's top-down sum, output convs and extra levels.

        Args:
            inputs (Sequence[Tensor]): Backbone maps ``(N, in_channels[i], H_i, W_i)``, finest first.

        Returns:
            list[Tensor]: ``num_outs`` maps ``(N, out_channels, H, W)``, finest first.

        Raises:
            ValueError: When the number of maps is not ``len(in_channels)``.
        """
        if len(inputs) != len(self.in_channels):
            raise ValueError(f"HSFPN expects {len(self.in_channels)} input maps, got {len(inputs)}")
        # Handed over without a name here, so that perceive() can free the lateral maps as it goes.
        laterals = self.perceive([conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)])
        levels = len(laterals)
        for i in range(levels - 1, 0, -1):
            # The upsampled map is a temporary of the sum (not held until the next level's is made).
            laterals[i - 1] = laterals[i - 1] + self._upsample(laterals[i], laterals[i - 1])
        outs = [self.fpn_convs[i](laterals[i]) for i in range(levels)]
        if self.num_outs > levels:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - levels):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                if self.add_extra_convs == "on_input":
                    source = inputs[self.backbone_end_level - 1]
                elif self.add_extra_convs == "on_lateral":
                    source = laterals[-1]
                else:
                    source = outs[-1]
                outs.append(self.fpn_convs[levels](source))
                for i in range(levels + 1, self.num_outs):
                    last = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](last))
        return outs

    def _upsample(self, top: Tensor, below: Tensor) -> Tensor:
        """FPN's top-down upsampling of ``top`` to ``below``'s size (or by ``upsample_cfg['scale_factor']``)."""
        if "scale_factor" in self.upsample_cfg:
            return F.interpolate(top, **self.upsample_cfg)
        return F.interpolate(top, size=below.shape[2:], **self.upsample_cfg)

    def extra_macs(self, inputs: Sequence[Tensor]) -> int:
        """MACs of one forward that conv/linear hook counters miss (DCT products and attention matmuls).

        Args:
            inputs (Sequence[Tensor]): The neck's inputs (only their shapes are used).

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


class HSFPN(HSFPNStages, nn.Module):
    """High Frequency and Spatial Perception FPN (`HS-FPN, AAAI 2025 <https://arxiv.org/abs/2412.10116>`_).

    A neck for any PyTorch detector. It needs nothing but torch; its constructor, parameter names and outputs
    are those of the MMDetection neck :class:`hsfpn.neck.HSFPN` with plain lateral and output convs (FPN's
    default, and the authors' release): one state dict loads into both and, for the same inputs, both return
    equal tensors. Checkpoints of the release load after ``hsfpn-repro convert-checkpoint``.

    Stages: see :mod:`hsfpn.nn.neck`. With ``channel_path=spatial_path=sdp=False`` the neck is exactly FPN.
    "Only SDP" (``channel_path=spatial_path=False``) has no HFP; "only CP" / "only SP" keep HFP's 3x3 conv and
    GroupNorm with one path (the paper's Table 5 variants).

    Input sizes. Any size works: upsampling targets the next map's size, blocks that do not divide a map leave
    smaller remainder blocks in its last row and column (see :mod:`hsfpn.nn.sdp`), and the DCT cutoffs are
    ``int(alpha * side)`` of each map (a side below ``1 / alpha`` is not filtered). Where the release runs
    (image sides multiples of 32) the outputs equal its outputs.

    Args:
        in_channels (Sequence[int]): Channels of each backbone map, finest first (C2..C5 of a ResNet-50:
            ``[256, 512, 1024, 2048]``).
        out_channels (int): Channels of every output (divisible by 32 when HFP or SDP is on).
        num_outs (int): Number of outputs: the used levels, then extra levels.
        start_level (int): First input level used. Defaults to 0.
        end_level (int): Last input level used; -1 for the last. Without the last, ``num_outs`` must equal the
            used levels. Defaults to -1.
        add_extra_convs (bool | str): Extra levels by max-pooling (False) or by stride-2 3x3 convs reading
            ``'on_input'`` (True means this), ``'on_lateral'`` or ``'on_output'``. Defaults to False.
        relu_before_extra_convs (bool): ReLU before the second and later extra convs. Defaults to False.
        upsample_cfg (Mapping[str, Any], optional): Keyword arguments of ``F.interpolate`` in the top-down sum
            (with ``scale_factor`` in it the size is not passed). Defaults to ``{'mode': 'nearest'}``. SDP always
            upsamples nearest to the finer map's size.
        ratio (tuple[float, float]): The paper's alpha per axis (H, W). Defaults to ``(0.25, 0.25)``.
        channel_path (bool): HFP's channel path. Defaults to True.
        spatial_path (bool): HFP's spatial path. Defaults to True.
        sdp (bool): The SDP modules. Defaults to True.
        dct_levels (Sequence[int], optional): Used levels (0 = finest) whose HFP applies the DCT filter; the
            others pool the lateral map itself and learn a spatial mask. Defaults to the two finest, ``(0, 1)``.
        pool_sizes (Sequence[int], optional): Channel-path pooling grid k, one per used level. Defaults to
            ``16 // 2**i`` at DCT levels and 1 (global pooling) elsewhere, i.e. ``(16, 8, 1, 1)``.
        channel_fusion (str): ``'sum'`` (the release) or ``'concat'`` (the form the paper's Table 5 counts, see
            :data:`~hsfpn.nn.hfp.CHANNEL_FUSIONS`). Defaults to ``'sum'``.

    Shape:
        - Input: the backbone maps ``(N, in_channels[i], H_i, W_i)``, finest first, as a list, a tuple or a
          mapping (like torchvision's ``FeaturePyramidNetwork``: e.g. ``OrderedDict`` of ``'0'..'3'``).
        - Output: ``num_outs`` maps ``(N, out_channels, H_j, W_j)``, finest first, of the input's kind. The used
          levels have the sizes of their inputs; each extra level halves the last (``ceil`` for convs,
          ``floor`` + 1 for max-pooling, as FPN). A mapping keeps the keys of the used levels and names the
          extra levels ``'extra1'``, ``'extra2'``, ...

    Parameters are initialised as the MMDetection neck's: Xavier-uniform convs with zero biases, GroupNorm
    weights 1 and biases 0 (:meth:`reset_parameters`).

    Example:
        >>> from collections import OrderedDict
        >>> import torch
        >>> neck = HSFPN([64, 128, 256, 512], 64, num_outs=5)
        >>> feats = OrderedDict((str(i), torch.rand(1, c, 160 >> i, 160 >> i))
        ...                     for i, c in enumerate([64, 128, 256, 512]))
        >>> [(k, tuple(v.shape)) for k, v in neck(feats).items()][-2:]
        [('3', (1, 64, 20, 20)), ('extra1', (1, 64, 10, 10))]
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int,
        num_outs: int,
        start_level: int = 0,
        end_level: int = -1,
        add_extra_convs: bool | str = False,
        relu_before_extra_convs: bool = False,
        upsample_cfg: Mapping[str, Any] | None = None,
        ratio: Sequence[float] = (0.25, 0.25),
        channel_path: bool = True,
        spatial_path: bool = True,
        sdp: bool = True,
        dct_levels: Sequence[int] | None = None,
        pool_sizes: Sequence[int] | None = None,
        channel_fusion: str = "sum",
    ) -> None:
        super().__init__()
        self.in_channels = [int(c) for c in in_channels]
        self.out_channels = out_channels
        self.num_outs = num_outs
        self.start_level = start_level
        self.backbone_end_level = _end_level(len(self.in_channels), start_level, end_level, num_outs)
        self.add_extra_convs = _extra_conv_source(add_extra_convs)
        self.relu_before_extra_convs = relu_before_extra_convs
        self.upsample_cfg = dict(upsample_cfg or {"mode": "nearest"})
        levels = self.backbone_end_level - start_level
        options = PerceptionOptions.resolve(levels, out_channels, ratio, channel_path, spatial_path, sdp,
                                            dct_levels, pool_sizes, channel_fusion)
        used = self.in_channels[start_level:self.backbone_end_level]
        self.lateral_convs = nn.ModuleList(ConvActNorm(c, out_channels, 1, relu=False) for c in used)
        self.fpn_convs = nn.ModuleList(
            ConvActNorm(out_channels, out_channels, 3, padding=1, relu=False) for _ in used
        )
        if self.add_extra_convs:
            for i in range(num_outs - levels):
                first_on_input = i == 0 and self.add_extra_convs == "on_input"
                source = self.in_channels[self.backbone_end_level - 1] if first_on_input else out_channels
                self.fpn_convs.append(ConvActNorm(source, out_channels, 3, stride=2, padding=1, relu=False))
        self.build_stages(options)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights and zero biases for every conv; GroupNorm weights 1, biases 0."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.GroupNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, inputs: Maps) -> Maps:
        """Run the neck.

        Args:
            inputs (list | tuple | Mapping[str, Tensor]): Backbone maps ``(N, in_channels[i], H_i, W_i)``,
                finest first.

        Returns:
            list | tuple | Mapping[str, Tensor]: ``num_outs`` maps ``(N, out_channels, H_j, W_j)``, finest first,
            of the input's kind (a mapping comes back as an ``OrderedDict``, or a ``dict`` for a ``dict``).

        Raises:
            ValueError: When the number of maps is not ``len(in_channels)``.
        """
        if isinstance(inputs, Mapping):
            names = list(inputs)[self.start_level:self.backbone_end_level]
            outs = self.pyramid(list(inputs.values()))
            names += [f"extra{j}" for j in range(1, len(outs) - len(names) + 1)]
            kind = type(inputs) if isinstance(inputs, dict) else OrderedDict
            return kind(zip(names, outs))
        outs = self.pyramid(inputs)
        return tuple(outs) if isinstance(inputs, tuple) else outs


def _end_level(num_ins: int, start_level: int, end_level: int, num_outs: int) -> int:
    """FPN's ``backbone_end_level`` (one past the last used input), checked as FPN checks it."""
    if not 0 <= start_level < num_ins:
        raise ValueError(f"HSFPN start_level must index one of the {num_ins} inputs, got {start_level}")
    if end_level in (-1, num_ins - 1):
        if num_outs < num_ins - start_level:
            raise ValueError(f"HSFPN num_outs must be at least the {num_ins - start_level} used levels, got {num_outs}")
        return num_ins
    if not start_level <= end_level < num_ins:
        raise ValueError(f"HSFPN end_level must be -1 or in [{start_level}, {num_ins}), got {end_level}")
    if num_outs != end_level - start_level + 1:
        raise ValueError(f"HSFPN with end_level={end_level} has no extra levels: num_outs must be "
                         f"{end_level - start_level + 1}, got {num_outs}")
    return end_level + 1


def _extra_conv_source(add_extra_convs: bool | str) -> bool | str:
    """FPN's ``add_extra_convs``: False, or where the first extra conv reads (True means ``'on_input'``)."""
    if isinstance(add_extra_convs, bool):
        return "on_input" if add_extra_convs else False
    if add_extra_convs not in EXTRA_CONV_SOURCES:
        raise ValueError(f"HSFPN add_extra_convs must be a bool or one of {EXTRA_CONV_SOURCES}, got {add_extra_convs!r}")
    return add_extra_convs
