"""Inputs at any scale: evaluate in a power-of-two-scaled form, put the scale back at the end.

A kernel that is positively homogeneous, ``k(a x, b y) = (a b)^p k(x, y)`` for
``a, b > 0`` (arc-cosine kernels, the CKN, relu nets without bias), is
evaluated on samples scaled to a norm in [0.5, 1) by a power of two (exact: it
moves exponents only), and the exponents are put back with ``ldexp``, so that
no intermediate (a squared norm, a product of two variances) overflows or
underflows where the result does not (:func:`unit_samples`, :func:`unscale`).

Stationary kernels (rbf, matern) depend on ``|x - y| / lengthscale``; they
scale both inputs by one power of two and fold it into the lengthscale
(:func:`common_exponent`), so that far-apart points give 0 instead of the NaN
of ``inf - inf``.

What still does not fit the output dtype is an ``OverflowError``
(:func:`kernelzoo._validation.check_finite_result`), never a NaN or Inf.
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "common_exponent",
    "factors_fit",
    "rows_times_power_of_two",
    "times_power_of_two",
    "unit_samples",
    "unscale",
    "unscale_diag",
]

#: |exponent| beyond which any float64 value times 2**exponent is 0 or inf
_EXPONENT_CLAMP = 2200


def times_power_of_two(t: torch.Tensor, e: torch.Tensor | int) -> torch.Tensor:
    """``t * 2**e`` (``e`` integers, broadcast against ``t``): exact, 0 stays 0.

    Without gradients ``torch.ldexp``. With gradients four multiplications by
    powers of two of the same sign (each finite in float64, so no ``0 * inf``;
    each intermediate lies between ``t`` and the result), because the backward
    of ``torch.ldexp`` computes ``2**e`` in integers and returns 0 for
    negative ``e`` (torch 2.13).

    Shape: ``t`` any, ``e`` broadcastable to it -> ``t``'s shape.
    """
    e = torch.as_tensor(e, dtype=torch.int64, device=t.device)
    if not (torch.is_grad_enabled() and t.requires_grad):
        return torch.ldexp(t, e)
    e = e.clamp(-_EXPONENT_CLAMP, _EXPONENT_CLAMP)
    wide = t if t.dtype == torch.float64 else t.double()
    one = torch.ones(e.shape, dtype=torch.float64, device=t.device)
    parts = (e + 3 * (e < 0)) // 4  # a quarter, rounded towards 0 (same sign as e)
    for step in (parts, parts, parts, e - 3 * parts):
        wide = wide * torch.ldexp(one, step)
    return wide.to(t.dtype)


def _exponents(values: torch.Tensor) -> torch.Tensor:
    """``e`` with ``values = m 2**e``, ``m`` in [0.5, 1) (``e = 0`` where ``values`` is 0)."""
    _, exponent = torch.frexp(values)
    return exponent.to(torch.int64)


def _per_sample(e: torch.Tensor, ndim: int) -> torch.Tensor:
    return e.reshape((-1,) + (1,) * (ndim - 1))


def unit_samples(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(x_scaled, e)`` with ``x[i] = x_scaled[i] * 2**e[i]`` and ``|x_scaled[i]|`` in [0.5, 1).

    Two exact power-of-two steps: the largest entry to [0.5, 1) (so that the
    norm cannot overflow), then the norm. A zero sample stays zero (``e = 0``).
    Differentiable in ``x`` (the exponents are constants).

    Shape: ``(n, ...)`` -> ``(n, ...)``, ``(n,)`` int64.
    """
    flat = x.detach().reshape(x.shape[0], -1)
    e_peak = _exponents(flat.abs().amax(1))
    scaled = rows_times_power_of_two(flat, -e_peak)
    e_norm = _exponents(torch.linalg.vector_norm(scaled, dim=1))
    e = e_peak + e_norm
    if torch.is_grad_enabled() and x.requires_grad:
        return times_power_of_two(x, -_per_sample(e, x.ndim)), e
    # |e_norm| <= log2(sqrt(d)) + 1: one factor, exact, in place on the new tensor
    scaled.mul_(torch.ldexp(torch.ones_like(scaled[:, 0]), -e_norm)[:, None])
    return scaled.reshape(x.shape), e


