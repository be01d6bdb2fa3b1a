"""Spatial Dependency Perception module (SDP, paper section 3.2): cross-attention inside blocks.

Blocks. The paper makes every block the size of the C5 lateral map (25 x 25 at 800 x 800), which tiles the
finer maps exactly when the image sides are multiples of 32 (the only sizes the release runs on). For other
sizes the grid is anchored at the top-left corner with ``ceil(H / b_h) x ceil(W / b_w)`` blocks: every block
is ``b_h x b_w`` except the last row and column, which hold the remainder (``H - b_h * floor(H / b_h)`` rows,
likewise for columns). Queries attend only to keys of the same block, so where the sides divide the result is
exactly the release's; a block never straddles the map edge and no padding enters the softmax.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import ConvActNorm
from .pool import exporting

__all__ = ["SDP", "BlockCrossAttention", "block_spans"]

_GROUPS = 32


def block_spans(length: int, block: int) -> list[tuple[int, int, int]]:
    """Split ``range(length)`` into runs of equal blocks: ``[(start, stop, block_len), ...]``.

    Args:
        length (int): Side of the map.
        block (int): Block side (clamped to ``[1, length]``).

    Returns:
        list[tuple[int, int, int]]: One run of whole blocks, then (when ``length % block``) the remainder block.

    Example:
        >>> block_spans(201, 26)
        [(0, 182, 26), (182, 201, 19)]
    """
    block = max(1, min(block, length))
    whole = (length // block) * block
    spans = [(0, whole, block)]
    if whole < length:
        spans.append((whole, length, length - whole))
    return spans


def _to_blocks(t: Tensor, bh: int, bw: int) -> Tensor:
    """``(N, C, nh*bh, nw*bw)`` -> ``(N*nh*nw, bh*bw, C)``, tokens row-major inside each block."""
    n, c, h, w = t.shape
    t = t.reshape(n, c, h // bh, bh, w // bw, bw).permute(0, 2, 4, 3, 5, 1)
    return t.reshape(n * (h // bh) * (w // bw), bh * bw, c)


def _from_blocks(t: Tensor, n: int, h: int, w: int, bh: int, bw: int) -> Tensor:
    """Inverse of :func:`_to_blocks`."""
    c = t.shape[-1]
    # Blocks -> (N, H*W, C) keeps C contiguous (a cheap copy); the channel transpose is then done per image
    # as a 2-D copy, which PyTorch runs with a blocked transpose kernel: about 2x faster on CPU than one
    # 6-D permute straight to NCHW.
    tokens = t.reshape(n, h // bh, w // bw, bh, bw, c).permute(0, 1, 3, 2, 4, 5).reshape(n, h * w, c)
    if exporting():
        # One transpose of the whole batch: the same values, and a graph with no loop over the images, so an
        # exported graph takes any batch size (hsfpn.export).
        return tokens.transpose(1, 2).reshape(n, c, h, w)
    out = t.new_empty(n, c, h * w)
    for i in range(n):
        out[i].copy_(tokens[i].t())
    return out.reshape(n, c, h, w)


def _token_major(t: Tensor) -> Tensor:
    """``(N, C, h, w)`` -> contiguous ``(N, h*w, C)`` (per-image 2-D transposes, the fast kernel)."""
    n, c, h, w = t.shape
    if exporting():  # no loop over the images in an exported graph (see _from_blocks)
        return t.reshape(n, c, h * w).transpose(1, 2).contiguous()
    out = t.new_empty(n, h * w, c)
    for i in range(n):
        out[i].copy_(t[i].reshape(c, h * w).t())
    return out


def _block_index(rows: Tensor, cols: Tensor, bh: int, bw: int, width: int) -> Tensor:
    """Flat source positions (row * width + col) of a region's tokens, in :func:`_to_blocks` order."""
    nh, nw = rows.numel() // bh, cols.numel() // bw
    flat = rows.view(nh, 1, bh, 1) * width + cols.view(1, nw, 1, bw)
    return flat.reshape(-1)


