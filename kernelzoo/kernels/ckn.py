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
(:mod:`kernelzoo.kernels.functional.ckn_ops`) and the patch norms of every image computed
once, by a first pass over the pairs (x, x) that also yields the diagonal.
Pairs are evaluated in blocks:

- first layer, in sub-blocks that stay in cache on the CPU: one batched GEMM of
  normalised patch matrices; for ``exp`` (no gradients) two extra columns put
  ``log2(e) (c - 1)/sigma^2 + log2|z| + log2|z'|`` in the GEMM so that one
  in-place ``exp2_`` gives the mapped Gram with the norms multiplied back;
- pooling by two depthwise strided convolutions (the banded pooling matrix
  applied along both axes of one image at a time, no dense products);
- later layers on the whole block (many pairs per small operation): patch
  sums, kappa in place;
- the last pooling and the trace fold into one weighted sum with fixed weights,
  and at the last layer the norms go into that sum instead of onto the Gram.

On the CPU a first-layer sub-block holds as many pairs as stay in cache, on a
GPU as many as the memory budget allows. With gradients, kappa and the norms
run out of place (autograd).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from kernelzoo._validation import as_images, check_image_shape
from kernelzoo.kernels.functional.ckn_ops import (
    KAPPAS,
    LOG2E,
    LOG_ZERO,
    PairPooling,
    channel_padding,
    kappa_fn,
    patch_matrix,
    patch_sum_pairs,
    trace_weights,
)
from kernelzoo.kernels.base import Kernel, Param, check_choice, check_int
from kernelzoo.kernels.functional.distance import identical_rows as _identical_pairs
from kernelzoo.kernels.functional.extremes import unit_samples, unscale, unscale_diag
from kernelzoo.kernels.functional.dot import safe_div, safe_sqrt
from kernelzoo.kernels.functional.dot import set_unit_self_cosines as _unit_diagonal

from kernelzoo.kernels.ckn_plan import (
    _check_number,
    _optional,
    _per_layer,
    _Plan,
    _Run,
    _Stats,
    _TilePairs,
    _Workspace,
    block_sizes,
    first_patch_norms,
    layer_sizes,
    stability_conditions,
)

