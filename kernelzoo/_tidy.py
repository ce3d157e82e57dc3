"""The tidy results table, shared by the harnesses that write it and the reports that read it.

It sits below both (``bench/`` builds frames, ``report/`` reads them back from
``results.csv``), so that neither reaches into the other.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["EXACT", "TIMING_METRICS", "budget_column"]

#: The ``method`` of a row measured on an exact kernel (every other method is an
#: approximation).
EXACT = "exact"

#: Metrics that measure time or memory: their values (like the ``seconds`` column) differ
#: from run to run; every other value of ``results.csv`` is the same for the same command.
TIMING_METRICS: frozenset[str] = frozenset({
    "gram_seconds", "fit_seconds", "eval_seconds", "feature_seconds", "pairs_per_second",
    "images_per_second", "peak_memory_bytes", "train_seconds", "predict_seconds",
})


def budget_column(budget: pd.Series) -> pd.Series:
    """The ``budget`` column: integers as nullable ints; per-layer lists (strings) keep
    the column as objects.

    Shape: a Series -> a Series of the same length.
    """
    numeric = pd.to_numeric(budget, errors="coerce")
    if numeric.notna().sum() == budget.notna().sum():
        if ((numeric.dropna() % 1) == 0).all():
            return numeric.astype("Int64")
        return numeric
    return budget.astype(object)
