"""Activations of infinite-width nets and their dual maps (Gaussian expectations).

For ``u, v`` jointly Gaussian with variances ``K11, K22`` and covariance ``K12``
the NNGP step is ``E[f(u) f(v)]`` and the NTK step multiplies the tangent
kernel by ``E[f'(u) f'(v)]`` (formulas in shared/REFERENCES.md and in each
branch below). Every function is elementwise and works on tensors of any shape.

The activations (:data:`~kernelzoo.kernels.functional.architecture.ACTIVATIONS`):

- ``relu``, ``abs``, ``leaky_relu`` (``max(u, 0) + s min(u, 0)``, neural-tangents'
  ``LeakyRelu(s)``) and ``sign``: arc-cosine duals of the angle
  ``theta = atan2(sqrt(K11 K22 - K12^2), K12)``; ``sign``'s derivative dual is 0
  (its derivative vanishes almost everywhere, as neural-tangents sets it), and
  a zero variance gives 0 (``sign(0) = 0``);
- ``erf``: ``2/pi asin(2 K12 / sqrt((1 + 2 K11)(1 + 2 K22)))``;
- ``gelu`` (``u Phi(u)``, exact, not the tanh form): Tsuchida et al. (2021),
  arXiv:2002.08517, the form neural-tangents' ``Gelu`` uses;
- ``sin``, ``cos``: ``exp(-(K11 + K22) / 2) sinh(K12)`` and ``... cosh(K12)``
  (each is the other's derivative dual), evaluated as
  ``exp(-(K11 + K22) / 2 + |K12|)`` times a bounded factor, so nothing overflows
  and zero or identical inputs are exact.
"""

from __future__ import annotations

import math

import torch

from kernelzoo.kernels.functional.dot import safe_sqrt

__all__ = [
    "DEFAULT_NEGATIVE_SLOPE",
    "activate",
    "activate_diag",
    "diag_derivative",
    "erf_terms",
    "needs_grad",
]

_PI = math.pi
#: ``negative_slope`` of ``leaky_relu`` when none is given (torch's default)
DEFAULT_NEGATIVE_SLOPE = 0.01


def needs_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd is on and any of ``tensors`` requires a gradient.

    Parameters
    ----------
    *tensors : torch.Tensor or None
        Tensors to look at (None entries are skipped).

    Returns
    -------
    bool
    """
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _angle(k: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor, grad: bool):
    """``(sqrt(K11 K22 - K12^2), theta)``, theta in [0, pi] (0 for (near-)identical pairs)."""
    eps = torch.finfo(k.dtype).eps
    s2 = v1 * v2 - (1.0 + 64 * eps) * (k * k)
    if grad:
        s = safe_sqrt(s2)
        # atan2(0, 0) has a 0/0 gradient: nudge K12 where both vanish (zero inputs)
        both_zero = (s == 0) & (k == 0)
        return s, torch.atan2(s, torch.where(both_zero, torch.ones_like(k), k))
    s = s2.clamp_min(0.0).sqrt()
    return s, torch.atan2(s, k)


def _trig(k: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor):
    """``(exp(-(K11+K22)/2) sinh(K12), exp(-(K11+K22)/2) cosh(K12))`` without overflow:
    ``exp(m) (1 -/+ exp(-2|K12|)) / 2`` with ``m = -(K11+K22)/2 + |K12| <= 0``."""
    mag = k.abs()
    top = torch.exp(-0.5 * (v1 + v2) + mag) * 0.5
    rest = torch.exp(-2.0 * mag)
    sinh = top * -torch.expm1(-2.0 * mag)
    return torch.where(k < 0, -sinh, sinh), top * (1.0 + rest)


def _gelu(k: torch.Tensor, v1: torch.Tensor, v2: torch.Tensor, tangent: bool):
    """GELU's dual and derivative dual (Tsuchida et al. 2021; neural-tangents' ``Gelu``).

    With ``P = (1 + K11)(1 + K22)`` and ``D^2 = P - K12^2 >= 1 + K11 + K22``::

        E[f f]   = K12 / 4 + (K12 asin(K12 / sqrt(P)) + (K12^2 + K11 K22 D^2) / (P D)) / (2 pi)
        E[f' f'] = 1 / 4 + asin(K12 / sqrt(P)) / (2 pi)
                   + K12 / (2 pi D) (1 / D^2 + (1 - K11 K22) / P + 1)
    """
    prod = v1 * v2
    p = (1.0 + v1) * (1.0 + v2)
    # D^2 = 1 + K11 + K22 + (K11 K22 - K12^2), the last term >= 0 (Cauchy-Schwarz)
    d2 = (1.0 + v1 + v2) + (prod - k * k).clamp_min(0.0)
    d = d2.sqrt()
    angle = torch.atan2(k, d)
    a = 0.25 * k + (k * angle + (k * k + prod * d2) / (p * d)) * (1.0 / (2 * _PI))
    if not tangent:
        return a, None
    dot = 0.25 + angle * (1.0 / (2 * _PI)) + k / d * (1.0 / (2 * _PI)) * (
        1.0 / d2 + (1.0 - prod) / p + 1.0)
    return a, dot


def activate(
    k: torch.Tensor,
    t: torch.Tensor | None,
    v1: torch.Tensor,
    v2: torch.Tensor,
    activation: str,
    negative_slope: float = DEFAULT_NEGATIVE_SLOPE,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One activation layer: ``(K, T) -> (E[f f], T * E[f' f'])``, elementwise.

    Shape: ``k``, ``t`` any shape; ``v1``, ``v2`` broadcastable to it.

    Parameters
    ----------
    k : torch.Tensor
        Pre-activation covariances K12 of the pairs.
    t : torch.Tensor or None
        Tangent kernel of the pairs, or None (NNGP only).
    v1, v2 : torch.Tensor
        Pre-activation variances K11, K22, broadcastable to ``k``.
    activation : str
        One of :data:`~kernelzoo.kernels.functional.architecture.ACTIVATIONS`.
    negative_slope : float
        The slope of ``leaky_relu`` below 0 (other activations ignore it).

    Returns
    -------
    tuple of torch.Tensor
        ``(E[f(u) f(v)], T * E[f'(u) f'(v)])``; the second is None when ``t`` is.
    """
    grad = needs_grad(k, t, v1, v2)
    if activation == "erf":
        x, root = erf_terms(k, v1, v2)
        a = torch.atan2(x, root) * (2.0 / _PI)
        if t is None:
            return a, None
        u = (1.0 + 2.0 * v1).sqrt() * (1.0 + 2.0 * v2).sqrt()
        return a, t * ((4.0 / _PI) / (u * root))
    if activation == "gelu":
        a, d = _gelu(k, v1, v2, t is not None)
        return a, (None if t is None else t * d)
    if activation in ("sin", "cos"):
        odd, even = _trig(k, v1, v2)
        a, d = (odd, even) if activation == "sin" else (even, odd)
        return a, (None if t is None else t * d)
    # relu, abs, leaky_relu, sign: theta = atan2(sqrt(K11 K22 - K12^2), K12)
    s, theta = _angle(k, v1, v2, grad)
    if activation == "relu":
        rest = _PI - theta  # pi - theta
        a = (s + rest * k) * (1.0 / (2 * _PI))
        d = rest * (1.0 / (2 * _PI))
    elif activation == "abs":  # abs = relu(u) + relu(-u)
        rest = _PI - 2.0 * theta
        a = (2.0 * s + rest * k) * (1.0 / _PI)
        d = rest * (1.0 / _PI)
    elif activation == "leaky_relu":
        # f = s u + (1 - s) relu(u): E[f f] = s K12 + (1 - s)^2 E[relu relu]
        factor = (1.0 - negative_slope) ** 2 / (2 * _PI)
        d = (1.0 + negative_slope**2) / 2 - factor * theta
        a = factor * s + d * k
    elif activation == "sign":
        # E[sign sign] = 1 - 2 theta / pi; 0 where either variance is 0 (sign(0) = 0)
        a = 1.0 - theta * (2.0 / _PI)
        a = torch.where((v1 == 0) | (v2 == 0), torch.zeros_like(a), a)
        return a, (None if t is None else torch.zeros_like(t))
    else:
        raise ValueError(f"unknown activation {activation!r}")
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


