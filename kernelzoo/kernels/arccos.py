"""Arc-cosine kernels of Cho & Saul (2009), single and multilayer.

``k_n(x, y) = (1/pi) |x|^n |y|^n J_n(theta)``, theta the angle between x and y,
composed ``depth`` times: ``k^(l+1)(x, y) = (1/pi) [k^(l)(x,x) k^(l)(y,y)]^(n/2)
J_n(theta^(l))`` with ``k^(0) = x.y``. ``k = 0`` when either input is zero.

Any input scale: ``k(a x, b y) = (a b)^p k(x, y)`` with ``p`` 0, 1 or
``2^depth`` for degrees 0, 1, 2, so every tile is evaluated on samples scaled
to unit norm by powers of two and the scale is put back with ``ldexp``
(:mod:`~kernelzoo.kernels.functional.extremes`): as row and column factors
when every input's scale lies well inside the dtype's range (checked once per
Gram), otherwise per entry; a value that does not fit the dtype is an
``OverflowError``, never NaN.

Without gradients a tile is one GEMM of unit rows into the tiler's buffer,
then each layer's map in place on it (:func:`~kernelzoo.kernels.functional.dot.arccos_fn_`).
"""

from __future__ import annotations

import functools
import math

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
from kernelzoo.kernels.functional.extremes import (
    rows_times_power_of_two,
    times_power_of_two,
    unit_samples,
    unscale,
    unscale_diag,
)
from kernelzoo.ops.tiling import tiled_gram

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

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        # once per Gram (one host round trip): can the scale go back as row and column
        # factors, or must every entry be rescaled by its own power of two?
        exact = not _factors_fit(x, self.homogeneity) or (
            y is not None and not _factors_fit(y, self.homogeneity))
        block = functools.partial(self._block, exact_scale=exact)
        return tiled_gram(block, x, y, budget, self._block_bytes, into=True)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool,
               out: torch.Tensor | None = None, exact_scale: bool = True) -> torch.Tensor:
        """A tile evaluated on samples scaled to unit norm by powers of two (exact), the
        scale put back at the end: squared norms cannot overflow or underflow where the
        kernel value fits the dtype. Without gradients written into ``out`` (a
        contiguous buffer) if given; ``exact_scale=False`` (inputs whose scales fit
        as row and column factors, :func:`_factors_fit`) puts the scale back with two
        broadcast products instead of one power of two per entry."""
        if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
            xs, ex = unit_samples(x)
            ys, ey = (xs, ex) if same else unit_samples(y)
            return unscale(self._unit_block(xs, ys, same), ex, ey, self.homogeneity,
                           exact=exact_scale)
        rows_x = _unit_rows(x)
        rows_y = rows_x if same else _unit_rows(y)
        return self._block_inplace(rows_x, rows_y, same, out, exact_scale)

    def _unit_block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        """The differentiable tile of unit-scaled samples (out of place)."""
        kxx = x.square().sum(1)
        kyy = kxx if same else y.square().sum(1)
        c = cosine(x @ y.T, safe_sqrt(kxx), safe_sqrt(kyy))
        if same:
            c = set_unit_self_cosines(c, inplace=False)
        f = arccos_fn(c, self.degree)
        if self.depth > 1:
            f = arccos_layers(f if self.degree < 2 else f / 3.0, self.degree, self.depth - 1)
        return _scale(f, kxx, kyy, self.degree, self.depth)

    def _block_inplace(self, rows_x: tuple, rows_y: tuple, same: bool,
                       out: torch.Tensor | None, exact: bool) -> torch.Tensor:
        """The tile without gradients, from unit rows, scaled norms and exponents
        (:func:`_unit_rows`): one GEMM of unit rows, then every layer's map in place on
        the GEMM's output (two tile-sized buffers in all; three for degree 2), then the
        scale: per entry (``exact``) or as row and column factors.

        The first layer's entries with ``|c| > 1 - 1e-6`` are redone with Kahan's
        angle (:func:`refine_at`); on a diagonal tile the diagonal is exactly
        :meth:`_diag`.
        """
        (xh, nx, ex), (yh, ny, ey) = rows_x, rows_y
        c = torch.mm(xh, yh.T, out=out) if out is not None else xh @ yh.T
        c.clamp_(-1.0, 1.0)
        if same:
            c.fill_diagonal_(1.0)
        work = torch.empty_like(c)
        near = arccos_fn_(c, self.degree, work, near_tol=1e-6)
        if same:  # the diagonal is set below
            near.fill_diagonal_(False)
        refine_at(xh, yh, near, c, self.degree)
        del near
        for _ in range(self.depth - 1):
            if self.degree == 2:
                c.div_(3.0)
            arccos_fn_(c, self.degree, work)
        del work
        p = 0 if exact else self.homogeneity
        fx, fy = _factor(nx, self.degree, self.depth), _factor(ny, self.degree, self.depth)
        c.mul_(times_power_of_two(fx, p * ex)[:, None])
        c.mul_(times_power_of_two(fy, p * ey)[None, :])
        if exact:
            torch.ldexp(c, self.homogeneity * (ex[:, None] + ey[None, :]), out=c)
        if same:
            c.diagonal().copy_(self._diag_of_norms(nx, ex))
        return c

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """The tile, its transpose (symmetric Grams), one work buffer (two for degree 2),
        the near-parallel mask (one byte an entry), scaled and unit rows."""
        item = x.element_size()
        tiles = 4 if self.degree == 2 else 3
        return (item * tiles + 1) * n_rows * n_cols + 2 * item * (n_rows + n_cols) * (
            x.shape[1] + 4)

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            xs, ex = unit_samples(x)
            return unscale_diag(_diag_at_layer(xs.square().sum(1), self.degree, self.depth),
                                ex, self.homogeneity)
        _, norms, ex = _unit_rows(x)
        return self._diag_of_norms(norms, ex)

    def _diag_of_norms(self, norms: torch.Tensor, ex: torch.Tensor) -> torch.Tensor:
        """``k(x, x)`` from the scaled norms and exponents of :func:`_unit_rows` (as a
        Gram's diagonal tiles set it, so that the two agree exactly)."""
        return unscale_diag(_diag_at_layer(norms * norms, self.degree, self.depth), ex,
                            self.homogeneity)


