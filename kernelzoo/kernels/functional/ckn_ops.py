"""Building blocks of convolutional kernel networks, shared by the exact kernel and its networks.

The exact CKN kernel of a pair of images is carried as the Gram over all
position pairs, a tensor ``K[b, a1, a2, c1, c2]`` (pair ``b``, position ``(a1, a2)``
of the first image, ``(c1, c2)`` of the second), as albietz/ckn_kernel does:

- patch extraction sums shifted copies along the diagonal of each
  ``(a_i, c_i)`` axis pair (separable: one axis pair at a time);
- pooling multiplies by a small banded matrix along each position axis; it
  runs as two depthwise strided convolutions (:class:`PairPooling`): one pools
  the first image's two axes with the second image's positions as channels
  (a channels-last view, no copy), the other the second image's axes;
- the kernel is ``sum_u K_n[u, u]``, which folds the last pooling into one
  weighted sum with the fixed weights ``(G^T G)[a1, c1] (G^T G)[a2, c2]``
  (:func:`trace_weights`).

The same pooling matrices pool the feature maps of the Nyström network
(:mod:`kernelzoo.approx.ckn`), so both use one discretisation.

Kappa functions (all with ``kappa(1) = 1``): ``exp`` = ``exp((u - 1) / sigma^2)``,
``arccos0`` = ``1 - arccos(u) / pi``, ``arccos1`` = ``(sqrt(1 - u^2) + u (pi - arccos u)) / pi``
(the arc-cosine functions f_0, f_1 of :mod:`kernelzoo.kernels.functional.dot`), ``poly2`` = ``u^2``.
"""

from __future__ import annotations

import functools

import math

import torch
import torch.nn.functional as F

from kernelzoo.kernels.functional.dot import arccos_fn

__all__ = [
    "KAPPAS",
    "LOG2E",
    "PairPooling",
    "channel_padding",
    "kappa_fn",
    "patch_matrix",
    "patch_norms_from_diag",
    "patch_sum_pairs",
    "pool_pairs",
    "pooled_size",
    "pooling_filter",
    "pooling_matrix",
    "pooling_matrix_on",
    "trace_pooled",
    "trace_weights",
]

KAPPAS = ("exp", "arccos0", "arccos1", "poly2")

# log of a zero norm in the fused exp path: exp(-1e4 + anything finite) is 0 in
# float32 and float64, and it keeps the GEMM free of inf * 0
LOG_ZERO = -1.0e4
#: log2(e): exp(t) = exp2(t * LOG2E); torch's float32 exp2 runs 2x to 3x faster than exp on CPU
LOG2E = 1.0 / math.log(2.0)


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


