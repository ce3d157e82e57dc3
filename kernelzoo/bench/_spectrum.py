"""Eigenvalue decay of each exact Gram and its effective dimension.

A Gram whose eigenvalues fall fast has a small effective dimension
``d_eff(lambda) = trace(K (K + n lambda I)^-1) = sum_i mu_i / (mu_i + lambda)``
(``mu_i`` the eigenvalues of ``K / n``): few landmarks or features capture it,
which is why some kernels approximate with fewer anchors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    as_input,
    describe_error,
    error_row,
    linalg_threads,
    make_row,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)

__all__ = ["RELATIVE_LAMBDAS", "SPECTRUM_COLUMNS", "effective_dimension", "spectrum"]

#: Harness-specific columns: eigenvalue ``index`` (1 = largest), ``lam`` (the lambda of a
#: d_eff row, on the scale of ``K / n``) and ``lam_relative`` (lam / largest eigenvalue).
SPECTRUM_COLUMNS = ("index", "lam", "lam_relative")

#: d_eff is reported at these lambdas, relative to the largest eigenvalue of ``K / n``.
RELATIVE_LAMBDAS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)

_HARNESS = "spectrum"


def effective_dimension(eigenvalues: torch.Tensor, lam: float) -> float:
    """``sum_i mu_i / (mu_i + lam)`` for eigenvalues ``mu`` of ``K / n`` (negatives as 0).

    Shape: ``eigenvalues`` (n,).
    """
    mu = eigenvalues.to(torch.float64).clamp_min(0.0)
    return float((mu / (mu + lam)).sum())


def spectrum(
    kernels: Iterable[Any],
    X: Any,
    *,
    relative_lambdas: Sequence[float] = RELATIVE_LAMBDAS,
    chosen_lambdas: Mapping[str, float] | None = None,
    n_eigenvalues: int | None = None,
    dataset: str = "",
    device: Any = "cpu",
    dtype: Any = torch.float32,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Eigenvalues of each exact Gram of ``X`` (divided by n) and its effective dimension.

    Parameters
    ----------
    kernels : iterable of spec strings or kernels
    X : array or tensor ``(n, ...)``
    relative_lambdas : lambdas for d_eff, relative to the largest eigenvalue of ``K / n``
    chosen_lambdas : mapping spec -> lambda, optional
        Lambdas chosen elsewhere (e.g. by the accuracy harness on its
        validation split, on the same ``K / n`` scale): rows with metric
        ``effective_dimension_chosen``.
    n_eigenvalues : int, optional
        Keep only the largest ones (default all n).

    Returns
    -------
    pandas.DataFrame
        Metrics ``eigenvalue`` (one row per index, largest first),
        ``effective_dimension`` (one per relative lambda),
        ``effective_dimension_chosen``, and ``gram_seconds``; extra columns
        :data:`SPECTRUM_COLUMNS`.

    Shape
    -----
    ``X``: (n, ...).
    """
    dtype = parse_dtype(dtype)
    progress = progress or Progress()
    x = as_input(X, device, dtype)
    n = len(x)
    common = {"dataset": dataset, "n": n, "device": device, "dtype": dtype}
    rows: list[dict[str, Any]] = []
    for case in resolve_kernels(kernels):
        progress.note(f"{case.spec} spectrum")
        rows.extend(_one_kernel(case, x, relative_lambdas, chosen_lambdas or {}, n_eigenvalues,
                                common))
        progress.step(case.spec)
    return to_frame(rows, extra_columns=SPECTRUM_COLUMNS,
                    metadata=metadata or run_metadata(device))


def _one_kernel(case: KernelCase, x: torch.Tensor, relative_lambdas: Sequence[float],
                chosen: Mapping[str, float], n_eigenvalues: int | None,
                common: dict[str, Any]) -> list[dict[str, Any]]:
    if not case.ok:
        return [error_row(_HARNESS, case, "exact", "eigenvalue", case.error, **common)]
    try:
        gram, seconds = timed(lambda: case.kernel.gram(x), x.device)
        # eigenvalues on the host in float64 (numpy's LAPACK; a reporting step, not a Gram)
        gram = gram.detach().to(device="cpu", dtype=torch.float64).numpy()
        with linalg_threads("cpu"):
            values = np.linalg.eigvalsh(0.5 * (gram + gram.T) / len(x))[::-1].copy()
        eigenvalues = torch.from_numpy(values)
    except Exception as exc:  # noqa: BLE001
        return [error_row(_HARNESS, case, "exact", "eigenvalue", describe_error(exc), **common)]
    rows = [make_row(_HARNESS, case, "exact", "gram_seconds", seconds, seconds=seconds, **common)]
    keep = len(eigenvalues) if n_eigenvalues is None else min(n_eigenvalues, len(eigenvalues))
    for index, value in enumerate(eigenvalues[:keep].numpy(), start=1):
        rows.append(make_row(_HARNESS, case, "exact", "eigenvalue", float(value), index=index,
                             **common))
    top = float(eigenvalues[0].clamp_min(1e-300))
    for relative in relative_lambdas:
        lam = relative * top
        rows.append(make_row(_HARNESS, case, "exact", "effective_dimension",
                             effective_dimension(eigenvalues, lam), lam=lam,
                             lam_relative=relative, **common))
    if case.spec in chosen and np.isfinite(chosen[case.spec]):
        lam = float(chosen[case.spec])
        rows.append(make_row(_HARNESS, case, "exact", "effective_dimension_chosen",
                             effective_dimension(eigenvalues, lam), lam=lam,
                             lam_relative=lam / top, **common))
    return rows
