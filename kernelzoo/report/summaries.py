"""Summaries across splits and kernels: accuracy as ``mean ± std``, paired differences,
the headline, kernel similarity, and the check of the stability bound's form.

Like :mod:`kernelzoo.report.tables`, each function takes harness DataFrames
(selected by their ``harness`` column) and returns a small DataFrame (or a
sentence); kernels are rows, in the order the run asked for them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from kernelzoo._tidy import EXACT
from kernelzoo.report.tables import (
    budget_key,
    format_number,
    kernel_order,
    method_label,
    select,
)

__all__ = [
    "accuracy_table",
    "accuracy_vs_n_table",
    "approximation_cka_summary",
    "chosen_parameters_table",
    "headline_table",
    "mean_std",
    "nearest_kernels",
    "paired_differences",
    "similarity_matrix",
    "stability_bound_table",
    "stability_table",
    "translation_verdict",
]


def mean_std(values: Any, digits: int = 3) -> str:
    """``"mean ± std"`` (sample standard deviation, ddof 1); the value alone for one;
    ``-`` for none."""
    array = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").dropna()
    array = array.to_numpy(float)
    if array.size == 0:
        return "-"
    if array.size == 1:
        return format_number(float(array[0]), digits)
    return (f"{format_number(float(array.mean()), digits)} ± "
            f"{format_number(float(array.std(ddof=1)), 2)}")


def _exact_accuracy(frame: pd.DataFrame) -> pd.DataFrame:
    part = select(frame, "accuracy", "test_accuracy")
    return part[part["method"] == EXACT]


# ---------------------------------------------------------------------------- accuracy
def accuracy_vs_n_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Exact test accuracy: rows kernel, columns n_train, ``mean ± std`` over splits."""
    part = _exact_accuracy(frame)
    if part.empty:
        return pd.DataFrame()
    records = []
    for spec in kernel_order(part):
        rows = part[part["spec"] == spec]
        record: dict[str, Any] = {"kernel": spec, "splits": int(rows["split"].nunique())}
        for n in sorted(rows["n"].dropna().unique()):
            record[f"n={int(n)}"] = mean_std(rows.loc[rows["n"] == n, "value"])
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("kernel")


