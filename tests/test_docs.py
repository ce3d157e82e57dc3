"""The documentation covers the package (the site itself is built by .ci/run with -W).

- Every public module (one with ``__all__``, outside private and internal packages)
  is listed in docs/api/index.rst, or belongs to a package listed there (whose
  ``__all__`` is then its public face): a new module cannot be left out of the API
  reference silently.
- The gallery has at least six runnable examples, each drawing a plot.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import kernelzoo

DOCS = Path(__file__).resolve().parents[1] / "docs"
#: modules that are another module under a former or shorter name
ALIASES = {
    "kernelzoo.integrations.sklearn": "kernelzoo.sklearn",
    "kernelzoo.integrations.store": "kernelzoo.store",
}
#: internal numerics (documented in docs/ARCHITECTURE.md, not part of the API)
INTERNAL = ("kernelzoo.kernels.functional",)


def listed_modules() -> set[str]:
    text = (DOCS / "api" / "index.rst").read_text(encoding="utf-8")
    return set(re.findall(r"^   (kernelzoo[\w.]*)$", text, re.MULTILINE))


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(kernelzoo.__path__, "kernelzoo."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts) or info.name.startswith(INTERNAL):
            continue
        if hasattr(importlib.import_module(info.name), "__all__"):
            names.append(info.name)
    return names


def test_every_public_module_is_in_the_api_reference():
    listed = listed_modules()
    missing = []
    for name in public_modules():
        target = ALIASES.get(name, name)
        packages = [p for p in listed if target.startswith(p + ".") and p != "kernelzoo"]
        if target not in listed and not packages:
            missing.append(name)
    assert not missing, f"add these modules to docs/api/index.rst: {missing}"


def test_listed_names_exist():
    for name in listed_modules():
        module, _, attr = name.rpartition(".")
        try:
            importlib.import_module(name)
        except ModuleNotFoundError:
            assert hasattr(importlib.import_module(module), attr), name


def test_gallery_has_six_examples_with_plots():
    examples = sorted((DOCS / "examples").glob("plot_*.py"))
    assert len(examples) >= 6, examples
    for path in examples:
        text = path.read_text(encoding="utf-8")
        assert text.startswith('"""'), f"{path.name}: needs a docstring with a title"
        assert "plt.subplots" in text, f"{path.name}: draws no figure"
