"""Kernel ridge regression and one-vs-all classification that never holds the Gram in memory.

The Gram is read in row panels (a few zarr chunks, or slices of a tensor or a
Dask array), so a store written by :func:`kernelzoo.integrations.dask.gram_to_store`
much larger than memory can be solved against. The linear systems
``(K + lambda I) A = Y`` are solved by conjugate gradients with several
right-hand sides: every class (one-vs-all column of ``Y``) and every candidate
lambda is one column of one block, each column runs its own CG recursion, and
all columns share one pass over ``K`` per iteration, which is what costs when
``K`` is on disk. Lambda is chosen on a validation split through the cross
Gram ``K(X_val, X_train)``, never on the test set.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import parse_memory_budget
from kernelzoo.store import check_complete, open_store

__all__ = [
    "GramPanels",
    "RidgeSelection",
    "block_cg",
    "kernel_ridge_from_store",
    "kernel_ridge_path",
    "predict",
]


def _is_dask(source: Any) -> bool:
    return type(source).__module__.split(".")[0] == "dask"


class GramPanels:
    """Row panels of a Gram matrix held anywhere: tensor, numpy, zarr store, Dask array.

    Parameters
    ----------
    source : torch.Tensor, numpy.ndarray, path, zarr.Array or dask.array.Array
        A path is a store from ``gram_to_store`` (refused unless complete).
    memory_budget : int or str, optional
        Bytes one panel may take in the compute dtype (default: the global
        budget). A matrix that fits the budget whole is read once and kept.
    dtype : torch.dtype
        Compute dtype of the products (float64 by default).
    device : str or torch.device
        Where the products are computed.
    name : str
        The matrix's name in messages.
    dask_scheduler : str, optional
        ``scheduler=`` of each panel's ``compute()`` for a Dask source (default:
        Dask's current one, e.g. a distributed client; ``"sync"`` or
        ``"threads"`` read a zarr-backed array in this process, which is faster
        than shipping every panel through a cluster on each CG iteration).

    Shape
    -----
    ``source`` ``(n, m)``; :meth:`matmul` ``(m, c)`` -> ``(n, c)``.
    """

    def __init__(
        self,
        source: Any,
        memory_budget: float | str | None = None,
        dtype: torch.dtype = torch.float64,
        device: str | torch.device = "cpu",
        name: str = "K",
        dask_scheduler: str | None = None,
    ) -> None:
        self.name = name
        self.dask_scheduler = dask_scheduler
        self.dtype = dtype
        self.device = torch.device(device)
        if isinstance(source, (str, os.PathLike)):
            check_complete(source)
            source = open_store(source)
        if not hasattr(source, "shape") or len(source.shape) != 2:
            raise ValueError(
                f"{name} must be a 2-D tensor, array, zarr array, Dask array or store path, "
                f"got {type(source).__name__} of shape {getattr(source, 'shape', None)}"
            )
        self.source = source
        self.shape = (int(source.shape[0]), int(source.shape[1]))
        if _is_dask(source):
            align = int(max(source.chunks[0]))
        elif hasattr(source, "chunks") and isinstance(source.chunks, tuple):
            align = int(source.chunks[0])  # zarr: whole chunks per panel
        else:
            align = 1
        item = torch.finfo(dtype).bits // 8
        budget = parse_memory_budget(memory_budget)
        rows = max(1, budget // max(1, 2 * item * self.shape[1]))  # stored panel + cast copy
        self.panel_rows = max(align, rows // align * align)
        #: the whole matrix fits the budget: read it once and keep it
        self.keep_in_memory = item * self.shape[0] * self.shape[1] <= budget
        self._held: torch.Tensor | None = None

    def panels(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        """``(r0, r1, K[r0:r1])`` in the compute dtype and device, top to bottom.

        Yields
        ------
        tuple
            ``(r0, r1, K[r0:r1])``.
        """
        if self._held is not None:
            yield 0, self.shape[0], self._held
            return
        if self.keep_in_memory:
            held = torch.empty(self.shape, dtype=self.dtype, device=self.device)
            for r0, r1, panel in self._read_panels():
                held[r0:r1] = panel
            self._held = held
            yield 0, self.shape[0], held
            return
        yield from self._read_panels()

    def _read_panels(self) -> Iterator[tuple[int, int, torch.Tensor]]:
        n = self.shape[0]
        for r0 in range(0, n, self.panel_rows):
            r1 = min(n, r0 + self.panel_rows)
            block = self.source[r0:r1]
            if _is_dask(block):
                block = block.compute(scheduler=self.dask_scheduler)
            if not isinstance(block, torch.Tensor):
                block = torch.from_numpy(np.ascontiguousarray(block))
            yield r0, r1, block.to(device=self.device, dtype=self.dtype)

    def matmul(self, v: torch.Tensor) -> torch.Tensor:
        """``K @ v``, reading ``K`` once.

        Parameters
        ----------
        v : torch.Tensor
            ``(m, c)``.

        Returns
        -------
        torch.Tensor
            ``(n, c)``.
        """
        if v.shape[0] != self.shape[1]:
            raise ValueError(f"{self.name} has {self.shape[1]} columns but v has {v.shape[0]} rows")
        out = torch.empty((self.shape[0], v.shape[1]), dtype=v.dtype, device=v.device)
        for r0, r1, panel in self.panels():
            out[r0:r1] = panel @ v
        return out

    def diagonal(self) -> torch.Tensor:
        """The diagonal of a square Gram (one pass)."""
        out = torch.empty(min(self.shape), dtype=self.dtype, device=self.device)
        for r0, r1, panel in self.panels():
            if r0 < self.shape[1]:
                stop = min(r1, self.shape[1])
                out[r0:stop] = panel[: stop - r0].diagonal(offset=r0)
        return out


def block_cg(
    matmul: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    shifts: torch.Tensor,
    tol: float = 1e-8,
    max_iter: int | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """Solve ``(K + diag(shifts_j)) x_j = rhs_j`` for every column ``j`` by conjugate gradients.

    Each column has its own CG scalars (its own shift too); the product with
    ``K`` is shared, one ``matmul`` call per iteration for the whole block.
    Converged columns are frozen and left out of later products.

    Parameters
    ----------
    matmul : callable
        ``matmul(P) -> K @ P`` for a symmetric positive semi-definite ``K``.
    rhs : torch.Tensor, ``(n, c)``
    shifts : torch.Tensor, ``(c,)``
        Non-negative shift of each column (lambda); ``K + shift I`` must be positive definite.
    tol : float
        Stop a column when ``|r_j| <= tol |rhs_j|``.
    max_iter : int, optional
        Default ``10 n`` (CG's exact-arithmetic bound is ``n``; rounding needs
        more on ill-conditioned systems), at most 5000: each one is a pass over ``K``.

    Returns
    -------
    x : torch.Tensor, ``(n, c)``
        The solutions.
    info : dict
        ``iterations`` (int), ``residuals`` (``(c,)`` relative), ``converged`` (bool).
    """
    if rhs.ndim != 2:
        raise ValueError(f"rhs must be 2-D (n, c), got shape {tuple(rhs.shape)}")
    n, c = rhs.shape
    shifts = torch.as_tensor(shifts, dtype=rhs.dtype, device=rhs.device).reshape(-1)
    if shifts.shape[0] != c:
        raise ValueError(f"shifts has {shifts.shape[0]} entries but rhs has {c} columns")
    if not (tol > 0):
        raise ValueError(f"tol must be > 0, got {tol!r}")
    if max_iter is None:
        max_iter = min(10 * n, 5000)
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rhs_norm = rhs.norm(dim=0)
    rs = (r * r).sum(0)
    active = rs.sqrt() > tol * rhs_norm
    iterations = 0
    while bool(active.any()) and iterations < max_iter:
        idx = active.nonzero().reshape(-1)
        p_a = p[:, idx]
        q_a = matmul(p_a) + shifts[idx] * p_a
        alpha = rs[idx] / (p_a * q_a).sum(0)
        x[:, idx] += alpha * p_a
        r_a = r[:, idx] - alpha * q_a
        rs_new = (r_a * r_a).sum(0)
        p[:, idx] = r_a + (rs_new / rs[idx]) * p_a
        r[:, idx] = r_a
        rs[idx] = rs_new
        active[idx] = rs_new.sqrt() > tol * rhs_norm[idx]
        iterations += 1
    residuals = rs.sqrt() / torch.where(rhs_norm > 0, rhs_norm, torch.ones_like(rhs_norm))
    return x, {
        "iterations": iterations,
        "residuals": residuals,
        "converged": not bool(active.any()),
    }


@dataclasses.dataclass
class RidgeSelection:
    """The outcome of :func:`kernel_ridge_path`.

    ``scores[k]`` is the validation score of ``lambdas[k]`` (accuracy for
    classification, minus the mean squared error for regression);
    ``coefficients`` ``(n_train, n_outputs)`` are those of ``best_lambda``;
    ``classes`` the class labels of the one-vs-all columns (None for regression);
    ``shifts[k]`` the ridge actually added to the diagonal for ``lambdas[k]``.

    Parameters
    ----------
    lambdas : list of float
        The grid.
    shifts : list of float
        The ridge added for each lambda.
    scores : list of float
        Validation score of each lambda.
    best_lambda : float
        The chosen lambda.
    coefficients : torch.Tensor
        ``(n_train, n_outputs)`` at ``best_lambda``.
    classes : numpy.ndarray or None
        Labels of the one-vs-all columns.
    iterations : int
        CG iterations.
    converged : bool
        Whether every column converged.
    """

    lambdas: list[float]
    shifts: list[float]
    scores: list[float]
    best_lambda: float
    coefficients: torch.Tensor
    classes: np.ndarray | None
    iterations: int
    converged: bool


def _targets(y_train: Any, y_val: Any) -> tuple[torch.Tensor, Any, np.ndarray | None, bool]:
    """One-hot targets for integer labels (one-vs-all), float targets otherwise."""
    yt = np.asarray(y_train.cpu() if isinstance(y_train, torch.Tensor) else y_train)
    yv = np.asarray(y_val.cpu() if isinstance(y_val, torch.Tensor) else y_val)
    if np.issubdtype(yt.dtype, np.integer) and yt.ndim == 1:
        classes = np.unique(yt)
        onehot = (yt[:, None] == classes[None, :]).astype(np.float64)
        return torch.from_numpy(onehot), yv, classes, True
    if yt.ndim == 1:
        yt, yv = yt[:, None], yv.reshape(-1, 1)
    return torch.from_numpy(yt.astype(np.float64)), yv.astype(np.float64), None, False


def predict(
    cross_gram: Any,
    coefficients: torch.Tensor,
    classes: np.ndarray | None = None,
    memory_budget: float | str | None = None,
) -> np.ndarray:
    """Predictions ``K(X_test, X_train) @ A`` (class labels when ``classes`` is given).

    Shape: ``cross_gram`` ``(n_test, n_train)``, ``coefficients`` ``(n_train, c)``
    -> ``(n_test,)`` labels, or ``(n_test, c)`` values.

    Parameters
    ----------
    cross_gram : tensor, array, store path or Dask array
        ``K(X_test, X_train)``.
    coefficients : torch.Tensor
        ``(n_train, c)``.
    classes : numpy.ndarray, optional
        Labels of the columns: return labels.
    memory_budget : int or str, optional
        Bytes per panel.

    Returns
    -------
    numpy.ndarray
        Labels or values.
    """
    panels = GramPanels(cross_gram, memory_budget, coefficients.dtype, coefficients.device, "K")
    scores = panels.matmul(coefficients).cpu().numpy()
    return scores if classes is None else classes[scores.argmax(1)]


def _check_lambdas(lambdas: Sequence[float]) -> list[float]:
    values = [float(v) for v in np.atleast_1d(np.asarray(lambdas, dtype=np.float64))]
    if not values or not all(np.isfinite(v) and v > 0 for v in values):
        raise ValueError(f"lambdas must be a non-empty list of positive numbers, got {lambdas!r}")
    return values


def kernel_ridge_path(
    train_gram: Any,
    val_cross_gram: Any,
    y_train: Any,
    y_val: Any,
    lambdas: Sequence[float],
    tol: float = 1e-8,
    max_iter: int | None = None,
    memory_budget: float | str | None = None,
    device: str | torch.device = "cpu",
    dask_scheduler: str | None = None,
    relative: bool = False,
) -> RidgeSelection:
    """Kernel ridge for every lambda at once, out of core; lambda chosen on the validation split.

    More than eight parameters because it is the solver's public entry point: the Grams
    and labels of both splits, the lambda grid and the solver settings, all but the data
    with defaults.

    Solves ``(K + lambda I) A = Y`` (``Y`` one-hot for integer labels:
    one-vs-all) with :func:`block_cg`, all lambdas and classes in one block,
    so ``K`` is read once per CG iteration whatever their number; then scores
    each lambda on ``K(X_val, X_train) @ A`` (one more pass over the cross Gram).
    Ties go to the largest lambda.

    Eleven parameters, on purpose: the data of one validation split (two Grams,
    two label sets, the lambda grid) and the optional knobs of the solver and of
    the Gram reader, all defaulted; a bundling object would only rename them.

    Parameters
    ----------
    train_gram : store path, tensor, numpy, zarr or Dask array, ``(n, n)``
    val_cross_gram : same kinds, ``(n_val, n)``
        ``K(X_val, X_train)``.
    y_train, y_val : labels ``(n,)``, ``(n_val,)`` (integers: classification),
        or float targets ``(n,)``/``(n, c)``.
    lambdas : sequence of float > 0
    tol, max_iter : see :func:`block_cg`.
    memory_budget, device, dask_scheduler : see :class:`GramPanels`.
    relative : bool
        False: the ridge is ``lambda`` itself. True: it is ``n * lambda *
        mean(diag K)``, the convention of the accuracy harness (a kernel
        divided by its mean diagonal, ridge ``n lambda``), which gives the
        same predictions as that harness for the same ``lambda`` (one more
        pass over ``K`` for its diagonal).

    Returns
    -------
    RidgeSelection
        Every lambda's score, the best lambda and its coefficients.
    """
    lambda_values = _check_lambdas(lambdas)
    k_train = GramPanels(
        train_gram, memory_budget, torch.float64, device, "train_gram", dask_scheduler
    )
    k_val = GramPanels(
        val_cross_gram, memory_budget, torch.float64, device, "val_cross_gram", dask_scheduler
    )
    n = k_train.shape[0]
    if k_train.shape != (n, n):
        raise ValueError(f"train_gram must be square, got shape {k_train.shape}")
    if k_val.shape[1] != n:
        raise ValueError(
            f"val_cross_gram has {k_val.shape[1]} columns but train_gram has {n} rows: it must "
            f"be K(X_val, X_train)"
        )
    targets, y_val_np, classes, is_classification = _targets(y_train, y_val)
    if targets.shape[0] != n:
        raise ValueError(f"y_train has {targets.shape[0]} entries but train_gram is {n} x {n}")
    if y_val_np.shape[0] != k_val.shape[0]:
        raise ValueError(
            f"y_val has {y_val_np.shape[0]} entries but val_cross_gram has {k_val.shape[0]} rows"
        )
    targets = targets.to(device)
    n_out, n_lambda = targets.shape[1], len(lambda_values)
    rhs = targets.repeat(1, n_lambda)  # column block k holds lambda k
    scale = float(n * k_train.diagonal().mean()) if relative else 1.0
    ridge = [lam * scale for lam in lambda_values]
    shifts = torch.tensor(ridge, dtype=torch.float64, device=device).repeat_interleave(n_out)
    coef, info = block_cg(k_train.matmul, rhs, shifts, tol=tol, max_iter=max_iter)
    if not info["converged"]:
        warnings.warn(
            f"kernel ridge: CG stopped after {info['iterations']} iterations with relative "
            f"residual up to {float(info['residuals'].max()):.2e} (tol {tol:g}); raise max_iter "
            f"or the smallest lambda",
            RuntimeWarning,
            stacklevel=2,
        )
    outputs = k_val.matmul(coef).cpu().numpy()
    scores = []
    for k in range(n_lambda):
        out = outputs[:, k * n_out : (k + 1) * n_out]
        if is_classification:
            scores.append(float(np.mean(classes[out.argmax(1)] == y_val_np)))
        else:
            scores.append(-float(np.mean((out - y_val_np) ** 2)))
    best = max(range(n_lambda), key=lambda k: (scores[k], lambda_values[k]))
    return RidgeSelection(
        lambdas=lambda_values,
        shifts=ridge,
        scores=scores,
        best_lambda=lambda_values[best],
        coefficients=coef[:, best * n_out : (best + 1) * n_out].contiguous(),
        classes=classes,
        iterations=info["iterations"],
        converged=info["converged"],
    )


def kernel_ridge_from_store(
    train_store: Any,
    val_cross_store: Any,
    y_train: Any,
    y_val: Any,
    lambdas: Sequence[float],
    tol: float = 1e-8,
    max_iter: int | None = None,
    memory_budget: float | str | None = None,
    relative: bool = False,
) -> tuple[float, torch.Tensor]:
    """``(best_lambda, coefficients)`` of one-vs-all kernel ridge read from Gram stores.

    More than eight parameters because it mirrors :func:`kernel_ridge_path`'s arguments
    for Grams held in stores.

    The entry point for Grams that do not fit in memory: ``train_store`` holds
    ``K(X_train, X_train)`` and ``val_cross_store`` ``K(X_val, X_train)``
    (paths written by ``gram_to_store``, or any source :class:`GramPanels`
    reads). See :func:`kernel_ridge_path` for the scores of every lambda and
    for ``relative`` (False: ``lambda`` is the ridge itself).

    Shape: coefficients ``(n_train, n_classes)`` (float64); predict with
    :func:`predict` on ``K(X_test, X_train)``.

    Parameters
    ----------
    train_store : store path or any source :class:`GramPanels` reads
        ``K(X_train, X_train)``.
    val_cross_store : same kinds
        ``K(X_val, X_train)``.
    y_train, y_val : array
        Labels or targets.
    lambdas : sequence of float
        The grid.
    tol : float
        CG tolerance.
    max_iter : int, optional
        CG iterations.
    memory_budget : int or str, optional
        Bytes per panel.
    relative : bool
        As :func:`kernel_ridge_path`.

    Returns
    -------
    tuple
        ``(best_lambda, coefficients)``.
    """
    selection = kernel_ridge_path(
        train_store, val_cross_store, y_train, y_val, lambdas, tol, max_iter, memory_budget,
        relative=relative,
    )
    return selection.best_lambda, selection.coefficients