def accuracy_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Approximations' test accuracy at the largest n_train: rows (kernel, method), columns
    the exact kernel on the same splits and each budget, ``mean ± std`` over splits and
    seeds."""
    part = select(frame, "accuracy", "test_accuracy")
    approx = part[part["method"] != EXACT]
    if approx.empty:
        return pd.DataFrame()
    n_max = approx["n"].max()
    records = []
    for spec, method in dict.fromkeys(zip(approx["spec"], approx["method"], strict=True)):
        rows = approx[(approx["spec"] == spec) & (approx["method"] == method)]
        splits = sorted(int(s) for s in rows["split"].dropna().unique())
        exact = part[(part["spec"] == spec) & (part["method"] == EXACT)
                     & (part["n"] == n_max) & part["split"].isin(splits)]
        record: dict[str, Any] = {"kernel": spec, "method": method, "n_train": int(n_max),
                                  "splits": len(splits), "exact": mean_std(exact["value"])}
        for budget in sorted(rows["budget"].dropna().unique(), key=budget_key):
            record[f"budget {budget}"] = mean_std(rows.loc[rows["budget"] == budget, "value"])
        records.append(record)
    return pd.DataFrame.from_records(records).set_index(["kernel", "method"])


def chosen_parameters_table(frame: pd.DataFrame) -> pd.DataFrame:
    """What validation chose for each exact kernel at the largest n_train, per split."""
    part = _exact_accuracy(frame)
    if part.empty or "params" not in part:
        return pd.DataFrame()
    part = part[part["n"] == part["n"].max()]
    records = []
    for spec in kernel_order(part):
        rows = part[part["spec"] == spec].sort_values("split")
        record = {"kernel": spec}
        record.update({f"split {int(s)}": p for s, p in zip(rows["split"], rows["params"],
                                                             strict=True)})
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("kernel")


def paired_differences(frame: pd.DataFrame, reference: str) -> dict[str, np.ndarray]:
    """Per kernel, its exact test accuracy minus ``reference``'s in the same splits, at
    the largest n_train: ``{spec: (splits both have,)}``."""
    part = _exact_accuracy(frame)
    if part.empty or reference not in set(part["spec"]):
        return {}
    part = part[part["n"] == part["n"].max()]
    by_split = part.pivot_table(index="split", columns="spec", values="value", aggfunc="mean")
    out = {}
    for spec in by_split.columns:
        both = by_split[[spec, reference]].dropna() if spec != reference else by_split[[spec]]
        out[spec] = (both[spec] - both[reference]).to_numpy(float) if spec != reference \
            else np.zeros(len(both))
    return out


# ---------------------------------------------------------------------------- headline
def _headline_accuracy(record: dict[str, Any], rows: pd.DataFrame, reference: str | None,
                       differences: dict[str, np.ndarray]) -> None:
    exact = _exact_accuracy(rows)
    if not exact.empty:
        top = exact[exact["n"] == exact["n"].max()]
        record["exact acc."] = mean_std(top["value"])
        record["n_train"] = int(top["n"].iloc[0])
        record["splits"] = int(top["split"].nunique())
        if differences:
            spec = record["kernel"]
            record[f"Δ vs {reference}"] = ("reference" if spec == reference else
                                          mean_std(differences[spec])
                                          if spec in differences else "-")
    approx = select(rows, "accuracy", "test_accuracy")
    approx = approx[approx["method"] != EXACT]
    if not approx.empty:
        means = approx.groupby(["method", "budget"], sort=False)["value"].mean()
        (method, budget), value = means.idxmax(), means.max()
        record["best approx. acc."] = value
        record["(method@budget)"] = f"{method}@{budget}"


def _headline_rest(record: dict[str, Any], rows: pd.DataFrame, reference: str | None) -> None:
    err = select(rows, "approximation", "rel_frobenius_error")
    err = err[err["method"] != EXACT]
    if not err.empty:
        largest = max(err["budget"].dropna().unique(), key=budget_key)
        at = err[err["budget"] == largest].groupby("method")["value"].median()
        record["min rel. Frob. error"] = at.min()
        record["(err. method@budget)"] = f"{at.idxmin()}@{largest}"
    cka = select(rows, "similarity", "cka")
    if reference and not cka.empty and "spec_other" in cka:
        to_ref = cka[cka["spec_other"] == reference]
        if not to_ref.empty:
            record[f"CKA with {reference}"] = to_ref["value"].iloc[0]
    stab = select(rows, "stability", "relative_distance")
    if not stab.empty:
        shift = stab[(stab["transform"] == "translation") & (stab["magnitude"] == 1)]
        if not shift.empty:
            record["shift 1px dist."] = shift["value"].mean()
    deff = select(rows, "spectrum", "effective_dimension_chosen")
    if not deff.empty:
        record["d_eff"] = deff["value"].iloc[0]
    speed = select(rows, "speed", "pairs_per_second")
    speed = speed[speed["method"] == EXACT]
    if not speed.empty:
        record["pairs/s"] = speed.loc[speed["n"] == speed["n"].max(), "value"].median()
    failed = rows[rows["error"].fillna("") != ""]
    failed = failed[~failed["error"].str.startswith("skipped")]
    if not failed.empty:
        record["errors"] = f"{len(failed)}: {failed['error'].iloc[0][:60]}"


def headline_table(frame: pd.DataFrame, reference: str | None = "rbf") -> pd.DataFrame:
    """One row per kernel: exact accuracy (``mean ± std`` over splits at the common
    n_train), the paired difference to ``reference`` in the same splits, the best
    approximation's accuracy, the smallest approximation error at the largest budget,
    CKA with ``reference``, the 1-pixel-shift distance, d_eff at the chosen λ, and
    Gram pairs per second. Failed kernels stay, with their error in the last column.
    """
    kernels = [s for s in kernel_order(frame) if s != "pixels"]
    if "harness" in frame:  # kernels run by the stability harness only stay in its table
        main = set(frame.loc[frame["harness"] != "stability", "spec"])
        kernels = [s for s in kernels if s in main] or kernels
    differences = paired_differences(frame, reference) if reference else {}
    records = []
    for spec in kernels:
        rows = frame[frame["spec"] == spec]
        record: dict[str, Any] = {"kernel": spec}
        _headline_accuracy(record, rows, reference, differences)
        _headline_rest(record, rows, reference)
        records.append(record)
    if not records:
        return pd.DataFrame()
    return pd.DataFrame.from_records(records).set_index("kernel")


# ---------------------------------------------------------------------------- similarity
def similarity_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """CKA between kernels: a square table (rows ``spec``, columns ``spec_other``)."""
    part = select(frame, "similarity", "cka")
    if part.empty or "spec_other" not in part:
        return pd.DataFrame()
    order = kernel_order(part)
    table = part.pivot_table(index="spec", columns="spec_other", values="value",
                             aggfunc="mean")
    table = table.reindex(index=order, columns=[c for c in order if c in table.columns])
    table.index.name = "kernel"
    table.columns.name = None
    return table


def nearest_kernels(matrix: pd.DataFrame) -> pd.DataFrame:
    """For each kernel of a :func:`similarity_matrix`, the most and least similar other."""
    records = []
    for spec in matrix.index:
        others = matrix.loc[spec].drop(labels=[spec], errors="ignore").dropna()
        if not others.empty:
            records.append({"kernel": spec, "most similar": others.idxmax(),
                            "its CKA": others.max(), "least similar": others.idxmin(),
                            "CKA": others.min()})
    if not records:
        return pd.DataFrame()
    return pd.DataFrame.from_records(records).set_index("kernel")


def approximation_cka_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """CKA of each approximation with its exact kernel at its largest budget (median over
    seeds): rows kernel / method."""
    part = select(frame, "approximation", "cka")
    part = part[part["method"] != EXACT]
    if part.empty:
        return pd.DataFrame()
    records = []
    for spec, method in dict.fromkeys(zip(part["spec"], part["method"], strict=True)):
        rows = part[(part["spec"] == spec) & (part["method"] == method)]
        largest = max(rows["budget"].dropna().unique(), key=budget_key)
        records.append({"kernel": method_label(spec, method), "budget": str(largest),
                        "CKA with exact": rows.loc[rows["budget"] == largest, "value"].median()})
    return pd.DataFrame.from_records(records).set_index("kernel")


# ---------------------------------------------------------------------------- stability
def _transform_label(transform: str, magnitude: float, smoothness: Any) -> str:
    if transform == "translation":
        return f"shift {magnitude:g}px"
    if smoothness is None or (isinstance(smoothness, float) and math.isnan(smoothness)):
        return f"deform {magnitude:g}px"
    return f"deform {magnitude:g}px s{float(smoothness):g}"


def stability_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean relative distance: rows kernel (and pixels), columns transformations."""
    part = select(frame, "stability", "relative_distance")
    if part.empty:
        return pd.DataFrame()
    smooth = part["smoothness"] if "smoothness" in part else [None] * len(part)
    part = part.assign(column=[
        _transform_label(t, m, s)
        for t, m, s in zip(part["transform"], part["magnitude"], smooth, strict=True)])
    table = part.pivot_table(index="spec", columns="column", values="value", aggfunc="mean")
    table = table.reindex(index=kernel_order(part), columns=list(dict.fromkeys(part["column"])))
    table.index.name = "kernel"
    table.columns.name = None
    return table


