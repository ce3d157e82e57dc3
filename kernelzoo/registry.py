"""The registry: family name -> kernel class, approximation -> class, spec strings.

Every family and approximation is listed here, explicitly (no registration by
import side effect). Modules are imported on first use so that ``import
kernelzoo`` stays light.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any

__all__ = ["kernel", "available", "kernel_class", "approximation_class", "parse_spec"]

#: family -> "module:Class"
FAMILIES: dict[str, str] = {
    "arccos": "kernelzoo.kernels.arccos:ArcCosine",
    "ckn": "kernelzoo.kernels.ckn:CKN",
    "nngp": "kernelzoo.kernels.nngp:NNGP",
    "ntk": "kernelzoo.kernels.ntk:NTK",
    "rbf": "kernelzoo.kernels.rbf:RBF",
}

#: (family or "*", method) -> "module:Class"; "*" applies to every family
APPROXIMATIONS: dict[tuple[str, str], str] = {
    ("*", "nystrom"): "kernelzoo.approx.nystrom:Nystrom",
    ("rbf", "rff"): "kernelzoo.approx.random_features:RandomFourierFeatures",
    ("rbf", "orf"): "kernelzoo.approx.random_features:OrthogonalRandomFeatures",
    ("arccos", "random-features"): "kernelzoo.approx.random_features:ArcCosineFeatures",
    ("nngp", "monte-carlo"): "kernelzoo.approx.finite_width:MonteCarloNNGP",
    ("ntk", "empirical"): "kernelzoo.approx.finite_width:EmpiricalNTK",
    ("ckn", "layerwise"): "kernelzoo.approx.ckn:LayerwiseCKN",
    ("ckn", "supervised"): "kernelzoo.approx.ckn:SupervisedCKN",
}


def _import(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def available() -> list[str]:
    """Sorted names of the kernel families."""
    return sorted(FAMILIES)


def kernel_class(family: str) -> type:
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(
            f"unknown kernel family {family!r}; available: {', '.join(available())}"
        )
    return _import(FAMILIES[family])


def approximation_class(family: str, method: str) -> type:
    target = APPROXIMATIONS.get((family, method)) or APPROXIMATIONS.get(("*", method))
    if target is None:
        methods = sorted({m for (f, m) in APPROXIMATIONS if f in (family, "*")})
        raise ValueError(
            f"{family}: unknown approximation method {method!r}; available: {', '.join(methods)}"
        )
    return _import(target)


def _literal(node: ast.AST, spec: str) -> Any:
    if isinstance(node, ast.Name):  # a bare identifier is a string
        return node.id
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_literal(e, spec) for e in node.elts]
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise ValueError(
            f"spec {spec!r}: {ast.unparse(node)!r} is not a literal (number, string, list, "
            f"None, True/False)"
        ) from None


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"family(key=value, ...)"`` -> ``(family, params)``, parsed with ``ast`` (never eval).

    A bare ``"family"`` has no parameters.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"kernel spec must be a non-empty string, got {spec!r}")
    try:
        tree = ast.parse(spec.strip(), mode="eval").body
    except SyntaxError as exc:
        raise ValueError(
            f"kernel spec {spec!r} is not of the form family(key=value, ...): {exc.msg}"
        ) from None
    if isinstance(tree, ast.Name):
        return tree.id, {}
    if not (isinstance(tree, ast.Call) and isinstance(tree.func, ast.Name)):
        raise ValueError(f"kernel spec {spec!r} is not of the form family(key=value, ...)")
    if tree.args:
        raise ValueError(
            f"kernel spec {spec!r}: parameters must be given as key=value, "
            f"got a positional {ast.unparse(tree.args[0])!r}"
        )
    params: dict[str, Any] = {}
    for kw in tree.keywords:
        if kw.arg is None:
            raise ValueError(f"kernel spec {spec!r}: **kwargs are not allowed")
        params[kw.arg] = _literal(kw.value, spec)
    return tree.func.id, params


def kernel(name_or_spec: str, **params: Any):
    """A kernel from a family name and parameters, or from a spec string.

    >>> kernel("rbf", lengthscale=2.0) == kernel("rbf(lengthscale=2.0)")
    True

    Keyword parameters override those in the spec string.
    """
    family, spec_params = parse_spec(name_or_spec)
    cls = kernel_class(family)
    spec_params.update(params)
    return cls(**spec_params)
