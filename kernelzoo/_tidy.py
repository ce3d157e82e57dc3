"""The tidy results table, shared by the harnesses that write it and the reports that read it.

It sits below both (``bench/`` builds frames, ``report/`` reads them back from
``results.csv``), so that neither reaches into the other.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["budget_column"]


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
