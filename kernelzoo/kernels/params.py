"""Kernel hyperparameters: :class:`Param` and its checkers, and spec-string literals.

Every family declares its parameters as a tuple of :class:`Param`
(:mod:`kernelzoo.kernels.base` re-exports these names).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import check_int as _check_int

__all__ = ["Param", "check_choice", "check_positive", "check_int", "TRAIN_KINDS"]

#: how gpytorch trains a parameter (``Param.train``):
#: ``"lengthscale"``: gpytorch's own ``lengthscale`` (positive, ARD possible, priors); the
#: kernel is evaluated with that parameter at 1 on ``x / lengthscale``;
#: ``"positive"``: a positive gpytorch parameter ``raw_<name>``, evaluated through
#: :meth:`Kernel.gram_with`.
TRAIN_KINDS = ("lengthscale", "positive")


@dataclasses.dataclass(frozen=True)
class Param:
    """A kernel hyperparameter: its name, default, and a checker.

    ``check(value, name)`` returns the normalised value or raises a
    ``ValueError``/``TypeError`` naming the parameter and what is allowed.
    ``doc`` is shown by ``kernelzoo list``. ``search`` lists the values the
    accuracy harness tries on a validation split when a spec leaves the
    parameter free (empty: not searched); with ``search_scale="median_distance"``
    they are multiples of the median pairwise distance of the training inputs
    (so one grid suits 8x8 digits and 32x32 colour images). ``train`` says how
    gpytorch learns the parameter through the marginal likelihood (one of
    :data:`TRAIN_KINDS`; None: fixed); a kernel instance may narrow that set
    (:meth:`Kernel.trainable_params`).

    Parameters
    ----------
    name : str
        The keyword (and spec key).
    default : object
        Its value when not given; a spec literal.
    check : callable, optional
        ``check(value, name)``: the normalised value, or a ``ValueError``/``TypeError``.
    doc : str
        One line for ``kernelzoo list`` and the documentation's parameter tables.
    search : tuple
        Values the accuracy harness tries (empty: not searched).
    search_scale : {None, 'median_distance'}
        ``'median_distance'``: ``search`` values are multiples of the median pairwise
        distance of the training inputs.
    train : {None, 'lengthscale', 'positive'}
        How gpytorch learns it (:data:`TRAIN_KINDS`); None: fixed.
    """

    name: str
    default: Any
    check: Callable[[Any, str], Any] | None = None
    doc: str = ""
    search: tuple[Any, ...] = ()
    search_scale: str | None = None
    train: str | None = None

    def __post_init__(self) -> None:
        if self.train is not None and self.train not in TRAIN_KINDS:
            raise ValueError(f"Param {self.name}: train={self.train!r} is not one of {TRAIN_KINDS}")


def check_choice(*choices: Any) -> Callable[[Any, str], Any]:
    """A ``Param`` check: one of ``choices`` (which it exposes as ``check.choices``, so that
    tests and tools can enumerate a parameter's values, e.g. the fuzz suite).

    Parameters
    ----------
    *choices : object
        The allowed values.

    Returns
    -------
    callable
        ``check(value, name)``.
    """

    def check(value: Any, name: str) -> Any:
        if isinstance(value, (list, dict)) or value not in choices:
            allowed = ", ".join(repr(c) for c in choices)
            raise ValueError(f"{name}={value!r} is not allowed; expected one of {allowed}")
        return value

    check.choices = tuple(choices)  # type: ignore[attr-defined]
    return check


def check_positive(allow_zero: bool = False, allow_none: bool = False) -> Callable[[Any, str], Any]:
    """A ``Param`` check for a finite positive number (returned as a float).

    Parameters
    ----------
    allow_zero : bool
        Accept 0.
    allow_none : bool
        Accept None (returned as is).

    Returns
    -------
    callable
        ``check(value, name) -> float``.
    """

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


def check_int(
    minimum: int | None = None, choices: Sequence[int] | None = None, odd: bool = False
) -> Callable[[Any, str], int]:
    """A ``Param`` check for integers (:func:`kernelzoo._validation.check_int`); with
    ``choices`` it exposes them as ``check.choices`` (as :func:`check_choice`).

    Parameters
    ----------
    minimum : int, optional
        Smallest allowed value.
    choices : sequence of int, optional
        The allowed values.
    odd : bool
        Require an odd integer.

    Returns
    -------
    callable
        ``check(value, name) -> int``.
    """

    def check(value: Any, name: str) -> int:
        return _check_int(value, name, minimum=minimum, choices=choices, odd=odd)

    if choices is not None:
        check.choices = tuple(choices)  # type: ignore[attr-defined]
    return check


def _plain(value: Any) -> Any:
    """Python values for numpy/torch ones: arrays and tensors as (nested) lists, numpy
    scalars as Python scalars, tuples as lists, so that a parameter always has a spec."""
    if isinstance(value, (np.ndarray, torch.Tensor)):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _check_literal(value: Any, name: str) -> None:
    """A checked parameter value must be a spec literal (so that ``kz.kernel(k.spec) == k``)."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return
    if isinstance(value, (list, tuple)):
        for entry in value:
            _check_literal(entry, name)
        return
    raise TypeError(
        f"{name}={value!r} cannot be written in a spec string; give a number, a string, "
        f"None, True/False or a list of those"
    )


def _literal(value: Any) -> str:
    """A Python literal for a spec string (floats as repr, tuples as lists)."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return repr(value)
