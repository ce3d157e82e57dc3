"""Dot-product functions shared by the families, with gradient-safe numerics.

The arc-cosine functions ``f_n(c) = J_n(arccos c) / pi`` (Cho & Saul 2009) are
the building blocks of the arc-cosine kernel, of the ReLU/abs expectations of
NNGP/NTK and of the CKN's ``arccos0``/``arccos1`` kappa. They clamp ``c`` into
[-1, 1] and carry analytic derivatives, so identical inputs (c = 1) give finite
gradients where the naive composition of ``sqrt`` and ``arccos`` gives NaN
(GPflow#409):

- ``f_0(c) = 1 - theta/pi``,  ``f_0'(c) = 1 / (pi sqrt(1 - c^2))`` (taken as 0 at |c| = 1,
  where f_0 has a cusp)
- ``f_1(c) = (sqrt(1-c^2) + (pi - theta) c) / pi``,  ``f_1'(c) = (pi - theta) / pi``
- ``f_2(c) = (3 c sqrt(1-c^2) + (pi - theta)(1 + 2c^2)) / pi``,
  ``f_2'(c) = 4 (sqrt(1-c^2) + c (pi - theta)) / pi``

``f_0(1) = f_1(1) = 1`` and ``f_2(1) = 3`` (``J_n(0) = pi (2n - 1)!!``).

Identical inputs get an angle of exactly 0 (``arccos`` of a cosine rounded to
``1 - eps`` is ``sqrt(2 eps)``, which ``f_0`` passes on). How depends on what
is at hand: for a Gram of x with itself, :func:`set_unit_self_cosines` (the
arc-cosine kernel and the CKN's self pairs); with the inputs, Kahan's angle
(:func:`refine_near_parallel`); with only covariances, the inflated ``K12^2``
of the NNGP/NTK angle (:mod:`kernelzoo.kernels.functional.activations`). Exact
duplicates between two sets are found by
:func:`kernelzoo.kernels.functional.distance.identical_rows`.
"""

from __future__ import annotations

import math

import torch

from kernelzoo.kernels.functional.indices import masked_indices, refine_chunk, write_masked

__all__ = [
    "arccos_fn",
    "arccos_fn_",
    "arccos_fn_theta",
    "refine_at",
    "refine_near_parallel",
    "safe_sqrt",
    "safe_div",
    "cosine",
    "set_unit_self_cosines",
]

_PI = math.pi


def _forward(c: torch.Tensor, degree: int) -> torch.Tensor:
    c = c.clamp(-1.0, 1.0)
    theta = torch.arccos(c)
    if degree == 0:
        return 1.0 - theta / _PI
    s = (1.0 - c * c).clamp_min_(0.0).sqrt_()
    rest = (_PI - theta).mul_(1.0 / _PI)  # (pi - theta) / pi
    if degree == 1:
        return s.mul_(1.0 / _PI).addcmul_(rest, c)
    return s.mul_(c).mul_(3.0 / _PI).addcmul_(rest, 2.0 * c * c + 1.0)


def _derivative(c: torch.Tensor, degree: int) -> torch.Tensor:
    c = c.clamp(-1.0, 1.0)
    if degree == 0:
        s2 = 1.0 - c * c
        safe = torch.where(s2 > 0, s2, torch.ones_like(s2))
        return torch.where(s2 > 0, safe.rsqrt() / _PI, torch.zeros_like(s2))
    rest = (_PI - torch.arccos(c)) / _PI
    if degree == 1:
        return rest
    s = (1.0 - c * c).clamp_min(0.0).sqrt()
    return 4.0 * (s / _PI + c * rest)


class _ArcCos(torch.autograd.Function):
    @staticmethod
    def forward(ctx, c: torch.Tensor, degree: int) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(c)
        ctx.degree = degree
        return _forward(c, degree)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (c,) = ctx.saved_tensors
        # zero slope outside [-1, 1]: the clamp
        inside = (c >= -1.0) & (c <= 1.0)
        d = _derivative(c, ctx.degree) * inside
        return grad * d, None


