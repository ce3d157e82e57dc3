"""The kernel contract shared by every family.

A family subclasses :class:`Kernel`, declares its parameters as a tuple of
:class:`Param` (signature order, defaults, validation) and implements
``_prepare`` (input layout), ``_block`` (one tile of the Gram) and ``_diag``.
Tiling under the memory budget, symmetry, dtype/device rules, spec strings and
the approximation entry point live here, once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from kernelzoo._validation import as_tensor, check_pair, parse_memory_budget

__all__ = ["Param", "Kernel", "check_choice", "check_positive", "check_int"]


@dataclasses.dataclass(frozen=True)
class Param:
    """A kernel hyperparameter: its name, default, and a checker.

    ``check(value, name)`` returns the normalised value or raises a
    ``ValueError``/``TypeError`` naming the parameter and what is allowed.
    ``doc`` is shown by ``kernelzoo list``. ``search`` lists the values the
    accuracy harness tries on a validation split when a spec leaves the
    parameter free (empty: not searched); with ``search_scale="median_distance"``
    they are multiples of the median pairwise distance of the training inputs
    (so one grid suits 8x8 digits and 32x32 colour images).
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any] | None = None
    doc: str = ""
    search: tuple[Any, ...] = ()
    search_scale: str | None = None


def check_choice(*choices: Any) -> Callable[[Any, str], Any]:
    def check(value: Any, name: str) -> Any:
        if value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{name}={value!r} is not allowed; expected one of {allowed}")
        return value

    return check


def check_positive(allow_zero: bool = False, allow_none: bool = False) -> Callable[[Any, str], Any]:
    def check(value: Any, name: str) -> Any:
        if value is None and allow_none:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name} must be a number, got {value!r}")
        value = float(value)
        if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
            bound = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
        return value

    return check


def check_int(minimum: int | None = None, choices: Sequence[int] | None = None):
    def check(value: Any, name: str) -> int:
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            else:
                raise TypeError(f"{name} must be an integer, got {value!r}")
        value = int(value)
        if choices is not None and value not in choices:
            raise ValueError(f"{name}={value} is not allowed; expected one of {list(choices)}")
        if minimum is not None and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
        return value

    return check


