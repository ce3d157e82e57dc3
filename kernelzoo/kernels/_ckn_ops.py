"""Building blocks of convolutional kernel networks, shared by the exact kernel and its networks.

The exact CKN kernel of a pair of images is carried as the Gram over all
position pairs, a tensor ``K[b, a1, a2, c1, c2]`` (pair ``b``, position ``(a1, a2)``
of the first image, ``(c1, c2)`` of the second), as albietz/ckn_kernel does:

- patch extraction sums shifted copies along the diagonal of each
  ``(a_i, c_i)`` axis pair (separable: one axis pair at a time);
- pooling multiplies by a small banded matrix along each position axis
  (separable: four matrix products);
- the kernel is ``sum_u K_n[u, u]``, which folds the last pooling into one
  contraction with ``G^T G`` per axis.

The same pooling matrices pool the feature maps of the Nyström network
(:mod:`kernelzoo.approx.ckn`), so both use one discretisation.

Kappa functions (all with ``kappa(1) = 1``): ``exp`` = ``exp((u - 1) / sigma^2)``,
``arccos0`` = ``1 - arccos(u) / pi``, ``arccos1`` = ``(sqrt(1 - u^2) + u (pi - arccos u)) / pi``
(the arc-cosine functions f_0, f_1 of :mod:`kernelzoo.kernels._dot`), ``poly2`` = ``u^2``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernelzoo.kernels._dot import arccos_fn

__all__ = [
    "KAPPAS",
    "kappa_fn",
    "patch_matrix",
    "patch_norms_from_diag",
    "patch_sum_pairs",
    "pool_maps",
    "pool_pairs",
    "pooled_size",
    "pooling_matrix",
    "trace_pooled",
]

KAPPAS = ("exp", "arccos0", "arccos1", "poly2")

# log of a zero norm in the fused exp path: exp(-1e4 + anything finite) is 0 in
# float32 and float64, and it keeps the GEMM free of inf * 0
LOG_ZERO = -1.0e4


def kappa_fn(u: torch.Tensor, kappa: str, sigma: float) -> torch.Tensor:
    """The dot-product function on cosines ``u`` in [-1, 1], elementwise (not in place).

    Shape: any; same shape out. Differentiable (gradient-safe at ``u = +-1``).
    """
    if kappa == "exp":
        return torch.exp((u - 1.0) / (sigma * sigma))
    if kappa == "arccos0":
        return arccos_fn(u, 0)
    if kappa == "arccos1":
        return arccos_fn(u, 1)
    if kappa == "poly2":
        return u * u
    raise ValueError(f"kappa={kappa!r} is not allowed; expected one of {', '.join(KAPPAS)}")


def pooled_size(size: int, subsampling: int) -> int:
    """Output length of Gaussian pooling with stride ``subsampling``: ``floor((size-1)/s) + 1``."""
    return (size - 1) // subsampling + 1


def pooling_matrix(
    size: int, subsampling: int, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """The banded matrix ``G`` of Gaussian pooling along one axis.

    Row ``i`` holds the filter of size ``2s + 1``, standard deviation
    ``s / sqrt(2)``, normalised to sum 1, centred on input position ``s * i``
    (zero padding ``s``: taps outside the axis are dropped, not renormalised).
    ``s = 1`` gives the identity.

    Shape: ``(pooled_size(size, s), size)``.
    """
    s = int(subsampling)
    if s == 1:
        return torch.eye(size, dtype=dtype, device=device)
    taps = torch.arange(-s, s + 1, dtype=torch.float64)
    filt = torch.exp(-(taps**2) / (s * s))  # exp(-t^2 / (2 std^2)), std = s / sqrt(2)
    filt = filt / filt.sum()
    out = pooled_size(size, s)
    g = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):  # a few dozen rows, built once per plan
        for t in range(-s, s + 1):
            a = s * i + t
            if 0 <= a < size:
                g[i, a] = filt[t + s]
    return g.to(dtype=dtype, device=device)


def patch_matrix(x: torch.Tensor, filter_size: int) -> torch.Tensor:
    """All ``f x f`` patches (zero padding ``f // 2``), one row per position.

    Shape: ``(n, C, H, W)`` -> ``(n, H * W, C * f * f)``.
    """
    patches = F.unfold(x, kernel_size=filter_size, padding=filter_size // 2)
    return patches.transpose(1, 2)


def patch_norms_from_diag(diag: torch.Tensor, filter_size: int) -> torch.Tensor:
    """Squared patch norms from the per-position squared norms of a map.

    Shape: ``(n, H, W)`` -> ``(n, H, W)`` (a box sum of size ``f``, zero padding ``f // 2``).
    """
    ones = torch.ones(1, 1, filter_size, filter_size, dtype=diag.dtype, device=diag.device)
    return F.conv2d(diag[:, None], ones, padding=filter_size // 2)[:, 0]


def _patch_sum_axis(k: torch.Tensor, ax_a: int, ax_c: int, filter_size: int) -> torch.Tensor:
    """``sum_o K[.., a + o, .., c + o, ..]`` for ``o`` in ``-r..r`` (zero outside).

    Each shift adds the overlapping block in place into a fresh clone (no padded
    copy); autograd records the in-place adds on views.
    """
    r = filter_size // 2
    size_a, size_c = k.shape[ax_a], k.shape[ax_c]
    out = k.clone()
    for o in range(-r, r + 1):
        if o == 0:
            continue
        # target positions a with 0 <= a + o < size (and the same for c)
        ta0, ta1 = max(0, -o), min(size_a, size_a - o)
        tc0, tc1 = max(0, -o), min(size_c, size_c - o)
        if ta1 <= ta0 or tc1 <= tc0:
            continue
        target = out.narrow(ax_a, ta0, ta1 - ta0).narrow(ax_c, tc0, tc1 - tc0)
        source = k.narrow(ax_a, ta0 + o, ta1 - ta0).narrow(ax_c, tc0 + o, tc1 - tc0)
        target.add_(source)
    return out


def patch_sum_pairs(k: torch.Tensor, filter_size: int) -> torch.Tensor:
    """Patch extraction on a position-pair Gram: sums along both diagonal directions.

    Shape: ``(B, H, W, H, W)`` -> ``(B, H, W, H, W)``.
    """
    if filter_size == 1:
        return k
    k = _patch_sum_axis(k, 1, 3, filter_size)
    return _patch_sum_axis(k, 2, 4, filter_size)


def pool_pairs(m: torch.Tensor, g_rows: torch.Tensor, g_cols: torch.Tensor) -> torch.Tensor:
    """Pooling on both images of a position-pair Gram: four banded products.

    Each product pools the leading position axis of a contiguous view, so no
    copy is made between them.

    Shape: ``(B, H, W, H, W)`` with ``g_rows (h, H)``, ``g_cols (w, W)`` -> ``(B, h, w, h, w)``.
    """
    b, h_in, w_in, h_in2, w_in2 = m.shape
    h, w = g_rows.shape[0], g_cols.shape[0]
    t = g_rows @ m.reshape(b, h_in, w_in * h_in2 * w_in2)
    t = g_cols @ t.reshape(b * h, w_in, h_in2 * w_in2)
    t = g_rows @ t.reshape(b * h * w, h_in2, w_in2)
    t = t @ g_cols.T
    return t.reshape(b, h, w, h, w)


def pool_maps(x: torch.Tensor, g_rows: torch.Tensor, g_cols: torch.Tensor) -> torch.Tensor:
    """Pooling of feature maps with the same matrices.

    Shape: ``(n, C, H, W)`` -> ``(n, C, h, w)``.
    """
    return g_rows @ x @ g_cols.T


def trace_pooled(m: torch.Tensor, a_rows: torch.Tensor, a_cols: torch.Tensor) -> torch.Tensor:
    """``sum_u (pool(M))[u, u]`` = ``sum M[a1, a2, c1, c2] A_r[a1, c1] A_c[a2, c2]``, ``A = G^T G``.

    Shape: ``(B, H, W, H, W)`` -> ``(B,)``.
    """
    return torch.einsum("bijkl,ik,jl->b", m, a_rows, a_cols)


def gaussian_std(subsampling: int) -> float:
    """Standard deviation of the pooling filter (``s / sqrt(2)``)."""
    return subsampling / math.sqrt(2.0)