def stability_bound_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per kernel: whether the bound's assumptions hold, the slope of the distance in
    ‖∇τ‖∞ (least squares through the origin, R²), its growth exponent (1: linear), and
    the slope in the shift."""
    part = select(frame, "stability")
    if part.empty:
        return pd.DataFrame()
    records = []
    for spec in kernel_order(part):
        rows = part[part["spec"] == spec]
        value = dict(zip(rows["metric"], rows["value"], strict=False))
        holds = value.get("bound_assumptions_hold")
        notes = rows.loc[rows["metric"] == "bound_assumptions_hold"]
        note = notes["note"].iloc[0] if "note" in notes and len(notes) else "-"
        records.append({
            "kernel": spec,
            "assumptions hold": ("not stated for this family" if holds is None
                                 else "yes" if holds else "no"),
            "conditions": note if isinstance(note, str) and note else "-",
            "last pooling": value.get("last_pooling", math.nan),
            "slope in ‖∇τ‖∞": value.get("deformation_slope", math.nan),
            "R²": value.get("deformation_r2", math.nan),
            "growth exponent": value.get("growth_exponent", math.nan),
            "translation slope": value.get("translation_slope", math.nan),
        })
    return pd.DataFrame.from_records(records).set_index("kernel")


def translation_verdict(frame: pd.DataFrame) -> str:
    """One sentence: among the kernels whose assumptions hold, does the translation slope
    fall as the last pooling grows? Empty when fewer than two poolings were measured."""
    table = stability_bound_table(frame)
    if table.empty:
        return ""
    held = table[(table["assumptions hold"] == "yes") & table["last pooling"].notna()]
    if held["last pooling"].nunique() < 2:
        return ""
    slopes = held.groupby("last pooling")["translation slope"].mean()
    listed = ", ".join(f"{int(p)}: {format_number(s)}" for p, s in slopes.items())
    falls = bool(np.all(np.diff(slopes.to_numpy()) < 0))
    return (f"Translation slope of the kernels whose assumptions hold, by last pooling "
            f"({listed}): it {'falls' if falls else 'does not fall'} as the last pooling "
            f"grows{', as the bound predicts' if falls else ''}.")
