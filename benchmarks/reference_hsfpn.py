"""Baseline for the benchmark and the tests: a direct, unoptimised transcription of HS-FPN's equations.

It follows the authors' release fact by fact (REFERENCE.md section 1) and uses the release's module names
(``SelfAttn_p1..p4``, ``CrossAtten_p4_p3`` ...), so its ``state_dict()`` is in release naming and serves to test
``hsfpn.convert``. It computes the DCT filter with ``torch_dct`` twice per DCT level (once per path) and the
block attention with explicit matmuls and softmax, and like the release it only accepts maps whose sides are
multiples of the C5 map's (image sides multiples of 32). Not part of the package: never import it from ``hsfpn``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torch_dct
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from torch import Tensor, nn


def release_high_pass(x: Tensor, ratio: tuple[float, float]) -> Tensor:
    """Full 2-D DCT, zero the ``int(alpha*H) x int(alpha*W)`` corner, inverse DCT (paper eq. 2)."""
    h, w = x.shape[-2:]
    coeffs = torch_dct.dct_2d(x, norm="ortho")
    mask = torch.ones(h, w, dtype=coeffs.dtype, device=coeffs.device)
    mask[: int(h * ratio[0]), : int(w * ratio[1])] = 0
    return torch_dct.idct_2d(coeffs * mask, norm="ortho")


class ReleaseSpatial(nn.Module):
    def __init__(self, channels: int, ratio: tuple[float, float], use_dct: bool) -> None:
        super().__init__()
        self.ratio = ratio
        self.use_dct = use_dct
        if not use_dct:
            self.spatial1x1 = nn.Sequential(ConvModule(channels, 1, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        if not self.use_dct:
            return x * torch.sigmoid(self.spatial1x1(x))
        return x * release_high_pass(x, self.ratio)


class ReleaseChannel(nn.Module):
    def __init__(self, channels: int, ratio: tuple[float, float], pool: int, use_dct: bool) -> None:
        super().__init__()
        self.ratio = ratio
        self.pool = pool
        self.use_dct = use_dct
        self.channel1x1 = nn.Sequential(ConvModule(channels, channels, 1, groups=32, bias=False))
        self.channel2x1 = nn.Sequential(ConvModule(channels, channels, 1, groups=32, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        n, c = x.shape[:2]
        if self.use_dct:
            f = release_high_pass(x, self.ratio)
            mx = torch.sum(F.relu(F.adaptive_max_pool2d(f, self.pool)), dim=[2, 3]).view(n, c, 1, 1)
            av = torch.sum(F.relu(F.adaptive_avg_pool2d(f, self.pool)), dim=[2, 3]).view(n, c, 1, 1)
        else:
            mx = F.relu(F.adaptive_max_pool2d(x, 1))
            av = F.relu(F.adaptive_avg_pool2d(x, 1))
        score = self.channel1x1(mx) + self.channel1x1(av)
        return x * torch.sigmoid(self.channel2x1(score))


class ReleaseHFP(nn.Module):
    def __init__(self, channels: int, ratio: tuple[float, float], pool: int, use_dct: bool) -> None:
        super().__init__()
        self.spatial = ReleaseSpatial(channels, ratio, use_dct)
        self.channel = ReleaseChannel(channels, ratio, pool, use_dct)
        self.out = nn.Sequential(ConvModule(channels, channels, 3, padding=1), nn.GroupNorm(32, channels))

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.spatial(x) + self.channel(x))


class ReleaseSDP(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.conv_q = nn.Sequential(ConvModule(channels, channels, 1, bias=False), nn.GroupNorm(32, channels))
        self.conv_k = nn.Sequential(ConvModule(channels, channels, 1, bias=False), nn.GroupNorm(32, channels))

    def forward(self, x_low: Tensor, x_high: Tensor, block: tuple[int, int]) -> Tensor:
        n, c, h, w = x_low.shape
        bh, bw = block
        if h % bh or w % bw:
            raise ValueError(f"the release needs map sides divisible by the C5 map: {h}x{w} vs {bh}x{bw}")
        nh, nw = h // bh, w // bw

        def blocks(t: Tensor) -> Tensor:  # (n, c, h, w) -> (n*nh*nw, c, bh*bw)
            t = t.reshape(n, c, nh, bh, nw, bw).permute(0, 2, 4, 1, 3, 5)
            return t.reshape(n * nh * nw, c, bh * bw)

        q = blocks(self.conv_q(x_low)).transpose(1, 2)
        k = blocks(self.conv_k(x_high))
        attn = torch.softmax(torch.matmul(q, k) / math.sqrt(self.channels), dim=-1)
        out = torch.matmul(attn, k.transpose(1, 2))  # V = K
        out = out.transpose(1, 2).reshape(n, nh, nw, c, bh, bw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, h, w)
        return out + x_low


class ReferenceHSFPN(FPN):
    """The release's neck: exactly four levels, DCT at p1 and p2 (k = 16, 8), SDP p4->p3->p2->p1."""

    def __init__(self, in_channels: list[int], out_channels: int, num_outs: int,
                 ratio: tuple[float, float] = (0.25, 0.25), **fpn_kwargs) -> None:
        super().__init__(in_channels, out_channels, num_outs, **fpn_kwargs)
        if self.backbone_end_level - self.start_level != 4:
            raise ValueError("the release needs exactly four levels")
        self.SelfAttn_p4 = ReleaseHFP(out_channels, ratio, 1, use_dct=False)
        self.SelfAttn_p3 = ReleaseHFP(out_channels, ratio, 1, use_dct=False)
        self.SelfAttn_p2 = ReleaseHFP(out_channels, ratio, 8, use_dct=True)
        self.SelfAttn_p1 = ReleaseHFP(out_channels, ratio, 16, use_dct=True)
        self.CrossAtten_p4_p3 = ReleaseSDP(out_channels)
        self.CrossAtten_p3_p2 = ReleaseSDP(out_channels)
        self.CrossAtten_p2_p1 = ReleaseSDP(out_channels)

    def forward(self, inputs: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        lat = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        block = tuple(lat[3].shape[2:])

        def up(t: Tensor) -> Tensor:
            return F.interpolate(t, scale_factor=2, mode="nearest")

        lat[3] = self.SelfAttn_p4(lat[3])
        lat[2] = self.CrossAtten_p4_p3(self.SelfAttn_p3(lat[2]), up(lat[3]), block)
        lat[1] = self.CrossAtten_p3_p2(self.SelfAttn_p2(lat[1]), up(lat[2]), block)
        lat[0] = self.CrossAtten_p2_p1(self.SelfAttn_p1(lat[0]), up(lat[1]), block)
        for i in range(3, 0, -1):
            lat[i - 1] = lat[i - 1] + F.interpolate(lat[i], size=lat[i - 1].shape[2:], **self.upsample_cfg)
        outs = [self.fpn_convs[i](lat[i]) for i in range(4)]
        if self.num_outs > 4:
            if not self.add_extra_convs:
                for _ in range(self.num_outs - 4):
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                src = {"on_input": inputs[self.backbone_end_level - 1], "on_lateral": lat[-1],
                       "on_output": outs[-1]}[self.add_extra_convs]
                outs.append(self.fpn_convs[4](src))
                for i in range(5, self.num_outs):
                    outs.append(self.fpn_convs[i](F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]))
        return tuple(outs)