def arccos_fn(c: torch.Tensor, degree: int) -> torch.Tensor:
    """``f_n(c) = J_n(arccos c) / pi`` for ``degree`` n in {0, 1, 2}, elementwise.

    Shape: any; same shape out. Gradient-safe at c = +-1.
    """
    if degree not in (0, 1, 2):
        raise ValueError(f"degree must be 0, 1 or 2, got {degree!r}")
    if torch.is_grad_enabled() and c.requires_grad:
        return _ArcCos.apply(c, degree)
    return _forward(c, degree)


def arccos_fn_(
    c: torch.Tensor, degree: int, work: torch.Tensor | None = None, near_tol: float | None = None
) -> torch.Tensor | None:
    """In place, no gradients: ``c <- f_n(c)`` for cosines ``c`` already in [-1, 1].

    The map of :func:`arccos_fn` in as few passes over ``c`` as its terms need
    (one arccos, one square root, fused multiply-adds), all in place, with one
    buffer ``work`` like ``c`` (allocated if not given; degree 2 allocates a
    second). With ``near_tol``, returns the boolean mask of the entries with
    ``|c| > 1 - near_tol`` (as given), where ``arccos`` of a rounded cosine loses
    half the digits (:func:`refine_at` redoes them); otherwise None.

    Shape: ``c`` and ``work`` ``(n, m)`` -> the mask ``(n, m)`` or None.
    """
    if degree not in (0, 1, 2):
        raise ValueError(f"degree must be 0, 1 or 2, got {degree!r}")
    a = torch.empty_like(c) if work is None else work
    one = c.new_ones(())
    # |c| > 1 - tol  <=>  1 - c^2 < 1 - (1 - tol)^2, read off 1 - c^2 where it is formed
    sin2_tol = None if near_tol is None else near_tol * (2.0 - near_tol)
    if degree == 0:  # 1 - theta / pi
        near = None if near_tol is None else torch.abs(c, out=a) > 1.0 - near_tol
        torch.sub(one, c.arccos_(), alpha=1.0 / _PI, out=c)
        return near
    torch.sub(one, torch.arccos(c, out=a), alpha=1.0 / _PI, out=a)  # (pi - theta) / pi
    if degree == 1:  # sqrt(1 - c^2) / pi + c (pi - theta) / pi; exactly 1 at c = 1
        a.mul_(c)
        torch.addcmul(one, c, c, value=-1.0, out=c)  # 1 - c^2, >= 0 for |c| <= 1
        near = None if sin2_tol is None else c < sin2_tol
        torch.add(a, c.sqrt_(), alpha=1.0 / _PI, out=c)
        return near
    # degree 2: 3 c sqrt(1 - c^2) / pi + (1 + 2 c^2) (pi - theta) / pi
    b = torch.addcmul(one, c, c, value=2.0)
    a.mul_(b)
    torch.addcmul(one, c, c, value=-1.0, out=b)
    near = None if sin2_tol is None else b < sin2_tol
    torch.addcmul(a, c, b.sqrt_(), value=3.0 / _PI, out=c)
    return near


class _SafeSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        out = x.clamp_min(0.0).sqrt()
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        positive = out > 0
        safe = torch.where(positive, out, torch.ones_like(out))
        return torch.where(positive, grad / (2.0 * safe), torch.zeros_like(grad))


def safe_sqrt(x: torch.Tensor) -> torch.Tensor:
    """``sqrt(max(x, 0))`` whose gradient is 0 (not inf/NaN) at 0."""
    if torch.is_grad_enabled() and x.requires_grad:
        return _SafeSqrt.apply(x)
    return x.clamp_min(0.0).sqrt()


