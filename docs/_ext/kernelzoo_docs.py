"""Sphinx glue for kernelzoo's documentation: everything here is generated from the code.

- ``.. kernelzoo-families::``: one row per registered family (class, canonical default
  spec, approximations), from :data:`kernelzoo.registry.FAMILIES`.
- ``.. kernelzoo-methods::``: one row per approximation method (class, what ``budget``
  counts, options and defaults, families), from :data:`kernelzoo.registry.METHODS`.
- ``.. kernelzoo-params:: FAMILY``: the family's ``Param`` table (name, default, allowed
  values, meaning, what ``kernelzoo compare`` searches, what gpytorch trains).
- ``.. kernelzoo-experiments::``: the named reproductions of ``kernelzoo reproduce``.
- ``.. kernelzoo-cli::``: ``kernelzoo [COMMAND ...] --help`` for every command of the
  argparse parser (:func:`kernelzoo.cli.build_parser`), so the reference cannot rot.
- Each family's API page gets its ``Param`` table appended, and each approximation's its
  options; family and approximation classes get the signature their constructors accept
  (``RBF(*, lengthscale=1.0)``, ``Nystrom(kernel, budget=None, seed=0, *, landmarks=...)``)
  so that numpydoc's validation compares the docstring with the real parameters.
- Members inherited from torch, gpytorch or scikit-learn are left to those projects' docs.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Any

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

from kernelzoo import registry

__all__ = ["setup", "reset_example"]


# ----------------------------------------------------------------------------- helpers
def _family_classes() -> dict[str, type]:
    return {name: registry.kernel_class(name) for name in registry.available()}


def _method_classes() -> dict[str, type]:
    return {name: registry.resolve(target) for name, target in registry.METHODS.items()}


def _literal(value: Any) -> str:
    return f"``{value!r}``"


def _cell(text: str) -> str:
    """One list-table cell (never empty, no line breaks)."""
    text = " ".join(str(text).split())
    return text if text else "\\-"


def _list_table(header: list[str], rows: list[list[str]], widths: str | None = None,
                indent: str = "") -> list[str]:
    lines = [f"{indent}.. list-table::", f"{indent}   :header-rows: 1"]
    if widths:
        lines.append(f"{indent}   :widths: {widths}")
    lines.append("")
    for row in [header, *rows]:
        first, *rest = row
        lines.append(f"{indent}   * - {_cell(first)}")
        lines += [f"{indent}     - {_cell(c)}" for c in rest]
    lines.append("")
    return lines


def _budget_text(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    summary = doc.split("\n\n", 1)[0].replace("\n", " ")
    return summary


def param_table(cls: type, indent: str = "") -> list[str]:
    """A family's ``Param`` tuple as a list-table (rst lines)."""
    rows = []
    for p in cls.params:
        choices = getattr(p.check, "choices", None)
        allowed = ", ".join(_literal(c) for c in choices) if choices else ""
        search = ""
        if p.search:
            search = ", ".join(repr(v) for v in p.search)
            if p.search_scale == "median_distance":
                search += " (x the median pairwise distance)"
        rows.append([f"``{p.name}``", _literal(p.default), allowed, p.doc, search,
                     p.train or ""])
    header = ["parameter", "default", "allowed values", "meaning", "compare searches",
              "gpytorch trains"]
    return _list_table(header, rows, "14 12 18 34 14 8", indent)


def options_table(cls: type, indent: str = "") -> list[str]:
    rows = [[f"``{name}``", _literal(default)] for name, default in cls.options.items()]
    if not rows:
        return [f"{indent}No options: ``budget`` and ``seed`` say everything.", ""]
    return _list_table(["option", "default"], rows, "30 70", indent)


def _capabilities(cls: type) -> str:
    flags = [name for name in ("has_features", "requires_labels", "trains_features",
                               "gram_only", "features_of_scaled_input")
             if getattr(cls, name, False)]
    return ", ".join(f"``{f}``" for f in flags)


# ----------------------------------------------------------------------------- directives
class _Generated(SphinxDirective):
    def _parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.section() if self._titles else nodes.container()
        content = StringList(lines, source=f"<{self.name}>")
        if self._titles:
            nested_parse_with_titles(self.state, content, container)
        else:
            self.state.nested_parse(content, self.content_offset, container)
        return list(container.children)

    _titles = False


class FamiliesDirective(_Generated):
    """``.. kernelzoo-families::``: every registered family."""

    def run(self) -> list[nodes.Node]:
        rows = []
        for name, cls in _family_classes().items():
            rows.append([f"``{name}``", f":class:`~{cls.__module__}.{cls.__name__}`",
                         f"``{cls().spec}``",
                         ", ".join(f"``{m}``" for m in cls.approximations)])
        return self._parse(_list_table(["family", "class", "canonical spec (defaults)",
                                        "approximations"], rows, "10 16 54 20"))


