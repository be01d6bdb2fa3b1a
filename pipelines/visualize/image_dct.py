"""The orthonormal 2-D DCT high-pass of images and patches, in numpy (no torch).

Zeroing the top-left ``k_h x k_w`` corner of the orthonormal 2-D DCT-II of ``X`` and transforming back gives
``X - B_h^T (B_h X B_w^T) B_w``, where ``B_h`` holds the first ``k_h`` rows of the H-point DCT-II matrix (the
DCT is an orthogonal change of basis), so only the removed corner is ever computed. This is the filter ``z``
of the paper's equation 2 (HS-FPN's ``DCTHighPass``) applied to gray values instead of feature maps, and the
filtering behind Figure 1's ``Filter DCT[:k, :k]``.
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.lru_cache(maxsize=64)
def dct_matrix(size: int, rows: int) -> np.ndarray:
    """The first ``rows`` rows of the orthonormal ``size``-point DCT-II matrix.

    ``B[k, n] = s_k cos(pi (2n + 1) k / (2 size))`` with ``s_0 = sqrt(1 / size)``, ``s_k = sqrt(2 / size)``, so
    ``B @ x`` is ``scipy.fft.dct(x, norm="ortho")[:rows]``.

    Args:
        size: Transform length, at least 1.
        rows: Leading rows kept, ``0 <= rows <= size``.

    Returns:
        (rows, size) float64, read-only (shared by the cache).
    """
    if size < 1 or not 0 <= rows <= size:
        raise ValueError(f"dct_matrix needs size >= 1 and 0 <= rows <= size, got size={size}, rows={rows}")
    k = np.arange(rows, dtype=np.float64)[:, None]
    n = np.arange(size, dtype=np.float64)[None, :]
    basis = np.cos(math.pi * (2.0 * n + 1.0) * k / (2.0 * size)) * math.sqrt(2.0 / size)
    if rows:
        basis[0] /= math.sqrt(2.0)
    basis.setflags(write=False)
    return basis


def low_corner(x: np.ndarray, k_h: int, k_w: int) -> np.ndarray:
    """The part of ``x`` made of its ``k_h x k_w`` lowest DCT frequencies (what the high-pass removes).

    Args:
        x: (..., H, W) values.
        k_h: DCT rows removed, ``0 <= k_h <= H``.
        k_w: DCT columns removed, ``0 <= k_w <= W``.

    Returns:
        (..., H, W) float64.
    """
    height, width = x.shape[-2:]
    x = np.asarray(x, dtype=np.float64)
    if k_h == 0 or k_w == 0:
        return np.zeros_like(x)
    b_h, b_w = dct_matrix(height, k_h), dct_matrix(width, k_w)
    corner = b_h @ x @ b_w.T  # (..., k_h, k_w) DCT coefficients
    return b_h.T @ corner @ b_w


def zero_low_corner(x: np.ndarray, k: int) -> np.ndarray:
    """``x`` with ``DCT[:k, :k]`` zeroed (Figure 1's "Filter DCT[:k, :k]"; ``k = 0`` leaves it unchanged).

    Args:
        x: (..., H, W) values.
        k: Corner side, ``0 <= k <= min(H, W)``.

    Returns:
        (..., H, W) float64.
    """
    x = np.asarray(x, dtype=np.float64)
    if not 0 <= k <= min(x.shape[-2:]):
        raise ValueError(f"k must be in [0, {min(x.shape[-2:])}] for a {x.shape[-2]} x {x.shape[-1]} region, got {k}")
    return x - low_corner(x, k, k)


def cutoffs(height: int, width: int, alpha: float) -> tuple[int, int]:
    """Rows and columns HS-FPN's filter removes at ``alpha``: ``int(alpha * side)``, as ``hsfpn.nn.dct.dct_cutoffs``."""
    return int(height * alpha), int(width * alpha)


def high_pass(x: np.ndarray, alpha: float) -> np.ndarray:
    """HS-FPN's high-pass at cutoff ``alpha`` on both axes (``alpha = 0``: ``x``; ``alpha = 1``: zeros).

    Args:
        x: (..., H, W) values.
        alpha: In [0, 1].

    Returns:
        (..., H, W) float64 high-frequency response.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    x = np.asarray(x, dtype=np.float64)
    k_h, k_w = cutoffs(*x.shape[-2:], alpha)
    if (k_h, k_w) == x.shape[-2:]:
        return np.zeros_like(x)  # exactly, as DCTHighPass: the whole spectrum is removed
    return x - low_corner(x, k_h, k_w)
