"""Stable symmetric linear algebra: the inverse square root of a PSD matrix.

``inv_sqrt_psd(S, eps)`` = ``V diag(1 / sqrt(max(l, clip) + eps)) V^T`` for
``S = V diag(l) V^T``, differentiable with the Daleckii–Krein formula (the
divided differences of ``g(l) = (l + eps)^(-1/2)``), on S's device.
"""

from __future__ import annotations

import torch

from kernelzoo._validation import check_float

__all__ = ["check_eigen_options", "default_rel_clip", "inv_sqrt_psd", "sym_eig"]


def check_eigen_options(eps: object, rel_clip: object) -> tuple[float, float | None]:
    """The regularisation of :func:`inv_sqrt_psd`, checked: ``(eps, rel_clip)``.

    The one check of these options (Nyström, the CKN layers and approximations,
    the gpytorch Nyström kernel): ``eps`` a finite number >= 0; ``rel_clip``
    None (:func:`default_rel_clip`) or a finite number in [0, 1). ``rel_clip=0``
    needs ``eps > 0``, else the zero eigenvalues of a singular landmark Gram
    would be divided by. Raises a ``TypeError`` for non-numbers and a
    ``ValueError`` for NaN, infinities and values out of range, naming the option.
    """
    eps_value = check_float(eps, "eps", minimum=0.0)
    clip = check_float(rel_clip, "rel_clip", minimum=0.0, maximum=1.0, below_maximum=True,
                       allow_none=True)
    if clip == 0.0 and eps_value == 0.0:
        raise ValueError(
            "rel_clip=0 with eps=0 leaves the zero eigenvalues of a singular Gram unclipped "
            "(their inverse square root is infinite); give rel_clip > 0 or eps > 0"
        )
    return eps_value, clip


def default_rel_clip(dtype: torch.dtype) -> float:
    """The eigenvalue clipping of :func:`inv_sqrt_psd` for inputs of ``dtype``.

    1e-6 for float32 (its round-off shows in the landmark/anchor Gram's
    spectrum at about that level), 1e-12 otherwise. Nyström features, the CKN
    layers and the gpytorch Nyström kernel take this when ``rel_clip`` is None.
    """
    return 1e-6 if dtype == torch.float32 else 1e-12


def sym_eig(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigendecomposition of a symmetric matrix (symmetrised first).

    float32 input is decomposed in float64 (cheap at anchor/landmark sizes and
    far more stable) and cast back.
    """
    work = s.double() if s.dtype == torch.float32 else s
    work = 0.5 * (work + work.mT)
    evals, evecs = torch.linalg.eigh(work)
    return evals.to(s.dtype), evecs.to(s.dtype)


def _g(evals: torch.Tensor, eps: float, clip: float) -> torch.Tensor:
    return (evals.clamp_min(clip) + eps).rsqrt()


class _InvSqrt(torch.autograd.Function):
    @staticmethod
    def forward(ctx, s: torch.Tensor, eps: float, rel_clip: float) -> torch.Tensor:  # type: ignore[override]
        evals, evecs = sym_eig(s)
        clip = float(rel_clip * evals.abs().max().clamp_min(torch.finfo(s.dtype).tiny))
        g = _g(evals, eps, clip)
        ctx.save_for_backward(evals, evecs, g)
        ctx.eps, ctx.clip = eps, clip
        return (evecs * g) @ evecs.mT

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        evals, evecs, g = ctx.saved_tensors
        lam = evals.clamp_min(ctx.clip) + ctx.eps
        s = lam.sqrt()
        # divided differences of g(l) = l^-1/2: (g_i - g_j)/(l_i - l_j) = -1/((s_i + s_j) s_i s_j)
        dd = -1.0 / ((s[:, None] + s[None, :]) * s[:, None] * s[None, :])
        # clipped eigenvalues do not move: no gradient through them
        moving = evals > ctx.clip
        dd = dd * (moving[:, None] & moving[None, :])
        gsym = 0.5 * (grad + grad.mT)
        inner = evecs.mT @ gsym @ evecs
        return evecs @ (inner * dd) @ evecs.mT, None, None


def inv_sqrt_psd(
    s: torch.Tensor, eps: float = 0.0, rel_clip: float | None = 1e-12
) -> torch.Tensor:
    """``(S + eps I)^(-1/2)`` of a symmetric PSD matrix, eigenvalues clipped from below.

    Parameters
    ----------
    s : (p, p) tensor
        Symmetric positive semi-definite (symmetrised before use).
    eps : float
        Ridge added to every eigenvalue (the Nyström/CKN regulariser).
    rel_clip : float, optional
        Eigenvalues below ``rel_clip * max|eigenvalue|`` are raised to it
        (round-off makes PSD matrices slightly indefinite); those directions get
        no gradient. None: :func:`default_rel_clip` of ``s``'s dtype. Both are
        checked by :func:`check_eigen_options`.

    Shape: ``(p, p)`` -> ``(p, p)``.
    """
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"s must be a square matrix, got shape {tuple(s.shape)}")
    eps, rel_clip = check_eigen_options(eps, rel_clip)
    if rel_clip is None:
        rel_clip = default_rel_clip(s.dtype)
    return _InvSqrt.apply(s, eps, rel_clip)