class MethodsDirective(_Generated):
    """``.. kernelzoo-methods::``: every approximation method."""

    def run(self) -> list[nodes.Node]:
        families = _family_classes()
        rows = []
        for method, cls in _method_classes().items():
            used_by = [f for f, k in families.items() if method in k.approximations]
            options = ", ".join(f"``{k}={v!r}``" for k, v in cls.options.items())
            rows.append([f"``{method}``", f":class:`~{cls.__module__}.{cls.__name__}`",
                         _budget_text(cls), options, ", ".join(used_by),
                         _capabilities(cls)])
        header = ["method", "class", "what it is (budget)", "options (defaults)", "families",
                  "declares"]
        return self._parse(_list_table(header, rows, "10 14 30 22 12 12"))


class ParamsDirective(_Generated):
    """``.. kernelzoo-params:: FAMILY``: the family's parameters."""

    required_arguments = 1

    def run(self) -> list[nodes.Node]:
        cls = registry.kernel_class(self.arguments[0])
        return self._parse(param_table(cls))


class ExperimentsDirective(_Generated):
    """``.. kernelzoo-experiments::``: the named reproductions (``kernelzoo reproduce``)."""

    def run(self) -> list[nodes.Node]:
        try:
            from kernelzoo.reproduce import EXPERIMENTS
        except ImportError:
            return self._parse(["This version has no ``kernelzoo.reproduce`` module.", ""])
        rows = []
        for name in sorted(EXPERIMENTS):
            e = EXPERIMENTS[name]
            published = "; ".join(
                f"{p.what}: {p.value if p.value is not None else 'n/a'}"
                f"{'%' if p.value is not None else ''} ({p.source}, {p.kind})"
                for p in e.published)
            rows.append([f"``{name}``", f"v{e.version}", e.title, e.dataset, published])
        return self._parse(_list_table(["name", "version", "what", "dataset",
                                        "set beside"], rows, "14 6 30 10 40"))


class CLIDirective(_Generated):
    """``.. kernelzoo-cli::``: the help of every command, as argparse prints it."""

    _titles = True

    def run(self) -> list[nodes.Node]:
        from kernelzoo.cli import build_parser

        lines: list[str] = []
        for words, parser in _walk(build_parser(), ["kernelzoo"]):
            title = " ".join(words)
            lines += [title, "^" * len(title), "", f"``{title} --help``:", "",
                      ".. code-block:: text", ""]
            with _columns(78):
                text = parser.format_help()
            lines += ["   " + line if line.strip() else "" for line in text.splitlines()]
            lines.append("")
        return self._parse(lines)