def safe_div(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """``num / den`` where ``den != 0``, else 0, with no NaN in either gradient.

    One division by ``den`` with its zeros replaced by infinity (finite ``num``
    over infinity is 0, and so are both partial derivatives there), so that a
    ``den`` broadcast over rows costs no full-size select.
    """
    return num / torch.where(den != 0, den, torch.inf)


def cosine(dot: torch.Tensor, norm_x: torch.Tensor, norm_y: torch.Tensor) -> torch.Tensor:
    """``dot[i, j] / (norm_x[i] norm_y[j])`` clamped into [-1, 1]; 0 where a norm is 0.

    Shape: ``dot (n, m)``, ``norm_x (n,)``, ``norm_y (m,)`` -> ``(n, m)``.
    """
    den = norm_x[:, None] * norm_y[None, :]
    return safe_div(dot, den).clamp(-1.0, 1.0)


def arccos_fn_theta(theta: torch.Tensor, degree: int) -> torch.Tensor:
    """``f_n`` from the angle itself (no round trip through the cosine)."""
    c, s = torch.cos(theta), torch.sin(theta)
    rest = (_PI - theta) / _PI
    if degree == 0:
        return rest
    if degree == 1:
        return s / _PI + rest * c
    return 3.0 * s * c / _PI + rest * (1.0 + 2.0 * c * c)


def refine_near_parallel(
    x: torch.Tensor,
    y: torch.Tensor,
    c: torch.Tensor,
    f: torch.Tensor,
    degree: int,
    tol: float = 1e-6,
) -> None:
    """Recompute ``f = f_n(angle(x_i, y_j))`` in place where ``|c| > 1 - tol``.

    Near angle 0 or pi, ``arccos`` of a rounded cosine loses half the digits
    (an error of ``eps`` in c is an error of ``sqrt(eps)`` in theta, which
    ``f_0`` passes on). Those few entries are redone with Kahan's formula
    ``theta = 2 atan2(|x/|x| - y/|y||, |x/|x| + y/|y||)``, exact for identical
    inputs. Gradient-free (used on the no-grad path).

    Shape: ``x (n, d)``, ``y (m, d)``, ``c`` and ``f`` ``(n, m)``.
    """
    refine_at(x, y, c.abs() > 1.0 - tol, f, degree)


def refine_at(
    x: torch.Tensor, y: torch.Tensor, near: torch.Tensor, f: torch.Tensor, degree: int
) -> None:
    """``f = f_n(angle(x_i, y_j))`` by Kahan's angle, in place, where ``near`` is True.

    See :func:`refine_near_parallel`. Gradient-free. On a GPU no host round
    trip: at most ``4 (n + m)`` entries are redone
    (:func:`~kernelzoo.kernels.functional.indices.masked_indices`).

    Shape: ``x (n, d)``, ``y (m, d)``, ``near`` (bool) and ``f`` ``(n, m)``.
    """
    rows, cols, found = masked_indices(near, 4 * (near.shape[0] + near.shape[1]))
    if rows.numel() == 0:
        return
    chunk = refine_chunk(x.shape[1])  # a few (chunk, d) buffers at once
    for start in range(0, rows.numel(), chunk):
        r, q = rows[start : start + chunk], cols[start : start + chunk]
        a, b = x[r], y[q]
        a = safe_div(a, a.norm(dim=1, keepdim=True))  # only the rows needed
        b = safe_div(b, b.norm(dim=1, keepdim=True))
        theta = 2.0 * torch.atan2((a - b).norm(dim=1), (a + b).norm(dim=1))
        write_masked(f, r, q, arccos_fn_theta(theta, degree), found)


def set_unit_self_cosines(cos: torch.Tensor, inplace: bool = True) -> torch.Tensor:
    """The cosine of every input with itself set to exactly 1 (an exact angle 0).

    ``inplace=False`` returns a new tensor (autograd on the other entries);
    only for a single ``(P, Q)`` Gram.

    Shape: ``(P, Q)`` (a Gram of x with itself), ``(B, P, Q)`` (a batch of self
    pairs' position Grams; ``Q >= P``: columns after the first P are padding)
    or ``(B, H, W, H, W)``; returned as given.
    """
    if not inplace:
        eye = torch.eye(cos.shape[0], cos.shape[1], dtype=torch.bool, device=cos.device)
        return torch.where(eye, torch.ones_like(cos), cos)
    batch = cos.unsqueeze(0) if cos.dim() == 2 else cos
    if batch.dim() == 3:
        square = batch[:, :, : batch.shape[1]]
    else:
        p = math.isqrt(batch[0].numel())
        square = batch.view(batch.shape[0], p, p)
    square.diagonal(dim1=1, dim2=2).fill_(1.0)
    return cos
