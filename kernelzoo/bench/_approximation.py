"""How well each approximation tracks its exact kernel as the budget grows."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    TimeLimit,
    as_input,
    describe_error,
    error_row,
    linalg_threads,
    make_approximation,
    make_row,
    methods_of,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)

__all__ = ["APPROXIMATION_METRICS", "approximation", "approximation_errors"]

#: Metrics of one (method, budget, seed) measurement.
APPROXIMATION_METRICS = (
    "rel_frobenius_error",
    "rel_spectral_error",
    "rel_max_entry_error",
    "alignment",
    "fit_seconds",
    "eval_seconds",
)

#: Errors after which a method is not tried at further budgets/seeds.
_FATAL = (ImportError, NotImplementedError, AttributeError)


def _spectral_norm(matrix: np.ndarray) -> float:
    """Largest |eigenvalue| of a symmetric matrix (Lanczos; dense fallback)."""
    from scipy.sparse.linalg import ArpackError, eigsh

    if matrix.shape[0] <= 32:
        return float(np.abs(np.linalg.eigvalsh(matrix)).max())
    try:
        top = eigsh(
            matrix,
            k=1,
            which="LM",
            v0=np.ones(matrix.shape[0]),
            return_eigenvectors=False,
            tol=1e-8,
        )
        return float(np.abs(top).max())
    except ArpackError:
        return float(np.abs(np.linalg.eigvalsh(matrix)).max())


def approximation_errors(exact: torch.Tensor, approx: torch.Tensor) -> dict[str, float]:
    """Relative Frobenius, spectral and max-entry errors and the alignment of two Grams.

    All relative to the exact Gram: ``|K - Ka|_F / |K|_F``, ``|K - Ka|_2 /
    |K|_2`` (symmetric parts; Lanczos on the host in float64),
    ``max|K - Ka| / max|K|``; alignment ``<K, Ka>_F / (|K|_F |Ka|_F)`` (1 is
    perfect).

    Shape: ``exact``, ``approx``: (n, n).
    """
    k = exact.detach().to(device="cpu", dtype=torch.float64).numpy()
    ka = approx.detach().to(device="cpu", dtype=torch.float64).numpy()
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
    }


def _n_features(approx: Any) -> Any:
    try:
        return int(approx.n_features)
    except Exception:  # noqa: BLE001 - Gram-only approximations have none
        return None


def approximation(
    kernels: Iterable[Any],
    X: Any,
    budgets: Sequence[Any] = (16, 32, 64, 128),
    seeds: Sequence[int] = (0, 1, 2),
    *,
    y: Any = None,
    methods: Sequence[str] | None = None,
    method_seconds: float | None = None,
    dataset: str = "",
    device: Any = "cpu",
    dtype: Any = torch.float32,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Approximation error against budget, for every (exact kernel, approximation) pair.

    For each kernel the exact Gram of ``X`` is computed once; each
    approximation method in ``kernel.approximations`` is fitted on ``X`` at
    every budget and seed and its Gram compared with the exact one
    (:func:`approximation_errors`), with the time to fit and to evaluate.
    Budgets count what each method counts (features, landmarks, width,
    anchors per layer); for ``nystrom`` with uniform landmarks the landmark
    sets of one seed are prefixes of one seeded permutation, so they are
    nested along the budgets.

    Parameters
    ----------
    kernels : iterable of spec strings or kernels
    X : array or tensor, ``(n, ...)``
        Images ``(n, C, H, W)`` (vector kernels flatten them) or vectors.
    y : array, ``(n,)``, optional
        Labels, passed to ``fit`` (methods that learn from labels need them).
    budgets : sequence
        Usually a geometric grid (``16, 32, 64, ...``).
    seeds : sequence of int
    methods : sequence of str, optional
        Keep only these methods (``"exact"`` is always computed).
    method_seconds : float, optional
        Once a method has taken this long for a kernel, its remaining (larger)
        budgets get a "skipped" row instead of running.
    dataset : str
        Label for the ``dataset`` column.
    device, dtype
        Where and in which precision to compute.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`~kernelzoo.bench._common.COLUMNS`; metrics
        :data:`APPROXIMATION_METRICS` per (method, budget, seed) and
        ``gram_seconds`` for the exact Gram. ``seconds`` of an error row is
        the fit plus evaluation time. A kernel or method that fails gives a
        row with its ``error``.

    Shape
    -----
    ``X``: (n, ...).
    """
    dtype = parse_dtype(dtype)
    progress = progress or Progress()
    x = as_input(X, device, dtype)
    labels = None if y is None else np.asarray(y)
    n = int(x.shape[0])
    common = {"dataset": dataset, "n": n, "device": device, "dtype": dtype}
    rows: list[dict[str, Any]] = []
    for case in resolve_kernels(kernels):
        rows.extend(
            _one_kernel(
                case,
                x,
                labels,
                budgets,
                seeds,
                methods,
                common,
                progress,
                TimeLimit(method_seconds),
            )
        )
    return to_frame(rows, metadata=metadata or run_metadata(device))


