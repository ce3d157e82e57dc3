"""Reports from harness DataFrames: Markdown/CSV tables and matplotlib plots.

:func:`write_report` turns the harnesses' tidy DataFrames and report sections
(:class:`Section`: text, pivoted tables with kernels as rows, plots) into a
folder with ``report.md``, the same report as one self-contained
``report.html`` (inline tables and base64 PNGs), ``results.csv`` (every row of
every harness) and ``metadata.json``. :mod:`kernelzoo.report.browser` renders
the HTML in headless Chromium (its DOM, a screenshot).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from kernelzoo._tidy import budget_column
from kernelzoo.report import plots, summaries, tables
from kernelzoo.report.document import Section, to_html, to_markdown

__all__ = ["Section", "combine", "plots", "read_results", "summaries", "tables",
           "write_report"]


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
    for col in ("n", "seed", "split", "n_features"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    meta_path = folder / "metadata.json"
    frame.attrs["metadata"] = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    return frame


def _metadata_block(metadata: Mapping[str, Any]) -> str:
    keys = ["command", "wall_seconds", "preset", "cpu_seconds", "load_average_start",
            "load_average_end", "time", "dataset", "device", "device_name", "dtype", "platform",
            "cpu_count", "torch_threads", "python", "kernelzoo", "torch", "numpy", "pandas",
            "git_commit", "note"]
    lines = []
    for key in keys:
        if key in metadata and metadata[key] not in (None, ""):
            value = metadata[key]
            if key in ("wall_seconds", "cpu_seconds"):
                value = f"{float(value):.1f} s"
            elif key.startswith("load_average"):
                value = ", ".join(f"{float(v):.2f}" for v in value) + " (1, 5, 15 min)"
            lines.append(f"- **{key}**: `{value}`" if key == "command" else
                         f"- **{key}**: {value}")
    return "\n".join(lines) + "\n"


def _generic_sections(frame: pd.DataFrame) -> list[Section]:
    """One section per harness: the mean of each metric (when no harness gave sections)."""
    sections = []
    for harness in dict.fromkeys(frame["harness"]) if "harness" in frame else []:
        section = Section(str(harness), "Mean of each metric (see `results.csv`).")
        sections.append(section.table(tables.generic_table(frame, harness)))
    return sections


def write_report(
    frames: Mapping[str, pd.DataFrame] | list[pd.DataFrame] | pd.DataFrame,
    out: str | os.PathLike,
    title: str = "kernelzoo compare",
    metadata: Mapping[str, Any] | None = None,
    sections: Sequence[Section] | None = None,
    reference: str | None = "rbf",
) -> dict[str, str]:
    """Write ``report.md``, ``report.html``, ``results.csv`` and ``metadata.json`` into ``out``.

    Parameters
    ----------
    frames : harness DataFrames (a mapping name -> frame, a list, or one combined frame)
    out : folder (created); the sections' PNGs are already there
    title : first heading
    metadata : run metadata; default the first frame's ``attrs["metadata"]``
    sections : the body (:class:`Section`, e.g. from each harness); default one
        generic table per harness
    reference : the spec whose accuracy the headline's paired differences subtract

    Returns
    -------
    dict
        ``{"report": path, "html": path, "results": path, "metadata": path}`` and
        ``"headline"``, the headline table as Markdown.
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
    body = list(sections) if sections is not None else _generic_sections(frame)
    headline_frame = summaries.headline_table(frame, reference) if not frame.empty \
        else pd.DataFrame()
    headline = Section("Headline", (
        "One row per kernel, every number from this run: exact test accuracy at the common "
        "n_train (mean ± std over the random splits), its paired difference to "
        f"`{reference}` in the same splits (mean ± std), the best approximation's accuracy, "
        "the smallest approximation error at the largest budget, the kernel similarity "
        f"(CKA) with `{reference}`, the relative distance after a 1-pixel shift, the "
        "effective dimension at the chosen λ, and exact Gram pairs per second. Every "
        "measurement is a row of `results.csv`.")).table(headline_frame)
    errors = tables.errors_table(frame)
    tail = [Section("Failures and skips", "Every measurement that did not run, and why "
                    "(the run went on).").table(errors)] if not errors.empty else []
    everything = [headline, *body, *tail]
    header = _metadata_block(meta)
    report = out / "report.md"
    report.write_text(to_markdown(title, header, everything))
    page = out / "report.html"
    page.write_text(to_html(title, header, everything, out))
    return {"report": str(report), "html": str(page), "results": str(results),
            "metadata": str(meta_path), "headline": tables.to_markdown(headline_frame)}
