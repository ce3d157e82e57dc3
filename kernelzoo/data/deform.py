"""Translations and smooth deformations of images, for the stability harness.

Convention: a displacement field ``tau`` maps an image ``x`` to
``L_tau x(u) = x(u - tau(u))`` (Mallat 2012; Bietti & Mairal 2019), in pixel
units, so a constant ``tau = (dy, dx)`` moves the content ``dy`` pixels down
and ``dx`` pixels right, exactly like :func:`translate`. Fields are stored as
``(n, 2, H, W)``: channel 0 is the vertical (row) displacement, channel 1
the horizontal (column) one.

Random fields are drawn on the CPU in float64 from
``torch.Generator().manual_seed(seed)``, then moved to the images' device and
dtype, so a seed gives the same field on CPU and CUDA.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from kernelzoo._validation import check_int

__all__ = ["displacement_norms", "smooth_deformation", "translate", "warp"]


def _as_image_tensor(X: Any, name: str = "X") -> torch.Tensor:
    if not isinstance(X, torch.Tensor):
        X = torch.as_tensor(np.asarray(X))
    if X.ndim != 4:
        raise ValueError(f"{name} must be images (n, C, H, W), got shape {tuple(X.shape)}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not X.is_floating_point():
        X = X.to(torch.float32)
    elif X.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64 (or integer), got {X.dtype}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return X


def _check_shift(shift: Any) -> tuple[int, int]:
    try:
        dy, dx = shift
    except (TypeError, ValueError):
        raise ValueError(f"shift must be a pair of ints (dy, dx), got {shift!r}") from None
    return check_int(dy, "shift (dy)"), check_int(dx, "shift (dx)")


def translate(X: np.ndarray | torch.Tensor, shift: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Translate images by whole pixels, filling with zeros (no wrap-around).

    ``out[..., i, j] = X[..., i - dy, j - dx]``, zero where that pixel is
    outside the image: positive ``dy`` moves the content down, positive
    ``dx`` to the right. A shift of (0, 0) returns an exact copy.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Images.
    shift : (int, int)
        ``(dy, dx)`` in pixels, of any sign and size.

    Returns
    -------
    torch.Tensor
        A new tensor on the device of ``X``; float32/float64 kept, integer
        input becomes float32.

    Shape
    -----
    ``X``: (n, C, H, W); output: (n, C, H, W).
    """
    X = _as_image_tensor(X)
    dy, dx = _check_shift(shift)
    H, W = X.shape[-2:]
    out = torch.zeros_like(X)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    out[..., max(dy, 0) : H + min(dy, 0), max(dx, 0) : W + min(dx, 0)] = X[
        ..., max(-dy, 0) : H + min(-dy, 0), max(-dx, 0) : W + min(-dx, 0)
    ]
    return out


