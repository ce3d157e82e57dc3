"""The README's Python snippets run, in order, as one session (so the README cannot rot).

Each ```python block of README.md is executed in one shared namespace, in a
temporary working directory (the snippets save files), as a reader pasting
them one after the other would; a block that raises fails the test with the
block's line number.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(first line number, code)`` of every ```python block."""
    return [(text.count("\n", 0, m.start()) + 2, m.group(1)) for m in _BLOCK.finditer(text)]


def test_readme_has_python_blocks():
    assert len(python_blocks(README.read_text(encoding="utf-8"))) >= 3


def test_readme_python_blocks_run(tmp_path, monkeypatch):
    pytest.importorskip("sklearn")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "readme"}
    for line, code in python_blocks(README.read_text(encoding="utf-8")):
        try:
            exec(compile(code, f"README.md:{line}", "exec"), namespace)
        except Exception as exc:  # noqa: BLE001 - any failure of a snippet fails the test
            pytest.fail(f"README.md block at line {line} raised {type(exc).__name__}: {exc}")
