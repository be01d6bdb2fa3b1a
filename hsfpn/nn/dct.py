"""The high-pass filter of HS-FPN (paper eq. 2): drop the low-frequency corner of the 2-D DCT.

The paper builds the high-frequency response ``F`` of a feature map ``C`` by taking the orthonormal 2-D DCT-II
over (H, W) of every channel, zeroing the top-left ``int(alpha_h * H) x int(alpha_w * W)`` coefficients and
transforming back. Because the orthonormal DCT is an orthogonal change of basis, the same response is

    F = C - B_h^T (B_h C B_w^T) B_w,

where ``B_h`` holds only the first ``int(alpha_h * H)`` rows of the H-point DCT-II matrix (and ``B_w`` likewise).
Only the kept low-frequency corner is ever computed, by four small matrix products, instead of two full FFT-based
DCTs and their inverses; the bases are cached per (size, cutoff, device).
"""

from __future__ import annotations

import math
import threading

import torch
from torch import Tensor, nn

__all__ = ["DCTHighPass", "dct_basis", "dct_cutoffs"]

_BASIS_CACHE: dict[tuple[int, int, str], Tensor] = {}
_BASIS_LOCK = threading.Lock()


def dct_basis(size: int, rows: int | None = None, device: torch.device | str = "cpu") -> Tensor:
    """The first ``rows`` rows of the orthonormal ``size``-point DCT-II matrix, in fp32.

    ``B[k, n] = s_k * cos(pi * (2n + 1) * k / (2 * size))`` with ``s_0 = sqrt(1 / size)`` and
    ``s_k = sqrt(2 / size)`` otherwise, so ``B @ x`` equals ``torch_dct.dct(x, norm='ortho')[:rows]``.

    Args:
        size (int): Transform length (a side of the feature map), at least 1.
        rows (int, optional): Number of leading (lowest-frequency) rows to return. Defaults to ``size``.
        device (torch.device | str): Where the matrix lives. Defaults to ``"cpu"``.

    Returns:
        Tensor: ``(rows, size)`` float32 matrix. The returned tensor is cached and shared: do not modify it.
    """
    rows = size if rows is None else rows
    if size < 1 or not 0 <= rows <= size:
        raise ValueError(f"dct_basis needs size >= 1 and 0 <= rows <= size, got size={size}, rows={rows}")
    if torch.compiler.is_compiling():
        # Inside a compiled graph the basis is a few cheap ops of the graph: the cache and its lock are
        # Python state the compiler would have to guard on or break the graph for.
        return _build_basis(size, rows, device)
    key = (size, rows, str(torch.device(device)))
    with _BASIS_LOCK:
        basis = _BASIS_CACHE.get(key)
        if basis is None:
            basis = _BASIS_CACHE[key] = _build_basis(size, rows, device)
    return basis


def _build_basis(size: int, rows: int, device: torch.device | str) -> Tensor:
    # Built in float64 (on the CPU: some accelerators have no float64) so the fp32 matrix is orthonormal to
    # rounding.
    k = torch.arange(rows, dtype=torch.float64).unsqueeze(1)
    n = torch.arange(size, dtype=torch.float64).unsqueeze(0)
    scale = torch.full((rows, 1), math.sqrt(2.0 / size), dtype=torch.float64)
    if rows > 0:
        scale[0] = math.sqrt(1.0 / size)
    basis = torch.cos(math.pi * (2.0 * n + 1.0) * k / (2.0 * size)) * scale
    return basis.to(device=device, dtype=torch.float32)


