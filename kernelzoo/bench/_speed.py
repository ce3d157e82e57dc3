"""Time and memory: Gram evaluation against n, feature extraction of approximations."""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    PeakMemory,
    Progress,
    as_input,
    describe_error,
    error_row,
    make_approximation,
    make_row,
    methods_of,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)

__all__ = ["median_time", "speed"]

_HARNESS = "speed"
_FATAL = (ImportError, NotImplementedError, AttributeError)


def median_time(fn: Callable[[], Any], device: Any, repeats: int = 5,
                min_seconds: float = 0.5) -> tuple[float, float]:
    """``(median seconds, peak memory bytes)`` of ``fn``.

    The first call is measured with :class:`PeakMemory`; more calls (up to
    ``repeats`` in all) only while the calls so far took under
    ``min_seconds`` together, so that expensive evaluations run once.
    """
    with PeakMemory(device) as memory:
        _, first = timed(fn, device)
    times = [first]
    while len(times) < repeats and sum(times) < min_seconds:
        times.append(timed(fn, device)[1])
    return statistics.median(times), memory.bytes


def speed(
    kernels: Iterable[Any],
    X: Any,
    *,
    sizes: Sequence[int] = (64, 128, 256),
    budget: Any = 64,
    seed: int = 0,
    y: Any = None,
    methods: Sequence[str] | None = None,
    repeats: int = 5,
    dataset: str = "",
    device: Any = "cpu",
    dtype: Any = torch.float32,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Gram time and pairs per second against n; approximations' fit and feature throughput.

    Exact kernels: ``gram(X[:n])`` for each n of ``sizes``: metrics
    ``gram_seconds`` (median of up to ``repeats``), ``pairs_per_second``
    (``n^2 / seconds``) and ``peak_memory_bytes`` (growth of the process's
    peak resident set on the CPU, ``torch.cuda.max_memory_allocated`` on a
    GPU). Approximations at ``budget``: ``fit_seconds`` (fitted on
    ``X[:max(sizes)]``), then for each n ``feature_seconds`` (``features``,
    or ``gram`` for Gram-only approximations), ``images_per_second`` and
    ``peak_memory_bytes``.

    Shape
    -----
    ``X``: (N, ...) with N >= max(sizes); ``y``: (N,) labels, optional.
    """
    dtype = parse_dtype(dtype)
    progress = progress or Progress()
    x = as_input(X, device, dtype)
    sizes = sorted({int(s) for s in sizes})
    if not sizes or sizes[0] < 1 or sizes[-1] > len(x):
        raise ValueError(f"sizes must be in [1, {len(x)}], got {sizes}")
    labels = None if y is None else np.asarray(y)
    common = {"dataset": dataset, "device": device, "dtype": dtype}
    rows: list[dict[str, Any]] = []
    for case in resolve_kernels(kernels):
        if not case.ok:
            rows.append(error_row(_HARNESS, case, "exact", "pairs_per_second", case.error,
                                  n=sizes[-1], **common))
            progress.step(case.spec)
            continue
        for method in methods_of(case, methods):
            progress.note(f"{case.spec} {method} speed")
            if method == "exact":
                rows.extend(_exact(case, x, sizes, repeats, common))
            else:
                rows.extend(_approximation(case, method, x, labels, sizes, budget, seed,
                                           repeats, common))
        progress.step(case.spec)
    return to_frame(rows, metadata=metadata or run_metadata(device))


def _exact(case: KernelCase, x: torch.Tensor, sizes: list[int], repeats: int,
           common: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    try:
        case.kernel.gram(x[:2])  # warm-up: first-call costs are not throughput
    except Exception as exc:  # noqa: BLE001
        return [error_row(_HARNESS, case, "exact", "pairs_per_second", describe_error(exc),
                          n=sizes[0], **common)]
    for n in sizes:
        try:
            seconds, memory = median_time(lambda m=n: case.kernel.gram(x[:m]), x.device, repeats)
        except Exception as exc:  # noqa: BLE001
            rows.append(error_row(_HARNESS, case, "exact", "pairs_per_second",
                                  describe_error(exc), n=n, **common))
            break
        fields = dict(n=n, seconds=seconds, **common)
        rows.append(make_row(_HARNESS, case, "exact", "gram_seconds", seconds, **fields))
        rows.append(make_row(_HARNESS, case, "exact", "pairs_per_second",
                             n * n / max(seconds, 1e-12), **fields))
        rows.append(make_row(_HARNESS, case, "exact", "peak_memory_bytes", memory, **fields))
    return rows


def _approximation(case: KernelCase, method: str, x: torch.Tensor, labels: Any,
                   sizes: list[int], budget: Any, seed: int, repeats: int,
                   common: dict[str, Any]) -> list[dict[str, Any]]:
    fields = dict(budget=budget, seed=seed, **common)
    n_fit = sizes[-1]
    try:
        model = make_approximation(case.kernel, method, budget, seed)
        fit_labels = None if labels is None else labels[:n_fit]
        _, fit_seconds = timed(lambda: model.fit(x[:n_fit], fit_labels), x.device)
    except Exception as exc:  # noqa: BLE001
        return [error_row(_HARNESS, case, method, "images_per_second", describe_error(exc),
                          n=n_fit, **fields)]
    try:
        n_features = int(model.n_features)
    except Exception:  # noqa: BLE001 - Gram-only approximations
        n_features = None
    fields["n_features"] = n_features
    rows = [make_row(_HARNESS, case, method, "fit_seconds", fit_seconds, n=n_fit,
                     seconds=fit_seconds, **fields)]
    has_features = getattr(model, "has_features", True)
    with contextlib.suppress(Exception):  # warm-up; a failure is reported below, per size
        model.features(x[:2]) if has_features else model.gram(x[:2])
    for n in sizes:
        def extract(m: int = n) -> Any:
            return model.features(x[:m]) if has_features else model.gram(x[:m])

        try:
            seconds, memory = median_time(extract, x.device, repeats)
        except Exception as exc:  # noqa: BLE001
            rows.append(error_row(_HARNESS, case, method, "images_per_second",
                                  describe_error(exc), n=n, **fields))
            if isinstance(exc, _FATAL):
                break
            continue
        rows.append(make_row(_HARNESS, case, method, "feature_seconds", seconds, n=n,
                             seconds=seconds, **fields))
        rows.append(make_row(_HARNESS, case, method, "images_per_second",
                             n / max(seconds, 1e-12), n=n, seconds=seconds, **fields))
        rows.append(make_row(_HARNESS, case, method, "peak_memory_bytes", memory, n=n,
                             seconds=seconds, **fields))
    return rows
