"""Stability of each kernel's representation to translations and smooth deformations.

Bietti & Mairal (2019) bound, for ``||grad tau||_inf <= 1/2``,
``||Phi(L_tau x) - Phi(x)|| <= (C1 (1 + n) ||grad tau||_inf + (C2 / sigma_n)
||tau||_inf) ||x||``. This harness measures the left side, relative to
``||Phi(x)|| = sqrt(K(x, x))``, through the kernel alone:
``||Phi(x) - Phi(y)||^2 = K(x, x) + K(y, y) - 2 K(x, y)`` (clamped at 0), for
``y = L_tau x`` a translation by ``t`` pixels or a random smooth deformation
of a given ``||tau||_inf``; a ``pixels`` row gives ``||x - y|| / ||x||`` for
comparison.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    as_input,
    describe_error,
    error_row,
    make_row,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)

__all__ = ["STABILITY_COLUMNS", "rkhs_relative_distance", "stability", "transformed_inputs"]

#: Harness-specific columns: the transformation, its nominal size, and the measured
#: ``||tau||_inf`` (pixels) and ``||grad tau||_inf`` (dimensionless) of the field.
STABILITY_COLUMNS = ("transform", "magnitude", "tau_inf", "grad_tau_inf")

_HARNESS = "stability"


def _deform_helpers():
    """kernelzoo.data's translate and smooth_deformation (the one implementation)."""
    from kernelzoo.data.deform import smooth_deformation, translate

    return translate, smooth_deformation


def transformed_inputs(
    X: torch.Tensor,
    shifts: Sequence[int] = (0, 1, 2, 3),
    displacements: Sequence[float] = (0.5, 1.0, 2.0),
    smoothness: float = 2.0,
    seed: int = 0,
) -> list[tuple[str, float, float, float, torch.Tensor]]:
    """The transformed copies of images ``X``: ``(transform, magnitude, tau_inf, grad_tau_inf, Y)``.

    Translations move the content ``t`` pixels to the right (zero fill), so
    ``||tau||_inf = t`` and ``grad tau = 0``; deformations are seeded smooth
    random fields (Gaussian-filtered noise of standard deviation
    ``smoothness`` pixels) scaled to ``||tau||_inf = magnitude``, applied
    with ``grid_sample`` (:func:`kernelzoo.data.deform.smooth_deformation`);
    ``grad_tau_inf`` is the largest over the images.

    Shape: ``X`` (n, C, H, W); each ``Y`` (n, C, H, W).
    """
    translate, smooth_deformation = _deform_helpers()
    out = []
    for t in shifts:
        out.append(("translation", float(t), float(t), 0.0, translate(X, (0, int(t)))))
    for magnitude in displacements:
        y, info = smooth_deformation(X, float(magnitude), smoothness=smoothness, seed=seed)
        out.append((f"deformation(smoothness={smoothness:g})", float(magnitude),
                    float(info["tau_inf"]), float(info["grad_tau_inf"]), y))
    return out