def _literal(value: Any) -> str:
    """A Python literal for a spec string (floats as repr, tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return repr(value)


class Kernel:
    """Base class of every exact kernel.

    Subclasses set ``family``, ``params`` and ``approximations`` and implement
    :meth:`_prepare`, :meth:`_block` and :meth:`_diag`; they may override
    :meth:`_block_bytes` (the working memory of one tile) and
    :meth:`_evaluate` (when tiles of single rows/columns are not the natural
    unit, e.g. batches of image pairs).

    Shape:
        - ``gram(X, Y)``: X ``(n, ...)``, Y ``(m, ...)`` -> ``(n, m)``
        - ``diag(X)``: ``(n, ...)`` -> ``(n,)``
    """

    family: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    approximations: ClassVar[tuple[str, ...]] = ("nystrom",)
    compare_variants: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    #: parameter overrides that ``kernelzoo compare``'s stability harness adds beside the
    #: kernel (e.g. other poolings); none by default
    stability_variants: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: vector kernels flatten images; conv kernels need image structure (families
    #: whose layout depends on a parameter override this with a property)
    is_conv: bool = False

    def __init__(self, **kwargs: Any) -> None:
        names = [p.name for p in self.params]
        unknown = [k for k in kwargs if k not in names]
        if unknown:
            raise TypeError(
                f"{self.family}: unknown parameter {unknown[0]!r}; allowed parameters: "
                f"{', '.join(names) or '(none)'}"
            )
        values: dict[str, Any] = {}
        for p in self.params:
            value = kwargs.get(p.name, p.default)
            if p.check is not None:
                value = p.check(value, p.name)
            values[p.name] = value
        self._params = values
        self._check_params()

    # ------------------------------------------------------------------ params
    def stability_assumptions(self) -> dict[str, Any] | None:
        """Whether Bietti and Mairal's deformation-stability bound applies to this kernel.

        None when the bound is not stated for the family (the default). Otherwise a
        dict with ``holds`` (bool: every assumption the kernel can check holds),
        ``conditions`` (a short text: what was checked, with the values) and
        ``last_pooling`` (the scale of the last pooling, which the translation term
        of the bound divides by).
        """
        return None

    @classmethod
    def search_space(cls) -> dict[str, Param]:
        """The parameters searched on a validation split (those with ``Param.search``)."""
        return {p.name: p for p in cls.params if p.search}

    def _check_params(self) -> None:
        """Cross-parameter checks (override)."""

    def get_params(self) -> dict[str, Any]:
        """The parameters, in signature order."""
        return dict(self._params)

    def __getattr__(self, name: str) -> Any:
        params = self.__dict__.get("_params")
        if params is not None and name in params:
            return params[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    @property
    def spec(self) -> str:
        """Canonical spec string: every parameter, signature order; ``kz.kernel(spec)`` is equal."""
        args = ", ".join(f"{k}={_literal(v)}" for k, v in self._params.items())
        return f"{self.family}({args})"

    def __repr__(self) -> str:
        return f"kernelzoo.kernel({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Kernel) and self.spec == other.spec

    def __hash__(self) -> int:
        return hash(self.spec)

    def __getstate__(self) -> dict[str, Any]:
        return {"_params": self._params}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        """Bring a validated tensor into the layout ``_block`` expects (override)."""
        raise NotImplementedError

    def prepare(self, x: Any, name: str = "X") -> torch.Tensor:
        """Validate and lay out one input (numpy or torch, any supported shape)."""
        return self._prepare(as_tensor(x, name), name)

    def _check_compatible(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"{self.family}: X and Y have mismatched feature shapes "
                f"{tuple(x.shape[1:])} and {tuple(y.shape[1:])}"
            )

    # ------------------------------------------------------------------ compute
    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        """The ``(len(x), len(y))`` tile of the Gram; ``same`` means x is y (override)."""
        raise NotImplementedError

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        """k(x_i, x_i) for prepared inputs (override)."""
        raise NotImplementedError

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """Working memory of one ``(n_rows, n_cols)`` tile beyond the output, in bytes.

        Default: two tile-sized temporaries plus the row/column slices.
        """
        item = x.element_size()
        feat = int(np.prod(x.shape[1:]))
        return item * (2 * n_rows * n_cols + (n_rows + n_cols) * (feat + 2))

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        from kernelzoo.ops.tiling import tiled_gram

        return tiled_gram(self._block, x, y, budget, self._block_bytes)

    def gram(
        self, X: Any, Y: Any = None, memory_budget: int | float | str | None = None
    ) -> torch.Tensor:
        """The Gram matrix ``K[i, j] = k(X[i], Y[j])`` (``Y=None``: X with itself).

        Parameters
        ----------
        X, Y : array or tensor, ``(n, ...)`` and ``(m, ...)``
            Numpy or torch; the result is on X's device with X's float dtype.
        memory_budget : int or str, optional
            Working memory allowed beyond the output (bytes or ``"2GB"``);
            default :func:`kernelzoo.set_memory_budget`.

        Returns
        -------
        torch.Tensor, ``(n, m)``
        """
        budget = parse_memory_budget(memory_budget)
        x = self.prepare(X, "X")
        if Y is None:
            return self._evaluate(x, None, budget)
        y = self.prepare(Y, "Y")
        check_pair(x, y)
        self._check_compatible(x, y)
        return self._evaluate(x, y, budget)

    def diag(self, X: Any) -> torch.Tensor:
        """``k(X[i], X[i])`` for every row. Shape: ``(n, ...)`` -> ``(n,)``."""
        return self._diag(self.prepare(X, "X"))

    __call__ = gram

    def to_gpytorch(self, **options: Any):
        """This kernel as a ``gpytorch.kernels.Kernel`` (:mod:`kernelzoo.integrations.gpytorch`)."""
        from kernelzoo.integrations.gpytorch import to_gpytorch

        return to_gpytorch(self, **options)

    # ------------------------------------------------------------------ approximations
    def approximate(self, method: str, budget: Any = None, seed: int = 0, **options: Any):
        """An unfitted approximation of this kernel; call ``.fit(X)`` on it.

        ``method`` is one of :attr:`approximations`; ``budget`` counts what
        the method counts (features, landmarks, width, anchors per layer).
        """
        from kernelzoo.registry import approximation_class

        if method not in self.approximations:
            raise ValueError(
                f"{self.family}: unknown approximation method {method!r}; available: "
                f"{', '.join(self.approximations)}"
            )
        cls = approximation_class(self.family, method)
        return cls(self, budget=budget, seed=seed, **options)