@contextlib.contextmanager
def _columns(width: int):
    """A fixed terminal width for argparse (it reads $COLUMNS), so the pages are stable."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def _walk(parser, words: list[str]):
    """``(words, parser)`` for the parser and every sub-command, depth first."""
    import argparse

    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                sub.prog = " ".join([*words, name])
                yield from _walk(sub, [*words, name])


# ----------------------------------------------------------------------------- autodoc hooks
def _kernel_base():
    from kernelzoo.kernels.base import Kernel

    return Kernel


def _approximation_base():
    from kernelzoo.approx.base import Approximation

    return Approximation


def _is_family(obj: Any) -> bool:
    return inspect.isclass(obj) and issubclass(obj, _kernel_base()) and bool(obj.params)


def _is_method(obj: Any) -> bool:
    return (inspect.isclass(obj) and issubclass(obj, _approximation_base())
            and bool(getattr(obj, "method", "")))


def _set_signatures(app: Sphinx) -> None:
    """Give family and approximation classes the signature their constructors accept.

    ``Kernel.__init__`` takes ``**kwargs`` checked against the class's ``Param`` tuple, and
    ``Approximation.__init__`` ``**options`` checked against ``options``: the documented
    signature lists those names with their defaults (keyword-only), which is what a caller
    may pass and what numpydoc's PR01/PR02 checks compare the docstring with.
    """
    keyword = inspect.Parameter.KEYWORD_ONLY
    for family in _family_classes().values():
        for cls in family.__mro__:
            if _is_family(cls):
                params = [inspect.Parameter(p.name, keyword, default=p.default)
                          for p in cls.params]
                cls.__signature__ = inspect.Signature(params)
    seen = set()
    for cls in _method_classes().values():
        for klass in cls.__mro__:
            if klass in seen or not _is_method(klass):
                continue
            seen.add(klass)
            own = inspect.signature(klass.__init__)
            positional = [p for name, p in own.parameters.items()
                          if name != "self" and p.kind != inspect.Parameter.VAR_KEYWORD]
            options = [inspect.Parameter(name, keyword, default=default)
                       for name, default in klass.options.items()]
            klass.__signature__ = inspect.Signature(positional + options)


def _foreign(member: Any) -> bool:
    """Defined outside kernelzoo (torch, gpytorch, scikit-learn, builtins)."""
    target = member.fget if isinstance(member, property) else member
    module = getattr(target, "__module__", None)
    if module is None and hasattr(target, "__objclass__"):  # methods of builtins (tuple.count)
        module = getattr(target.__objclass__, "__module__", None)
    if module is None:
        return False
    return not (module == "kernelzoo" or module.startswith("kernelzoo."))


def _skip_member(app, what, name, obj, skip, options):
    if what == "class" and (inspect.isroutine(obj) or isinstance(obj, property)):
        if _foreign(obj):
            return True
    # a class under another name (a module's former name for it, e.g. gpytorch's
    # RBFExactKernel = LengthscaleKernel): documented once, under its own name; the alias
    # is listed with its ``#:`` comment among the module's constants
    if inspect.isclass(obj) and name != obj.__name__ and not name.startswith("_"):
        return True
    return None


_ORDER_AFTER_NOTES = ("References", "Examples")


def _is_header(lines: list[str], i: int) -> bool:
    return (i + 1 < len(lines) and bool(lines[i].strip())
            and set(lines[i + 1].strip()) == {"-"}
            and len(lines[i + 1].strip()) >= len(lines[i].strip()) > 0)


def _shape_into_notes(app, what, name, obj, options, lines) -> None:
    """Before numpydoc: a ``Shape`` section (the house style, as PyTorch's) becomes a
    rubric at the end of ``Notes``, a section numpydoc knows (it drops unknown ones)."""
    starts = [i for i in range(len(lines)) if lines[i].strip() == "Shape" and _is_header(lines, i)]
    if not starts:
        return
    start = starts[0]
    end = next((j for j in range(start + 2, len(lines)) if _is_header(lines, j)), len(lines))
    body = lines[start + 2 : end]
    del lines[start:end]
    while body and not body[-1].strip():
        body.pop()
    block = [".. rubric:: Shape", "", *body, ""]
    headers = {lines[i].strip(): i for i in range(len(lines)) if _is_header(lines, i)}
    if "Notes" in headers:
        after = [i for h, i in headers.items() if i > headers["Notes"]]
        at = min(after) if after else len(lines)
        lines[at:at] = ["", *block]
        return
    later = [headers[h] for h in _ORDER_AFTER_NOTES if h in headers]
    at = min(later) if later else len(lines)
    lines[at:at] = ["", "Notes", "-----", *block]


def _append_tables(app, what, name, obj, options, lines) -> None:
    """After numpydoc: a family's Param table, an approximation's options table."""
    if what != "class":
        return
    if _is_family(obj):
        intro = f"Generated from ``{obj.__name__}.params``."
        if obj.family:
            intro += (f" Canonical spec with the defaults: ``{obj().spec}``; approximations: "
                      + ", ".join(f"``{m}``" for m in obj.approximations) + ".")
        lines += ["", ".. rubric:: Parameters at a glance", "", intro, ""]
        lines += param_table(obj)
    elif _is_method(obj):
        lines += ["", ".. rubric:: Options at a glance", "",
                  f"Generated from ``{obj.__name__}.options``; pass them as keywords of "
                  f"``k.approximate({obj.method!r}, budget=..., seed=..., **options)``.", ""]
        lines += options_table(obj)


def reset_example(gallery_conf, fname) -> None:
    """Before each gallery example: seeds, one torch thread, the default memory budget."""
    import numpy as np
    import torch

    import kernelzoo as kz

    torch.manual_seed(0)
    np.random.seed(0)
    torch.set_num_threads(int(os.environ.get("KERNELZOO_DOCS_THREADS", "1")))
    kz.set_memory_budget(None)


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("kernelzoo-families", FamiliesDirective)
    app.add_directive("kernelzoo-methods", MethodsDirective)
    app.add_directive("kernelzoo-params", ParamsDirective)
    app.add_directive("kernelzoo-cli", CLIDirective)
    app.add_directive("kernelzoo-experiments", ExperimentsDirective)
    app.connect("builder-inited", _set_signatures)
    app.connect("autodoc-skip-member", _skip_member)
    app.connect("autodoc-process-docstring", _shape_into_notes, priority=400)
    app.connect("autodoc-process-docstring", _append_tables, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
