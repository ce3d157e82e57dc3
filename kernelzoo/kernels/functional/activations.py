"""Activations of infinite-width nets and their dual maps (Gaussian expectations).

For ``u, v`` jointly Gaussian with variances ``K11, K22`` and covariance ``K12``
the NNGP step is ``E[f(u) f(v)]`` and the NTK step multiplies the tangent
kernel by ``E[f'(u) f'(v)]`` (formulas in shared/REFERENCES.md). Every function
is elementwise and works on tensors of any shape.
"""

from __future__ import annotations

import math

import torch

from kernelzoo.kernels.functional.dot import safe_sqrt

__all__ = ["activate", "activate_diag", "diag_derivative", "erf_terms", "needs_grad"]

_PI = math.pi


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def activate(
    k: torch.Tensor,
    t: torch.Tensor | None,
    v1: torch.Tensor,
    v2: torch.Tensor,
    activation: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One activation layer: ``(K, T) -> (E[f f], T * E[f' f'])``, elementwise.

    Parameters
    ----------
    k : pre-activation covariances K12 of the pairs.
    t : tangent kernel of the pairs, or None (NNGP only).
    v1, v2 : pre-activation variances K11, K22, broadcastable to ``k``.

    Shape: ``k``, ``t`` any shape; ``v1``, ``v2`` broadcastable to it.
    """
    grad = needs_grad(k, t, v1, v2)
    if activation == "erf":
        x, root = erf_terms(k, v1, v2)
        a = torch.atan2(x, root) * (2.0 / _PI)
        if t is None:
            return a, None
        u = (1.0 + 2.0 * v1).sqrt() * (1.0 + 2.0 * v2).sqrt()
        return a, t * ((4.0 / _PI) / (u * root))
    # relu, abs: theta = atan2(sqrt(K11 K22 - K12^2), K12)
    eps = torch.finfo(k.dtype).eps
    s2 = v1 * v2 - (1.0 + 64 * eps) * (k * k)
    if grad:
        s = safe_sqrt(s2)
        # atan2(0, 0) has a 0/0 gradient: nudge K12 where both vanish (zero inputs)
        both_zero = (s == 0) & (k == 0)
        theta = torch.atan2(s, torch.where(both_zero, torch.ones_like(k), k))
    else:
        s = s2.clamp_min(0.0).sqrt()
        theta = torch.atan2(s, k)
    if activation == "relu":
        rest = _PI - theta  # pi - theta
        a = (s + rest * k) * (1.0 / (2 * _PI))
        d = rest * (1.0 / (2 * _PI))
    else:  # abs = relu(u) + relu(-u)
        rest = _PI - 2.0 * theta
        a = (2.0 * s + rest * k) * (1.0 / _PI)
        d = rest * (1.0 / _PI)
    return a, (None if t is None else t * d)


def erf_terms(
    k: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """erf's dual map in bounded form: ``(x, r)`` with ``asin(2 K12 / sqrt(q)) = atan2(x, r)``.

    ``q = (1 + 2 K11)(1 + 2 K22)``; ``x = 2 K12 / sqrt(q)`` and ``r = sqrt(1 - x^2)``,
    where ``1 - x^2 = (1 + 2 K11 + 2 K22 + 4 (K11 K22 - K12^2)) / q`` is summed
    from terms in [0, 1] (``K12^2 / (K11 K22)`` inflated by ``1 + 64 eps`` and
    clipped as for relu): no cancellation of ``q`` against ``4 K12^2`` (which
    lost all digits at large variances) and no overflow of ``K11 K22``.

    Parameters
    ----------
    k : torch.Tensor
        Covariances K12.
    v1, v2 : torch.Tensor
        Variances K11, K22, broadcastable to ``k``.

    Returns
    -------
    tuple of torch.Tensor
        ``x`` in [-1, 1] and ``r`` in (0, 1].
    """
    eps = torch.finfo(k.dtype).eps
    r1, r2 = 1.0 / (1.0 + 2.0 * v1), 1.0 / (1.0 + 2.0 * v2)
    w1, w2 = 2.0 * v1 * r1, 2.0 * v2 * r2  # 2 K / (1 + 2 K), in [0, 1)
    norm = safe_sqrt(v1) * safe_sqrt(v2)  # finite gradients at zero variance
    positive = norm > 0
    c = torch.where(positive, k, torch.zeros_like(k)) / torch.where(
        positive, norm, torch.ones_like(norm))
    sin2 = (1.0 - (1.0 + 64 * eps) * (c * c)).clamp_min(0.0)
    x = (2.0 * k * r1.sqrt() * r2.sqrt()).clamp(-1.0, 1.0)
    root = (r1 * r2 + w1 * r2 + r1 * w2 + w1 * w2 * sin2).sqrt()
    return x, root


def activate_diag(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f(u)^2]`` for ``u ~ N(0, v)``: the activation on the diagonal (angle 0)."""
    if activation == "relu":
        return 0.5 * v
    if activation == "abs":
        return v
    # asin(2v / (1 + 2v)) = atan2(2v, sqrt(1 + 4v)): no ill-conditioned asin near 1
    return torch.atan2(2.0 * v, (1.0 + 4.0 * v).sqrt()) * (2.0 / _PI)


def diag_derivative(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f'(u)^2]`` for ``u ~ N(0, v)``."""
    if activation == "relu":
        return torch.full_like(v, 0.5)
    if activation == "abs":
        return torch.ones_like(v)
    return (4.0 / _PI) / (1.0 + 4.0 * v).sqrt()