def pooling_filter(
    subsampling: int, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """The Gaussian pooling filter: size ``2s + 1``, standard deviation ``s / sqrt(2)``, sum 1.

    Built in float64, then cast. Shape: ``(2s + 1,)``.
    """
    s = int(subsampling)
    taps = torch.arange(-s, s + 1, dtype=torch.float64)
    filt = torch.exp(-(taps**2) / (s * s))  # exp(-t^2 / (2 std^2)), std = s / sqrt(2)
    return (filt / filt.sum()).to(dtype=dtype, device=device)


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
    filt = pooling_filter(s)
    out = pooled_size(size, s)
    g = torch.zeros(out, size, dtype=torch.float64)
    for i in range(out):  # a few dozen rows, built once per plan
        for t in range(-s, s + 1):
            a = s * i + t
            if 0 <= a < size:
                g[i, a] = filt[t + s]
    return g.to(dtype=dtype, device=device)


@functools.lru_cache(maxsize=64)
def pooling_matrix_on(
    size: int, subsampling: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """:func:`pooling_matrix` built once per (size, stride, dtype, device) and shared.

    A layer that pools on every call would otherwise copy the matrix from the
    host each time (on a GPU, a blocking copy: one wait per tile). Never write
    into the result.
    """
    return pooling_matrix(size, subsampling, dtype, device)


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


def _patch_sum_axis(k: torch.Tensor, ax_a: int, ax_c: int, filter_size: int,
                    out: torch.Tensor | None = None) -> torch.Tensor:
    """``sum_o K[.., a + o, .., c + o, ..]`` for ``o`` in ``-r..r`` (zero outside).

    Each shift adds the overlapping block in place into a fresh clone of ``k``
    (or into ``out``, a buffer like ``k``: no allocation); autograd records the
    in-place adds on views.
    """
    r = filter_size // 2
    size_a, size_c = k.shape[ax_a], k.shape[ax_c]
    out = k.clone() if out is None else out.copy_(k)
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


def patch_sum_pairs(k: torch.Tensor, filter_size: int,
                    work: torch.Tensor | None = None) -> torch.Tensor:
    """Patch extraction on a position-pair Gram: sums along both diagonal directions.

    With ``work`` (a tensor like ``k``; no gradients): no allocation, the result
    is written over ``k`` (``work`` holds the intermediate) and returned.

    Shape: ``(B, H, W, H, W)`` -> ``(B, H, W, H, W)``.
    """
    if filter_size == 1:
        return k
    if work is None:
        k = _patch_sum_axis(k, 1, 3, filter_size)
        return _patch_sum_axis(k, 2, 4, filter_size)
    _patch_sum_axis(k, 1, 3, filter_size, out=work)
    return _patch_sum_axis(work, 2, 4, filter_size, out=k)


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


def trace_pooled(m: torch.Tensor, a_rows: torch.Tensor, a_cols: torch.Tensor) -> torch.Tensor:
    """``sum_u (pool(M))[u, u]`` = ``sum M[a1, a2, c1, c2] A_r[a1, c1] A_c[a2, c2]``, ``A = G^T G``.

    Shape: ``(B, H, W, H, W)`` -> ``(B,)``.
    """
    return torch.einsum("bijkl,ik,jl->b", m, a_rows, a_cols)


def trace_weights(
    size: tuple[int, int], subsampling: int, dtype: torch.dtype = torch.float64, device=None
) -> torch.Tensor:
    """Weights ``W`` with ``sum_u (pool(M))[u, u] = <W, M>`` for a position-pair Gram ``M``.

    ``W[a1, a2, c1, c2] = A_r[a1, c1] A_c[a2, c2]`` with ``A = G^T G`` per axis;
    built in float64, then cast.

    Shape: ``size = (H, W)`` -> ``(H, W, H, W)``.
    """
    g_rows = pooling_matrix(size[0], subsampling)
    g_cols = pooling_matrix(size[1], subsampling)
    weights = torch.einsum("ik,jl->ijkl", g_rows.T @ g_rows, g_cols.T @ g_cols)
    return weights.to(dtype=dtype, device=device)


#: dtypes with oneDNN (mkldnn) depthwise convolutions on CPU
_MKLDNN_DTYPES = (torch.float32, torch.bfloat16)


class PairPooling:
    """Gaussian pooling (stride ``s >= 2``) of both images of position-pair Grams.

    ``pool(M)[i, j, k, l] = sum G[i, a1] G[j, a2] G[k, c1] G[l, c2] M[a1, a2, c1, c2]``,
    evaluated as two depthwise strided convolutions with the separable filter
    (``2s + 1`` squared taps, zero padding ``s``), which touch only the band of
    ``G`` instead of multiplying by it densely: the first pools ``(a1, a2)`` with
    the ``(c1, c2)`` positions as channels of a channels-last view (no copy), the
    second pools ``(c1, c2)`` with the pooled ``(i, j)`` positions as channels.
    On CPU in float64 (no oneDNN depthwise convolution there) it uses the banded
    matrix products of :func:`pool_pairs` instead. Differentiable; runs on the
    input's device and dtype.

    Shape: ``(B, H, W, H, W)`` -> ``(B, h, w, h, w)``, ``h = pooled_size(H, s)``.
    """

    def __init__(self, subsampling: int, dtype: torch.dtype, device=None) -> None:
        if subsampling < 2:
            raise ValueError(f"subsampling must be >= 2 for PairPooling, got {subsampling}")
        self.subsampling = int(subsampling)
        filt = pooling_filter(self.subsampling)
        self._filter = (filt[:, None] * filt[None, :]).to(dtype=dtype, device=device)
        self._weights: dict[int, torch.Tensor] = {}
        self._matrices: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}

    def _weight(self, channels: int) -> torch.Tensor:
        weight = self._weights.get(channels)
        if weight is None:
            k = self._filter.shape[0]
            weight = self._filter.expand(channels, 1, k, k).contiguous()
            self._weights[channels] = weight
        return weight

    def __call__(self, m: torch.Tensor) -> torch.Tensor:
        """Pool ``m`` of shape ``(B, H, W, H, W)``, or ``(B, H, W, Q)`` with ``Q >= H * W``.

        In the second form the last axis holds the second image's ``H * W``
        positions followed by ``Q - H * W`` ignored columns (padding that keeps
        the channel stride of the first convolution off multiples of 4 KiB).
        """
        s = self.subsampling
        b, h_in, w_in = m.shape[:3]
        h, w = pooled_size(h_in, s), pooled_size(w_in, s)
        p_in, p_out = h_in * w_in, h * w
        if m.device.type == "cpu" and m.dtype not in _MKLDNN_DTYPES:
            # no oneDNN depthwise convolution for float64 on CPU: PyTorch falls back
            # to one slow convolution per channel (30-60x slower than float32); the
            # banded-matrix products run on BLAS instead
            return self._pool_matrices(m.reshape(b, h_in, w_in, -1)[..., :p_in], h_in, w_in)
        x = m.reshape(b, h_in, w_in, -1)
        q = x.shape[3]
        x = x.permute(0, 3, 1, 2)  # (B, C=q, H, W), channels-last: no copy
        t = F.conv2d(x, self._weight(q), stride=s, padding=s, groups=q)  # (B, q, h, w)
        t = t.permute(0, 2, 3, 1)  # (B, h, w, q)
        if q != p_in:
            t = t[..., :p_in]
        t = t.reshape(b, p_out, h_in, w_in)  # (B, C=p_out, H, W)
        t = F.conv2d(t, self._weight(p_out), stride=s, padding=s, groups=p_out)
        return t.reshape(b, h, w, h, w)

    def _pool_matrices(self, m: torch.Tensor, h_in: int, w_in: int) -> torch.Tensor:
        key = (h_in, w_in)
        mats = self._matrices.get(key)
        if mats is None:
            mats = tuple(
                pooling_matrix(size, self.subsampling, self._filter.dtype, self._filter.device)
                for size in key
            )
            self._matrices[key] = mats
        b = m.shape[0]
        return pool_pairs(m.reshape(b, h_in, w_in, h_in, w_in), *mats)


def channel_padding(positions: int, item_size: int) -> int:
    """Columns to append to a Gram with ``positions`` columns so that its row stride in
    bytes is not a multiple of 512 (strides of 4 KiB alias in the L1 cache: a
    depthwise convolution over 1024 float32 channels ran 1.6x slower than over 1040).
    """
    if (positions * item_size) % 512 == 0:
        return 64 // item_size
    return 0
