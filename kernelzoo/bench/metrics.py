"""What the harnesses compute from Grams: approximation errors, kernel alignment (CKA),
effective dimension, RKHS distances, and the least-squares fits of the stability bound."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

__all__ = [
    "approximation_errors",
    "centered_kernel_alignment",
    "center",
    "effective_dimension",
    "fit_through_origin",
    "pixel_relative_distance",
    "rkhs_relative_distance",
]


def _spectral_norm(matrix: np.ndarray) -> float:
    """Largest |eigenvalue| of a symmetric matrix (Lanczos; dense fallback)."""
    from scipy.sparse.linalg import ArpackError, eigsh

    if matrix.shape[0] <= 32:
        return float(np.abs(np.linalg.eigvalsh(matrix)).max())
    try:
        top = eigsh(matrix, k=1, which="LM", v0=np.ones(matrix.shape[0]),
                    return_eigenvectors=False, tol=1e-8)
        return float(np.abs(top).max())
    except ArpackError:
        return float(np.abs(np.linalg.eigvalsh(matrix)).max())


def _host64(gram: torch.Tensor) -> np.ndarray:
    return gram.detach().to(device="cpu", dtype=torch.float64).numpy()


def center(gram: torch.Tensor | np.ndarray) -> np.ndarray:
    """``H K H`` with ``H = I - 11^T / n`` (float64, on the host). Shape: (n, n) -> (n, n)."""
    k = _host64(gram) if isinstance(gram, torch.Tensor) else np.asarray(gram, np.float64)
    k = 0.5 * (k + k.T)
    return k - k.mean(0, keepdims=True) - k.mean(1, keepdims=True) + k.mean()


def centered_kernel_alignment(a: Any, b: Any, centered: bool = False) -> float:
    """CKA of two Grams on the same points: ``<HAH, HBH>_F / (|HAH|_F |HBH|_F)``.

    1 for Grams equal up to a positive scale (and an added constant), near 0
    for unrelated ones (Cortes et al. 2012; Kornblith et al. 2019). With
    ``centered=True`` the inputs are taken as already centred (:func:`center`).

    Shape: ``a``, ``b``: (n, n).
    """
    ca = np.asarray(a, np.float64) if centered else center(a)
    cb = np.asarray(b, np.float64) if centered else center(b)
    if ca.shape != cb.shape:
        raise ValueError(f"Grams of shapes {ca.shape} and {cb.shape} are not on the same points")
    norms = float(np.linalg.norm(ca)) * float(np.linalg.norm(cb))
    return float((ca * cb).sum()) / norms if norms > 0 else float("nan")


def approximation_errors(exact: torch.Tensor, approx: torch.Tensor) -> dict[str, float]:
    """Relative Frobenius, spectral and max-entry errors, alignment and CKA of two Grams.

    All relative to the exact Gram: ``|K - Ka|_F / |K|_F``, ``|K - Ka|_2 /
    |K|_2`` (symmetric parts; Lanczos on the host in float64),
    ``max|K - Ka| / max|K|``; alignment ``<K, Ka>_F / (|K|_F |Ka|_F)`` and the
    centred alignment (CKA, :func:`centered_kernel_alignment`); 1 is perfect.

    Shape: ``exact``, ``approx``: (n, n).
    """
    k, ka = _host64(exact), _host64(approx)
    if k.shape != ka.shape:
        raise ValueError(f"exact {k.shape} and approx {ka.shape} differ in shape")
    diff = k - ka
    tiny = 1e-300
    k_fro = max(float(np.linalg.norm(k)), tiny)
    ka_fro = max(float(np.linalg.norm(ka)), tiny)
    k_spec = max(_spectral_norm(0.5 * (k + k.T)), tiny)
    return {
        "rel_frobenius_error": float(np.linalg.norm(diff)) / k_fro,
        "rel_spectral_error": _spectral_norm(0.5 * (diff + diff.T)) / k_spec,
        "rel_max_entry_error": float(np.abs(diff).max()) / max(float(np.abs(k).max()), tiny),
        "alignment": float((k * ka).sum()) / (k_fro * ka_fro),
        "cka": centered_kernel_alignment(k, ka),
    }


def effective_dimension(eigenvalues: torch.Tensor, lam: float) -> float:
    """``sum_i mu_i / (mu_i + lam)`` for eigenvalues ``mu`` of ``K / n`` (negatives as 0).

    Shape: ``eigenvalues`` (n,).
    """
    mu = eigenvalues.to(torch.float64).clamp_min(0.0)
    return float((mu / (mu + lam)).sum())


def _paired(kernel: Any, x: torch.Tensor, y: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``K(x_i, y_i)`` for every i, in chunks (the diagonal of small cross Grams)."""
    parts = [kernel.gram(x[i : i + chunk], y[i : i + chunk]).diagonal()
             for i in range(0, len(x), chunk)]
    return torch.cat(parts)


def rkhs_relative_distance(kernel: Any, x: torch.Tensor, y: torch.Tensor,
                           kxx: torch.Tensor | None = None) -> torch.Tensor:
    """``||Phi(x_i) - Phi(y_i)|| / ||Phi(x_i)||`` for every i (NaN where ``K(x, x) = 0``).

    ``||Phi(x) - Phi(y)||^2 = K(x, x) + K(y, y) - 2 K(x, y)``, clamped at 0;
    ``kxx`` (``kernel.diag(x)``) may be passed when known.

    Shape: ``x``, ``y`` (n, ...) -> (n,).
    """
    kxx = (kernel.diag(x) if kxx is None else kxx).to(torch.float64)
    kyy = kernel.diag(y).to(torch.float64)
    kxy = _paired(kernel, x, y).to(torch.float64)
    distance = (kxx + kyy - 2.0 * kxy).clamp_min(0.0).sqrt()
    norm = kxx.clamp_min(0.0).sqrt()
    return torch.where(norm > 0, distance / norm.clamp_min(1e-300),
                       torch.full_like(norm, float("nan")))


def pixel_relative_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||x_i - y_i|| / ||x_i||`` on raw pixels. Shape: (n, ...) -> (n,)."""
    flat_x, flat_y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    norm = flat_x.norm(dim=1).to(torch.float64)
    distance = (flat_x - flat_y).norm(dim=1).to(torch.float64)
    return torch.where(norm > 0, distance / norm.clamp_min(1e-300),
                       torch.full_like(norm, float("nan")))


def fit_through_origin(features: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares ``target ~ features @ coef`` without intercept, and its R^2.

    R^2 is ``1 - SS_res / SS_tot`` with ``SS_tot`` about the mean of ``target``
    (1: the model explains every variation; NaN with fewer points than
    coefficients + 1).

    Shape: ``features`` (m, p), ``target`` (m,) -> coef (p,), float.
    """
    features = np.asarray(features, np.float64)
    target = np.asarray(target, np.float64)
    keep = np.isfinite(target) & np.isfinite(features).all(1)
    features, target = features[keep], target[keep]
    if len(target) <= features.shape[1]:
        return np.full(features.shape[1], np.nan), float("nan")
    coef, *_ = np.linalg.lstsq(features, target, rcond=None)
    residual = float(((target - features @ coef) ** 2).sum())
    total = float(((target - target.mean()) ** 2).sum())
    return coef, (1.0 - residual / total) if total > 0 else float("nan")