__all__ = ["CKN", "layer_sizes"]


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
    centering : bool, default False
        Centre every first-layer patch: ``z - mean(z)`` (the mean over its
        ``C f f`` entries) replaces ``z`` before the dot-product kernel, as in
        CKN-Pytorch's unsupervised networks. The centred patch is a linear map
        of the image, so the kernel stays positive definite and homogeneous;
        ``layerwise`` and ``supervised`` centre the same way (and converge to
        this kernel). Later layers are not centred (their patches live in an
        infinite-dimensional space, where a mean over coordinates is not defined).

    Notes
    -----
    A scalar means the same value at every layer; the canonical :attr:`spec`
    lists every per-layer value.

    Shape
    -----
    ``(n, C, H, W)``, ``(n, H, W)`` (one channel) or ``(n, C*H*W)`` with
    ``image_shape``; ``gram`` -> ``(n, m)``.
    """

    family = "ckn"
    params = (
        Param("filter_size", 3, _per_layer(check_int(minimum=1, odd=True)),
              "patch size per layer (odd), scalar or list"),
        Param("subsampling", 2, _per_layer(check_int(minimum=1)),
              "Gaussian pooling stride per layer (>= 1; 1 = none)"),
        Param("sigma", 0.6, _per_layer(_check_number), "bandwidth of kappa='exp' per layer (> 0)",
              search=(0.4, 0.6, 0.8)),
        Param("kappa", "exp", _per_layer(check_choice(*KAPPAS)),
              "dot-product function per layer: " + ", ".join(KAPPAS)),
        Param("n_layers", None, _optional(check_int(minimum=1)),
              "number of layers (default: list length, or 2)"),
        Param("image_shape", None, check_image_shape, "(C, H, W) for (n, C*H*W) input"),
        Param("centering", False, check_choice(False, True),
              "subtract its mean from every first-layer patch (CKN-Pytorch's patch centring)"),
    )
    approximations = ("layerwise", "supervised", "nystrom")
    is_conv = True
    #: every layer is homogeneous in its patch norms: k(a x, b y) = a b k(x, y)
    homogeneity = 1
    #: non-expansive CKNs (``sigma=1``: kappa'(1) = 1) whose last pooling grows, for the
    #: stability harness: the bound's translation term falls as the last pooling grows
    stability_variants = (
        {"sigma": 1.0, "subsampling": [2, 1]},
        {"sigma": 1.0, "subsampling": [2, 2]},
        {"sigma": 1.0, "subsampling": [2, 4]},
    )

    def stability_assumptions(self) -> dict[str, Any]:
        """Bietti and Mairal's bound assumes kappa(1) = 1 and kappa'(1) <= 1 at every layer.

        Every kappa here has kappa(1) = 1; kappa'(1) is ``1 / sigma^2`` for ``exp``,
        1 for ``arccos1``, 2 for ``poly2`` and infinite for ``arccos0``. (The patch
        size should also be comparable to the previous pooling scale; not checked.)
        """
        return stability_conditions(self.kappa, self.sigma, self.subsampling)

    # ------------------------------------------------------------------ params
    def _check_params(self) -> None:
        """Per-layer lists of one length (``n_layers``), and a positive sigma for ``exp``."""
        per_layer = ("filter_size", "subsampling", "sigma", "kappa")
        lists = {name: len(self._params[name]) for name in per_layer
                 if isinstance(self._params[name], list)}
        n_layers = self._params["n_layers"]
        source = "n_layers" if n_layers is not None else next(iter(lists), None)
        if n_layers is None:
            n_layers = next(iter(lists.values()), 2)
        for name, length in lists.items():
            if length != n_layers:
                raise ValueError(
                    f"{name} has {length} values but n_layers={n_layers}"
                    if source == "n_layers"
                    else f"{name} has {length} values but {source} has {n_layers}; "
                    f"per-layer lists must have the same length"
                )
        full = {name: self._params[name] if name in lists else [self._params[name]] * n_layers
                for name in per_layer}
        for sigma, kappa in zip(full["sigma"], full["kappa"]):
            if kappa == "exp" and not (math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be finite and > 0 with kappa='exp', got {sigma!r}")
        self._params.update(full, n_layers=n_layers)

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
        pools = [PairPooling(s, **opts) if s > 1 else None for s in self.subsampling]
        h, w = sizes[self.n_layers - 1]
        weights = trace_weights((h, w), self.subsampling[-1], **opts).reshape(h * w, h * w)
        return _Plan(sizes, pools, weights)

    def _fused_exp(self, grad: bool) -> bool:
        return self.kappa[0] == "exp" and not grad

    def _first_layer_data(self, x: torch.Tensor, norms: torch.Tensor, grad: bool, side: str):
        """Per-image first-layer data: normalised patch matrices (and norms or their logs).

        For ``kappa='exp'`` without gradients the left and right matrices carry two
        extra columns so that one GEMM gives ``log2(e) (c - 1)/sigma^2 + log2|z| + log2|z'|``,
        and one ``exp2_`` the mapped Gram with the norms multiplied back (float32
        ``exp2`` runs 2x to 3x faster than ``exp`` on the CPU).
        """
        patches = patch_matrix(x, self.filter_size[0])  # (n, P, D)
        if self.centering:
            patches = patches - patches.mean(2, keepdim=True)
        flat_norms = norms.reshape(norms.shape[0], -1)
        normalised = safe_div(patches, flat_norms[:, :, None])
        if not self._fused_exp(grad):
            return normalised, flat_norms
        scale = LOG2E / self.sigma[0] ** 2
        logs = torch.where(flat_norms > 0, flat_norms.clamp_min(torch.finfo(x.dtype).tiny).log2(),
                           torch.full_like(flat_norms, LOG_ZERO))
        ones = torch.ones_like(logs)
        if side == "left":
            columns = [normalised * scale, (logs - scale)[..., None], ones[..., None]]
            return (torch.cat(columns, 2),)
        return (torch.cat([normalised, ones[..., None], logs[..., None]], 2),)

    # ------------------------------------------------------------------ pair blocks
    @staticmethod
    def _inverse(norms: torch.Tensor) -> torch.Tensor:
        """``1 / norms`` where positive, else 0."""
        tiny = torch.finfo(norms.dtype).tiny
        return torch.where(norms > 0, 1.0 / norms.clamp_min(tiny), 0.0)

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
        inv_x, inv_y = self._inverse(nx), self._inverse(ny)
        if kappa == "exp":
            # nx ny exp((c - 1)/sigma^2) = exp2(log2(e) (c - 1)/sigma^2 + log2 nx + log2 ny)
            scale = LOG2E / sigma**2
            tiny = torch.finfo(nx.dtype).tiny
            log_x = torch.where(nx > 0, nx.clamp_min(tiny).log2(), LOG_ZERO)
            log_y = torch.where(ny > 0, ny.clamp_min(tiny).log2(), LOG_ZERO)
            kp = kp.mul_((inv_x * scale)[:, :, :, None, None]).mul_(inv_y[:, None, None])
            kp = kp.clamp_max_(scale).add_((log_x - scale)[:, :, :, None, None])
            return kp.add_(log_y[:, None, None]).exp2_()
        c = self._unit_kappa(k, kp, inv_x, inv_y, self_pairs)
        return c.mul_(nxe).mul_(nye)

    def _unit_kappa(self, k: int, kp: torch.Tensor, inv_x: torch.Tensor, inv_y: torch.Tensor,
                    self_pairs: bool) -> torch.Tensor:
        """In place: kappa of the cosines ``kp / (nx ny)`` (0 where a norm is 0), no norms back."""
        c = kp.mul_(inv_x[:, :, :, None, None]).mul_(inv_y[:, None, None]).clamp_(-1.0, 1.0)
        if self_pairs:
            _unit_diagonal(c)
        kappa = self.kappa[k]
        if kappa == "poly2":
            return c.square_()
        if kappa == "exp":
            return c.sub_(1.0).mul_(LOG2E / self.sigma[k] ** 2).exp2_()
        return kappa_fn(c, kappa, self.sigma[k])

    def _last_layer_values(self, plan: _Plan, k: int, kp: torch.Tensor, nx: torch.Tensor,
                           ny: torch.Tensor, self_pairs: bool) -> torch.Tensor:
        """Kernel values from the patch Gram of the last layer k >= 2, without gradients.

        ``sum_{u,v} W[u, v] nx(u) ny(v) kappa(c(u, v))``: the norms go into the final
        weighted sum (one batched matrix-vector product) instead of onto the Gram.
        For ``exp``, ``kappa(c) = exp(-1/sigma^2) exp2(log2(e) c / sigma^2)`` when that
        cannot overflow. ``kp`` is overwritten.
        """
        b = kp.shape[0]
        p = nx[0].numel()
        inv_x, inv_y = self._inverse(nx), self._inverse(ny)
        factor = 1.0
        if self.kappa[k] == "exp" and not self_pairs and LOG2E / self.sigma[k] ** 2 < 64.0:
            scale = LOG2E / self.sigma[k] ** 2
            kp = kp.mul_((inv_x * scale)[:, :, :, None, None]).mul_(inv_y[:, None, None])
            mapped = kp.clamp_max_(scale).exp2_()
            factor = math.exp(-1.0 / self.sigma[k] ** 2)
        else:
            mapped = self._unit_kappa(k, kp, inv_x, inv_y, self_pairs)
        weighted = mapped.reshape(b, p, p).mul_(plan.trace_weights)
        rows = torch.bmm(weighted, ny.reshape(b, p, 1)).view(b, p)
        values = (rows * nx.reshape(b, p)).sum(1)
        return values * factor if factor != 1.0 else values

    def _first_map(self, left: tuple, right: tuple, grad: bool, self_pairs: bool,
                   out: torch.Tensor | None = None) -> torch.Tensor:
        """The first layer's mapped Gram ``(B, P, Q)``; ``right`` may carry padding rows.

        ``out``: a buffer for the fused ``exp`` path (no gradients), reused across sub-blocks.
        """
        if self._fused_exp(grad):
            return torch.bmm(left[0], right[0].transpose(1, 2), out=out).exp2_()
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

    def _first_stage(self, plan: _Plan, left: tuple, right: tuple, grad: bool,
                     self_pairs: bool, work: _Workspace | None = None) -> torch.Tensor:
        """The first layer's mapped Gram, pooled if a second layer follows, in sub-blocks.

        Sub-blocks of ``plan.first_block`` pairs keep the largest Gram (the first
        layer's, before pooling) in cache on the CPU; later layers then run on the
        whole block, which amortises the many small operations over more pairs.
        Before pooling, the second image's positions may be padded with ignored
        columns (:func:`channel_padding`). With ``work`` (no gradients) the Gram
        buffer and the pooled block come from the workspace.

        Shape: ``(B, H_1, W_1, H_1, W_1)`` (pooled: ``(B, H_2, W_2, H_2, W_2)``).
        """
        h, w = plan.sizes[0]
        pool = plan.pools[0] if self.n_layers > 1 else None
        b = left[0].shape[0]
        pad = channel_padding(h * w, left[0].element_size()) if pool is not None else 0
        if pad:
            right = tuple(F.pad(a, (0, 0, 0, pad)) if a.dim() == 3 else F.pad(a, (0, pad))
                          for a in right)
        step = min(plan.first_block, b)
        buffer, dest = None, None
        # the buffer is reused across sub-blocks: only when pooling copies out of it
        if self._fused_exp(grad) and pool is not None:
            shape = (step, h * w, h * w + pad)
            buffer = (work.get("gram", shape, left[0]) if work is not None
                      else left[0].new_empty(shape))
        if work is not None and pool is not None:
            h2, w2 = plan.sizes[1]
            dest = work.get("pooled", (b, h2, w2, h2, w2), left[0])
        parts = []
        for s0 in range(0, b, step):
            sl = slice(s0, s0 + step)
            left_sb, right_sb = tuple(a[sl] for a in left), tuple(a[sl] for a in right)
            out = buffer[: left_sb[0].shape[0]] if buffer is not None else None
            m = self._first_map(left_sb, right_sb, grad, self_pairs, out)
            m = m.reshape(m.shape[0], h, w, h * w + pad)
            if dest is not None:
                dest[sl].copy_(pool(m))
            else:
                parts.append(pool(m) if pool is not None else m.reshape(-1, h, w, h, w))
        if dest is not None:
            return dest
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def _pair_values(self, plan: _Plan, left: tuple, right: tuple, norms: tuple | None,
                     grad: bool, work: _Workspace | None = None):
        """Kernel values of a block of B pairs; ``norms`` (of the rows' and the columns'
        images, per layer) None: self pairs, norms collected. ``work``: the workspace
        (no gradients).

        Returns ``(values (B,), norms of layers >= 2 (list of (B, H_k, W_k)))``.
        """
        self_pairs = norms is None
        m = self._first_stage(plan, left, right, grad, self_pairs, work)
        b = m.shape[0]
        collected = []
        last = self.n_layers - 1
        for k in range(1, self.n_layers):
            pool = plan.pools[k - 1]
            if pool is not None and k > 1:
                m = pool(m)
            scratch = None if work is None else work.get(f"patch{k}", tuple(m.shape), m)
            kp = patch_sum_pairs(m, self.filter_size[k], scratch)
            if norms is None:
                hk, wk = plan.sizes[k]
                sq = kp.reshape(b, hk * wk, hk * wk).diagonal(dim1=1, dim2=2).reshape(b, hk, wk)
                nx = ny = safe_sqrt(sq.clamp_min(0.0) if grad else sq.clamp_min(0.0).clone())
                collected.append(nx)
            else:
                nx, ny = norms[0][k], norms[1][k]
            if not grad and k == last:
                return self._last_layer_values(plan, k, kp, nx, ny, self_pairs), collected
            m = self._map(k, kp, nx, ny, grad, self_pairs)
        p = m[0].numel()
        return m.reshape(b, p) @ plan.trace_weights.reshape(p), collected

    # ------------------------------------------------------------------ sizing
    def _gram_bytes(self, plan: _Plan, item: int) -> tuple[int, int]:
        """Bytes of one pair's position-pair Gram: the first layer's, and the largest later one."""
        first = item * (plan.sizes[0][0] * plan.sizes[0][1]) ** 2
        later = max([item * (h * w) ** 2 for h, w in plan.sizes[1:self.n_layers]], default=0)
        return first, later

    def _pairs_per_block(self, plan: _Plan, x: torch.Tensor, budget: int) -> int:
        """Pairs per block (:func:`~kernelzoo.kernels.ckn_plan.block_sizes`); sets
        ``plan.first_block``."""
        h, w = plan.sizes[0]
        gathered = 2 * h * w * self._first_dim(x) * x.element_size()
        return block_sizes(plan, self._gram_bytes(plan, x.element_size()), gathered, budget,
                           x.device.type == "cpu")

    def _first_dim(self, x: torch.Tensor) -> int:
        """Columns of a first-layer patch matrix (with the two of the fused ``exp``)."""
        return x.shape[1] * self.filter_size[0] ** 2 + 2

    def _images_per_tile(self, x: torch.Tensor, budget: int) -> int:
        """Images per tile: their first-layer data (rows and columns, and the copies
        made while building it) within a quarter of the budget."""
        h, w = x.shape[2:]
        per_image = h * w * self._first_dim(x) * x.element_size()
        return max(1, min(x.shape[0], budget // (4 * 4 * per_image)))

    # ------------------------------------------------------------------ evaluation
    def _first_norms(self, x: torch.Tensor) -> torch.Tensor:
        """Norms of the first layer's patches, centred with ``centering``
        (:func:`~kernelzoo.kernels.ckn_plan.first_patch_norms`)."""
        return first_patch_norms(x, self.filter_size[0], self.centering)

    def _stats(self, x: torch.Tensor, plan: _Plan, sizes: tuple[int, int], grad: bool,
               work: _Workspace | None = None) -> _Stats:
        """Patch norms of every layer and ``k(x, x)``, by one pass over the pairs (x_i, x_i).

        ``sizes``: ``(pairs per block, images per tile)``.
        """
        block, tile = sizes
        first_norms = self._first_norms(x)
        layer_norms: list[list[torch.Tensor]] = [[] for _ in range(self.n_layers - 1)]
        diags = []
        for t0 in range(0, x.shape[0], tile):
            t1 = min(t0 + tile, x.shape[0])
            left = self._first_layer_data(x[t0:t1], first_norms[t0:t1], grad, "left")
            right = self._first_layer_data(x[t0:t1], first_norms[t0:t1], grad, "right")
            for b0 in range(0, t1 - t0, block):
                sl = slice(b0, min(b0 + block, t1 - t0))
                value, norms = self._pair_values(
                    plan, tuple(a[sl] for a in left), tuple(a[sl] for a in right), None, grad,
                    work,
                )
                diags.append(value)
                for k, nk in enumerate(norms):
                    layer_norms[k].append(nk)
        norms = [first_norms] + [torch.cat(nk) for nk in layer_norms]
        return _Stats(norms=norms, diag=torch.cat(diags))

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        """The Gram of images scaled to unit norm by powers of two (exact), the scale put
        back at the end: every layer is homogeneous in its patch norms, so ``k(a x, b y) =
        a b k(x, y)``, and no squared norm overflows or underflows where k fits the dtype."""
        xs, ex = unit_samples(x)
        ys, ey = (None, ex) if y is None else unit_samples(y)
        return unscale(self._evaluate_unit(xs, ys, budget), ex, ey)

    def _evaluate_unit(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        grad = torch.is_grad_enabled() and (
            x.requires_grad or (y is not None and y.requires_grad)
        )
        plan = self._plan(x)
        block = self._pairs_per_block(plan, x, budget)
        tile = self._images_per_tile(x, budget)
        symmetric = y is None
        work = None if grad else _Workspace()
        stats_x = self._stats(x, plan, (block, tile), grad, work)
        stats_y = stats_x if symmetric else self._stats(y, plan, (block, tile), grad, work)
        run = _Run(plan, block, grad, symmetric, stats_x, stats_y, work)
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
                out = self._fill(out, run, _TilePairs(left, right, ix, iy, r0, c0))
        if not grad:
            # identical images get exactly k(x, x), as on a Gram's diagonal (arccos0 passes
            # on the sqrt(eps) error of arccos at a rounded cosine of 1)
            ix, iy = _identical_pairs(x, y_imgs, budget)
            out[ix, iy] = stats_x.diag[ix]
        return out

    def _fill(self, out: torch.Tensor, run: _Run, pairs: _TilePairs) -> torch.Tensor:
        """Evaluate the pairs of one tile in blocks and write them into ``out`` (and their
        mirror for a symmetric Gram); returns ``out`` (a new tensor with gradients)."""
        for b0 in range(0, pairs.ix.numel(), run.block):
            bx, by = pairs.ix[b0:b0 + run.block], pairs.iy[b0:b0 + run.block]
            gx, gy = bx + pairs.r0, by + pairs.c0
            norms = ([nk[gx] for nk in run.stats_x.norms], [nk[gy] for nk in run.stats_y.norms])
            values, _ = self._pair_values(
                run.plan, tuple(a[bx] for a in pairs.left), tuple(a[by] for a in pairs.right),
                norms, run.grad, run.work,
            )
            if run.grad:
                out = out.index_put((gx, gy), values)
                if run.symmetric:
                    out = out.index_put((gy, gx), values)
            else:
                out.index_put_((gx, gy), values)
                if run.symmetric:
                    out.index_put_((gy, gx), values)
        return out

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        xs, e = unit_samples(x)
        return unscale_diag(self._diag_unit(xs), e)

    def _diag_unit(self, x: torch.Tensor) -> torch.Tensor:
        from kernelzoo._validation import get_memory_budget

        grad = torch.is_grad_enabled() and x.requires_grad
        plan = self._plan(x)
        budget = get_memory_budget()
        sizes = (self._pairs_per_block(plan, x, budget), self._images_per_tile(x, budget))
        return self._stats(x, plan, sizes, grad, None if grad else _Workspace()).diag
