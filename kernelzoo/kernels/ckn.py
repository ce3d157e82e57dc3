"""The exact multilayer CKN kernel (Mairal 2014, 2016; Bietti & Mairal 2019).

For layer k on a map of shape (C, H, W): patches of size ``f`` at every
position (zero padding ``f // 2``), the homogeneous dot-product kernel
``K(z, z') = |z||z'| kappa(<z, z'> / (|z||z'|))`` (0 when a patch is zero), then
Gaussian pooling with stride ``s`` (a filter of size ``2s + 1`` and standard
deviation ``s / sqrt(2)``, normalised to sum 1, zero padding ``s``; ``s = 1`` is
the identity). The kernel is the sum over the final positions u of
``<x_n(u), x'_n(u)>``.

Computation (as albietz/ckn_kernel): for each pair of images the Gram over
all position pairs is carried through the layers, with patch extraction and
pooling as separable operations along the position axes
(:mod:`kernelzoo.kernels._ckn_ops`) and the patch norms of every image computed
once, by a first pass over the pairs (x, x) that also yields the diagonal.
Pairs are evaluated in blocks (a batched GEMM for the first layer, kappa in
place, banded products for pooling, one contraction for the final trace); on
the CPU a block holds as many pairs as stay in cache, on a GPU as many as the
memory budget allows.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import as_images
from kernelzoo.kernels._ckn_ops import (
    KAPPAS,
    LOG_ZERO,
    kappa_fn,
    patch_matrix,
    patch_norms_from_diag,
    patch_sum_pairs,
    pool_pairs,
    pooled_size,
    pooling_matrix,
    trace_pooled,
)
from kernelzoo.kernels._dot import safe_div, safe_sqrt
from kernelzoo.kernels.base import Kernel, Param

__all__ = ["CKN", "layer_sizes"]

#: on the CPU, a block of pairs whose first-layer Gram exceeds this many bytes
#: falls out of cache; probes: 1-2 pairs of 28x28 per block ran 2x faster than 8
_CPU_BLOCK_BYTES = 4 << 20
#: on a GPU, more pairs per block than this gains nothing
_MAX_PAIRS_PER_BLOCK = 4096


def layer_sizes(
    height: int, width: int, subsampling: Sequence[int]
) -> list[tuple[int, int]]:
    """Map sizes ``(H_k, W_k)`` at the input of every layer, then after the last pooling."""
    sizes = [(height, width)]
    for s in subsampling:
        h, w = sizes[-1]
        sizes.append((pooled_size(h, s), pooled_size(w, s)))
    return sizes


def _unit_diagonal(cos: torch.Tensor) -> None:
    """Set cos(u, u) = 1 in place on a self pair's cosines ``(B, P, P)`` or ``(B, H, W, H, W)``."""
    b = cos.shape[0]
    p = math.isqrt(cos[0].numel())
    cos.view(b, p, p).diagonal(dim1=1, dim2=2).fill_(1.0)