def _paired(kernel: Any, x: torch.Tensor, y: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """``K(x_i, y_i)`` for every i, in chunks (the diagonal of small cross Grams)."""
    parts = [kernel.gram(x[i : i + chunk], y[i : i + chunk]).diagonal()
             for i in range(0, len(x), chunk)]
    return torch.cat(parts)


def rkhs_relative_distance(kernel: Any, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``||Phi(x_i) - Phi(y_i)|| / ||Phi(x_i)||`` for every i (NaN where ``K(x, x) = 0``).

    Shape: ``x``, ``y`` (n, ...) -> (n,).
    """
    kxx = kernel.diag(x).to(torch.float64)
    kyy = kernel.diag(y).to(torch.float64)
    kxy = _paired(kernel, x, y).to(torch.float64)
    distance = (kxx + kyy - 2.0 * kxy).clamp_min(0.0).sqrt()
    norm = kxx.clamp_min(0.0).sqrt()
    return torch.where(norm > 0, distance / norm.clamp_min(1e-300),
                       torch.full_like(norm, float("nan")))


def _pixel_relative_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    flat_x, flat_y = x.reshape(len(x), -1), y.reshape(len(y), -1)
    norm = flat_x.norm(dim=1).to(torch.float64)
    distance = (flat_x - flat_y).norm(dim=1).to(torch.float64)
    return torch.where(norm > 0, distance / norm.clamp_min(1e-300),
                       torch.full_like(norm, float("nan")))


def stability(
    kernels: Iterable[Any],
    X: Any,
    *,
    shifts: Sequence[int] = (0, 1, 2, 3),
    displacements: Sequence[float] = (0.5, 1.0, 2.0),
    smoothness: float = 2.0,
    seed: int = 0,
    include_pixels: bool = True,
    dataset: str = "",
    device: Any = "cpu",
    dtype: Any = torch.float32,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Relative RKHS distance between images and their translated / deformed copies.

    For every exact kernel (give several depths and pooling sizes as
    separate specs) and every transformation of :func:`transformed_inputs`,
    rows with metric ``relative_distance`` (mean over the images of
    ``||Phi(x) - Phi(L_tau x)|| / ||Phi(x)||``) and ``relative_distance_max``;
    ``method`` is ``"exact"``. With ``include_pixels`` a row of family
    ``pixels`` gives the same ratio for the raw pixels (Euclidean distance).

    Parameters
    ----------
    kernels : iterable of spec strings or kernels
    X : images ``(n, C, H, W)``
    shifts : translations in pixels (0 gives distance 0)
    displacements : ``||tau||_inf`` of the smooth deformations, in pixels
    smoothness : standard deviation (pixels) of the filter that smooths the fields
    seed : seed of the deformation fields

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~kernelzoo.bench._common.COLUMNS` plus
        :data:`STABILITY_COLUMNS`; ``n`` is the number of images.

    Shape
    -----
    ``X``: (n, C, H, W).
    """
    dtype = parse_dtype(dtype)
    progress = progress or Progress()
    x = as_input(X, device, dtype)
    if x.ndim != 4:
        raise ValueError(f"X must be images (n, C, H, W), got shape {tuple(x.shape)}")
    variants = transformed_inputs(x, shifts, displacements, smoothness, seed)
    common = {"dataset": dataset, "n": len(x), "device": device, "dtype": dtype, "seed": seed}
    rows: list[dict[str, Any]] = []
    if include_pixels:
        pixels = KernelCase("pixels", "pixels")
        for transform, magnitude, tau_inf, grad_inf, y in variants:
            ratio = _pixel_relative_distance(x, y)
            extra = {"transform": transform, "magnitude": magnitude, "tau_inf": tau_inf,
                         "grad_tau_inf": grad_inf}
            rows.append(make_row(_HARNESS, pixels, "exact", "relative_distance",
                                 float(ratio.nanmean()), **common, **extra))
            rows.append(make_row(_HARNESS, pixels, "exact", "relative_distance_max",
                                 float(_nanmax(ratio)), **common, **extra))
    for case in resolve_kernels(kernels):
        progress.note(f"{case.spec} stability")
        rows.extend(_one_kernel(case, x, variants, common))
        progress.step(case.spec)
    return to_frame(rows, extra_columns=STABILITY_COLUMNS,
                    metadata=metadata or run_metadata(device))


def _nanmax(values: torch.Tensor) -> float:
    finite = values[~torch.isnan(values)]
    return float(finite.max()) if finite.numel() else float("nan")


def _one_kernel(case: KernelCase, x: torch.Tensor, variants: list, common: dict[str, Any]):
    rows = []
    if not case.ok:
        return [error_row(_HARNESS, case, "exact", "relative_distance", case.error, **common,
                          transform="", magnitude=float("nan"))]
    for transform, magnitude, tau_inf, grad_inf, y in variants:
        extra = {"transform": transform, "magnitude": magnitude, "tau_inf": tau_inf,
                     "grad_tau_inf": grad_inf}
        try:
            ratio, seconds = timed(lambda yy=y: rkhs_relative_distance(case.kernel, x, yy),
                                   x.device)
        except Exception as exc:  # noqa: BLE001
            rows.append(error_row(_HARNESS, case, "exact", "relative_distance",
                                  describe_error(exc), **common, **extra))
            return rows
        rows.append(make_row(_HARNESS, case, "exact", "relative_distance",
                             float(ratio.nanmean()), seconds=seconds, **common, **extra))
        rows.append(make_row(_HARNESS, case, "exact", "relative_distance_max",
                             _nanmax(ratio), seconds=seconds, **common, **extra))
    return rows
