"""Shared pieces of :mod:`kernelzoo.predict`: argument checks, return types, the
spectral and Cholesky solvers of a regularised train Gram."""

from __future__ import annotations

import math
from collections import namedtuple
from typing import Any, NamedTuple

import numpy as np
import torch


_GETS = ("nngp", "ntk")


class Gaussian(NamedTuple):
    """``(mean, covariance)`` of the ensemble's outputs.

    Shape: ``mean`` ``t.shape + (m, k)``; ``covariance`` ``t.shape + (m, m)``
    (the same for every output column, as neural-tangents' ``trace_axes``).

    Parameters
    ----------
    mean : torch.Tensor
        The mean.
    covariance : torch.Tensor or None
        The covariance (None unless asked for).
    """

    mean: torch.Tensor
    covariance: torch.Tensor


_NAMEDTUPLES: dict[tuple[str, ...], type] = {}


def _gaussians(fields: tuple[str, ...]) -> type:
    """The ``Gaussians`` namedtuple with these fields (neural-tangents' return type)."""
    if fields not in _NAMEDTUPLES:
        _NAMEDTUPLES[fields] = namedtuple("Gaussians", fields)
    return _NAMEDTUPLES[fields]


# ----------------------------------------------------------------------------- checks
def _as_tensor(
    a: Any, name: str, dtype: torch.dtype | None = None, device: torch.device | None = None
) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(f"{name} must be an array or tensor of numbers, got {type(a).__name__}")
        t = torch.from_numpy(np.array(arr))
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
    t = t.to(dtype=dtype, device=device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def _check_number(value: Any, name: str, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _square(k: torch.Tensor, name: str, n: int | None = None) -> torch.Tensor:
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) Gram, got shape {tuple(k.shape)}")
    if n is not None and k.shape[0] != n:
        raise ValueError(f"{name} is {tuple(k.shape)} but y_train has {n} rows")
    return k


def _targets(
    y_train: Any, n: int | None, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, bool]:
    """``(n, k)`` targets, and whether they came as ``(n,)``."""
    y = _as_tensor(y_train, "y_train", dtype, device)
    if y.ndim not in (1, 2):
        raise ValueError(
            f"y_train must be (n, k) targets (or (n,) for one output), got shape {tuple(y.shape)}"
        )
    if y.shape[0] == 0 or y.numel() == 0:
        raise ValueError(f"y_train is empty (shape {tuple(y.shape)})")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"y_train has {y.shape[0]} rows but k_train_train is ({n}, {n})")
    return (y[:, None], True) if y.ndim == 1 else (y, False)


def _regularized(k: torch.Tensor, diag_reg: float, absolute: bool) -> torch.Tensor:
    """neural-tangents' ``_add_diagonal_regularizer``."""
    n = k.shape[0]
    scale = diag_reg if absolute else diag_reg * torch.trace(k) / n
    return k + scale * torch.eye(n, dtype=k.dtype, device=k.device)


def _times(
    t: Any, dtype: torch.dtype, device: torch.device, learning_rate: float
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``t * learning_rate`` flattened to ``(T, 1)``, and ``t``'s shape."""
    if isinstance(t, torch.Tensor):
        times = t.detach().to(dtype=dtype, device=device)
    else:
        arr = np.asarray(t)
        if (
            arr.dtype == object
            or not np.issubdtype(arr.dtype, np.number)
            or np.issubdtype(arr.dtype, np.complexfloating)
        ):
            raise TypeError(f"t must be None, a number or an array of numbers, got {t!r}")
        times = torch.as_tensor(arr.astype(np.float64), dtype=dtype, device=device)
    if times.is_complex() or torch.isnan(times).any():
        raise ValueError(f"t must hold real numbers (no NaN), got {t!r}")
    return (times * learning_rate).reshape(-1, 1), tuple(times.shape)


class _Eigen:
    """Eigendecomposition of a regularised Gram, and functions of it (neural-tangents'
    ``_get_fns_in_eigenbasis`` / ``eigenspace``)."""

    def __init__(self, k: torch.Tensor, diag_reg: float, absolute: bool, size: int) -> None:
        evals, self.evecs = torch.linalg.eigh(_regularized(k, diag_reg, absolute))
        self.evals = evals[None, :]  # (1, n)
        self.size = size  # y_train.size: the loss normalisation

    def expm1(self, t: torch.Tensor) -> torch.Tensor:
        """``expm1(-max(l, 0) t / N)``, ``(T, n)``."""
        return torch.expm1(-self.evals.clamp_min(0.0) * t / self.size)

    def inv_expm1(self, t: torch.Tensor) -> torch.Tensor:
        """``expm1(-max(l, 0) t / N) / |l|``, ``(T, n)``."""
        return self.expm1(t) / self.evals.abs()

    def apply(self, values: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """``V diag(values[t]) V^T rhs`` for each t: ``(T, n)``, ``(n, ...)`` -> ``(T, n, ...)``."""
        coef = self.evecs.T @ rhs.reshape(rhs.shape[0], -1)
        out = torch.einsum("ji,ti,ik->tjk", self.evecs, values, coef)
        return out.reshape(values.shape[:1] + rhs.shape)

    def matrices(self, values: torch.Tensor) -> torch.Tensor:
        """``V diag(values[t]) V^T``, ``(T, n, n)``."""
        return torch.einsum("ji,ti,ki->tjk", self.evecs, values, self.evecs)


class _Cholesky:
    """Cholesky factor of a regularised Gram (neural-tangents' ``_get_cho_solve``)."""

    def __init__(self, k: torch.Tensor, diag_reg: float, absolute: bool) -> None:
        a = _regularized(k, diag_reg, absolute)
        factor, info = torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            raise ValueError(
                "the regularised train Gram is not positive definite (Cholesky failed at "
                f"column {int(info)}); increase diag_reg (currently a relative "
                f"{diag_reg!r} if diag_reg_absolute_scale is False)"
            )
        self.factor = factor

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``K^{-1} b``, ``(n, ...)`` -> ``(n, ...)``."""
        x = torch.cholesky_solve(b.reshape(b.shape[0], -1), self.factor)
        return x.reshape(b.shape)


def _broadcast(
    value: Any,
    name: str,
    shape: tuple[int, ...],
    dtype: torch.dtype,
    device: torch.device,
    vector_targets: bool,
) -> torch.Tensor:
    """A scalar or an array that broadcasts to ``shape`` (initial outputs)."""
    t = _as_tensor(value, name, dtype, device)
    if vector_targets and t.ndim >= 1:
        t = t[..., None]
    try:
        torch.broadcast_shapes(t.shape, shape)
    except RuntimeError:
        expected = shape[:1] if vector_targets else shape
        raise ValueError(
            f"{name} has shape {tuple(t.shape[:-1] if vector_targets and t.ndim else t.shape)} "
            f"but the outputs are {expected}; pass a scalar or an array of that shape"
        ) from None
    return t


# ----------------------------------------------------------------------------- from Grams