def warp(X: np.ndarray | torch.Tensor, tau: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Apply a displacement field: ``out(u) = X(u - tau(u))``, bilinear, zero outside.

    Uses ``torch.nn.functional.grid_sample`` with ``align_corners=True`` so
    that pixel centres map exactly to grid coordinates.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Images, at least 2 x 2 pixels.
    tau : numpy.ndarray or torch.Tensor
        Displacement in pixels: channel 0 vertical, channel 1 horizontal;
        one field per image, or one field for all.

    Returns
    -------
    torch.Tensor
        On the device and in the float dtype of ``X``.

    Shape
    -----
    ``X``: (n, C, H, W); ``tau``: (n, 2, H, W) or (2, H, W); output: (n, C, H, W).
    """
    X = _as_image_tensor(X)
    n, _, H, W = X.shape
    if H < 2 or W < 2:
        raise ValueError(f"X must be at least 2 x 2 pixels to warp, got shape {tuple(X.shape)}")
    tau = torch.as_tensor(tau).to(device=X.device, dtype=X.dtype)
    if tau.ndim == 3:
        tau = tau.expand(n, *tau.shape)
    if tuple(tau.shape) != (n, 2, H, W):
        raise ValueError(
            f"tau must have shape (n, 2, H, W) = {(n, 2, H, W)} or (2, H, W), got "
            f"{tuple(tau.shape)}"
        )
    rows = torch.arange(H, device=X.device, dtype=X.dtype)[:, None]
    cols = torch.arange(W, device=X.device, dtype=X.dtype)[None, :]
    source_rows = rows - tau[:, 0]  # (n, H, W)
    source_cols = cols - tau[:, 1]
    # grid_sample wants (x, y) = (column, row) in [-1, 1]
    grid = torch.stack((2 * source_cols / (W - 1) - 1, 2 * source_rows / (H - 1) - 1), dim=-1)
    return F.grid_sample(X, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def displacement_norms(tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ``||tau||_inf`` and ``||grad tau||_inf`` of fields ``(n, 2, H, W)``.

    ``||tau||_inf = max_u |tau(u)|_2`` in pixels. ``||grad tau||_inf = max_u
    ||J(u)||_op``, the largest *operator (spectral) norm* of the 2 x 2
    Jacobian ``J(u)[i, j] = d tau_i / d u_j``, estimated by finite
    differences (central inside, one-sided at the border; pixel spacing 1),
    so it is dimensionless.

    Parameters
    ----------
    tau : torch.Tensor
        Displacement fields, channel 0 vertical, channel 1 horizontal.

    Returns
    -------
    tuple of torch.Tensor
        ``(tau_inf, grad_tau_inf)``.

    Shape
    -----
    ``tau``: (n, 2, H, W), H, W >= 2; outputs: (n,) and (n,).
    """
    tau_inf = tau.square().sum(dim=1).sqrt().amax(dim=(1, 2))
    d_rows, d_cols = torch.gradient(tau, dim=(2, 3))  # each (n, 2, H, W)
    # J = [[a, b], [c, d]] = [[dty/drow, dty/dcol], [dtx/drow, dtx/dcol]]; its largest singular
    # value in closed form: s^2 = (|J|_F^2 + sqrt(|J|_F^4 - 4 det^2)) / 2
    a, c = d_rows[:, 0], d_rows[:, 1]
    b, d = d_cols[:, 0], d_cols[:, 1]
    frobenius2 = a * a + b * b + c * c + d * d
    det = a * d - b * c
    discriminant = (frobenius2 * frobenius2 - 4 * det * det).clamp_min(0)
    grad_inf = ((frobenius2 + discriminant.sqrt()) / 2).sqrt().amax(dim=(1, 2))
    return tau_inf, grad_inf


def _nonnegative_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


def _gaussian_smooth(noise: torch.Tensor, sigma: float, radius: int) -> torch.Tensor:
    """Separable Gaussian filter, 'valid' mode: (n, 2, H + 2r, W + 2r) -> (n, 2, H, W)."""
    offsets = torch.arange(-radius, radius + 1, dtype=noise.dtype)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = noise.shape[1]
    out = F.conv2d(noise, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)


def smooth_deformation(
    X: np.ndarray | torch.Tensor,
    max_displacement: float,
    smoothness: float = 2.0,
    seed: int = 0,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Deform each image by a smooth random displacement field of a given size.

    For each image, white noise (2 channels) is filtered by a Gaussian of
    standard deviation ``smoothness`` pixels (drawn on a grid larger by
    ``ceil(3 smoothness)`` on each side, so the field has no border effect),
    then scaled so that ``max_u |tau(u)|_2 == max_displacement`` exactly;
    the image is resampled as ``X(u - tau(u))`` (:func:`warp`). Larger
    ``smoothness`` gives smaller ``||grad tau||_inf`` at the same size.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Images, at least 2 x 2 pixels.
    max_displacement : float
        ``||tau||_inf`` in pixels (>= 0). 0 returns an exact copy of ``X``.
    smoothness : float
        Standard deviation of the Gaussian filter in pixels (>= 0; 0 means
        independent displacements per pixel).
    seed : int
        Seed of the field (CPU float64 generator).

    Returns
    -------
    deformed : torch.Tensor
        On the device and in the float dtype of ``X``.
    info : dict
        ``tau_inf`` (float): max over images of ``max_u |tau(u)|_2`` in pixels;
        ``grad_tau_inf`` (float): max over images of the largest operator
        (spectral) norm of the Jacobian of ``tau``, by finite differences
        (see :func:`displacement_norms`); ``grad_tau_inf_per_image`` (float64
        tensor (n,)); ``tau`` (the fields (n, 2, H, W), on X's device and
        dtype).

    Shape
    -----
    ``X``: (n, C, H, W); ``deformed``: (n, C, H, W).
    """
    X = _as_image_tensor(X)
    max_displacement = _nonnegative_float(max_displacement, "max_displacement")
    smoothness = _nonnegative_float(smoothness, "smoothness")
    n, _, H, W = X.shape
    if H < 2 or W < 2:
        raise ValueError(f"X must be at least 2 x 2 pixels, got shape {tuple(X.shape)}")
    if max_displacement == 0:
        tau = torch.zeros((n, 2, H, W), dtype=X.dtype, device=X.device)
        info = {
            "tau_inf": 0.0,
            "grad_tau_inf": 0.0,
            "grad_tau_inf_per_image": torch.zeros(n, dtype=torch.float64),
            "tau": tau,
        }
        return X.clone(), info
    generator = torch.Generator().manual_seed(seed)
    radius = math.ceil(3 * smoothness) if smoothness > 0 else 0
    noise = torch.randn((n, 2, H + 2 * radius, W + 2 * radius), generator=generator,
                        dtype=torch.float64)  # fmt: skip
    tau = _gaussian_smooth(noise, smoothness, radius) if radius > 0 else noise
    peak = tau.square().sum(dim=1).sqrt().amax(dim=(1, 2))
    tau = tau * (max_displacement / peak)[:, None, None, None]
    tau_inf, grad_inf = displacement_norms(tau)
    info = {
        "tau_inf": float(tau_inf.max()),
        "grad_tau_inf": float(grad_inf.max()),
        "grad_tau_inf_per_image": grad_inf,
        "tau": tau.to(device=X.device, dtype=X.dtype),
    }
    return warp(X, info["tau"]), info
