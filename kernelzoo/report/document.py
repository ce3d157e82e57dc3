"""A report as data: sections of text, tables and figures, rendered as Markdown and HTML.

The harnesses build :class:`Section` objects (their text, the tables they pivot
out of their rows, the PNGs they draw); :func:`to_markdown` and
:func:`to_html` render the same sections, so ``report.md`` and ``report.html``
always say the same thing. The HTML page is self-contained: its tables are
HTML and its figures are inline base64 PNGs.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Section", "to_html", "to_markdown"]


@dataclasses.dataclass
class Section:
    """One ``##`` section: a heading, an introduction, then blocks in order.

    Blocks are ``("text", str)``, ``("table", DataFrame)`` and ``("figure", file
    name, alt text)`` (the PNG lies in the report folder).
    """

    heading: str
    intro: str = ""
    blocks: list[tuple[Any, ...]] = dataclasses.field(default_factory=list)

    def text(self, text: str) -> Section:
        self.blocks.append(("text", text))
        return self

    def table(self, frame: pd.DataFrame) -> Section:
        self.blocks.append(("table", frame))
        return self

    def figure(self, folder: str | os.PathLike, name: str, alt: str,
               draw: Callable[[Path], Any]) -> Section:
        """Draw ``folder/name`` with ``draw(path)``; kept when it returns a path."""
        if draw(Path(folder) / name) is not None:
            self.blocks.append(("figure", name, alt))
        return self


def to_markdown(title: str, header: str, sections: Sequence[Section]) -> str:
    """``# title``, the header (Markdown), then each section."""
    from kernelzoo.report.tables import to_markdown as table_markdown

    parts = [f"# {title}\n\n", header]
    for section in sections:
        parts.append(f"\n## {section.heading}\n\n")
        if section.intro:
            parts.append(section.intro + "\n\n")
        for block in section.blocks:
            if block[0] == "text":
                parts.append(block[1] + "\n\n")
            elif block[0] == "table":
                parts.append(table_markdown(block[1]) + "\n")
            else:
                parts.append(f"![{block[2]}]({block[1]})\n\n")
    return "".join(parts)


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto;
       max-width: 1300px; padding: 0 1.5em; color: #1b1f23; line-height: 1.45; }
h1 { font-size: 1.7em; border-bottom: 2px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.3em; margin-top: 2em; border-bottom: 1px solid #d0d7de; }
table { border-collapse: collapse; margin: .8em 0 1.2em; font-size: .85em; }
th, td { border: 1px solid #d0d7de; padding: .25em .6em; }
th { background: #f3f5f7; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fafbfc; }
img { max-width: 100%; border: 1px solid #eaeef2; margin: .5em 0 1em; }
code { background: #f3f5f7; padding: 0 .25em; }
.meta { font-size: .85em; color: #57606a; }
"""


#: After loading, the page records on <body> how many of its images the browser decoded
#: ("3/3"), so a headless browser's DOM shows that the inline PNGs render.
_CHECK = """<script>
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var decoded = images.filter(function (i) { return i.complete && i.naturalWidth > 0; });
  document.body.setAttribute("data-images-decoded", decoded.length + "/" + images.length);
});
</script>"""


def _html_table(frame: pd.DataFrame) -> str:
    from kernelzoo.report.tables import format_number

    if frame.empty:
        return "<p><em>(no rows)</em></p>"
    table = frame.reset_index()
    numeric = {c for c in table.columns if pd.api.types.is_numeric_dtype(table[c])}
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = []
    for _, row in table.iterrows():
        cells = "".join(
            f'<td{" class=num" if column in numeric else ""}>'
            f"{html.escape(format_number(value))}</td>"
            for column, value in zip(table.columns, row.tolist(), strict=True))
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _inline_png(folder: Path, name: str, alt: str) -> str:
    data = base64.b64encode((folder / name).read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" data-file="{html.escape(name)}" '
            f'src="data:image/png;base64,{data}"></figure>')


def _inline_markdown(text: str) -> str:
    """Escape, then turn Markdown's `code` and **bold** into HTML (all the report uses)."""
    import re

    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


def _paragraphs(text: str) -> str:
    lines = [line for line in text.strip().splitlines()]
    if lines and all(line.startswith("- ") for line in lines):
        items = "".join(f"<li>{_inline_markdown(line[2:])}</li>" for line in lines)
        return f'<ul class="meta">{items}</ul>'
    return _plain_paragraphs(text)


def _header(text: str) -> str:
    """The run's metadata list, folded (its first two lines stay visible)."""
    lines = [line for line in text.strip().splitlines() if line.startswith("- ")]
    if len(lines) < 3 or len(lines) != len(text.strip().splitlines()):
        return _paragraphs(text)
    shown = " · ".join(_inline_markdown(line[2:]) for line in lines[:2])
    return (f'<details class="meta"><summary>{shown}</summary>'
            f"{_paragraphs(chr(10).join(lines[2:]))}</details>")


def _plain_paragraphs(text: str) -> str:
    return "".join(f"<p>{_inline_markdown(p)}</p>" for p in text.strip().split("\n\n") if p)


def to_html(title: str, header: str, sections: Sequence[Section],
            folder: str | os.PathLike) -> str:
    """The same report as one self-contained HTML page (figures read from ``folder``)."""
    folder = Path(folder)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>", _header(header)]
    for section in sections:
        parts.append(f"<section><h2>{html.escape(section.heading)}</h2>")
        if section.intro:
            parts.append(_paragraphs(section.intro))
        for block in section.blocks:
            if block[0] == "text":
                parts.append(_paragraphs(block[1]))
            elif block[0] == "table":
                parts.append(_html_table(block[1]))
            else:
                parts.append(_inline_png(folder, block[1], block[2]))
        parts.append("</section>")
    parts.append(_CHECK)
    parts.append("</body></html>\n")
    return "\n".join(parts)
