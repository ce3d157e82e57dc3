"""The approximation contract: ``fit`` / ``features`` / ``gram`` / ``diag`` / ``save``.

Constructors only store what they are given (scikit-learn's convention);
``fit`` draws the randomness from ``seed`` (on the CPU in float64, then moved
and cast, so a seed gives the same approximation on CPU and CUDA) and sets the
fitted state, named with a trailing underscore.

What an approximation can do is declared on its class (``has_features``,
``requires_labels``, ``trains_features``, ``gram_only``,
``features_of_scaled_input``): the integrations read these, never the method's
name.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import torch

from kernelzoo import registry
from kernelzoo._io import atomic_write
from kernelzoo._validation import (
    check_finite_result,
    check_int,
    check_pair,
    check_seed,
    parse_memory_budget,
)
from kernelzoo._version import __version__
from kernelzoo.approx.saved import (
    FORMAT,
    PREVIOUS_FORMAT,
    _storable,
    _tensors,
    load,
    payload_checksum,
)
from kernelzoo.ops.precision import full_precision
from kernelzoo.ops.tiling import tiled_gram

__all__ = [
    "FORMAT",
    "PREVIOUS_FORMAT",
    "Approximation",
    "check_budget",
    "generator",
    "load",
    "payload_checksum",
]


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (draws in float64, then moved and cast).

    Parameters
    ----------
    seed : int
        The seed.

    Returns
    -------
    torch.Generator
        A CPU generator.
    """
    return torch.Generator().manual_seed(int(seed))


def check_budget(budget: Any, name: str = "budget") -> int:
    """A positive integer (a budget, or a count option), or an error naming ``name``.

    Parameters
    ----------
    budget : object
        The value to check.
    name : str
        Its name in the error message.

    Returns
    -------
    int
        The budget.
    """
    return check_int(budget, name, positive=True)


def _product_tile(a: torch.Tensor, b: torch.Tensor, same: bool,
                  out: torch.Tensor | None) -> torch.Tensor:
    """``a @ b.T``, into ``out`` when given and nothing needs gradients (a tiling block)."""
    if out is None or a.requires_grad or b.requires_grad:
        return a @ b.T
    return torch.mm(a, b.T, out=out)


