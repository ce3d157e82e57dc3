"""Arc-cosine kernels of Cho & Saul (2009), single and multilayer.

``k_n(x, y) = (1/pi) |x|^n |y|^n J_n(theta)``, theta the angle between x and y,
composed ``depth`` times: ``k^(l+1)(x, y) = (1/pi) [k^(l)(x,x) k^(l)(y,y)]^(n/2)
J_n(theta^(l))`` with ``k^(0) = x.y``. ``k = 0`` when either input is zero.

Representable range of input scale s (the kernel scales like s^(2 n^depth)...):
degree 0 is scale invariant; degree 1 is homogeneous of degree 2 at every
depth (float64: s in 1e-15..1e15; float32: 1e-15..1e15 with ``|x|^2`` kept
within float32's range); degree 2 grows like ``s^(2^(depth+1))`` (float64 at
depth 1: 1e-15..1e15; float32 at depth 1: 1e-4..1e4).
"""

from __future__ import annotations

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.functional.dot import (
    arccos_fn,
    arccos_fn_,
    cosine,
    refine_at,
    safe_div,
    safe_sqrt,
    set_unit_self_cosines,
)
from kernelzoo.kernels.base import Kernel, Param, check_int
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["ArcCosine", "arccos_layers"]


def arccos_layers(c: torch.Tensor, degree: int, depth: int) -> torch.Tensor:
    """``f`` of the last layer from the input cosines, by the recursion on cosines.

    The diagonal of every layer is known in closed form (``k^(l)(x, x)`` is 1,
    ``|x|^2`` or ``3 k^(l-1)(x, x)^2`` for degrees 0, 1, 2), so the cosine of
    layer l+1 is ``f_n(c_l)`` (degrees 0, 1) or ``f_2(c_l) / 3`` (degree 2):
    no square roots or divisions after the first layer.

    Shape: ``c`` (any) -> same shape, ``f_n(c_{depth-1})``.
    """
    f = arccos_fn(c, degree)
    for _ in range(depth - 1):
        f = arccos_fn(f if degree < 2 else f / 3.0, degree)
    return f


def _norms(x: torch.Tensor) -> torch.Tensor:
    """Row norms ``|x_i|`` (one pass, no temporary), no gradients. Shape: ``(n, d) -> (n,)``."""
    return torch.linalg.vector_norm(x, dim=1)


def _diag_update(kxx: torch.Tensor, degree: int) -> torch.Tensor:
    """k^(l+1)(x, x) from k^(l)(x, x): theta = 0, where f_0 = f_1 = 1 and f_2 = 3."""
    if degree == 0:
        return (kxx > 0).to(kxx.dtype)
    if degree == 1:
        return kxx
    return 3.0 * kxx * kxx


def _diag_at_layer(kxx: torch.Tensor, degree: int, layers: int) -> torch.Tensor:
    for _ in range(layers):
        kxx = _diag_update(kxx, degree)
    return kxx


def _scale(f: torch.Tensor, kxx: torch.Tensor, kyy: torch.Tensor, degree: int, depth: int):
    """``k^(depth)(x_i, y_j)`` from the last ``f`` and the input squared norms."""
    if degree == 0:
        return f * ((kxx[:, None] > 0) & (kyy[None, :] > 0))
    if degree == 1:
        return f * (safe_sqrt(kxx)[:, None] * safe_sqrt(kyy)[None, :])
    return f * (
        _diag_at_layer(kxx, 2, depth - 1)[:, None] * _diag_at_layer(kyy, 2, depth - 1)[None, :]
    )


class ArcCosine(Kernel):
    """Arc-cosine kernel (Cho & Saul 2009).

    Parameters
    ----------
    degree : {0, 1, 2}, default 1
        0: step (Heaviside) features, 1: ReLU, 2: squared ReLU.
    depth : int >= 1, default 1
        Number of composed layers.

    Shape: inputs ``(n, d)`` (images are flattened).
    """

    family = "arccos"
    params = (
        Param("degree", 1, check_int(choices=(0, 1, 2)), "0 step, 1 ReLU, 2 ReLU^2"),
        Param("depth", 1, check_int(minimum=1), "number of layers, >= 1"),
    )
    approximations = ("random-features", "nystrom")

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        return tiled_gram(self._block, x, y, budget, self._block_bytes, into=True)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool,
               out: torch.Tensor | None = None) -> torch.Tensor:
        """One tile; without gradients written into ``out`` (a contiguous buffer) if given."""
        if not (torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)):
            return self._block_inplace(x, y, same, out)
        kxx = x.square().sum(1)
        kyy = kxx if same else y.square().sum(1)
        c = cosine(x @ y.T, safe_sqrt(kxx), safe_sqrt(kyy))
        if same:
            c = set_unit_self_cosines(c, inplace=False)
        f = arccos_fn(c, self.degree)
        if self.depth > 1:
            f = arccos_layers(f if self.degree < 2 else f / 3.0, self.degree, self.depth - 1)
        return _scale(f, kxx, kyy, self.degree, self.depth)

    def _block_inplace(self, x: torch.Tensor, y: torch.Tensor, same: bool,
                       out: torch.Tensor | None) -> torch.Tensor:
        """The tile without gradients: one GEMM of unit rows, then every layer's map in
        place on the GEMM's output (two tile-sized buffers in all; three for degree 2).

        The first layer's entries with ``|c| > 1 - 1e-6`` are redone with Kahan's
        angle (:func:`refine_at`); on a diagonal tile the diagonal is exactly
        ``k(x, x)``.
        """
        nx = _norms(x)
        ny = nx if same else _norms(y)
        kxx, kyy = nx * nx, ny * ny
        xh = safe_div(x, nx[:, None])  # zero rows stay zero: c = 0, then scaled by 0
        yh = xh if same else safe_div(y, ny[:, None])
        c = torch.mm(xh, yh.T, out=out) if out is not None else xh @ yh.T
        c.clamp_(-1.0, 1.0)
        if same:
            c.fill_diagonal_(1.0)
        work = torch.empty_like(c)
        near = arccos_fn_(c, self.degree, work, near_tol=1e-6)
        refine_at(x, y, near, c, self.degree)
        del near
        for _ in range(self.depth - 1):
            if self.degree == 2:
                c.div_(3.0)
            arccos_fn_(c, self.degree, work)
        del work
        if self.degree == 0:
            c.mul_((kxx > 0).to(c.dtype)[:, None]).mul_((kyy > 0).to(c.dtype)[None, :])
        elif self.degree == 1:
            c.mul_(nx[:, None]).mul_(ny[None, :])
        else:
            c.mul_(_diag_at_layer(kxx, 2, self.depth - 1)[:, None])
            c.mul_(_diag_at_layer(kyy, 2, self.depth - 1)[None, :])
        if same:
            c.diagonal().copy_(_diag_at_layer(kxx, self.degree, self.depth))
        return c

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """The tile, its transpose (symmetric Grams), one work buffer (two for degree 2),
        the near-parallel mask (one byte an entry), unit rows and norms."""
        item = x.element_size()
        tiles = 4 if self.degree == 2 else 3
        return (item * tiles + 1) * n_rows * n_cols + item * (n_rows + n_cols) * (x.shape[1] + 4)

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return _diag_at_layer(x.square().sum(1), self.degree, self.depth)
        norms = _norms(x)  # as in a Gram's diagonal tiles, so that the two agree exactly
        return _diag_at_layer(norms * norms, self.degree, self.depth)