def _unit_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x / |x|, s, e)`` with ``|x| = s 2**e``, ``s`` in [0.5, 1) (0 for a zero row), no
    gradients: the largest entry brought to [0.5, 1) by a power of two (exact), then one
    norm and one division; no intermediate overflows or underflows.

    Shape: ``(n, d)`` -> ``(n, d)``, ``(n,)``, ``(n,)`` int64.
    """
    _, e_peak = torch.frexp(x.abs().amax(1))
    e_peak = e_peak.to(torch.int64)
    scaled = rows_times_power_of_two(x, -e_peak)
    norms = torch.linalg.vector_norm(scaled, dim=1)
    unit = safe_div(scaled.view_as(x), norms[:, None])
    mantissa, e_norm = torch.frexp(norms)
    return unit, mantissa, e_peak + e_norm.to(torch.int64)


def _factor(norms: torch.Tensor, degree: int, depth: int) -> torch.Tensor:
    """Per-row factor of the last layer's ``f`` (unit-scaled samples): the nonzero mask
    (degree 0), the norm (1), or ``k^(depth-1)(x, x)`` (2). Shape: ``(n,)`` -> ``(n,)``."""
    if degree == 0:
        return (norms > 0).to(norms.dtype)
    if degree == 1:
        return norms
    return _diag_at_layer(norms * norms, 2, depth - 1)


def _factors_fit(x: torch.Tensor, power: int) -> bool:
    """Whether every row's scale ``2**(power e)`` (``e`` its power-of-two exponent) lies
    well inside the dtype's exponent range (half of it, less a margin), so that the
    tile's entries times a row factor times a column factor neither overflow nor
    underflow where the result does not. One pass over ``x`` and one host round trip.

    Shape: ``(n, d)``.
    """
    if power == 0:
        return True
    peak = x.detach().abs().amax(1)
    _, e = torch.frexp(peak)
    # the norm's exponent is within log2(sqrt(d)) + 1 above the largest entry's
    spread = int(x.shape[1]).bit_length() // 2 + 2
    limit = (math.frexp(torch.finfo(x.dtype).max)[1] - 16) // 2
    return bool(power * (e.abs().max() + spread) <= limit)