class Approximation:
    """Base class of approximate kernels.

    Subclasses set ``method`` and ``options`` (name -> default), implement
    :meth:`_fit` and either :meth:`_features` (feature maps) or
    :meth:`_gram_block` (Gram-only approximations), and declare what they can
    do (class attributes below). :meth:`gram` evaluates tiles under the memory
    budget (:meth:`_block_bytes` says what a tile costs).

    Shape:
        - ``features(X)``: ``(n, ...)`` -> ``(n, n_features)``
        - ``gram(X, Y)``: ``(n, ...)``, ``(m, ...)`` -> ``(n, m)``
        - ``diag(X)``: ``(n, ...)`` -> ``(n,)``

    Parameters
    ----------
    kernel : Kernel
        The exact kernel to approximate.
    budget : int or list of int
        What the method counts (features, landmarks, width, anchors per layer).
    seed : int
        Seed of every random draw, in ``[0, 2**32 - 1]``.
    **options
        The method's options (its ``options``, by name).
    """

    method: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    #: :meth:`features` exists (otherwise only :meth:`gram` / :meth:`diag`)
    has_features: ClassVar[bool] = True
    #: ``fit`` needs labels ``y``
    requires_labels: ClassVar[bool] = False
    #: the features are a network whose weights can be trained through a
    #: downstream loss (gpytorch's marginal likelihood): :meth:`network`
    trains_features: ClassVar[bool] = False
    #: the features are too wide to hand over (one column per network parameter):
    #: integrations use :meth:`gram`, which tiles them under the memory budget
    gram_only: ClassVar[bool] = False
    #: ``features(x)`` is ``f(x / lengthscale)`` with draws that do not depend on the
    #: kernel's lengthscale, so a trainable lengthscale rescales the input instead
    features_of_scaled_input: ClassVar[bool] = False

    def __init__(self, kernel, budget: Any = None, seed: int = 0, **options: Any) -> None:
        unknown = [k for k in options if k not in self.options]
        if unknown:
            raise TypeError(
                f"{kernel.family}/{self.method}: unknown option {unknown[0]!r}; allowed: "
                f"{', '.join(self.options) or '(none)'}"
            )
        self.kernel = kernel
        self.seed = check_seed(seed, "seed")
        self.budget = self._check_budget(budget)
        self.opts = {**self.options, **options}
        self._check_options()
        self._cache: dict[tuple, dict[str, torch.Tensor]] = {}

    # ------------------------------------------------------------------ hooks
    def _check_budget(self, budget: Any) -> Any:
        return check_budget(budget)

    def _check_options(self) -> None:
        """Validate ``self.opts`` (override)."""

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        raise NotImplementedError

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _gram_block(self, x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """One tile of the approximate Gram; ``y=None``: x with itself (override)."""
        fx = self._features(x)
        fy = fx if y is None else self._features(y)
        return fx @ fy.T

    def _row_bytes(self, x: torch.Tensor) -> int:
        """Working memory of one input row's features: twice ``n_features`` numbers.

        Gram-only approximations hold per-row data of the same width
        (``n_features``), e.g. the empirical NTK's Jacobian rows.
        """
        return 2 * x.element_size() * int(getattr(self, "n_features_", 1))

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """Working memory of one tile: the tile, its transpose (symmetric Grams) and the
        features of its rows and columns."""
        return 2 * x.element_size() * n_rows * n_cols + (n_rows + n_cols) * self._row_bytes(x)

    # ------------------------------------------------------------------ public
    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(kernel={self.kernel.spec!r}, method={self.method!r}, "
            f"budget={self.budget!r}, seed={self.seed})"
        )

    @property
    def spec(self) -> str:
        return self.kernel.spec

    @property
    def is_fitted(self) -> bool:
        return getattr(self, "fitted_", False)

    def _require_fit(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                f"this {self.method} approximation is not fitted yet; call .fit(X) first"
            )

    def fitted_state(self) -> dict[str, Any]:
        """The fitted state (what :meth:`save` writes): attributes ending in ``_``.

        Raises a ``RuntimeError`` before :meth:`fit`.
        """
        self._require_fit()
        return self._get_state()

    def fit(self, X: Any, y: Any = None) -> Approximation:
        """Fit on training inputs ``X`` ``(n, ...)`` (labels ``y`` where the method uses them).

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Training inputs.
        y : array, ``(n,)``, optional
            Labels, for methods that use them (``requires_labels``).

        Returns
        -------
        Approximation
            ``self``, fitted.
        """
        x = self.kernel.prepare(X, "X")
        yt = None if y is None else torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
        if yt is not None and yt.shape[0] != x.shape[0]:
            raise ValueError(f"y has {yt.shape[0]} labels but X has {x.shape[0]} samples")
        self._cache = {}
        self.input_shape_ = tuple(x.shape[1:])
        with full_precision(x.device):
            self._fit(x, yt)
        self.fitted_ = True
        return self

    def prepare(self, X: Any, name: str = "X") -> torch.Tensor:
        """Validate and lay out one input for the fitted approximation.

        As the kernel's ``prepare``, and the feature shape must be the one
        :meth:`fit` saw (``RuntimeError`` before ``fit``).

        Shape: ``(n, ...)`` -> the kernel's layout.

        Parameters
        ----------
        X : array or tensor
            One input.
        name : str
            Its name in error messages.

        Returns
        -------
        torch.Tensor
            The kernel's layout.
        """
        self._require_fit()
        x = self.kernel.prepare(X, name)
        if tuple(x.shape[1:]) != tuple(self.input_shape_):
            raise ValueError(
                f"{name} has feature shape {tuple(x.shape[1:])} but the approximation was "
                f"fitted on {tuple(self.input_shape_)}"
            )
        return x

    def fitted_on(self, x: torch.Tensor, **tensors: torch.Tensor) -> dict[str, torch.Tensor]:
        """The fitted tensors moved to ``x``'s device and dtype (cached).

        Parameters
        ----------
        x : torch.Tensor
            Gives the device and dtype.
        **tensors : torch.Tensor
            The fitted tensors, by name.

        Returns
        -------
        dict of str to torch.Tensor
            Moved and cast.
        """
        key = (x.device, x.dtype)
        if key not in self._cache:
            self._cache[key] = {k: v.to(device=x.device, dtype=x.dtype) for k, v in tensors.items()}
        return self._cache[key]

    @property
    def n_features(self) -> int:
        """The feature dimension D of :meth:`features`."""
        self._require_fit()
        return int(self.n_features_)

    def features(self, X: Any) -> torch.Tensor:
        """Feature map ``(n, ...)`` -> ``(n, n_features)``; ``features(X) @ features(Y).T ~ K``.

        Finite, or an ``OverflowError`` naming X (docs/INPUTS.md).

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Numpy or torch, in the kernel's layout.

        Returns
        -------
        torch.Tensor, ``(n, n_features)``
            On X's device, in X's float dtype.
        """
        if not self.has_features:
            raise NotImplementedError(f"{self.method} has no explicit features; use gram()")
        x = self.prepare(X)
        with full_precision(x.device):
            out = self._features(x)
        return check_finite_result(out, f"{self.method} features", {"X": x})

    def gram(
        self, X: Any, Y: Any = None, memory_budget: int | float | str | None = None
    ) -> torch.Tensor:
        """The approximate Gram: ``features(X) @ features(Y).T`` where features exist.

        Working memory beyond the output stays under ``memory_budget`` (bytes
        or ``"2GB"``; default :func:`kernelzoo.set_memory_budget`): when the
        features of X and Y fit, they are computed once and their product is
        tiled; otherwise (and for ``gram_only`` approximations) every tile
        computes the features, or per-row data, of its own rows and columns.

        The result is finite, or an ``OverflowError`` naming the inputs is raised.

        Shape: ``(n, ...)``, ``(m, ...)`` -> ``(n, m)``.

        Parameters
        ----------
        X, Y : array or tensor, ``(n, ...)`` and ``(m, ...)``
            ``Y=None``: X with itself.
        memory_budget : int or str, optional
            Working memory beyond the output.

        Returns
        -------
        torch.Tensor, ``(n, m)``
            On X's device, in X's float dtype.
        """
        budget = parse_memory_budget(memory_budget)
        x = self.prepare(X, "X")
        y = None
        if Y is not None:
            y = self.prepare(Y, "Y")
            check_pair(x, y)
        desc = f"{self.method} gram"
        with full_precision(x.device):
            out = self._gram(x, y, budget, desc)
        return check_finite_result(out, desc, {"X": x, "Y": y})

    def _gram(self, x: torch.Tensor, y: torch.Tensor | None, budget: int, desc: str):
        rows = x.shape[0] + (0 if y is None else y.shape[0])
        held = self._row_bytes(x) * rows  # the features of every row and column at once
        if self.has_features and not self.gram_only and held < budget:
            fx = self._features(x)
            fy = None if y is None else self._features(y)
            item = fx.element_size()
            # the tile and its transpose (symmetric Grams)
            return tiled_gram(_product_tile, fx, fy, budget - held,
                              lambda r, c, _: 2 * item * r * c, desc=desc, into=True)
        return tiled_gram(
            lambda a, b, same: self._gram_block(a, None if same else b),
            x, y, budget, self._block_bytes, desc=desc,
        )

    def diag(self, X: Any) -> torch.Tensor:
        """The approximate ``k(X[i], X[i])``, shape ``(n,)`` (finite, or an ``OverflowError``).

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Numpy or torch, in the kernel's layout.

        Returns
        -------
        torch.Tensor, ``(n,)``
            On X's device, in X's float dtype.
        """
        x = self.prepare(X)
        with full_precision(x.device):
            out = self._diag(x)
        return check_finite_result(out, f"{self.method} diag", {"X": x})

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        """The approximate ``k(x_i, x_i)`` of prepared inputs (override). Shape: ``(n,)``."""
        if self.has_features:
            return self._features(x).square().sum(1)
        return torch.stack([self._gram_block(x[i : i + 1], None)[0, 0] for i in range(len(x))])

    def to_gpytorch(self, **options: Any):
        """This approximation as a ``gpytorch.kernels.Kernel`` (low-rank operators for features).

        integrations/ sits above approx/: the entry point is resolved by name
        through the registry, not imported.

        Parameters
        ----------
        **options
            Of :func:`kernelzoo.integrations.gpytorch.to_gpytorch`.

        Returns
        -------
        gpytorch.kernels.Kernel
            Wrap it in ``ScaleKernel`` for an output scale.
        """
        return registry.integration("gpytorch")(self, **options)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k.endswith("_") and not k.startswith("_")}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        """What a fitted state of these settings must hold (override), for :func:`load`.

        ``{name: expected}``: a tensor's name (``"weights_"``, ``"weights_[0]"``,
        ``"params_[0][w0]"``) maps to its shape tuple, an int attribute to its
        value. Derived from the settings and ``state["input_shape_"]``, never from
        the tensors being checked.
        """
        return {}

    def check_state(self, state: Any) -> None:
        """A ``ValueError`` unless ``state`` is a complete, finite fitted state of these settings.

        The generic part (``fitted_``, ``input_shape_``, ``n_features_``, every
        floating tensor finite) and the class's :meth:`_state_shapes`.

        Parameters
        ----------
        state : dict
            A fitted state (as :meth:`fitted_state` returns it).
        """
        if not isinstance(state, dict):
            raise ValueError(f"state must be a dict, got {type(state).__name__}")
        for key in ("fitted_", "input_shape_", "n_features_"):
            if key not in state:
                raise ValueError(f"state lacks {key!r}")
        if state["fitted_"] is not True:
            raise ValueError(f"state has fitted_={state['fitted_']!r}, expected True")
        shape = state["input_shape_"]
        if not (isinstance(shape, (list, tuple)) and shape and all(
                isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape)):
            raise ValueError(f"state has input_shape_={shape!r}, expected positive ints")
        n_features = state["n_features_"]
        if isinstance(n_features, bool) or not isinstance(n_features, int) or n_features < 1:
            raise ValueError(f"state has n_features_={n_features!r}, expected an int >= 1")
        tensors = dict(_tensors(state))
        for name, t in tensors.items():
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise ValueError(f"state {name} has NaN or Inf values")
        for name, expected in self._state_shapes(state).items():
            if isinstance(expected, tuple):
                if name not in tensors:
                    raise ValueError(f"state lacks the tensor {name}, expected shape {expected}")
                got = tuple(tensors[name].shape)
                if got != expected:
                    raise ValueError(
                        f"state {name} has shape {got}, expected {expected} for "
                        f"{self.method} with budget={self.budget!r} and input shape "
                        f"{tuple(shape)}"
                    )
            elif state.get(name) != expected:
                raise ValueError(f"state has {name}={state.get(name)!r}, expected {expected!r}")

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted approximation (format :data:`FORMAT`, a torch file).

        What it holds is named by registry keys (``family``, ``method``) and the
        kernel's parameters, not by module paths, so moving code does not break
        saved files; a sha256 over a canonical serialisation of the whole
        content (:func:`kernelzoo._io.canonical_digest`) lets :func:`load`
        detect any change. Written atomically; loadable with ``weights_only``.

        Parameters
        ----------
        path : str or path-like
            The file to write.
        """
        self._require_fit()
        state = {k: _storable(v) for k, v in self._get_state().items()}
        payload = {
            "format": FORMAT,
            "family": self.kernel.family,
            "method": self.method,
            "params": {k: _storable(v) for k, v in self.kernel.get_params().items()},
            "spec": self.kernel.spec,
            "budget": _storable(self.budget),
            "seed": self.seed,
            "options": {k: _storable(v) for k, v in self.opts.items()},
            "state": state,
            "kernelzoo_version": __version__,
        }
        payload["checksum"] = payload_checksum(payload)
        with atomic_write(path) as fh:
            torch.save(payload, fh)