def _identical_pairs(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` with ``x[i]`` equal to ``y[j]``, entry for entry.

    Candidates come from two cheap fingerprints (compared with a tolerance, so
    that rounding differences between rows cannot hide a match), then are
    checked exactly; O(n m) numbers in chunks of rows, next to O(n m) image pairs.
    """
    fx, fy = x.flatten(1), y.flatten(1)
    weights = torch.linspace(1.0, 2.0, fx.shape[1], dtype=x.dtype, device=x.device)
    prints_x = torch.stack([fx.sum(1), (fx * weights).sum(1)], 1)
    prints_y = torch.stack([fy.sum(1), (fy * weights).sum(1)], 1)
    abs_x, abs_y = fx.abs().sum(1), fy.abs().sum(1)
    eps, tiny = torch.finfo(x.dtype).eps, torch.finfo(x.dtype).tiny
    rows, cols = [], []
    chunk = max(1, (1 << 22) // max(1, fy.shape[0]))
    for r0 in range(0, fx.shape[0], chunk):
        diff = (prints_x[r0:r0 + chunk, None] - prints_y[None, :]).abs()
        tol = 128 * eps * (abs_x[r0:r0 + chunk, None] + abs_y[None, :]) + tiny
        ci, cj = (diff <= tol[:, :, None]).all(2).nonzero(as_tuple=True)
        rows.append(ci + r0)
        cols.append(cj)
    ci, cj = torch.cat(rows), torch.cat(cols)
    keep = []
    step = max(1, (1 << 24) // max(1, fx.shape[1]))
    for s in range(0, ci.numel(), step):
        keep.append((fx[ci[s:s + step]] == fy[cj[s:s + step]]).all(1))
    if not keep:
        return ci, cj
    mask = torch.cat(keep)
    return ci[mask], cj[mask]


def _per_layer(value: Any, name: str) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{name} must be a scalar or a non-empty list, got {value!r}")
        return list(value)
    return [value]


def _as_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError(f"{name} must be an integer, got {value!r}")
    return int(value)


@dataclasses.dataclass
class _Plan:
    """Per-layer sizes and pooling matrices, on the device and in the dtype of a computation."""

    sizes: list[tuple[int, int]]
    g_rows: list[torch.Tensor]
    g_cols: list[torch.Tensor]
    a_rows: torch.Tensor  # G^T G of the last pooling (rows axis)
    a_cols: torch.Tensor


@dataclasses.dataclass
class _Stats:
    """Per-image quantities computed once: patch norms of every layer and the diagonal."""

    norms: list[torch.Tensor]  # layer k: (n, H_k, W_k)
    diag: torch.Tensor  # (n,)


class CKN(Kernel):
    """Exact multilayer convolutional kernel network kernel.

    Parameters
    ----------
    filter_size : odd int or list of odd ints, default 3
        Patch size of every layer (zero padding ``f // 2``).
    subsampling : int >= 1 or list, default 2
        Pooling stride (Gaussian pooling of size ``2s + 1``; 1 = no pooling).
    sigma : float or list, default 0.6
        Bandwidth of ``kappa='exp'`` (``exp((u - 1) / sigma^2)``); ignored by other kappas.
    kappa : {'exp', 'arccos0', 'arccos1', 'poly2'} or list, default 'exp'
    n_layers : int, optional
        Number of layers; the length of the lists, 2 when every value is a scalar.
    image_shape : (C, H, W), optional
        Needed to take ``(n, C*H*W)`` input.

    A scalar means the same value at every layer; the canonical :attr:`spec`
    lists every per-layer value.

    Shape: ``(n, C, H, W)``, ``(n, H, W)`` (one channel) or ``(n, C*H*W)`` with
    ``image_shape``; ``gram`` -> ``(n, m)``.
    """

    family = "ckn"
    params = (
        Param("filter_size", 3, None, "patch size per layer (odd), scalar or list"),
        Param("subsampling", 2, None, "Gaussian pooling stride per layer (>= 1; 1 = none)"),
        Param("sigma", 0.6, None, "bandwidth of kappa='exp' per layer (> 0)"),
        Param("kappa", "exp", None, "dot-product function per layer: " + ", ".join(KAPPAS)),
        Param("n_layers", None, None, "number of layers (default: list length, or 2)"),
        Param("image_shape", None, None, "(C, H, W) for (n, C*H*W) input"),
    )
    approximations = ("layerwise", "supervised", "nystrom")
    is_conv = True

    # ------------------------------------------------------------------ params
    def _check_params(self) -> None:
        per_layer_names = ("filter_size", "subsampling", "sigma", "kappa")
        values = {name: _per_layer(self._params[name], name) for name in per_layer_names}
        n_layers = self._params["n_layers"]
        if n_layers is not None:
            n_layers = _as_int(n_layers, "n_layers")
            if n_layers < 1:
                raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        lengths = {
            name: len(v) for name, v in values.items()
            if isinstance(self._params[name], (list, tuple))
        }
        if n_layers is None:
            n_layers = next(iter(lengths.values()), 2)
            source = next(iter(lengths), None)
        else:
            source = "n_layers"
        for name, length in lengths.items():
            if length != n_layers:
                raise ValueError(
                    f"{name} has {length} values but {source}={n_layers}"
                    if source == "n_layers"
                    else f"{name} has {length} values but {source} has {n_layers}; "
                    f"per-layer lists must have the same length"
                )
        full = {name: v * n_layers if len(v) == 1 and name not in lengths else v
                for name, v in values.items()}
        filters = [_as_int(f, "filter_size") for f in full["filter_size"]]
        for f in filters:
            if f < 1 or f % 2 == 0:
                raise ValueError(f"filter_size must be odd and >= 1, got {f} (in {filters})")
        subs = [_as_int(s, "subsampling") for s in full["subsampling"]]
        for s in subs:
            if s < 1:
                raise ValueError(f"subsampling must be >= 1, got {s} (in {subs})")
        kappas = list(full["kappa"])
        for kappa in kappas:
            if kappa not in KAPPAS:
                raise ValueError(
                    f"kappa={kappa!r} is not allowed; expected one of "
                    f"{', '.join(map(repr, KAPPAS))}"
                )
        sigmas = []
        for sigma, kappa in zip(full["sigma"], kappas):
            if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.integer,
                                                                 np.floating)):
                raise TypeError(f"sigma must be a number, got {sigma!r}")
            sigma = float(sigma)
            if kappa == "exp" and not (math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be finite and > 0 with kappa='exp', got {sigma!r}")
            sigmas.append(sigma)
        shape = self._params["image_shape"]
        if shape is not None:
            if not isinstance(shape, (list, tuple)) or len(shape) != 3:
                raise ValueError(f"image_shape must be (C, H, W), got {shape!r}")
            shape = tuple(_as_int(v, "image_shape") for v in shape)
            if min(shape) < 1:
                raise ValueError(f"image_shape must be positive, got {shape!r}")
        self._params.update(
            filter_size=filters, subsampling=subs, sigma=sigmas, kappa=kappas,
            n_layers=n_layers, image_shape=shape,
        )

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        images = as_images(x, self.image_shape, name)
        h, w = images.shape[2:]
        sizes = layer_sizes(h, w, self.subsampling)
        for k, ((hk, wk), f) in enumerate(zip(sizes, self.filter_size)):
            if hk < f or wk < f:
                raise ValueError(
                    f"{name}: images of size {h}x{w} are smaller than the filter at layer {k + 1} "
                    f"(map {hk}x{wk}, filter_size={f}); use smaller filter_size or subsampling"
                )
        return images

    def _check_compatible(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[1] != y.shape[1]:
            raise ValueError(
                f"ckn: X has {x.shape[1]} channels but Y has {y.shape[1]} (channel mismatch)"
            )
        super()._check_compatible(x, y)

    # ------------------------------------------------------------------ plan
    def _plan(self, x: torch.Tensor) -> _Plan:
        sizes = layer_sizes(x.shape[2], x.shape[3], self.subsampling)
        opts = {"dtype": x.dtype, "device": x.device}
        g_rows = [pooling_matrix(h, s, **opts) for (h, _), s in zip(sizes, self.subsampling)]
        g_cols = [pooling_matrix(w, s, **opts) for (_, w), s in zip(sizes, self.subsampling)]
        return _Plan(sizes, g_rows, g_cols, g_rows[-1].T @ g_rows[-1], g_cols[-1].T @ g_cols[-1])

    def _fused_exp(self, grad: bool) -> bool:
        return self.kappa[0] == "exp" and not grad

    def _first_layer_data(self, x: torch.Tensor, norms: torch.Tensor, grad: bool, side: str):
        """Per-image first-layer data: normalised patch matrices (and norms or their logs).

        For ``kappa='exp'`` without gradients the left and right matrices carry two
        extra columns so that one GEMM gives ``(c - 1)/sigma^2 + log|z| + log|z'|``,
        and one ``exp_`` the mapped Gram with the norms multiplied back.
        """
        patches = patch_matrix(x, self.filter_size[0])  # (n, P, D)
        flat_norms = norms.reshape(norms.shape[0], -1)
        normalised = safe_div(patches, flat_norms[:, :, None])
        if not self._fused_exp(grad):
            return normalised, flat_norms
        inv_s2 = 1.0 / self.sigma[0] ** 2
        logs = torch.where(flat_norms > 0, flat_norms.clamp_min(torch.finfo(x.dtype).tiny).log(),
                           torch.full_like(flat_norms, LOG_ZERO))
        ones = torch.ones_like(logs)
        if side == "left":
            columns = [normalised * inv_s2, (logs - inv_s2)[..., None], ones[..., None]]
            return (torch.cat(columns, 2),)
        return (torch.cat([normalised, ones[..., None], logs[..., None]], 2),)

    # ------------------------------------------------------------------ pair blocks
    def _map(self, k: int, kp: torch.Tensor, nx: torch.Tensor, ny: torch.Tensor, grad: bool,
             self_pairs: bool):
        """kappa on a patch Gram of layer k >= 2 with norms multiplied back. ``kp`` may be reused.

        For self pairs the cosine of a position with itself is set to exactly 1:
        arccos of a rounded 1 - eps is sqrt(2 eps), which ``arccos0`` passes on.
        """
        nxe, nye = nx[:, :, :, None, None], ny[:, None, None, :, :]
        kappa, sigma = self.kappa[k], self.sigma[k]
        if grad:
            den = nxe * nye
            cos = safe_div(kp, den).clamp(-1.0, 1.0)
            if self_pairs:
                _unit_diagonal(cos)
            return kappa_fn(cos, kappa, sigma) * den
        inv_x = torch.where(nx > 0, 1.0 / nx.clamp_min(torch.finfo(nx.dtype).tiny), 0.0)
        inv_y = torch.where(ny > 0, 1.0 / ny.clamp_min(torch.finfo(ny.dtype).tiny), 0.0)
        if kappa == "exp":
            inv_s2 = 1.0 / sigma**2
            log_x = torch.where(nx > 0, nx.clamp_min(torch.finfo(nx.dtype).tiny).log(), LOG_ZERO)
            log_y = torch.where(ny > 0, ny.clamp_min(torch.finfo(ny.dtype).tiny).log(), LOG_ZERO)
            kp = kp.mul_((inv_x * inv_s2)[:, :, :, None, None]).mul_(inv_y[:, None, None])
            kp = kp.clamp_max_(inv_s2).add_((log_x - inv_s2)[:, :, :, None, None])
            return kp.add_(log_y[:, None, None]).exp_()
        c = kp.mul_(inv_x[:, :, :, None, None]).mul_(inv_y[:, None, None]).clamp_(-1.0, 1.0)
        if self_pairs:
            _unit_diagonal(c)
        out = c.square_() if kappa == "poly2" else kappa_fn(c, kappa, sigma)
        return out.mul_(nxe).mul_(nye)

    def _first_map(self, left: tuple, right: tuple, grad: bool, self_pairs: bool) -> torch.Tensor:
        if self._fused_exp(grad):
            return torch.bmm(left[0], right[0].transpose(1, 2)).exp_()
        zx, nx = left
        zy, ny = right
        cos = torch.bmm(zx, zy.transpose(1, 2))
        if self_pairs:
            _unit_diagonal(cos)
        kappa, sigma = self.kappa[0], self.sigma[0]
        if grad:
            return kappa_fn(cos.clamp(-1.0, 1.0), kappa, sigma) * (nx[:, :, None] * ny[:, None, :])
        cos.clamp_(-1.0, 1.0)
        out = cos.square_() if kappa == "poly2" else kappa_fn(cos, kappa, sigma)
        return out.mul_(nx[:, :, None]).mul_(ny[:, None, :])

    def _pair_values(self, plan: _Plan, left: tuple, right: tuple, norms_x, norms_y, grad: bool):
        """Kernel values of a block of B pairs; ``norms_x=None``: self pairs, norms collected.

        Returns ``(values (B,), norms of layers >= 2 (list of (B, H_k, W_k)))``.
        """
        (h, w) = plan.sizes[0]
        self_pairs = norms_x is None
        m = self._first_map(left, right, grad, self_pairs)
        b = m.shape[0]
        m = m.reshape(b, h, w, h, w)
        collected = []
        for k in range(1, self.n_layers):
            if self.subsampling[k - 1] > 1:
                m = pool_pairs(m, plan.g_rows[k - 1], plan.g_cols[k - 1])
            kp = patch_sum_pairs(m, self.filter_size[k])
            if norms_x is None:
                hk, wk = plan.sizes[k]
                sq = kp.reshape(b, hk * wk, hk * wk).diagonal(dim1=1, dim2=2).reshape(b, hk, wk)
                nx = ny = safe_sqrt(sq.clamp_min(0.0) if grad else sq.clamp_min(0.0).clone())
                collected.append(nx)
            else:
                nx, ny = norms_x[k], norms_y[k]
            if not grad and kp is m:
                kp = kp.clone()
            m = self._map(k, kp, nx, ny, grad, self_pairs)
        return trace_pooled(m, plan.a_rows, plan.a_cols), collected

    # ------------------------------------------------------------------ sizing
    def _pair_bytes(self, plan: _Plan, item: int) -> int:
        """Working memory of one pair: the largest position-pair Gram, about three copies."""
        biggest = max((h * w) ** 2 for h, w in plan.sizes[: self.n_layers])
        return 3 * item * biggest

    def _pairs_per_block(self, plan: _Plan, x: torch.Tensor, budget: int) -> int:
        per_pair = self._pair_bytes(plan, x.element_size())
        if per_pair > budget:
            warnings.warn(
                f"ckn: one indivisible image pair needs {per_pair / 2**20:.1f} MiB, more than "
                f"the memory budget of {budget / 2**20:.1f} MiB; running it anyway",
                RuntimeWarning, stacklevel=4,
            )
        block = max(1, budget // (2 * per_pair))
        if x.device.type == "cpu":
            h, w = plan.sizes[0]
            block = min(block, max(1, _CPU_BLOCK_BYTES // (x.element_size() * (h * w) ** 2)))
        return int(min(block, _MAX_PAIRS_PER_BLOCK))

    def _images_per_tile(self, x: torch.Tensor, budget: int) -> int:
        h, w = x.shape[2:]
        dim = x.shape[1] * self.filter_size[0] ** 2 + 2
        per_image = 2 * h * w * dim * x.element_size()
        return max(1, min(x.shape[0], budget // (4 * per_image)))

    # ------------------------------------------------------------------ evaluation
    def _stats(self, x: torch.Tensor, plan: _Plan, block: int, tile: int, grad: bool) -> _Stats:
        """Patch norms of every layer and ``k(x, x)``, by one pass over the pairs (x_i, x_i)."""
        f = self.filter_size[0]
        first_norms = safe_sqrt(patch_norms_from_diag(x.square().sum(1), f))
        layer_norms: list[list[torch.Tensor]] = [[] for _ in range(self.n_layers - 1)]
        diags = []
        for t0 in range(0, x.shape[0], tile):
            t1 = min(t0 + tile, x.shape[0])
            left = self._first_layer_data(x[t0:t1], first_norms[t0:t1], grad, "left")
            right = self._first_layer_data(x[t0:t1], first_norms[t0:t1], grad, "right")
            for b0 in range(0, t1 - t0, block):
                sl = slice(b0, min(b0 + block, t1 - t0))
                value, norms = self._pair_values(
                    plan, tuple(a[sl] for a in left), tuple(a[sl] for a in right), None, None, grad
                )
                diags.append(value)
                for k, nk in enumerate(norms):
                    layer_norms[k].append(nk)
        norms = [first_norms] + [torch.cat(nk) for nk in layer_norms]
        return _Stats(norms=norms, diag=torch.cat(diags))

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (y is not None and y.requires_grad)
        )
        plan = self._plan(x)
        block = self._pairs_per_block(plan, x, budget)
        tile = self._images_per_tile(x, budget)
        symmetric = y is None
        stats_x = self._stats(x, plan, block, tile, grad)
        stats_y = stats_x if symmetric else self._stats(y, plan, block, tile, grad)
        y_imgs = x if symmetric else y
        n, m = x.shape[0], y_imgs.shape[0]
        out = torch.zeros(n, m, dtype=x.dtype, device=x.device)
        if symmetric:
            idx = torch.arange(n, device=x.device)
            out = out.index_put((idx, idx), stats_x.diag) if grad else out.index_put_(
                (idx, idx), stats_x.diag)
        for r0 in range(0, n, tile):
            r1 = min(r0 + tile, n)
            left = self._first_layer_data(x[r0:r1], stats_x.norms[0][r0:r1], grad, "left")
            for c0 in range(r0 if symmetric else 0, m, tile):
                c1 = min(c0 + tile, m)
                right = self._first_layer_data(
                    y_imgs[c0:c1], stats_y.norms[0][c0:c1], grad, "right"
                )
                if symmetric and c0 == r0:
                    ix, iy = torch.triu_indices(r1 - r0, c1 - c0, offset=1, device=x.device)
                else:
                    ix, iy = torch.cartesian_prod(
                        torch.arange(r1 - r0, device=x.device),
                        torch.arange(c1 - c0, device=x.device),
                    ).unbind(1)
                out = self._fill(out, plan, left, right, ix, iy, r0, c0, stats_x, stats_y,
                                 block, grad, symmetric)
        if not grad:
            # identical images get exactly k(x, x), as on a Gram's diagonal (arccos0 passes
            # on the sqrt(eps) error of arccos at a rounded cosine of 1)
            ix, iy = _identical_pairs(x, y_imgs)
            out[ix, iy] = stats_x.diag[ix]
        return out

    def _fill(self, out, plan, left, right, ix, iy, r0, c0, stats_x, stats_y, block, grad,
              symmetric):
        """Evaluate the pairs ``(ix, iy)`` of one tile in blocks and write them into ``out``."""
        for b0 in range(0, ix.numel(), block):
            bx, by = ix[b0:b0 + block], iy[b0:b0 + block]
            gx, gy = bx + r0, by + c0
            values, _ = self._pair_values(
                plan,
                tuple(a[bx] for a in left),
                tuple(a[by] for a in right),
                [nk[gx] for nk in stats_x.norms],
                [nk[gy] for nk in stats_y.norms],
                grad,
            )
            if grad:
                out = out.index_put((gx, gy), values)
                if symmetric:
                    out = out.index_put((gy, gx), values)
            else:
                out.index_put_((gx, gy), values)
                if symmetric:
                    out.index_put_((gy, gx), values)
        return out

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        from kernelzoo._validation import get_memory_budget

        grad = torch.is_grad_enabled() and x.requires_grad
        plan = self._plan(x)
        budget = get_memory_budget()
        return self._stats(
            x, plan, self._pairs_per_block(plan, x, budget), self._images_per_tile(x, budget),
            grad,
        ).diag