class BlockCrossAttention(nn.Module):
    """Single-head attention inside non-overlapping blocks (paper eq. 3), no parameters.

    For every block j: ``out_j = softmax(q_j k_j^T / sqrt(C)) v_j`` with ``q_j, k_j, v_j`` of shape
    ``(tokens, C)``. Blocks of the same size are batched into one fused
    :func:`torch.nn.functional.scaled_dot_product_attention` call (at most four calls: whole blocks, the
    remainder column, the remainder row and the corner), so the ``tokens x tokens`` matrices are never
    stored for the whole map.
    """

    def forward(
        self,
        q: Tensor,
        k: Tensor,
        v: Tensor,
        block_size: tuple[int, int],
        upsample: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Attend within blocks.

        Args:
            q (Tensor): ``(N, C, H, W)`` queries.
            k (Tensor): ``(N, C, H, W)`` keys, or ``(N, C, h, w)`` with ``upsample``.
            v (Tensor): Values shaped as ``k``.
            block_size (tuple[int, int]): ``(b_h, b_w)`` block side; see the module notes for remainders.
            upsample (tuple[Tensor, Tensor], optional): ``(rows, cols)``, long tensors of length H and W giving
                the source row / column of ``k`` and ``v`` for every row / column of ``q``: keys and values are
                then read through this nearest-neighbour map instead of being upsampled first. Defaults to None.

        Returns:
            Tensor: ``(N, C, H, W)`` attended values, each block in its place.
        """
        n, c, h, w = q.shape
        if upsample is None and (k.shape != q.shape or v.shape != q.shape):
            raise ValueError(f"BlockCrossAttention needs q, k, v of one shape, got {q.shape}, {k.shape}, {v.shape}")
        if upsample is not None:
            if k.shape != v.shape or k.shape[:2] != q.shape[:2] or upsample[0].numel() != h or upsample[1].numel() != w:
                raise ValueError(f"BlockCrossAttention: keys {tuple(k.shape)} and map {tuple(upsample[0].shape)} x "
                                 f"{tuple(upsample[1].shape)} do not fit queries {tuple(q.shape)}")
            # Token-major (N, h*w, C) keys: the gathers below then move whole C-long rows.
            k_tok = _token_major(k)
            v_tok = k_tok if v is k else _token_major(v)
        rows = []
        for r0, r1, bh in block_spans(h, block_size[0]):
            cols = []
            for c0, c1, bw in block_spans(w, block_size[1]):
                qb = _to_blocks(q[:, :, r0:r1, c0:c1], bh, bw)
                if upsample is None:
                    kb = _to_blocks(k[:, :, r0:r1, c0:c1], bh, bw)
                    vb = kb if v is k else _to_blocks(v[:, :, r0:r1, c0:c1], bh, bw)
                else:
                    index = _block_index(upsample[0][r0:r1], upsample[1][c0:c1], bh, bw, k.shape[-1])
                    kb = k_tok.index_select(1, index).reshape(qb.shape)
                    vb = kb if v is k else v_tok.index_select(1, index).reshape(qb.shape)
                # A 4-D (batch, heads, tokens, C) call takes PyTorch's fused CPU kernel; 3-D falls back to
                # the unfused math path, which stores every tokens x tokens matrix.
                out = F.scaled_dot_product_attention(qb.unsqueeze(1), kb.unsqueeze(1), vb.unsqueeze(1)).squeeze(1)
                cols.append(_from_blocks(out, n, r1 - r0, c1 - c0, bh, bw))
            rows.append(cols[0] if len(cols) == 1 else torch.cat(cols, dim=3))
        return rows[0] if len(rows) == 1 else torch.cat(rows, dim=2)

    @staticmethod
    def macs(shape: torch.Size | tuple[int, ...], block_size: tuple[int, int]) -> int:
        """MACs of ``q k^T`` and ``a v`` for one forward on ``(N, C, H, W)`` maps (softmax not counted)."""
        n, c, h, w = shape
        total = 0
        for r0, r1, bh in block_spans(h, block_size[0]):
            for c0, c1, bw in block_spans(w, block_size[1]):
                blocks = ((r1 - r0) // bh) * ((c1 - c0) // bw)
                tokens = bh * bw
                total += n * blocks * 2 * tokens * tokens * c
        return total


class SDP(nn.Module):
    """Spatial Dependency Perception: ``C_i + BlockAttn(Q(C_i), K(up(P)), V = K(up(P)))``.

    ``Q = GN32(relu(conv1x1(C_i)))``, ``K = GN32(relu(conv1x1(P_up)))`` (bias-free convs), and, as in the
    release, the values are the keys (no value and no output projection, one head, scale ``1/sqrt(C)``).

    Args:
        channels (int): Channels C (divisible by 32).

    Example:
        >>> sdp = SDP(64)
        >>> sdp(torch.randn(1, 64, 20, 20), torch.randn(1, 64, 10, 10), (5, 5)).shape
        torch.Size([1, 64, 20, 20])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if channels <= 0 or channels % _GROUPS:
            raise ValueError(f"SDP needs channels divisible by {_GROUPS} (GroupNorm), got {channels}")
        self.query_proj = ConvActNorm(channels, channels, 1, bias=False, norm_groups=_GROUPS)
        self.key_proj = ConvActNorm(channels, channels, 1, bias=False, norm_groups=_GROUPS)
        self.attention = BlockCrossAttention()

    def forward(self, low: Tensor, high: Tensor, block_size: tuple[int, int]) -> Tensor:
        """Fuse a lateral map with the level above.

        Args:
            low (Tensor): ``(N, C, H, W)`` current level C_i (after HFP when HFP is on).
            high (Tensor): ``(N, C, h, w)`` level above (its SDP output), upsampled here to ``(H, W)`` (nearest).
            block_size (tuple[int, int]): Block side, the top lateral map's ``(H, W)``.

        Returns:
            Tensor: ``(N, C, H, W)`` = ``low + attention``.

        Notes:
            The paper computes ``K = GN(relu(conv(up(P))))``. The conv and ReLU act per pixel, and a nearest x2
            upsampling repeats every pixel exactly four times, which leaves GroupNorm's statistics unchanged;
            so when ``(H, W) == (2h, 2w)`` ``K = up(GN(relu(conv(P))))`` exactly, at a quarter of the cost,
            and the upsampling itself is folded into cutting the key blocks. Other size pairs (odd sides)
            repeat pixels unevenly and take the paper's order.
        """
        size = low.shape[-2:]
        q = self.query_proj(low)
        if size[0] == 2 * high.shape[-2] and size[1] == 2 * high.shape[-1]:
            k = self.key_proj(high)
            # Nearest x2 (PyTorch's rule: source = floor(dst / 2)), applied while cutting the key blocks.
            rows = torch.arange(size[0], device=low.device) // 2
            cols = torch.arange(size[1], device=low.device) // 2
            return low + self.attention(q, k, k, block_size, upsample=(rows, cols))
        k = self.key_proj(F.interpolate(high, size=size, mode="nearest"))
        return low + self.attention(q, k, k, block_size)

    def macs(self, low_shape: torch.Size | tuple[int, ...], block_size: tuple[int, int]) -> tuple[int, int]:
        """MACs of one forward as the paper formulates it: ``(projections, attention)``.

        Both 1x1 projections are counted at the finer level's resolution (the paper's order; the
        implementation runs K's before the upsampling where that is exact, see :meth:`forward`).
        """
        n, c, h, w = low_shape
        projections = 2 * n * h * w * c * self.query_proj.conv.out_channels
        return projections, BlockCrossAttention.macs(low_shape, block_size)

    def extra_macs(self, shape: torch.Size | tuple[int, ...], block_size: tuple[int, int]) -> int:
        """MACs a conv/linear hook counter misses: the attention matmuls."""
        return self.macs(shape, block_size)[1]
