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

__all__ = ["activate", "activate_diag", "diag_derivative", "needs_grad"]

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
        q = (1.0 + 2.0 * v1) * (1.0 + 2.0 * v2)
        root = q.sqrt()
        a = torch.asin((2.0 * k / root).clamp(-1.0, 1.0)) * (2.0 / _PI)
        if t is None:
            return a, None
        d = (q - 4.0 * k * k).clamp_min(torch.finfo(k.dtype).tiny).rsqrt() * (4.0 / _PI)
        return a, t * d
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


def activate_diag(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f(u)^2]`` for ``u ~ N(0, v)``: the activation on the diagonal (angle 0)."""
    if activation == "relu":
        return 0.5 * v
    if activation == "abs":
        return v
    return torch.asin(2.0 * v / (1.0 + 2.0 * v)) * (2.0 / _PI)


def diag_derivative(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f'(u)^2]`` for ``u ~ N(0, v)``."""
    if activation == "relu":
        return torch.full_like(v, 0.5)
    if activation == "abs":
        return torch.ones_like(v)
    return (4.0 / _PI) / (1.0 + 4.0 * v).sqrt()
