"""Squared Euclidean distances for stationary kernels, exact where the GEMM expansion cancels.

``|x - y|^2 = |x|^2 + |y|^2 - 2 x.y`` costs one GEMM but loses all digits when
x and y nearly coincide far from the origin (near-duplicates, large scales):
the rounding error is about ``eps (|x|^2 + |y|^2)``, whatever the distance.
Entries below a threshold are therefore recomputed directly as sums of
squared differences, and the diagonal of a Gram of x with itself is an exact
zero, so identical inputs are at distance exactly 0 (the stationary kernels'
version of the package's rule that identical inputs give an exact angle 0).
"""

from __future__ import annotations

import math

import torch

from kernelzoo.kernels.functional.extremes import common_exponent, times_power_of_two
from kernelzoo.kernels.functional.indices import masked_indices, refine_chunk, write_masked

__all__ = [
    "identical_rows",
    "neg_half_sq_distances",
    "refine_near_duplicates",
    "scaled_neg_half_sq",
]


def refine_near_duplicates(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, bound: float | torch.Tensor
) -> None:
    """Recompute ``v = -|x_i - y_j|^2 / 2`` directly where the expanded form cancels.

    ``x.y - |x|^2/2 - |y|^2/2`` loses all digits when x and y nearly coincide
    far from the origin (scaled inputs, near-duplicates); entries with
    ``v >= -bound`` are redone as a sum of squared differences, in place.
    ``bound`` may be a 0-dim tensor on ``v``'s device. On a GPU no host round
    trip: at most ``4 (n + m)`` entries are redone
    (:func:`~kernelzoo.kernels.functional.indices.masked_indices`).

    Shape: ``x (n, d)``, ``y (m, d)``, ``v (n, m)``.
    """
    rows, cols, found = masked_indices(v >= -bound, 4 * (v.shape[0] + v.shape[1]))
    if rows.numel() == 0:
        return
    chunk = refine_chunk(x.shape[1])
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        diff = x.index_select(0, r).sub_(y.index_select(0, c))  # two (chunk, d) buffers
        write_masked(v, r, c, diff.square_().sum(1).mul_(-0.5), found)