def dct_cutoffs(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """Number of low-frequency DCT rows and columns the filter removes: ``int(alpha * side)`` per axis.

    The truncation is the release's ``int(h * ratio[0])``: for a 25-pixel side and alpha 0.25 it removes 6 rows
    (not 7), and a side shorter than ``1 / alpha`` removes nothing on that axis, so the filter passes the map.

    Args:
        height (int): Map height H.
        width (int): Map width W.
        ratio (tuple[float, float]): ``(alpha_h, alpha_w)``, each in [0, 1].

    Returns:
        tuple[int, int]: ``(cut_h, cut_w)`` with ``0 <= cut_h <= H`` and ``0 <= cut_w <= W``.
    """
    return int(height * ratio[0]), int(width * ratio[1])


class DCTHighPass(nn.Module):
    """High-frequency response ``F`` of a feature map: paper eq. 2 with cutoff ``alpha`` per axis.

    ``z(u, v) = 0`` for ``u < int(alpha_h * H)`` and ``v < int(alpha_w * W)``, else 1; ``F = IDCT(z * DCT(C))``
    with orthonormal 2-D DCT-II over the last two axes. Works for every map size (the cutoffs follow the map).
    ``alpha = 0`` gives ``F = C`` and ``alpha = 1`` gives ``F = 0`` exactly. The module has no parameters.

    Args:
        ratio (tuple[float, float]): ``(alpha_h, alpha_w)``, each in [0, 1]. Defaults to ``(0.25, 0.25)``.

    Notes:
        The transform always runs in float32, also under fp16/bf16 autocast (a low-precision DCT of a
        200 x 200 map loses the small high-frequency residual the module exists to keep); the response is
        returned in the input's dtype.

    Example:
        >>> hp = DCTHighPass((0.25, 0.25))
        >>> hp(torch.randn(2, 8, 40, 30)).shape
        torch.Size([2, 8, 40, 30])
    """

    def __init__(self, ratio: tuple[float, float] = (0.25, 0.25)) -> None:
        super().__init__()
        ratio = tuple(float(r) for r in ratio)
        if len(ratio) != 2 or not all(0.0 <= r <= 1.0 for r in ratio):
            raise ValueError(f"DCTHighPass ratio must be two values in [0, 1], got {ratio}")
        self.ratio: tuple[float, float] = ratio  # type: ignore[assignment]

    def extra_repr(self) -> str:
        return f"ratio={self.ratio}"

    def low_pass(self, x: Tensor) -> Tensor:
        """The part of ``x`` that the filter removes: its projection on the low-frequency DCT corner.

        Args:
            x (Tensor): ``(..., H, W)`` map.

        Returns:
            Tensor: ``(..., H, W)`` float32 low-pass part (``x - low_pass(x)`` is the response).
        """
        height, width = x.shape[-2:]
        cut_h, cut_w = dct_cutoffs(height, width, self.ratio)
        xf = x.float()
        if cut_h == 0 or cut_w == 0:
            return torch.zeros_like(xf)
        if cut_h == height and cut_w == width:
            return xf
        b_h = dct_basis(height, cut_h, x.device)
        b_w = dct_basis(width, cut_w, x.device)
        corner = torch.matmul(torch.matmul(b_h, xf), b_w.t())  # (..., cut_h, cut_w) DCT coefficients
        return torch.matmul(b_h.t(), torch.matmul(corner, b_w))

    def forward(self, x: Tensor) -> Tensor:
        """Compute ``F`` for every channel.

        Args:
            x (Tensor): ``(N, C, H, W)`` (any leading shape works) feature map.

        Returns:
            Tensor: ``(N, C, H, W)`` high-frequency response in ``x.dtype``.
        """
        height, width = x.shape[-2:]
        cut_h, cut_w = dct_cutoffs(height, width, self.ratio)
        if cut_h == 0 or cut_w == 0:
            return x
        if cut_h == height and cut_w == width:
            return torch.zeros_like(x)
        with torch.autocast(device_type=x.device.type, enabled=False):
            response = x.float() - self.low_pass(x)
        return response.to(x.dtype)

    def macs(self, shape: torch.Size | tuple[int, ...]) -> int:
        """Multiply-accumulates of one forward on a map of ``shape`` (the four basis products).

        Args:
            shape (tuple[int, ...]): ``(..., H, W)`` input shape.

        Returns:
            int: MACs, 0 when the filter passes or blocks everything.
        """
        *lead, height, width = shape
        cut_h, cut_w = dct_cutoffs(height, width, self.ratio)
        if cut_h == 0 or cut_w == 0 or (cut_h == height and cut_w == width):
            return 0
        maps = math.prod(lead)
        per_map = 2 * cut_h * height * width + 2 * cut_h * width * cut_w
        return maps * per_map
