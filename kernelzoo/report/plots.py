"""PNG plots (matplotlib, Agg backend) from the harnesses' tidy DataFrames.

Every function writes one figure to ``path`` and returns the path, or None
when the DataFrame holds nothing to plot. Axes are labelled with units;
log-log where the quantities span decades.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import FixedLocator, LogLocator, NullFormatter

from kernelzoo._tidy import EXACT

__all__ = [
    "plot_accuracy",
    "plot_accuracy_vs_n",
    "plot_approximation_error",
    "plot_similarity",
    "plot_spectrum",
    "plot_speed",
    "plot_stability",
    "plot_training_time",
]

_DPI = 110
_LINESTYLES = ("-", "--", ":", "-.")
_LINESTYLE_NAMES = ("solid", "dashed", "dotted", "dash-dot")


def _label_axes(ax, xlabel: str, ylabel: str, title: str) -> None:
    """Axis labels, a title, a log-friendly grid and a small legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)


def _ok(frame: pd.DataFrame, harness: str, metric: str | Sequence[str]) -> pd.DataFrame:
    if frame is None or frame.empty:
        return pd.DataFrame()
    part = frame[(frame["harness"] == harness) & (frame["error"].fillna("") == "")]
    metrics = [metric] if isinstance(metric, str) else list(metric)
    return part[part["metric"].isin(metrics)]


def _numeric_budget(part: pd.DataFrame) -> pd.DataFrame:
    """Rows whose budget is a number (per-layer lists are plotted by their first entry)."""
    def first(value: Any) -> float:
        if isinstance(value, str) and value.startswith("["):
            value = value.strip("[]").split(",")[0]
        try:
            return float(value)
        except (TypeError, ValueError):
            return math.nan

    return part.assign(budget_value=[first(b) for b in part["budget"]]).dropna(
        subset=["budget_value"])


def _grid(n_panels: int, width: float = 4.0, height: float = 3.2):
    cols = min(n_panels, 4)
    rows = math.ceil(n_panels / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n_panels:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n_panels])


