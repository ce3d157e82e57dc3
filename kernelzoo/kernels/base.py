"""The kernel contract shared by every family.

A family subclasses :class:`Kernel`, declares its parameters as a tuple of
:class:`Param` (signature order, defaults, validation, search range, how
gpytorch trains it) and its capabilities as class attributes
(``approximations``, ``is_stationary``, ``compare_variants``), and implements
``_prepare`` (input layout), ``_block`` (one tile of the Gram) and ``_diag``.
Tiling under the memory budget, symmetry, dtype/device rules, spec strings and
the approximation entry point live here, once. Everything another package
needs to know about a family is asked of its class here, never decided by
testing the family's name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from kernelzoo import registry
from kernelzoo._validation import (
    as_tensor,
    check_finite_result,
    check_pair,
    parse_memory_budget,
)
from kernelzoo.kernels.params import (
    TRAIN_KINDS,
    Param,
    _check_literal,
    _literal,
    _plain,
    check_choice,
    check_int,
    check_positive,
)
from kernelzoo.ops.precision import full_precision
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["Param", "Kernel", "check_choice", "check_positive", "check_int", "TRAIN_KINDS"]


class Kernel:
    """Base class of every exact kernel.

    Subclasses set ``family`` and ``params``, declare their capabilities
    (below) and implement :meth:`_prepare`, :meth:`_block` and :meth:`_diag`;
    they may override :meth:`_block_bytes` (the working memory of one tile) and
    :meth:`_evaluate` (when tiles of single rows/columns are not the natural
    unit, e.g. batches of image pairs).

    Capabilities (class attributes and hooks, read by the approximations,
    the integrations and the harnesses):

    - ``approximations``: the methods this family supports (their classes:
      :data:`kernelzoo.registry.METHODS`);
    - ``is_stationary`` and :meth:`spectral_frequencies`: ``k(x, y)`` depends on
      ``x - y`` only, and frequencies drawn from its spectral density give
      random Fourier features;
    - ``Param.train`` and :meth:`trainable_params` (with :meth:`gram_with` for
      ``"positive"`` parameters): what gpytorch learns;
    - ``Param.search`` / ``search_scale``: what the accuracy harness searches;
    - ``compare_variants``: the parameter overrides ``kernelzoo compare`` runs
      by default (``({},)``: the defaults only);
    - ``is_conv``: whether inputs are images;
    - ``homogeneity``: the degree ``p`` of ``k(a x, b y) = (a b)^p k(x, y)``, or None.

    Shape:
        - ``gram(X, Y)``: X ``(n, ...)``, Y ``(m, ...)`` -> ``(n, m)``
        - ``diag(X)``: ``(n, ...)`` -> ``(n,)``

    Parameters
    ----------
    **kwargs
        The family's parameters (its ``params``, by name); unknown names are a
        ``TypeError``, bad values a ``ValueError`` naming the parameter.
    """

    family: ClassVar[str] = ""
    params: ClassVar[tuple[Param, ...]] = ()
    approximations: ClassVar[tuple[str, ...]] = ("nystrom",)
    is_stationary: ClassVar[bool] = False
    compare_variants: ClassVar[tuple[dict[str, Any], ...]] = ({},)
    #: parameter overrides that ``kernelzoo compare``'s stability harness adds beside the
    #: kernel (e.g. other poolings); none by default
    stability_variants: ClassVar[tuple[dict[str, Any], ...]] = ()
    #: vector kernels flatten images; conv kernels need image structure (families
    #: whose layout depends on a parameter override this with a property)
    is_conv: bool = False
    #: ``p`` with ``k(a x, b y) = (a b)^p k(x, y)`` for all ``a, b > 0`` (positively
    #: homogeneous kernels), None otherwise; families whose homogeneity depends on
    #: their parameters override this with a property. Read by the tests (scaled
    #: inputs must give scaled Grams wherever they fit the dtype).
    homogeneity: int | None = None

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
            value = _plain(kwargs.get(p.name, p.default))
            if p.check is not None:
                value = p.check(value, p.name)
            _check_literal(value, p.name)
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

    def replace(self, **params: Any) -> Kernel:
        """A kernel of the same family with some parameters changed (the others kept).

        Parameters
        ----------
        **params
            Parameters to change, by name.

        Returns
        -------
        Kernel
            A new kernel.
        """
        return type(self)(**{**self._params, **params})

    def trainable_params(self) -> dict[str, str]:
        """``{parameter: how gpytorch trains it}`` for this kernel (``Param.train``).

        Families narrow the class's list where an instance cannot train a
        parameter (override), e.g. a conv architecture that is too expensive to
        differentiate, or a bias that is off.
        """
        return {p.name: p.train for p in self.params if p.train is not None}

    def gram_with(
        self, x: torch.Tensor, y: torch.Tensor | None, values: dict[str, torch.Tensor],
        diag: bool = False,
    ) -> torch.Tensor:
        """The Gram of prepared inputs with some parameters given as (differentiable) tensors.

        The hook behind ``Param.train="positive"``: ``values`` maps parameter
        names to scalar tensors (gpytorch's constrained parameters); the others
        are this kernel's. ``y=None``: x with itself. Override where a family
        trains such parameters.

        Shape: ``(n, ...)``, ``(m, ...)`` -> ``(n, m)``; ``diag=True``: ``(n,)``
        (``k(x_i, y_i)``, or ``k(x_i, x_i)`` for ``y=None``).

        Parameters
        ----------
        x, y : torch.Tensor
            Prepared inputs (:meth:`prepare`); ``y=None``: x with itself.
        values : dict of str to torch.Tensor
            Parameter values as scalar tensors (gradients flow through them).
        diag : bool
            Only the diagonal.

        Returns
        -------
        torch.Tensor
            The Gram (or its diagonal).
        """
        raise NotImplementedError(f"{self.family} has no differentiable parameters")

    def spectral_frequencies(
        self, n_samples: int, dim: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Frequencies ``w`` from the spectral density: ``k(x, y) = E[cos(w . (x - y))]``.

        Only stationary kernels (``is_stationary``) have one; drawn on the CPU
        in float64 from ``generator``.

        Shape: ``(n_samples, dim)``.

        Parameters
        ----------
        n_samples : int
            Number of frequencies.
        dim : int
            Input dimension.
        generator : torch.Generator
            The CPU generator to draw from.

        Returns
        -------
        torch.Tensor
            CPU float64 frequencies.
        """
        raise NotImplementedError(
            f"{self.family} is not stationary: it has no spectral density to draw from"
        )

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
        """Validate and lay out one input (numpy or torch, any supported shape).

        Parameters
        ----------
        x : array or tensor
            One input.
        name : str
            Its name in error messages.

        Returns
        -------
        torch.Tensor
            The layout ``_block`` takes.
        """
        return self._prepare(as_tensor(x, name), name)

    def _check_compatible(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if x.shape[1:] != y.shape[1:]:
            raise ValueError(
                f"{self.family}: X and Y have mismatched feature shapes "
                f"{tuple(x.shape[1:])} and {tuple(y.shape[1:])}"
            )

    def prepare_pair(self, X: Any, Y: Any = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate and lay out X and (optionally) Y, and check that they go together.

        Same dtype and device, compatible shapes (channels, image sizes);
        ``Y=None`` gives ``(x, None)``.

        Shape: ``(n, ...)``, ``(m, ...)`` -> the layouts ``_block`` takes.

        Parameters
        ----------
        X, Y : array or tensor
            The inputs; ``Y`` optional.

        Returns
        -------
        tuple of torch.Tensor
            ``(x, y)``, ``y`` None when ``Y`` is.
        """
        x = self.prepare(X, "X")
        if Y is None:
            return x, None
        y = self.prepare(Y, "Y")
        check_pair(x, y)
        self._check_compatible(x, y)
        return x, y

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

    def tile_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """Working memory of one ``(n_rows, n_cols)`` tile of prepared inputs like ``x``, bytes.

        What a scheduler (e.g. the Dask runner) asks to size tiles under a budget.

        Parameters
        ----------
        n_rows, n_cols : int
            The tile's size.
        x : torch.Tensor
            A prepared input (its dtype and feature shape count).

        Returns
        -------
        int
            Bytes.
        """
        return int(self._block_bytes(n_rows, n_cols, x))

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
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
            Finite: where the values do not fit the dtype (docs/INPUTS.md), an
            ``OverflowError`` naming the inputs and the limit is raised instead.
        """
        budget = parse_memory_budget(memory_budget)
        x, y = self.prepare_pair(X, Y)
        with full_precision(x.device):  # no TF32 on CUDA (kernelzoo.ops.precision)
            out = self._evaluate(x, y, budget)
        return check_finite_result(out, f"{self.family} gram", {"X": x, "Y": y})

    def diag(self, X: Any) -> torch.Tensor:
        """``k(X[i], X[i])`` for every row (finite, or an ``OverflowError``).

        Shape: ``(n, ...)`` -> ``(n,)``.

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Numpy or torch.

        Returns
        -------
        torch.Tensor, ``(n,)``
            On X's device, in X's float dtype.
        """
        x = self.prepare(X, "X")
        with full_precision(x.device):
            out = self._diag(x)
        return check_finite_result(out, f"{self.family} diag", {"X": x})

    __call__ = gram

    def to_gpytorch(self, **options: Any):
        """This kernel as a ``gpytorch.kernels.Kernel`` (:mod:`kernelzoo.integrations.gpytorch`).

        integrations/ sits above kernels/: the entry point is resolved by name
        through the registry, not imported.

        Parameters
        ----------
        **options
            Of :func:`kernelzoo.integrations.gpytorch.to_gpytorch` (``image_shape``,
            ``gram_dtype``, ``cache_size``, ``train_hyperparameters``, gpytorch's kernel
            keywords).

        Returns
        -------
        gpytorch.kernels.Kernel
            Wrap it in ``ScaleKernel`` for an output scale.
        """
        return registry.integration("gpytorch")(self, **options)

    # ------------------------------------------------------------------ approximations
    @classmethod
    def approximation_class(cls, method: str) -> type:
        """The class implementing ``method`` (one of :attr:`approximations`) for this family.

        approx/ sits above kernels/: the class is resolved by name through the
        registry, not imported.

        Parameters
        ----------
        method : str
            One of :attr:`approximations`.

        Returns
        -------
        type
            A subclass of :class:`~kernelzoo.approx.base.Approximation`.
        """
        if method not in cls.approximations:
            raise ValueError(
                f"{cls.family}: unknown approximation method {method!r}; available: "
                f"{', '.join(cls.approximations)}"
            )
        return registry.resolve(registry.METHODS[method])

    def approximate(self, method: str, budget: Any = None, seed: int = 0, **options: Any):
        """An unfitted approximation of this kernel; call ``.fit(X)`` on it.

        ``method`` is one of :attr:`approximations`; ``budget`` counts what
        the method counts (features, landmarks, width, anchors per layer).

        Parameters
        ----------
        method : str
            One of :attr:`approximations`.
        budget : int or list of int
            What the method counts (features, landmarks, width, anchors per layer).
        seed : int
            Seed of every random draw, in ``[0, 2**32 - 1]``.
        **options
            The method's options (its class's ``options``).

        Returns
        -------
        Approximation
            Unfitted; call ``.fit(X)``.
        """
        return self.approximation_class(method)(self, budget=budget, seed=seed, **options)