def activate_diag(
    v: torch.Tensor, activation: str, negative_slope: float = DEFAULT_NEGATIVE_SLOPE
) -> torch.Tensor:
    """``E[f(u)^2]`` for ``u ~ N(0, v)``: the activation on the diagonal (angle 0).

    Parameters
    ----------
    v : torch.Tensor
        Pre-activation variances.
    activation : str
        The activation.
    negative_slope : float
        ``leaky_relu``'s slope below 0.

    Returns
    -------
    torch.Tensor
        ``v``'s shape.
    """
    if activation == "relu":
        return 0.5 * v
    if activation == "abs":
        return v
    if activation == "leaky_relu":
        return (0.5 * (1.0 + negative_slope**2)) * v
    if activation == "sign":
        return (v != 0).to(v.dtype)
    if activation == "sin":
        return -0.5 * torch.expm1(-2.0 * v)
    if activation == "cos":
        return 0.5 * (1.0 + torch.exp(-2.0 * v))
    if activation == "gelu":
        root = (1.0 + 2.0 * v).sqrt()
        inner = v / ((v + 1.0) * root) + torch.atan2(v, root) * 0.5
        return v * (0.25 + inner * (1.0 / _PI))
    # asin(2v / (1 + 2v)) = atan2(2v, sqrt(1 + 4v)): no ill-conditioned asin near 1
    return torch.atan2(2.0 * v, (1.0 + 4.0 * v).sqrt()) * (2.0 / _PI)


def diag_derivative(
    v: torch.Tensor, activation: str, negative_slope: float = DEFAULT_NEGATIVE_SLOPE
) -> torch.Tensor:
    """``E[f'(u)^2]`` for ``u ~ N(0, v)``.

    Parameters
    ----------
    v : torch.Tensor
        Pre-activation variances.
    activation : str
        The activation.
    negative_slope : float
        ``leaky_relu``'s slope below 0.

    Returns
    -------
    torch.Tensor
        ``v``'s shape.
    """
    if activation == "relu":
        return torch.full_like(v, 0.5)
    if activation == "abs":
        return torch.ones_like(v)
    if activation == "leaky_relu":
        return torch.full_like(v, 0.5 * (1.0 + negative_slope**2))
    if activation == "sign":
        return torch.zeros_like(v)
    if activation == "sin":
        return 0.5 * (1.0 + torch.exp(-2.0 * v))
    if activation == "cos":
        return -0.5 * torch.expm1(-2.0 * v)
    if activation == "gelu":
        d2 = 1.0 + 2.0 * v
        d = d2.sqrt()
        return (0.25 + torch.atan2(v, d) * (1.0 / (2 * _PI))
                + v / d * (1.0 / (2 * _PI)) * (1.0 / d2 + (1.0 - v) / (1.0 + v) + 1.0))
    return (4.0 / _PI) / (1.0 + 4.0 * v).sqrt()
