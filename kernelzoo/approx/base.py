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
from kernelzoo._validation import check_int, check_pair, parse_memory_budget
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["Approximation", "load", "generator", "check_budget"]


def generator(seed: int) -> torch.Generator:
    """A CPU generator seeded with ``seed`` (draws in float64, then moved and cast)."""
    return torch.Generator().manual_seed(int(seed))


def check_budget(budget: Any, name: str = "budget") -> int:
    """A positive integer (a budget, or a count option), or an error naming ``name``."""
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
        self.seed = check_int(seed, "seed")
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
        """Fit on training inputs ``X`` ``(n, ...)`` (labels ``y`` where the method uses them)."""
        x = self.kernel.prepare(X, "X")
        yt = None if y is None else torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y)
        if yt is not None and yt.shape[0] != x.shape[0]:
            raise ValueError(f"y has {yt.shape[0]} labels but X has {x.shape[0]} samples")
        self._cache = {}
        self.input_shape_ = tuple(x.shape[1:])
        self._fit(x, yt)
        self.fitted_ = True
        return self

    def prepare(self, X: Any, name: str = "X") -> torch.Tensor:
        """Validate and lay out one input for the fitted approximation.

        As the kernel's ``prepare``, and the feature shape must be the one
        :meth:`fit` saw (``RuntimeError`` before ``fit``).

        Shape: ``(n, ...)`` -> the kernel's layout.
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
        """The fitted tensors moved to ``x``'s device and dtype (cached)."""
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
        """Feature map ``(n, ...)`` -> ``(n, n_features)``; ``features(X) @ features(Y).T ~ K``."""
        if not self.has_features:
            raise NotImplementedError(f"{self.method} has no explicit features; use gram()")
        return self._features(self.prepare(X))

    def gram(
        self, X: Any, Y: Any = None, memory_budget: int | float | str | None = None
    ) -> torch.Tensor:
        """The approximate Gram: ``features(X) @ features(Y).T`` where features exist.

        Working memory beyond the output stays under ``memory_budget`` (bytes
        or ``"2GB"``; default :func:`kernelzoo.set_memory_budget`): when the
        features of X and Y fit, they are computed once and their product is
        tiled; otherwise (and for ``gram_only`` approximations) every tile
        computes the features, or per-row data, of its own rows and columns.

        Shape: ``(n, ...)``, ``(m, ...)`` -> ``(n, m)``.
        """
        budget = parse_memory_budget(memory_budget)
        x = self.prepare(X, "X")
        y = None
        if Y is not None:
            y = self.prepare(Y, "Y")
            check_pair(x, y)
        desc = f"{self.method} gram"
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
        """The approximate ``k(X[i], X[i])``, shape ``(n,)``."""
        x = self.prepare(X)
        if self.has_features:
            return self._features(x).square().sum(1)
        return torch.stack([self._gram_block(x[i : i + 1], None)[0, 0] for i in range(len(x))])

    def to_gpytorch(self, **options: Any):
        """This approximation as a ``gpytorch.kernels.Kernel`` (low-rank operators for features).

        integrations/ sits above approx/: the entry point is resolved by name
        through the registry, not imported.
        """
        return registry.integration("gpytorch")(self, **options)

    # ------------------------------------------------------------------ persistence
    def _get_state(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k.endswith("_") and not k.startswith("_")}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    def save(self, path: str | os.PathLike) -> None:
        """Save the fitted approximation (torch state, loadable with ``weights_only``)."""
        self._require_fit()
        state = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self._get_state().items()}
        payload = {
            "format": "kernelzoo-approximation/1",
            "class": f"{type(self).__module__}:{type(self).__qualname__}",
            "kernel": self.kernel.spec,
            "budget": self.budget,
            "seed": self.seed,
            "options": {k: _storable(v) for k, v in self.opts.items()},
            "state": state,
        }
        with atomic_write(path) as fh:
            torch.save(payload, fh)


def _storable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    return value


def load(path: str | os.PathLike) -> Approximation:
    """Load an approximation written by :meth:`Approximation.save`."""
    try:
        payload = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error naming it
        raise ValueError(f"{path}: not a kernelzoo approximation file ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != "kernelzoo-approximation/1":
        raise ValueError(f"{path}: not a kernelzoo approximation file")
    # only the registered approximation classes: a file names one, it does not pick code
    methods = {target: method for method, target in registry.METHODS.items()}
    if payload.get("class") not in methods:
        raise ValueError(f"{path}: refusing to load class {payload.get('class')!r}")
    cls = registry.resolve(registry.METHODS[methods[payload["class"]]])
    obj = cls(
        registry.kernel(payload["kernel"]),
        budget=payload["budget"],
        seed=payload["seed"],
        **payload["options"],
    )
    state = payload["state"]
    if "input_shape_" in state:
        state["input_shape_"] = tuple(state["input_shape_"])
    obj._set_state(state)
    obj._cache = {}
    return obj