def _one_kernel(
    case: KernelCase,
    x: torch.Tensor,
    labels: np.ndarray | None,
    budgets: Sequence[Any],
    seeds: Sequence[int],
    methods: Sequence[str] | None,
    common: dict[str, Any],
    progress: Progress,
    limit: TimeLimit,
) -> list[dict[str, Any]]:
    harness = "approximation"
    if not case.ok:
        progress.step(case.spec)
        return [error_row(harness, case, "exact", "rel_frobenius_error", case.error, **common)]
    progress.note(f"{case.spec} exact")
    try:
        exact, seconds = timed(lambda: case.kernel.gram(x), x.device)
    except Exception as exc:  # noqa: BLE001
        progress.step(case.spec)
        return [
            error_row(harness, case, "exact", "rel_frobenius_error", describe_error(exc), **common)
        ]
    rows = [make_row(harness, case, "exact", "gram_seconds", seconds, seconds=seconds, **common)]
    for method in methods_of(case, methods):
        if method == "exact":
            continue
        progress.note(f"{case.spec} {method}")
        rows.extend(_one_method(case, method, x, labels, exact, budgets, seeds, common, limit))
    progress.step(case.spec)
    return rows


def _one_method(
    case: KernelCase,
    method: str,
    x: torch.Tensor,
    labels: np.ndarray | None,
    exact: torch.Tensor,
    budgets: Sequence[Any],
    seeds: Sequence[int],
    common: dict[str, Any],
    limit: TimeLimit,
) -> list[dict[str, Any]]:
    harness = "approximation"
    rows: list[dict[str, Any]] = []
    for budget in budgets:  # budgets outer: a time limit skips the largest ones
        for seed in seeds:
            fields = dict(budget=budget, seed=seed, **common)
            if limit.exceeded(method):
                rows.append(
                    error_row(
                        harness,
                        case,
                        method,
                        "rel_frobenius_error",
                        limit.message(method),
                        **fields,
                    )
                )
                continue
            try:
                approx = make_approximation(case.kernel, method, budget, seed)
                _, fit_seconds = timed(lambda a=approx: a.fit(x, labels), x.device)
                gram, eval_seconds = timed(lambda a=approx: a.gram(x), x.device)
                limit.add(method, fit_seconds + eval_seconds)
                with linalg_threads("cpu"):
                    errors = approximation_errors(exact, gram)
            except Exception as exc:  # noqa: BLE001
                rows.append(
                    error_row(
                        harness, case, method, "rel_frobenius_error", describe_error(exc), **fields
                    )
                )
                if isinstance(exc, _FATAL):
                    return rows
                continue
            fields["n_features"] = _n_features(approx)
            total = fit_seconds + eval_seconds
            for metric, value in errors.items():
                rows.append(make_row(harness, case, method, metric, value, seconds=total, **fields))
            rows.append(
                make_row(
                    harness, case, method, "fit_seconds", fit_seconds, seconds=fit_seconds, **fields
                )
            )
            rows.append(
                make_row(
                    harness,
                    case,
                    method,
                    "eval_seconds",
                    eval_seconds,
                    seconds=eval_seconds,
                    **fields,
                )
            )
    return rows
