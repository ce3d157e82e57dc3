"""Arc-cosine kernels of Cho & Saul (2009), single and multilayer.

``k_n(x, y) = (1/pi) |x|^n |y|^n J_n(theta)``, theta the angle between x and y,
composed ``depth`` times: ``k^(l+1)(x, y) = (1/pi) [k^(l)(x,x) k^(l)(y,y)]^(n/2)
J_n(theta^(l))`` with ``k^(0) = x.y``. ``k = 0`` when either input is zero.

Any input scale: ``k(a x, b y) = (a b)^p k(x, y)`` with ``p`` 0, 1 or
``2^depth`` for degrees 0, 1, 2, so every tile is evaluated on samples scaled
to unit norm by powers of two and the scale is put back with ``ldexp``
(:mod:`~kernelzoo.kernels.functional.extremes`); a value that does not fit
the dtype is an ``OverflowError``, never NaN.
"""

from __future__ import annotations

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.functional.dot import (
    arccos_fn,
    cosine,
    refine_near_parallel,
    safe_div,
    safe_sqrt,
    set_unit_self_cosines,
)
from kernelzoo.kernels.base import Kernel, Param, check_int
from kernelzoo.kernels.functional.extremes import unit_samples, unscale, unscale_diag

__all__ = ["ArcCosine", "arccos_layers"]


def arccos_layers(c: torch.Tensor, degree: int, depth: int) -> torch.Tensor:
    """``f`` of the last layer from the input cosines, by the recursion on cosines.

    The diagonal of every layer is known in closed form (``k^(l)(x, x)`` is 1,
    ``|x|^2`` or ``3 k^(l-1)(x, x)^2`` for degrees 0, 1, 2), so the cosine of
    layer l+1 is ``f_n(c_l)`` (degrees 0, 1) or ``f_2(c_l) / 3`` (degree 2):
    no square roots or divisions after the first layer.

    Parameters
    ----------
    c : torch.Tensor
        Cosines of the input pairs.
    degree : {0, 1, 2}
        The arc-cosine degree.
    depth : int
        Number of layers.

    Returns
    -------
    torch.Tensor
        ``f_n(c_{depth-1})``, the shape of ``c``.
    """
    f = arccos_fn(c, degree)
    for _ in range(depth - 1):
        f = arccos_fn(f if degree < 2 else f / 3.0, degree)
    return f


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

    Shape
    -----
    Inputs ``(n, d)`` (images are flattened).
    """

    family = "arccos"
    params = (
        Param("degree", 1, check_int(choices=(0, 1, 2)), "0 step, 1 ReLU, 2 ReLU^2"),
        Param("depth", 1, check_int(minimum=1), "number of layers, >= 1"),
    )
    approximations = ("random-features", "nystrom")

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    @property
    def homogeneity(self) -> int:
        """``p`` with ``k(a x, b y) = (a b)^p k(x, y)`` for ``a, b > 0``: 0, 1 or ``2**depth``."""
        return (0, 1, 2**self.depth)[self.degree]

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        """A tile evaluated on samples scaled to unit norm by powers of two (exact), the
        scale put back at the end: squared norms cannot overflow or underflow where the
        kernel value fits the dtype."""
        xs, ex = unit_samples(x)
        ys, ey = (xs, ex) if same else unit_samples(y)
        return unscale(self._unit_block(xs, ys, same), ex, ey, self.homogeneity)

    def _unit_block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        kxx = x.square().sum(1)
        kyy = kxx if same else y.square().sum(1)
        grad = torch.is_grad_enabled() and (x.requires_grad or y.requires_grad)
        if grad:
            c = cosine(x @ y.T, safe_sqrt(kxx), safe_sqrt(kyy))
        else:  # cosines straight from one GEMM of unit rows (zero rows stay zero)
            xh = safe_div(x, kxx.sqrt()[:, None])
            yh = xh if same else safe_div(y, kyy.sqrt()[:, None])
            c = (xh @ yh.T).clamp_(-1.0, 1.0)
        if same:
            c = set_unit_self_cosines(c, inplace=not grad)
        f = arccos_fn(c, self.degree)
        if not grad:
            refine_near_parallel(x, y, c, f, self.degree)
        if self.depth > 1:
            f = arccos_layers(f if self.degree < 2 else f / 3.0, self.degree, self.depth - 1)
        return _scale(f, kxx, kyy, self.degree, self.depth)

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        item = x.element_size()
        return item * (5 * n_rows * n_cols + (n_rows + n_cols) * (x.shape[1] + 4))

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        xs, ex = unit_samples(x)
        return unscale_diag(_diag_at_layer(xs.square().sum(1), self.degree, self.depth), ex,
                            self.homogeneity)
