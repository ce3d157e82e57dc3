"""Reports from harness DataFrames: Markdown/CSV tables and matplotlib plots.

:func:`write_report` turns the harnesses' tidy DataFrames into a folder with
``report.md`` (pivoted comparison tables, kernels as rows, and the plots),
``results.csv`` (every row of every harness) and ``metadata.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from kernelzoo._tidy import budget_column
from kernelzoo.report import plots, tables

__all__ = ["combine", "plots", "read_results", "tables", "write_report"]

_SECTIONS = (
    ("approximation", "Approximation error against budget",
     ("Relative Frobenius error ‖K − K̃‖_F / ‖K‖_F of each approximation's Gram against the "
      "exact Gram on the same points, median over seeds. The budget counts what each method "
      "counts (features, landmarks, network width, anchors per layer); Nyström landmark "
      "sets are nested along the budgets.")),
    ("accuracy", "Classification accuracy",
     ("Test accuracy; one-vs-all kernel ridge on the exact Gram, ridge on features for "
      "approximations. The ridge lambda and the kernel's hyperparameters are chosen on a "
      "validation split; the test split is used once, at the end.")),
    ("stability", "Stability to translations and deformations",
     ("Mean over images of ‖Φ(x) − Φ(L_τ x)‖ / ‖Φ(x)‖ = sqrt(K(x,x) + K(y,y) − 2K(x,y)) / "
      "sqrt(K(x,x)) for horizontal shifts of t pixels (zero fill) and smooth random "
      "deformations of ‖τ‖∞ pixels; the `pixels` row is ‖x − y‖ / ‖x‖.")),
    ("spectrum", "Spectrum and effective dimension",
     ("Eigenvalues μ_i of K/n (μ_i/μ_1) and d_eff(λ) = Σ μ_i / (μ_i + λ) = "
      "trace(K (K + nλ I)^-1), at λ relative to μ_1 and at the λ chosen on validation by "
      "the accuracy harness.")),
    ("speed", "Speed and memory",
     ("Exact Gram: pairs per second (n² / time, median of up to 5 runs after a warm-up); "
      "approximations: feature extraction in images per second at one budget (fitted "
      "beforehand). Peak memory: growth of the process's peak resident set on the CPU, "
      "torch.cuda.max_memory_allocated on a GPU.")),
)


def combine(frames: Mapping[str, pd.DataFrame] | list[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate harness DataFrames (columns united); metadata of the first is kept."""
    items = list(frames.values()) if isinstance(frames, Mapping) else list(frames)
    items = [f for f in items if f is not None]
    if not items:
        return pd.DataFrame()
    combined = pd.concat([f for f in items if not f.empty] or items, ignore_index=True,
                         sort=False)
    combined.attrs["metadata"] = dict(items[0].attrs.get("metadata", {}))
    return combined


