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

import torch

__all__ = ["neg_half_sq_distances", "refine_near_duplicates"]


def refine_near_duplicates(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, bound: float
) -> None:
    """Recompute ``v = -|x_i - y_j|^2 / 2`` directly where the expanded form cancels.

    ``x.y - |x|^2/2 - |y|^2/2`` loses all digits when x and y nearly coincide
    far from the origin (scaled inputs, near-duplicates); entries with
    ``v >= -bound`` are redone as a sum of squared differences, in place.

    Shape: ``x (n, d)``, ``y (m, d)``, ``v (n, m)``.
    """
    idx = (v >= -bound).nonzero()
    if idx.numel() == 0:
        return
    rows, cols = idx[:, 0], idx[:, 1]
    chunk = max(1, (1 << 24) // max(1, x.shape[1]))
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        v[r, c] = -0.5 * (x[r] - y[c]).square().sum(1)


def neg_half_sq_distances(
    x: torch.Tensor, y: torch.Tensor, same: bool, refine: float | None = None
) -> torch.Tensor:
    """``v[i, j] = -|x_i - y_j|^2 / 2`` (``<= 0``), exact zeros on the diagonal when ``same``.

    Without gradients: one GEMM of augmented rows ``[x, -|x|^2/2, 1]`` and
    ``[y, 1, -|y|^2/2]``, clamped at 0, then the entries with
    ``|x - y|^2 <= refine * (max |x|^2 + max |y|^2)`` recomputed directly
    (:func:`refine_near_duplicates`; ``refine`` defaults to ``64 eps``, enough
    for kernels that are smooth in the squared distance; kernels of the
    distance itself, whose square root amplifies the error of small squared
    distances, pass a larger one). With gradients: the expanded form,
    clamped, out of place (differentiable).

    Shape: ``x (n, d)``, ``y (m, d)`` (``y is x`` when ``same``) -> ``(n, m)``.
    """
    sx = x.square().sum(1)
    sy = sx if same else y.square().sum(1)
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        d2 = (sx[:, None] + sy[None, :] - 2.0 * x @ y.T).clamp_min(0.0)
        if same:
            d2 = d2 * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
        return -0.5 * d2
    ones_x, ones_y = sx.new_ones(len(sx), 1), sy.new_ones(len(sy), 1)
    xa = torch.cat([x, -0.5 * sx[:, None], ones_x], dim=1)
    ya = torch.cat([y, ones_y, -0.5 * sy[:, None]], dim=1)
    v = (xa @ ya.T).clamp_max_(0.0)
    if refine is None:
        refine = 64 * torch.finfo(x.dtype).eps
    refine_near_duplicates(x, y, v, refine * 0.5 * float(sx.max() + sy.max()))
    if same:
        v.fill_diagonal_(0.0)
    return v