def _colors(n: int) -> list[Any]:
    """Distinct colours for n lines (tab10, tab20 beyond ten)."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _tidy_log_axes(fig: Any) -> None:
    """Log axes: labels on the decades only (minor labels overlap on short ranges)."""
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale == "log" and not isinstance(axis.get_major_locator(), FixedLocator):
                axis.set_major_locator(LogLocator(base=10, numticks=12))
                axis.set_minor_formatter(NullFormatter())


def _save(fig: Any, path: str | os.PathLike, legend_outside: bool = False) -> str:
    _tidy_log_axes(fig)
    if legend_outside:
        fig.tight_layout(rect=(0, 0, 0.8, 1))
        fig.savefig(path, dpi=_DPI, bbox_inches="tight")
        plt.close(fig)
        return os.fspath(path)
    fig.tight_layout()
    fig.savefig(path, dpi=_DPI)
    plt.close(fig)
    return os.fspath(path)


def _order(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _short(spec: str, width: int = 38) -> str:
    return spec if len(spec) <= width else spec[: width - 1] + "…"


def plot_approximation_error(frame: pd.DataFrame, path: str | os.PathLike,
                             metric: str = "rel_frobenius_error",
                             against: str = "budget") -> str | None:
    """Error vs budget (``against="budget"``) or vs fit + evaluation time (``"seconds"``).

    One panel per kernel, one line per method: median over seeds, shaded
    between the smallest and largest seed; log-log axes.
    """
    part = _numeric_budget(_ok(frame, "approximation", metric))
    part = part[part["method"] != EXACT]
    if part.empty:
        return None
    specs = _order(part["spec"])
    fig, axes = _grid(len(specs))
    names = {"rel_frobenius_error": "relative Frobenius error ‖K−K̃‖_F/‖K‖_F",
             "rel_spectral_error": "relative spectral error ‖K−K̃‖₂/‖K‖₂"}
    for ax, spec in zip(axes, specs, strict=True):
        rows = part[part["spec"] == spec]
        for method in _order(rows["method"]):
            sub = rows[rows["method"] == method]
            stats = sub.groupby("budget_value").agg(
                median=("value", "median"), low=("value", "min"), high=("value", "max"),
                seconds=("seconds", "median"))
            x = stats.index.to_numpy() if against == "budget" else stats["seconds"].to_numpy()
            line, = ax.plot(x, stats["median"], marker="o", ms=3, label=method)
            if against == "budget":
                ax.fill_between(x, stats["low"], stats["high"], color=line.get_color(),
                                alpha=0.2, lw=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(_short(spec), fontsize=9)
        ax.set_xlabel("budget (features / landmarks / width / anchors)" if against == "budget"
                      else "fit + evaluation time (s)", fontsize=8)
        ax.set_ylabel(names.get(metric, metric), fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    n = int(part["n"].max())
    fig.suptitle(f"Approximation error on n={n} points"
                 + (" against budget" if against == "budget" else " against time")
                 + " (median over seeds" + (", band min–max)" if against == "budget" else ")"),
                 fontsize=10)
    return _save(fig, path)


def plot_accuracy(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Test accuracy vs budget per kernel (at its largest n_train); exact as a dashed line."""
    part = _ok(frame, "accuracy", "test_accuracy")
    if part.empty:
        return None
    specs = _order(part["spec"])
    fig, axes = _grid(len(specs))
    for ax, spec in zip(axes, specs, strict=True):
        rows = part[part["spec"] == spec]
        approx = _numeric_budget(rows[rows["method"] != EXACT])
        if not approx.empty:
            approx = approx[approx["n"] == approx["n"].max()]
            for method in _order(approx["method"]):
                stats = approx[approx["method"] == method].groupby("budget_value")["value"].mean()
                ax.plot(stats.index, stats.to_numpy(), marker="o", ms=3, label=method)
            ax.set_xscale("log")
        exact = rows[rows["method"] == EXACT]
        if not exact.empty:
            top = exact[exact["n"] == exact["n"].max()]
            ax.axhline(top["value"].mean(), color="k", ls="--", lw=1,
                       label=f"exact (n_train={int(top['n'].iloc[0])})")
        ax.set_title(_short(spec), fontsize=9)
        ax.set_xlabel("budget (features / landmarks / width / anchors)", fontsize=8)
        ax.set_ylabel("test accuracy", fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle("Test accuracy against budget (lambda and kernel hyperparameters chosen "
                 "on validation)", fontsize=10)
    return _save(fig, path)


def plot_accuracy_vs_n(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Exact kernels' test accuracy against n_train: mean over splits, bars ± one std."""
    part = _ok(frame, "accuracy", "test_accuracy")
    part = part[part["method"] == EXACT]
    if part.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    specs = _order(part["spec"])
    for spec, color in zip(specs, _colors(len(specs)), strict=True):
        stats = part[part["spec"] == spec].groupby("n")["value"].agg(["mean", "std"])
        ax.errorbar(stats.index.astype(float), stats["mean"], yerr=stats["std"].fillna(0),
                    marker="o", ms=3, capsize=3, color=color, label=_short(spec, 45))
    ax.set_xscale("log")
    sizes = sorted(float(n) for n in part["n"].dropna().unique())
    ax.set_xticks(sizes, [str(int(n)) for n in sizes])
    ax.minorticks_off()
    splits = part["split"].nunique()
    _label_axes(ax, "training examples n_train (shared by every kernel)",
                "test accuracy (exact kernel ridge)",
                f"Test accuracy against n_train (mean ± std over {splits} splits)")
    return _save(fig, path)


def plot_stability(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Relative distance ‖Φ(x)−Φ(L_τx)‖/‖Φ(x)‖ against the shift and against ‖∇τ‖∞."""
    part = _ok(frame, "stability", "relative_distance")
    if part.empty:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(14, 4.8))
    translation = part[part["transform"] == "translation"]
    deformation = part[part["transform"] != "translation"]
    specs = [s for s in _order(part["spec"]) if s != "pixels"]
    color = dict(zip(specs, _colors(len(specs)), strict=True))
    for spec in ["pixels", *specs]:
        style = ({"color": "k", "ls": "--", "lw": 2} if spec == "pixels"
                 else {"color": color[spec]})
        sub = translation[translation["spec"] == spec].sort_values("magnitude")
        if not sub.empty:
            axes[0].plot(sub["magnitude"].astype(float), sub["value"], marker="o", ms=3,
                         label=_short(spec, 45), **style)
        sub = deformation[deformation["spec"] == spec]
        smooth = sub["smoothness"] if "smoothness" in sub else pd.Series(0.0, sub.index)
        for k, (_, family) in enumerate(sub.groupby(smooth.fillna(0.0), sort=True)):
            family = family.sort_values("grad_tau_inf")
            axes[1].plot(family["grad_tau_inf"].astype(float), family["value"], marker="o",
                         ms=3, **{**style, "ls": _LINESTYLES[k % len(_LINESTYLES)]})
    axes[0].set_xlabel("translation t (pixels)")
    smooth_values = sorted(deformation["smoothness"].dropna().unique()) \
        if "smoothness" in deformation else []
    styles = ", ".join(f"{_LINESTYLE_NAMES[k % 4]} {v:g} px" for k, v in
                       enumerate(smooth_values))
    axes[1].set_xlabel("deformation ‖∇τ‖∞ (mean over images; dimensionless)"
                       + (f"; field smoothness: {styles}" if styles else ""), fontsize=8)
    for ax in axes:
        ax.set_ylabel("‖Φ(x) − Φ(L_τ x)‖ / ‖Φ(x)‖ (mean over images)", fontsize=8)
        ax.grid(True, alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(0.8, 0.5), fontsize=8)
    n = int(part["n"].max())
    fig.suptitle(f"Stability: relative RKHS distance to transformed images (n={n} images; "
                 "pixels: Euclidean)", fontsize=10)
    return _save(fig, path, legend_outside=True)


def plot_similarity(matrix: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Heat map of a square CKA table (kernels against kernels), values written in."""
    if matrix is None or matrix.empty:
        return None
    values = matrix.to_numpy(dtype=float)
    size = 1.0 + 0.75 * len(matrix)
    fig, ax = plt.subplots(figsize=(size + 2.5, size))
    image = ax.imshow(values, cmap="viridis", vmin=min(0.0, np.nanmin(values)), vmax=1.0)
    labels = [_short(str(s), 30) for s in matrix.index]
    ax.set_xticks(range(len(matrix.columns)), [_short(str(s), 30) for s in matrix.columns],
                  rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(matrix.index)), labels, fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if value < 0.6 else "black")
    fig.colorbar(image, ax=ax, label="CKA (1: equal up to scale)")
    ax.set_title("Centred kernel alignment between exact Grams", fontsize=10)
    return _save(fig, path)


def plot_spectrum(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Eigenvalue decay mu_i / mu_1 (log-log) and d_eff against lambda."""
    eig = _ok(frame, "spectrum", "eigenvalue")
    if eig.empty:
        return None
    deff = _ok(frame, "spectrum", "effective_dimension")
    chosen = _ok(frame, "spectrum", "effective_dimension_chosen")
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    specs = _order(eig["spec"])
    for spec, color in zip(specs, _colors(len(specs)), strict=True):
        values = eig[eig["spec"] == spec].sort_values("index")
        mu = values["value"].to_numpy(dtype=float)
        keep = mu > 0
        line, = left.plot(values["index"].to_numpy(dtype=float)[keep], mu[keep] / mu[0],
                          color=color, label=_short(spec, 45))
        rows = deff[deff["spec"] == spec].sort_values("lam_relative")
        if not rows.empty:
            right.plot(rows["lam_relative"].astype(float), rows["value"], marker="o", ms=3,
                       color=line.get_color(), label=_short(spec, 45))
        mark = chosen[chosen["spec"] == spec]
        if not mark.empty:
            right.plot(mark["lam_relative"].astype(float), mark["value"], marker="*", ms=10,
                       color=line.get_color(), ls="none")
    left.set_xscale("log")
    left.set_yscale("log")
    _label_axes(left, "eigenvalue index i", "μ_i / μ_1 (eigenvalues of K/n)",
                f"Eigenvalue decay (n={int(eig['n'].max())})")
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("λ / μ_1")
    right.set_ylabel("effective dimension d_eff(λ) = Σ μ_i/(μ_i+λ)")
    right.set_title("Effective dimension (★: λ chosen on validation)", fontsize=10)
    right.grid(True, which="both", alpha=0.3)
    return _save(fig, path)


def plot_speed(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """Exact Gram time against n (log-log) and approximations' images per second."""
    gram = _ok(frame, "speed", "gram_seconds")
    feats = _ok(frame, "speed", "images_per_second")
    if gram.empty and feats.empty:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for spec in _order(gram["spec"]):
        stats = gram[gram["spec"] == spec].groupby("n")["value"].median()
        left.plot(stats.index.astype(float), stats.to_numpy(), marker="o", ms=3,
                  label=_short(spec, 45))
    if not gram.empty:
        ns = np.array(sorted(gram["n"].dropna().unique()), dtype=float)
        ref = gram.groupby("n")["value"].median().to_numpy()
        left.plot(ns, ref[-1] * (ns / ns[-1]) ** 2, color="0.6", ls=":", label="∝ n²")
    left.set_xscale("log")
    left.set_yscale("log")
    _label_axes(left, "n (Gram of n × n inputs)", "Gram evaluation time (s)",
                "Exact Gram time against n")
    pairs = _order(zip(feats["spec"], feats["method"], strict=True))
    for (spec, method), color in zip(pairs, _colors(len(pairs)), strict=True):
        sub = feats[(feats["spec"] == spec) & (feats["method"] == method)]
        stats = sub.groupby("n")["value"].median()
        budget = sub["budget"].iloc[0]
        right.plot(stats.index.astype(float), stats.to_numpy(), marker="o", ms=3, color=color,
                   label=_short(f"{spec} / {method}@{budget}", 50))
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("n (images)")
    right.set_ylabel("feature extraction (images / s)")
    right.set_title("Approximations: feature throughput", fontsize=10)
    right.grid(True, which="both", alpha=0.3)
    right.legend(fontsize=6, ncol=2)
    device = str(frame["device"].iloc[0]) if not frame.empty else ""
    fig.suptitle(f"Speed on {device}", fontsize=10)
    return _save(fig, path)


def plot_training_time(frame: pd.DataFrame, path: str | os.PathLike) -> str | None:
    """NTK test accuracy against the (scaled) training time; the kernel-regression limit
    (t = inf) as a dashed line of the same colour.

    Parameters
    ----------
    frame : pandas.DataFrame
        The training_time harness's rows.
    path : str or path-like
        The PNG to write.

    Returns
    -------
    str or None
        The path written, or None without rows.
    """
    rows = _ok(frame, "training_time", "test_accuracy")
    if rows.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    specs = _order(rows["spec"])
    for spec, color in zip(specs, _colors(len(specs)), strict=True):
        part = rows[rows["spec"] == spec]
        scaled = part["time_scaled"].astype(float)
        finite = part[np.isfinite(scaled)].sort_values("time_scaled")
        ax.plot(finite["time_scaled"].astype(float), finite["value"], marker="o", ms=3,
                color=color, label=_short(spec, 45))
        limit = part[~np.isfinite(scaled)]
        if not limit.empty:
            ax.axhline(float(limit["value"].iloc[0]), color=color, ls="--", lw=1,
                       label=f"{_short(spec, 30)}, t=∞")
    ax.set_xscale("log")
    _label_axes(ax, "training time t·trace(K)/(n·classes)", "test accuracy",
                f"Accuracy against training time (n={int(rows['n'].max())})")
    return _save(fig, path)
