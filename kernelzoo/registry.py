"""The registry: family name -> kernel class, method name -> approximation class, spec strings.

Every family and approximation is listed here, explicitly (no registration by
import side effect), as a ``"module:attr"`` string imported on first use, so
that ``import kernelzoo`` stays light and this module imports no other
kernelzoo module: it sits in the lowest layer, and the few places where a lower
layer hands over to a higher one (``k.approximate()``, ``k.to_gpytorch()``)
resolve a name here instead of importing upward (``tests/test_layers.py``).

Which approximations a family supports is said by the family's class
(``Kernel.approximations``, method names); this table only says which class
implements each method.
"""

from __future__ import annotations

import ast
import importlib
from typing import Any

__all__ = [
    "FAMILIES",
    "METHODS",
    "INTEGRATIONS",
    "PREVIOUS_CLASSES",
    "kernel",
    "available",
    "kernel_class",
    "approximation_class",
    "integration",
    "parse_spec",
    "resolve",
    "same_kernel",
]

#: family -> "module:Class"
FAMILIES: dict[str, str] = {
    "arccos": "kernelzoo.kernels.arccos:ArcCosine",
    "ckn": "kernelzoo.kernels.ckn:CKN",
    "matern": "kernelzoo.kernels.matern:Matern",
    "nngp": "kernelzoo.kernels.nngp:NNGP",
    "ntk": "kernelzoo.kernels.ntk:NTK",
    "rbf": "kernelzoo.kernels.rbf:RBF",
}

#: approximation method -> "module:Class" (which families offer it: ``Kernel.approximations``)
METHODS: dict[str, str] = {
    "nystrom": "kernelzoo.approx.nystrom:Nystrom",
    "rff": "kernelzoo.approx.random_features:RandomFourierFeatures",
    "orf": "kernelzoo.approx.random_features:OrthogonalRandomFeatures",
    "random-features": "kernelzoo.approx.random_features:ArcCosineFeatures",
    "monte-carlo": "kernelzoo.approx.finite_width:MonteCarloNNGP",
    "empirical": "kernelzoo.approx.finite_width:EmpiricalNTK",
    "layerwise": "kernelzoo.approx.ckn:LayerwiseCKN",
    "supervised": "kernelzoo.approx.ckn_supervised:SupervisedCKN",
}

#: saved approximations of format "kernelzoo-approximation/1" name their class as
#: "module:Class" as it was then; this frozen table maps those names to methods, so
#: that moving code breaks neither today's files (which name the method) nor those
PREVIOUS_CLASSES: dict[str, str] = {
    "kernelzoo.approx.nystrom:Nystrom": "nystrom",
    "kernelzoo.approx.random_features:RandomFourierFeatures": "rff",
    "kernelzoo.approx.random_features:OrthogonalRandomFeatures": "orf",
    "kernelzoo.approx.random_features:ArcCosineFeatures": "random-features",
    "kernelzoo.approx.finite_width:MonteCarloNNGP": "monte-carlo",
    "kernelzoo.approx.finite_width:EmpiricalNTK": "empirical",
    "kernelzoo.approx.ckn:LayerwiseCKN": "layerwise",
    "kernelzoo.approx.ckn:SupervisedCKN": "supervised",
}

#: bridge -> "module:function" (``k.to_gpytorch()`` and ``a.to_gpytorch()`` resolve it here)
INTEGRATIONS: dict[str, str] = {
    "gpytorch": "kernelzoo.integrations.gpytorch:to_gpytorch",
}


def resolve(target: str) -> Any:
    """The object named by ``"package.module:attr"``, importing the module on first use.

    Parameters
    ----------
    target : str
        ``"package.module:attr"``.

    Returns
    -------
    object
        The attribute.
    """
    module, sep, name = target.partition(":")
    if not sep or not module.startswith("kernelzoo."):
        raise ValueError(f"target must be 'kernelzoo.module:attr', got {target!r}")
    return getattr(importlib.import_module(module), name)


def available() -> list[str]:
    """Sorted names of the kernel families."""
    return sorted(FAMILIES)


def kernel_class(family: str) -> type:
    """The class of a registered family (an unknown family is a ``ValueError`` naming them).

    Parameters
    ----------
    family : str
        A family name.

    Returns
    -------
    type
        A subclass of :class:`kernelzoo.kernels.base.Kernel`.
    """
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(
            f"unknown kernel family {family!r}; available: {', '.join(available())}"
        )
    return resolve(FAMILIES[family])


def approximation_class(family: str, method: str) -> type:
    """The class implementing ``method`` for ``family`` (one of the family's ``approximations``).

    Parameters
    ----------
    family : str
        A family name.
    method : str
        One of its approximation methods.

    Returns
    -------
    type
        The approximation class.
    """
    return kernel_class(family).approximation_class(method)


def integration(name: str) -> Any:
    """The entry point of a bridge to another library (``"gpytorch"``: ``to_gpytorch``).

    Parameters
    ----------
    name : str
        A key of :data:`INTEGRATIONS`.

    Returns
    -------
    callable
        The entry point.
    """
    if name not in INTEGRATIONS:
        raise ValueError(f"unknown integration {name!r}; available: {', '.join(INTEGRATIONS)}")
    return resolve(INTEGRATIONS[name])


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

    A bare ``"family"`` has no parameters; a parameter given twice is an error
    naming it.

    Parameters
    ----------
    spec : str
        ``"family(key=value, ...)"`` or ``"family"``.

    Returns
    -------
    tuple
        ``(family, params)``.
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
        if kw.arg in params:
            raise ValueError(f"kernel spec {spec!r}: parameter {kw.arg!r} is given twice")
        params[kw.arg] = _literal(kw.value, spec)
    return tree.func.id, params


def kernel(name_or_spec: str, **params: Any):
    """A kernel from a family name and parameters, or from a spec string.

    >>> kernel("rbf", lengthscale=2.0) == kernel("rbf(lengthscale=2.0)")
    True

    Keyword parameters override those in the spec string.

    Parameters
    ----------
    name_or_spec : str
        A family name (:func:`available`) or a spec string.
    **params
        The family's parameters, by name.

    Returns
    -------
    Kernel
        The kernel; ``kz.kernel(k.spec) == k``.
    """
    family, spec_params = parse_spec(name_or_spec)
    cls = kernel_class(family)
    spec_params.update(params)
    return cls(**spec_params)


def same_kernel(a: str, b: str) -> bool:
    """Whether two spec strings name the same kernel: parsed, with defaults filled in.

    ``"rbf()"`` and ``"rbf(lengthscale=1.0)"`` are the same kernel, and so is a
    spec written before a parameter with a default existed; a spec that no
    longer parses or validates names no kernel of today (False).

    Parameters
    ----------
    a, b : str
        Spec strings.

    Returns
    -------
    bool
        Whether they name the same kernel.
    """
    if a == b:
        return True
    try:
        return kernel(a) == kernel(b)
    except (TypeError, ValueError):
        return False
