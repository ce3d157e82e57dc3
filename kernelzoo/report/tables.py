"""Pivoted comparison tables (kernels as rows) from the harnesses' tidy DataFrames.

Each ``*_table`` function takes the DataFrame of one harness (or the
concatenation of all of them: rows are selected by the ``harness`` column) and
returns a small :class:`pandas.DataFrame` ready for :func:`to_markdown`.
Failed measurements are left out of the numbers; :func:`errors_table` lists them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from kernelzoo._tidy import EXACT

__all__ = [
    "EXACT",
    "budget_key",
    "kernel_order",
    "method_label",
    "select",
    "approximation_table",
    "errors_table",
    "format_number",
    "generic_table",
    "spectrum_table",
    "speed_table",
    "to_markdown",
    "training_time_table",
]


def format_number(value: Any, digits: int = 3) -> str:
    """Numbers with ``digits`` significant digits; strings as they are; NaN as ``-``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if value == 0:
            return "0"
        if float(value).is_integer() and abs(value) < 1e6:
            return str(int(value))
        magnitude = abs(value)
        if 1e-3 <= magnitude < 1e5:
            return f"{value:.{digits}g}"
        return f"{value:.{max(digits - 1, 1)}e}"
    try:
        if pd.isna(value):
            return "-"
    except (TypeError, ValueError):
        pass
    return str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(frame: pd.DataFrame, index: bool = True, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table (no dependency beyond pandas)."""
    if frame.empty:
        return "_(no rows)_\n"
    table = frame.reset_index() if index else frame
    header = [_escape(str(c)) for c in table.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(table[c]) else "---" for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for _, row in table.iterrows():
        cells = [_escape(format_number(v, digits)) for v in row.tolist()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def select(frame: pd.DataFrame, harness: str, metric: str | Sequence[str] | None = None,
            ok: bool = True) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame(columns=getattr(frame, "columns", []))
    part = frame[frame["harness"] == harness] if "harness" in frame else frame
    if metric is not None:
        metrics = [metric] if isinstance(metric, str) else list(metric)
        part = part[part["metric"].isin(metrics)]
    if ok:
        part = part[part["error"].fillna("") == ""]
    return part


def kernel_order(frame: pd.DataFrame) -> list[str]:
    """Specs in order of first appearance (the order the run asked for)."""
    return list(dict.fromkeys(frame["spec"].tolist()))


def method_label(spec: str, method: str) -> str:
    return spec if method == EXACT else f"{spec} / {method}"


def budget_key(value: Any) -> tuple[int, float, str]:
    try:
        return (0, float(value), "")
    except (TypeError, ValueError):
        return (1, math.inf, str(value))


def approximation_table(frame: pd.DataFrame, metric: str = "rel_frobenius_error"
                        ) -> pd.DataFrame:
    """Median over seeds of ``metric``; rows kernel / method, columns budgets."""
    part = select(frame, "approximation", metric)
    part = part[part["method"] != EXACT]
    if part.empty:
        return pd.DataFrame()
    part = part.assign(kernel=[method_label(s, m) for s, m in zip(part["spec"], part["method"],
                                                             strict=True)])
    table = part.pivot_table(index="kernel", columns="budget", values="value", aggfunc="median")
    order = [method_label(s, m) for s, m in
             dict.fromkeys(zip(part["spec"], part["method"], strict=True))]
    table = table.reindex(order)
    table = table[sorted(table.columns, key=budget_key)]
    table.columns = [f"budget {c}" for c in table.columns]
    return table


def spectrum_table(frame: pd.DataFrame, indices: Sequence[int] = (10, 50)) -> pd.DataFrame:
    """Eigenvalue ratios ``mu_i / mu_1`` and d_eff: rows kernel."""
    eig = select(frame, "spectrum", "eigenvalue")
    deff = select(frame, "spectrum", ("effective_dimension", "effective_dimension_chosen"))
    if eig.empty:
        return pd.DataFrame()
    records = []
    for spec in kernel_order(eig):
        values = eig[eig["spec"] == spec].sort_values("index")["value"].to_numpy()
        record: dict[str, Any] = {"kernel": spec, "n": len(values)}
        for i in indices:
            if i <= len(values):
                record[f"mu_{i}/mu_1"] = values[i - 1] / values[0] if values[0] > 0 else np.nan
        rows = deff[deff["spec"] == spec]
        for _, row in rows[rows["metric"] == "effective_dimension"].iterrows():
            record[f"d_eff({row['lam_relative']:.0e} mu_1)"] = row["value"]
        chosen = rows[rows["metric"] == "effective_dimension_chosen"]
        if not chosen.empty:
            record["d_eff(chosen lambda)"] = chosen["value"].iloc[0]
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("kernel")


def speed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Throughput: exact Gram pairs/s and approximations' images/s per n; peak memory."""
    part = select(frame, "speed", ("pairs_per_second", "images_per_second"))
    if part.empty:
        return pd.DataFrame()
    memory = select(frame, "speed", "peak_memory_bytes")
    records = []
    for spec, method in dict.fromkeys(zip(part["spec"], part["method"], strict=True)):
        rows = part[(part["spec"] == spec) & (part["method"] == method)]
        unit = "pairs/s" if method == EXACT else "images/s"
        record: dict[str, Any] = {"kernel": spec, "method": method, "unit": unit}
        for n, group in rows.groupby("n"):
            record[f"n={n}"] = group["value"].median()
        mem = memory[(memory["spec"] == spec) & (memory["method"] == method)]
        if not mem.empty:
            top = mem.sort_values("n").iloc[-1]
            record["peak MB (largest n)"] = top["value"] / 2**20
        records.append(record)
    table = pd.DataFrame.from_records(records).set_index(["kernel", "method"])
    n_cols = sorted((c for c in table.columns if c.startswith("n=")),
                    key=lambda c: int(c[2:]))
    rest = [c for c in table.columns if not c.startswith("n=") and c != "unit"]
    return table[["unit", *n_cols, *rest]]


def errors_table(frame: pd.DataFrame, width: int = 110) -> pd.DataFrame:
    """Every distinct failure: harness, kernel, method, what failed."""
    if frame is None or frame.empty:
        return pd.DataFrame()
    part = frame[frame["error"].fillna("") != ""]
    if part.empty:
        return pd.DataFrame()
    table = (part.assign(error=part["error"].str.slice(0, width))
             .groupby(["harness", "spec", "method", "error"], sort=False)
             .agg(budgets=("budget", lambda b: ", ".join(sorted({str(v) for v in b.dropna()},
                                                                   key=budget_key))))
             .reset_index())
    table = table.rename(columns={"spec": "kernel"})
    return table.set_index(["harness", "kernel"])


def generic_table(frame: pd.DataFrame, harness: str) -> pd.DataFrame:
    """Mean of each metric: rows kernel / method, columns metrics (for other harnesses, e.g. gp)."""
    part = select(frame, harness)
    if part.empty:
        return pd.DataFrame()
    part = part.assign(kernel=[method_label(s, m) for s, m in zip(part["spec"], part["method"],
                                                             strict=True)])
    table = part.pivot_table(index="kernel", columns="metric", values="value", aggfunc="mean")
    return table.reindex(list(dict.fromkeys(part["kernel"])))


def training_time_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Test accuracy after training time t (columns: t on the scaled axis, then the
    kernel-regression limit ``inf``); rows kernel.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training_time harness's rows.

    Returns
    -------
    pandas.DataFrame
        One row per kernel.
    """
    rows = select(frame, "training_time", "test_accuracy")
    if rows.empty:
        return pd.DataFrame()
    records = []
    for spec in kernel_order(rows):
        part = rows[rows["spec"] == spec].sort_values("time_scaled")
        record: dict[str, Any] = {"kernel": spec, "n": int(part["n"].max())}
        for _, row in part.iterrows():
            scaled = float(row["time_scaled"])
            record["t=inf" if math.isinf(scaled) else f"t={scaled:.0e}"] = row["value"]
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("kernel")