def neg_half_sq_distances(
    x: torch.Tensor,
    y: torch.Tensor,
    same: bool,
    refine: float | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``v[i, j] = -|x_i - y_j|^2 / 2`` (``<= 0``), exact zeros on the diagonal when ``same``.

    Without gradients: one GEMM of augmented rows ``[x, -|x|^2/2, 1]`` and
    ``[y, 1, -|y|^2/2]`` (into ``out`` if given: a contiguous ``(n, m)``
    buffer), clamped at 0, then the entries with
    ``|x - y|^2 <= refine * (max |x|^2 + max |y|^2)`` recomputed directly
    (:func:`refine_near_duplicates`; ``refine`` defaults to ``64 eps``, enough
    for kernels that are smooth in the squared distance; kernels of the
    distance itself, whose square root amplifies the error of small squared
    distances, pass a larger one). With gradients: the expanded form,
    clamped, out of place (differentiable; ``out`` unused).

    Shape: ``x (n, d)``, ``y (m, d)`` (``y is x`` when ``same``) -> ``(n, m)``.
    """
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        sx = x.square().sum(1)
        sy = sx if same else y.square().sum(1)
        d2 = (sx[:, None] + sy[None, :] - 2.0 * x @ y.T).clamp_min(0.0)
        if same:
            d2 = d2 * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
        return -0.5 * d2
    xa = _augmented(x, "left")
    ya = _augmented(x if same else y, "right")
    v = torch.mm(xa, ya.T, out=out) if out is not None else xa @ ya.T
    v.clamp_max_(0.0)
    if refine is None:
        refine = 64 * torch.finfo(x.dtype).eps
    d = x.shape[1]
    # refine * (max |x|^2 + max |y|^2) / 2, as a 0-dim tensor (no host round trip)
    bound = -refine * (xa[:, d].min() + ya[:, d + 1].min())
    refine_near_duplicates(x, y, v, bound)
    if same:
        v.fill_diagonal_(0.0)
    return v


def scaled_neg_half_sq(
    x: torch.Tensor, y: torch.Tensor, same: bool, lengthscale: float,
    refine: float | None = None, exponent: int | None | str = "auto",
) -> torch.Tensor | None:
    """``-|x - y|^2 / (2 lengthscale^2)`` for inputs whose squares would overflow, else None.

    When ``|x| / lengthscale`` is so large (or the lengthscale so small) that
    the squared distances of :func:`neg_half_sq_distances` would overflow into
    ``inf - inf = NaN``, both inputs are divided by one power of two (exactly),
    the distances computed in those units, and the factor ``(2**e /
    lengthscale)^2`` applied at the end, saturating at ``-inf`` (a kernel value
    of 0) where the true value is below the dtype's range. None means the
    plain evaluation is safe (the caller does it, unchanged). ``exponent``: that
    power of two when the caller has found it already (:func:`common_exponent` of
    the whole Gram's inputs, once: it reads a maximum on the host), None for the
    plain evaluation, ``"auto"`` to find it here.

    Shape: ``x (n, d)``, ``y (m, d)`` -> ``(n, m)`` or None.
    """
    if exponent == "auto":
        exponent = common_exponent(x, y, lengthscale)
    if exponent is None:
        return None
    xs = times_power_of_two(x, -exponent)
    ys = xs if same else times_power_of_two(y, -exponent)
    v = neg_half_sq_distances(xs, ys, same, refine)
    try:
        factor = math.ldexp(1.0, exponent) / lengthscale
    except OverflowError:  # pragma: no cover - floats saturate to inf instead
        factor = math.inf
    # below every representable distance the product is -inf anyway; a finite factor
    # keeps exact zeros (identical points) at 0 instead of 0 * inf = NaN
    factor = min(factor, torch.finfo(x.dtype).max)
    return v * factor * factor


def _augmented(x: torch.Tensor, side: str) -> torch.Tensor:
    """``[x, -|x|^2/2, 1]`` (left) or ``[x, 1, -|x|^2/2]`` (right), in one buffer.

    Shape: ``(n, d)`` -> ``(n, d + 2)``.
    """
    n, d = x.shape
    out = x.new_empty(n, d + 2)
    out[:, :d] = x
    half = torch.linalg.vector_norm(x, dim=1).square_().mul_(-0.5)
    norm_col, one_col = (d, d + 1) if side == "left" else (d + 1, d)
    out[:, norm_col] = half
    out[:, one_col] = 1.0
    return out


def identical_rows(
    x: torch.Tensor, y: torch.Tensor, budget: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(i, j)`` with ``x[i]`` equal to ``y[j]``, entry for entry.

    Kernels whose evaluation of a pair of distinct but identical inputs is not
    exact (the CKN's position Grams) give those pairs exactly ``k(x, x)``.

    Candidates come from two cheap fingerprints (compared with a tolerance, so
    that rounding differences between rows cannot hide a match), then are
    checked exactly; O(n m) numbers in chunks of rows, next to O(n m) image pairs.
    ``budget``: bytes the chunks may hold at once (default: about 2**22 pairs).

    Shape: ``x (n, ...)``, ``y (m, ...)`` -> two index tensors ``(k,)``.
    """
    fx, fy = x.flatten(1), y.flatten(1)
    weights = torch.linspace(1.0, 2.0, fx.shape[1], dtype=x.dtype, device=x.device)
    prints_x = torch.stack([fx.sum(1), (fx * weights).sum(1)], 1)
    prints_y = torch.stack([fy.sum(1), (fy * weights).sum(1)], 1)
    abs_x, abs_y = fx.abs().sum(1), fy.abs().sum(1)
    eps, tiny = torch.finfo(x.dtype).eps, torch.finfo(x.dtype).tiny
    rows, cols = [], []
    # a chunk's pair holds two differences, a tolerance and three booleans
    per_pair = 3 * x.element_size() + 3
    pairs = (1 << 22) if budget is None else max(1, budget // per_pair)
    chunk = max(1, pairs // max(1, fy.shape[0]))
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