def read_results(folder: str | os.PathLike) -> pd.DataFrame:
    """A report folder's ``results.csv`` back as one DataFrame (metadata in ``attrs``).

    ``write_report(read_results(folder), folder)`` rewrites the report from
    its own results (e.g. after a change to the tables or plots).
    """
    folder = Path(folder)
    frame = pd.read_csv(folder / "results.csv")
    frame["error"] = frame["error"].fillna("").astype(str)
    frame["budget"] = budget_column(frame["budget"])
    for col in ("n", "seed", "n_features"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    meta_path = folder / "metadata.json"
    frame.attrs["metadata"] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return frame


def _metadata_block(metadata: Mapping[str, Any]) -> str:
    keys = ["command", "wall_seconds", "time", "dataset", "device", "device_name", "dtype",
            "platform", "cpu_count", "torch_threads", "python", "kernelzoo", "torch", "numpy",
            "pandas", "git_commit", "note"]
    lines = []
    for key in keys:
        if key in metadata and metadata[key] not in (None, ""):
            value = metadata[key]
            if key == "wall_seconds":
                value = f"{float(value):.1f} s"
            lines.append(f"- **{key}**: `{value}`" if key == "command" else
                         f"- **{key}**: {value}")
    return "\n".join(lines) + "\n"


def _kernels_table(metadata: Mapping[str, Any]) -> pd.DataFrame:
    """Requested spec -> kernel used, measured throughput and the size each harness ran at."""
    used = metadata.get("kernels") or {}
    if not used:
        return pd.DataFrame()
    rates = metadata.get("probe_pairs_per_second") or {}
    sizes = metadata.get("sizes") or {}
    records = []
    for spec, kernel in used.items():
        record: dict[str, Any] = {"kernel": spec, "evaluated as": kernel,
                                  "probe pairs/s": rates.get(spec)}
        for harness, by_spec in sizes.items():
            if spec in by_spec:
                record[f"n {harness}"] = by_spec[spec]
        records.append(record)
    return pd.DataFrame.from_records(records).set_index("kernel")


def _plot_all(frame: pd.DataFrame, out: Path) -> dict[str, str]:
    jobs = {
        "approximation_error.png": lambda p: plots.plot_approximation_error(frame, p),
        "approximation_error_vs_time.png": lambda p: plots.plot_approximation_error(
            frame, p, against="seconds"),
        "accuracy.png": lambda p: plots.plot_accuracy(frame, p),
        "accuracy_vs_n_train.png": lambda p: plots.plot_accuracy_vs_n(frame, p),
        "stability.png": lambda p: plots.plot_stability(frame, p),
        "spectrum.png": lambda p: plots.plot_spectrum(frame, p),
        "speed.png": lambda p: plots.plot_speed(frame, p),
    }
    written = {}
    for name, job in jobs.items():
        path = job(out / name)
        if path is not None:
            written[name] = path
    return written


def _image(written: Mapping[str, str], name: str, alt: str) -> str:
    return f"![{alt}]({name})\n\n" if name in written else ""


def write_report(
    frames: Mapping[str, pd.DataFrame] | list[pd.DataFrame] | pd.DataFrame,
    out: str | os.PathLike,
    title: str = "kernelzoo compare",
    metadata: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """Write ``report.md``, ``results.csv``, ``metadata.json`` and PNG plots into ``out``.

    Parameters
    ----------
    frames : harness DataFrames (a mapping name -> frame, a list, or one combined frame)
    out : folder (created)
    title : first heading of report.md
    metadata : run metadata; default the first frame's ``attrs["metadata"]``

    Returns
    -------
    dict
        ``{"report": path, "results": path, "metadata": path, <png name>: path, ...}``;
        also ``"headline"``, the headline table as Markdown.
    """
    frame = frames if isinstance(frames, pd.DataFrame) else combine(frames)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = dict(frame.attrs.get("metadata", {}))
    meta.update(metadata or {})
    results = out / "results.csv"
    frame.to_csv(results, index=False)
    meta_path = out / "metadata.json"
    meta_path.write_text(json.dumps(meta, indent=2, default=str) + "\n")
    written = _plot_all(frame, out) if not frame.empty else {}

    headline = tables.to_markdown(tables.headline_table(frame)) if not frame.empty else ""
    parts = [f"# {title}\n\n", _metadata_block(meta)]
    kernels = _kernels_table(meta)
    if not kernels.empty:
        parts.append("\n## Kernels\n\nEach requested spec, the kernel evaluated (with the "
                     "hyperparameters chosen on the validation split by the accuracy harness), "
                     "its measured Gram throughput, and the size (n) each harness ran it at: "
                     "sizes follow one table of time per harness and the measured throughput "
                     "(`kernelzoo.bench.compare.SIZE_TABLE`).\n\n")
        parts.append(tables.to_markdown(kernels))
    parts.append("\n## Headline\n\nOne row per kernel: exact test accuracy at its largest "
                 "n_train, the best approximation's accuracy, the smallest approximation "
                 "error at the largest budget, relative distance after a 1-pixel shift, "
                 "effective dimension at the chosen λ, exact Gram pairs per second. Every "
                 "measurement and its error is in `results.csv`.\n\n")
    parts.append(headline)
    harnesses = set(frame["harness"]) if "harness" in frame else set()
    for harness, heading, text in _SECTIONS:
        if harness not in harnesses:
            continue
        parts.append(f"\n## {heading}\n\n{text}\n\n")
        if harness == "approximation":
            parts.append(tables.to_markdown(tables.approximation_table(frame)))
            parts.append("\nKernel alignment ⟨K, K̃⟩_F / (‖K‖_F ‖K̃‖_F) (1 is perfect):\n\n")
            parts.append(tables.to_markdown(tables.approximation_table(frame, "alignment")))
            parts.append("\n" + _image(written, "approximation_error.png", "error vs budget"))
            parts.append(_image(written, "approximation_error_vs_time.png", "error vs time"))
        elif harness == "accuracy":
            parts.append(tables.to_markdown(tables.accuracy_table(frame)))
            parts.append("\nExact kernels against n_train:\n\n")
            parts.append(tables.to_markdown(tables.accuracy_vs_n_table(frame)))
            parts.append("\n" + _image(written, "accuracy.png", "accuracy vs budget"))
            parts.append(_image(written, "accuracy_vs_n_train.png", "accuracy vs n_train"))
        elif harness == "stability":
            parts.append(tables.to_markdown(tables.stability_table(frame)))
            parts.append("\n" + _image(written, "stability.png", "stability"))
        elif harness == "spectrum":
            parts.append(tables.to_markdown(tables.spectrum_table(frame)))
            parts.append("\n" + _image(written, "spectrum.png", "spectrum"))
        elif harness == "speed":
            parts.append(tables.to_markdown(tables.speed_table(frame)))
            parts.append("\n" + _image(written, "speed.png", "speed"))
    for harness in sorted(harnesses - {s[0] for s in _SECTIONS}):
        parts.append(f"\n## {harness}\n\nMean of each metric (see `results.csv`).\n\n")
        parts.append(tables.to_markdown(tables.generic_table(frame, harness)))
    errors = tables.errors_table(frame)
    if not errors.empty:
        parts.append("\n## Failures and skips\n\nEvery measurement that did not run, "
                     "and why (the run went on).\n\n")
        parts.append(tables.to_markdown(errors))
    report = out / "report.md"
    report.write_text("".join(parts))
    return {"report": str(report), "results": str(results), "metadata": str(meta_path),
            "headline": headline, **written}