def rows_times_power_of_two(flat: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """``flat[i] * 2**e[i]`` for exponents that bring finite rows to [0.5, 1), no gradients.

    Two broadcast products by per-row powers of two (``ldexp`` on a whole tile
    costs a power per entry, 20x more): each half of ``e`` is representable in
    ``flat``'s dtype (``|e|`` is at most the dtype's exponent range plus its
    mantissa), and every intermediate lies between a row and its result, so
    both products are exact.

    Shape: ``(n, d)``, ``(n,)`` -> ``(n, d)`` (a new tensor).
    """
    half = torch.div(e, 2, rounding_mode="floor")
    one = torch.ones(e.shape, dtype=flat.dtype, device=flat.device)
    out = flat * torch.ldexp(one, half)[:, None]
    return out.mul_(torch.ldexp(one, e - half)[:, None])


def unscale(
    k: torch.Tensor, ex: torch.Tensor, ey: torch.Tensor, power: int = 1,
    exact: bool | None = None,
) -> torch.Tensor:
    """``k[i, j] * 2**(power (ex[i] + ey[j]))``: a homogeneous kernel's scale put back.

    Overflow gives ``inf`` (which the caller turns into an ``OverflowError``),
    underflow 0; a zero entry stays 0. When every ``power e`` lies within half
    the dtype's exponent range (less a margin: :func:`factors_fit`), the scale
    goes back as a row and a column factor (two broadcast products, in place
    without gradients); otherwise per entry (``ldexp`` with an ``(n, m)``
    exponent tensor). ``exact``: True forces the per-entry path, False the
    factors, None decides (reading the exponents' range on the host).

    Shape: ``(n, m)``, ``(n,)``, ``(m,)`` -> ``(n, m)``.
    """
    if power == 0:
        return k
    ex, ey = power * ex.to(k.device), power * ey.to(k.device)
    if exact is None:
        exact = not factors_fit(torch.cat([ex, ey]), k.dtype)
    if exact:
        return times_power_of_two(k, ex[:, None] + ey[None, :])
    fx = torch.ldexp(torch.ones(ex.shape, dtype=k.dtype, device=k.device), ex)[:, None]
    fy = torch.ldexp(torch.ones(ey.shape, dtype=k.dtype, device=k.device), ey)[None, :]
    if torch.is_grad_enabled() and k.requires_grad:
        return k * fx * fy
    return k.mul_(fx).mul_(fy)


def factors_fit(e: torch.Tensor, dtype: torch.dtype, margin: int = 16) -> bool:
    """Whether every ``2**e`` lies within half of ``dtype``'s exponent range, less
    ``margin``: then values of moderate size times a row and a column factor neither
    overflow nor underflow where the product does not. One host round trip.

    Shape: ``e`` any (integers).
    """
    if e.numel() == 0:
        return True
    limit = (math.frexp(torch.finfo(dtype).max)[1] - margin) // 2
    return bool(e.abs().max() <= limit)


def unscale_diag(d: torch.Tensor, e: torch.Tensor, power: int = 1) -> torch.Tensor:
    """``d[i] * 4**(power e[i])``: the diagonal's scale put back. Shape: ``(n,)`` -> ``(n,)``."""
    if power == 0:
        return d
    return times_power_of_two(d, 2 * power * e.to(d.device))


def common_exponent(x: torch.Tensor, y: torch.Tensor, scale: float) -> int | None:
    """The power of two to divide ``x`` and ``y`` by before squaring ``(x - y) / scale``.

    None when the plain evaluation is safe: the largest entry over ``scale``,
    squared and summed over the features (with room for the GEMM's sums),
    stays far inside the dtype's range. Otherwise ``e`` with ``max |x|, |y|``
    in ``[2**(e-1), 2**e)``.
    """
    peak = float(max(x.detach().abs().max(), y.detach().abs().max()))
    if peak == 0.0:
        return None
    try:
        ratio = peak / scale
    except (OverflowError, ZeroDivisionError):  # pragma: no cover - floats saturate
        ratio = math.inf
    limit = math.sqrt(torch.finfo(x.dtype).max / (64.0 * max(1, x[0].numel())))
    if math.isfinite(ratio) and ratio < limit and 1.0 / scale < torch.finfo(x.dtype).max:
        return None
    return math.frexp(peak)[1]
