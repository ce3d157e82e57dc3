"""Predictions of wide networks trained by gradient descent on the MSE loss, from kernels.

The torch counterpart of neural-tangents' ``predict.gradient_descent_mse`` and
``predict.gradient_descent_mse_ensemble`` (0.6.5), with their signatures and
semantics (``trace_axes`` fixed to the last axis of ``y_train``: Grams are
``(n, n)``, targets ``(n, k)``):

- :func:`gradient_descent_mse`: from a Gram (NTK, NNGP or empirical), the
  outputs of the linearised network at time ``t`` of continuous gradient
  descent on ``loss = ||f(X_train) - Y_train||^2 / (2 y_train.size)``::

      f_t(X) = f_0(X) - K(X, X_train) K^{-1} (I - exp(-lr t K / N)) (f_0(X_train) - Y)

  with ``K`` the regularised train Gram and ``N = y_train.size``;
- :func:`gradient_descent_mse_ensemble`: from an ``nngp``/``ntk`` kernel and
  the training inputs, the mean (and covariance) over initialisations of an
  infinitely wide network at time ``t``: ``get='ntk'`` the NTK ensemble
  (Lee et al. 2019), ``get='nngp'`` the network whose last layer alone is
  trained (at ``t = None``: the exact Bayesian posterior of the NNGP);
- :func:`accuracy_over_time`: classification accuracy of the ensemble mean at
  a list of times (``None`` or ``inf``: infinite time), from Grams.

``t=None`` means infinite time, computed with a Cholesky solve; finite ``t``
(a scalar, or an array of any shape giving leading time axes) uses an
eigendecomposition of the regularised Gram. Each is computed once per
``predict_fn`` and cached, as in neural-tangents. ``diag_reg`` adds
``diag_reg * mean(diag K)`` to the diagonal (``diag_reg`` itself with
``diag_reg_absolute_scale=True``); at infinite time an ill-conditioned Gram
needs ``diag_reg`` of 1e-6 or more.

Torch or numpy in, torch out; the computation runs in the train Gram's dtype
and device (pass float64 for neural-tangents' x64 accuracy). Targets may also
be ``(n,)`` (one output), which neural-tangents does not accept: the outputs
then lose their last axis.

Example
-------
>>> import torch
>>> from kernelzoo import predict
>>> x_train = torch.randn(20, 5, dtype=torch.float64)
>>> x_test = torch.randn(4, 5, dtype=torch.float64)
>>> y_train = torch.randn(20, 2, dtype=torch.float64)
>>> predict_fn = predict.gradient_descent_mse_ensemble("ntk(depth=2)", x_train, y_train,
...                                                    diag_reg=1e-4)
>>> mean, cov = predict_fn(t=[1.0, 10.0, 100.0], x_test=x_test, get="ntk", compute_cov=True)
>>> tuple(mean.shape), tuple(cov.shape)
((3, 4, 2), (3, 4, 4))
"""

from __future__ import annotations

import math
from collections import namedtuple
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from kernelzoo.kernels.infinite import InfiniteWidthKernel
from kernelzoo.kernels.nngp import NNGP
from kernelzoo.registry import kernel as make_kernel

__all__ = [
    "EnsemblePredictFn",
    "Gaussian",
    "MSEPredictFn",
    "accuracy_over_time",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
]

_GETS = ("nngp", "ntk")


class Gaussian(NamedTuple):
    """``(mean, covariance)`` of the ensemble's outputs.

    Shape: ``mean`` ``t.shape + (m, k)``; ``covariance`` ``t.shape + (m, m)``
    (the same for every output column, as neural-tangents' ``trace_axes``).

    Parameters
    ----------
    mean : torch.Tensor
        The mean.
    covariance : torch.Tensor or None
        The covariance (None unless asked for).
    """

    mean: torch.Tensor
    covariance: torch.Tensor


_NAMEDTUPLES: dict[tuple[str, ...], type] = {}


def _gaussians(fields: tuple[str, ...]) -> type:
    """The ``Gaussians`` namedtuple with these fields (neural-tangents' return type)."""
    if fields not in _NAMEDTUPLES:
        _NAMEDTUPLES[fields] = namedtuple("Gaussians", fields)
    return _NAMEDTUPLES[fields]


# ----------------------------------------------------------------------------- checks
def _as_tensor(a: Any, name: str, dtype: torch.dtype | None = None,
               device: torch.device | None = None) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        t = a.detach()
    else:
        arr = np.asarray(a)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number)
                                       or arr.dtype == np.bool_):
            raise TypeError(f"{name} must be an array or tensor of numbers, got {type(a).__name__}")
        t = torch.from_numpy(np.array(arr))
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float32
    t = t.to(dtype=dtype, device=device)
    if not torch.isfinite(t).all():
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def _check_number(value: Any, name: str, minimum: float, strict: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value) or value < minimum or (strict and value == minimum):
        bound = f"> {minimum:g}" if strict else f">= {minimum:g}"
        raise ValueError(f"{name} must be finite and {bound}, got {value!r}")
    return value


def _check_flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _square(k: torch.Tensor, name: str, n: int | None = None) -> torch.Tensor:
    if k.ndim != 2 or k.shape[0] != k.shape[1]:
        raise ValueError(f"{name} must be a square (n, n) Gram, got shape {tuple(k.shape)}")
    if n is not None and k.shape[0] != n:
        raise ValueError(f"{name} is {tuple(k.shape)} but y_train has {n} rows")
    return k


def _targets(y_train: Any, n: int | None, dtype: torch.dtype,
             device: torch.device) -> tuple[torch.Tensor, bool]:
    """``(n, k)`` targets, and whether they came as ``(n,)``."""
    y = _as_tensor(y_train, "y_train", dtype, device)
    if y.ndim not in (1, 2):
        raise ValueError(
            f"y_train must be (n, k) targets (or (n,) for one output), got shape {tuple(y.shape)}"
        )
    if y.shape[0] == 0 or y.numel() == 0:
        raise ValueError(f"y_train is empty (shape {tuple(y.shape)})")
    if n is not None and y.shape[0] != n:
        raise ValueError(f"y_train has {y.shape[0]} rows but k_train_train is ({n}, {n})")
    return (y[:, None], True) if y.ndim == 1 else (y, False)


def _regularized(k: torch.Tensor, diag_reg: float, absolute: bool) -> torch.Tensor:
    """neural-tangents' ``_add_diagonal_regularizer``."""
    n = k.shape[0]
    scale = diag_reg if absolute else diag_reg * torch.trace(k) / n
    return k + scale * torch.eye(n, dtype=k.dtype, device=k.device)


def _times(t: Any, dtype: torch.dtype, device: torch.device,
           learning_rate: float) -> tuple[torch.Tensor, tuple[int, ...]]:
    """``t * learning_rate`` flattened to ``(T, 1)``, and ``t``'s shape."""
    if isinstance(t, torch.Tensor):
        times = t.detach().to(dtype=dtype, device=device)
    else:
        arr = np.asarray(t)
        if arr.dtype == object or not np.issubdtype(arr.dtype, np.number) \
                or np.issubdtype(arr.dtype, np.complexfloating):
            raise TypeError(f"t must be None, a number or an array of numbers, got {t!r}")
        times = torch.as_tensor(arr.astype(np.float64), dtype=dtype, device=device)
    if times.is_complex() or torch.isnan(times).any():
        raise ValueError(f"t must hold real numbers (no NaN), got {t!r}")
    return (times * learning_rate).reshape(-1, 1), tuple(times.shape)


class _Eigen:
    """Eigendecomposition of a regularised Gram, and functions of it (neural-tangents'
    ``_get_fns_in_eigenbasis`` / ``eigenspace``)."""

    def __init__(self, k: torch.Tensor, diag_reg: float, absolute: bool, size: int) -> None:
        evals, self.evecs = torch.linalg.eigh(_regularized(k, diag_reg, absolute))
        self.evals = evals[None, :]  # (1, n)
        self.size = size  # y_train.size: the loss normalisation

    def expm1(self, t: torch.Tensor) -> torch.Tensor:
        """``expm1(-max(l, 0) t / N)``, ``(T, n)``."""
        return torch.expm1(-self.evals.clamp_min(0.0) * t / self.size)

    def inv_expm1(self, t: torch.Tensor) -> torch.Tensor:
        """``expm1(-max(l, 0) t / N) / |l|``, ``(T, n)``."""
        return self.expm1(t) / self.evals.abs()

    def apply(self, values: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
        """``V diag(values[t]) V^T rhs`` for each t: ``(T, n)``, ``(n, ...)`` -> ``(T, n, ...)``."""
        coef = self.evecs.T @ rhs.reshape(rhs.shape[0], -1)
        out = torch.einsum("ji,ti,ik->tjk", self.evecs, values, coef)
        return out.reshape(values.shape[:1] + rhs.shape)

    def matrices(self, values: torch.Tensor) -> torch.Tensor:
        """``V diag(values[t]) V^T``, ``(T, n, n)``."""
        return torch.einsum("ji,ti,ki->tjk", self.evecs, values, self.evecs)


class _Cholesky:
    """Cholesky factor of a regularised Gram (neural-tangents' ``_get_cho_solve``)."""

    def __init__(self, k: torch.Tensor, diag_reg: float, absolute: bool) -> None:
        a = _regularized(k, diag_reg, absolute)
        factor, info = torch.linalg.cholesky_ex(a)
        if int(info) != 0:
            raise ValueError(
                "the regularised train Gram is not positive definite (Cholesky failed at "
                f"column {int(info)}); increase diag_reg (currently a relative "
                f"{diag_reg!r} if diag_reg_absolute_scale is False)"
            )
        self.factor = factor

    def solve(self, b: torch.Tensor) -> torch.Tensor:
        """``K^{-1} b``, ``(n, ...)`` -> ``(n, ...)``."""
        x = torch.cholesky_solve(b.reshape(b.shape[0], -1), self.factor)
        return x.reshape(b.shape)


def _broadcast(value: Any, name: str, shape: tuple[int, ...], dtype: torch.dtype,
               device: torch.device, vector_targets: bool) -> torch.Tensor:
    """A scalar or an array that broadcasts to ``shape`` (initial outputs)."""
    t = _as_tensor(value, name, dtype, device)
    if vector_targets and t.ndim >= 1:
        t = t[..., None]
    try:
        torch.broadcast_shapes(t.shape, shape)
    except RuntimeError:
        expected = shape[:1] if vector_targets else shape
        raise ValueError(
            f"{name} has shape {tuple(t.shape[:-1] if vector_targets and t.ndim else t.shape)} "
            f"but the outputs are {expected}; pass a scalar or an array of that shape"
        ) from None
    return t


# ----------------------------------------------------------------------------- from Grams
class MSEPredictFn:
    """``predict_fn`` of :func:`gradient_descent_mse` (its eigendecomposition and Cholesky
    factor are computed on first use and cached).

    Parameters
    ----------
    k_train_train : tensor, ``(n, n)``
        The train Gram.
    y_train : tensor, ``(n, k)``
        Targets.
    learning_rate : float
        Of the continuous-time gradient descent.
    diag_reg : float
        Diagonal regularisation (see :func:`gradient_descent_mse`).
    diag_reg_absolute_scale : bool
        ``diag_reg`` absolute instead of relative to the mean of the diagonal.
    """

    def __init__(self, k_train_train: Any, y_train: Any, learning_rate: float,
                 diag_reg: float, diag_reg_absolute_scale: bool) -> None:
        self.learning_rate = _check_number(learning_rate, "learning_rate", 0.0, strict=True)
        self.diag_reg = _check_number(diag_reg, "diag_reg", 0.0, strict=False)
        self.diag_reg_absolute_scale = _check_flag(diag_reg_absolute_scale,
                                                   "diag_reg_absolute_scale")
        k = _as_tensor(k_train_train, "k_train_train")
        self.k_train_train = _square(k, "k_train_train")
        self.y_train, self._vector = _targets(y_train, k.shape[0], k.dtype, k.device)
        self._eigen: _Eigen | None = None
        self._cholesky: _Cholesky | None = None

    @property
    def eigen(self) -> _Eigen:
        if self._eigen is None:
            self._eigen = _Eigen(self.k_train_train, self.diag_reg,
                                 self.diag_reg_absolute_scale, self.y_train.numel())
        return self._eigen

    @property
    def cholesky(self) -> _Cholesky:
        if self._cholesky is None:
            self._cholesky = _Cholesky(self.k_train_train, self.diag_reg,
                                       self.diag_reg_absolute_scale)
        return self._cholesky

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 0] if self._vector else x

    def __call__(self, t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None,
                 k_test_train: Any = None):
        """Outputs on the training [and test] set at time[s] ``t``.

        Parameters
        ----------
        t : None, float or array, default None
            Training time (in units of ``learning_rate``: the absolute time is
            ``learning_rate * t``); ``None`` is infinite time (a Cholesky solve,
            more accurate than ``t=inf``). An array adds its shape as leading
            axes of the outputs.
        fx_train_0 : float, array ``(n, k)`` or None, default 0.0
            Network outputs on the training set at ``t = 0``; ``None``: do not
            compute training-set outputs (they count as 0 in the dynamics).
        fx_test_0 : float, array ``(m, k)`` or None, default None
            Outputs on the test set at ``t = 0``; ``None``: no test outputs.
        k_test_train : array ``(m, n)``, optional
            The test-train Gram; needed with ``fx_test_0``.

        Returns
        -------
        ``fx_train_t`` if ``fx_test_0`` is None; ``fx_test_t`` if
        ``fx_train_0`` is None; otherwise ``(fx_train_t, fx_test_t)``, as
        neural-tangents. At ``t = None`` ``fx_train_t`` is ``y_train`` (the
        unregularised limit; for regularised training-set outputs pass
        ``k_test_train=k_train_train`` and ``fx_test_0=fx_train_0``).

        Shape
        -----
        ``t.shape + (n, k)`` and ``t.shape + (m, k)`` (no leading axes
        for scalar or None ``t``).
        """
        if fx_train_0 is None and fx_test_0 is None:
            raise ValueError(
                "both fx_train_0 and fx_test_0 are None: no predictions would be computed"
            )
        if fx_test_0 is not None and k_test_train is None:
            raise ValueError("fx_test_0 is given but k_test_train is None; pass the (m, n) "
                             "test-train Gram to get test-set predictions")
        k, y = self.k_train_train, self.y_train
        n, n_out = y.shape
        kw = {"dtype": k.dtype, "device": k.device, "vector_targets": self._vector}
        fx_train = None if fx_train_0 is None else _broadcast(
            fx_train_0, "fx_train_0", (n, n_out), **kw)
        k_td = fx_test = None
        if fx_test_0 is not None:
            k_td = _as_tensor(k_test_train, "k_test_train", k.dtype, k.device)
            if k_td.ndim != 2 or k_td.shape[1] != n:
                raise ValueError(
                    f"k_test_train must be (m, {n}) (test rows, training columns), got shape "
                    f"{tuple(k_td.shape)}"
                )
            fx_test = _broadcast(fx_test_0, "fx_test_0", (k_td.shape[0], n_out), **kw)

        if t is None:
            fx_train_t = y
            if fx_test is None:
                return self._out(fx_train_t)
            rhs = y if fx_train is None else y - fx_train
            fx_test_t = fx_test + k_td @ self.cholesky.solve(rhs.expand(n, n_out))
            if fx_train is None:
                return self._out(fx_test_t)
            return self._out(fx_train_t), self._out(fx_test_t)

        times, t_shape = _times(t, k.dtype, k.device, self.learning_rate)
        rhs = (-y if fx_train is None else fx_train - y).expand(n, n_out)
        eigen = self.eigen
        fx_train_t = fx_test_t = None
        if fx_train is not None:
            dfx = eigen.apply(eigen.expm1(times), rhs).reshape(t_shape + (n, n_out))
            fx_train_t = fx_train + dfx
        if fx_test is not None:
            dfx = torch.matmul(k_td, eigen.apply(eigen.inv_expm1(times), rhs))
            fx_test_t = fx_test + dfx.reshape(t_shape + (k_td.shape[0], n_out))
        if fx_train_t is not None and fx_test_t is not None:
            return self._out(fx_train_t), self._out(fx_test_t)
        if fx_test_t is None:
            return self._out(fx_train_t)
        return self._out(fx_test_t)


def gradient_descent_mse(
    k_train_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> MSEPredictFn:
    """Outputs of gradient descent on the MSE in function space, at any time, from a Gram.

    neural-tangents' ``predict.gradient_descent_mse`` (with ``trace_axes=(-1,)``):
    the closed-form solution of continuous-time gradient descent on
    ``||f(X_train) - y_train||^2 / (2 y_train.size)`` for a network linearised
    around its initialisation, whose tangent kernel is ``k_train_train``
    (exact for infinitely wide networks and the NTK).

    Parameters
    ----------
    k_train_train : array or tensor ``(n, n)``
        The train Gram (NTK for gradient descent on all layers, NNGP for the
        last layer alone, or any other kernel). Its dtype and device are
        those of the computation.
    y_train : array or tensor ``(n, k)`` (or ``(n,)``)
        Targets.
    learning_rate : float > 0, default 1.0
        Times are in units of the learning rate (``absolute t = lr * t``).
    diag_reg : float >= 0, default 0.0
        Adds ``diag_reg * trace(K) / n`` to the Gram's diagonal, or
        ``diag_reg`` itself with ``diag_reg_absolute_scale=True``.
    diag_reg_absolute_scale : bool, default False

    Returns
    -------
    MSEPredictFn
        ``predict_fn(t=None, fx_train_0=0.0, fx_test_0=None, k_test_train=None)``;
        see :meth:`MSEPredictFn.__call__`. Its eigendecomposition (finite
        ``t``) and Cholesky factor (``t=None``) are computed on first use and
        cached.

    Shape
    -----
    ``k_train_train (n, n)``, ``y_train (n, k)``; outputs
    ``t.shape + (n, k)`` / ``t.shape + (m, k)``.

    Examples
    --------
    >>> import torch
    >>> from kernelzoo.predict import gradient_descent_mse
    >>> k = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    >>> y = torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    >>> predict_fn = gradient_descent_mse(k, y)
    >>> predict_fn(t=None)                      # infinite time: the targets
    tensor([[ 1.],
            [-1.]], dtype=torch.float64)
    >>> predict_fn(t=[0.0, 1e6]).shape          # t = 0 gives fx_train_0 = 0
    torch.Size([2, 2, 1])
    """
    return MSEPredictFn(k_train_train, y_train, learning_rate, diag_reg,
                        diag_reg_absolute_scale)


# ----------------------------------------------------------------------------- ensembles
def _resolve_kernel(kernel: Any):
    if isinstance(kernel, str):
        kernel = make_kernel(kernel)
    if not isinstance(kernel, InfiniteWidthKernel):
        what = getattr(kernel, "spec", None) or type(kernel).__name__
        raise TypeError(
            f"kernel must be an nngp or ntk kernel (or its spec string), e.g. "
            f"'ntk(architecture=\"conv\")'; got {what!r}"
        )
    return kernel


def _canonical_get(get: Any) -> tuple[tuple[str, ...], bool]:
    """(the kernels asked for, whether ``get`` was a single string)."""
    if get is None:
        return _GETS, False
    single = isinstance(get, str)
    entries = (get,) if single else get
    if not isinstance(entries, (tuple, list)) or not entries:
        raise ValueError(f"get must be None, 'nngp', 'ntk' or a non-empty tuple of them, "
                         f"got {get!r}")
    names = []
    for g in entries:
        if not isinstance(g, str) or g.lower() not in _GETS:
            raise ValueError(f"get={get!r}: each entry must be 'nngp' or 'ntk', got {g!r}")
        names.append(g.lower())
    if len(set(names)) < len(names):
        raise ValueError(f"get={get!r}: entries must be unique")
    return tuple(names), single


class EnsemblePredictFn:
    """``predict_fn`` of :func:`gradient_descent_mse_ensemble` (train Grams, their
    eigendecompositions and Cholesky factors are computed on first use and cached).

    Parameters
    ----------
    kernel : nngp or ntk kernel, or its spec string
        The architecture.
    x_train : tensor, ``(n, ...)``
        Training inputs.
    y_train : tensor, ``(n, k)``
        Targets.
    learning_rate : float
        Of the continuous-time gradient descent.
    diag_reg : float
        Diagonal regularisation (see :func:`gradient_descent_mse_ensemble`).
    diag_reg_absolute_scale : bool
        ``diag_reg`` absolute instead of relative to the mean of the diagonal.
    memory_budget : int or str, optional
        Working memory of the Gram computations.
    """

    def __init__(self, kernel: Any, x_train: Any, y_train: Any, learning_rate: float,
                 diag_reg: float, diag_reg_absolute_scale: bool,
                 memory_budget: int | float | str | None) -> None:
        self.kernel = _resolve_kernel(kernel)
        self.learning_rate = _check_number(learning_rate, "learning_rate", 0.0, strict=True)
        self.diag_reg = _check_number(diag_reg, "diag_reg", 0.0, strict=False)
        self.diag_reg_absolute_scale = _check_flag(diag_reg_absolute_scale,
                                                   "diag_reg_absolute_scale")
        self.memory_budget = memory_budget
        self.x_train = self.kernel.prepare(x_train, "x_train")  # early errors on bad inputs
        self.y_train, self._vector = _targets(y_train, self.x_train.shape[0],
                                              self.x_train.dtype, self.x_train.device)
        self._train: dict[str, torch.Tensor] | None = None
        self._eigen: dict[str, _Eigen] = {}
        self._cholesky: dict[str, _Cholesky] = {}
        self._k_inv_y: dict[str, torch.Tensor] = {}

    # -------------------------------------------------------------- cached pieces
    @property
    def k_train_train(self) -> dict[str, torch.Tensor]:
        """``{'nngp': K, 'ntk': Theta}`` on the training inputs, ``(n, n)`` each."""
        if self._train is None:
            nngp, ntk = self.kernel.gram_nngp_ntk(self.x_train, memory_budget=self.memory_budget)
            self._train = {"nngp": nngp, "ntk": ntk}
        return self._train

    def _eigenspace(self, g: str) -> _Eigen:
        if g not in self._eigen:
            self._eigen[g] = _Eigen(self.k_train_train[g], self.diag_reg,
                                    self.diag_reg_absolute_scale, self.y_train.numel())
        return self._eigen[g]

    def _solver(self, g: str) -> _Cholesky:
        if g not in self._cholesky:
            self._cholesky[g] = _Cholesky(self.k_train_train[g], self.diag_reg,
                                          self.diag_reg_absolute_scale)
        return self._cholesky[g]

    def _nngp_test_test(self, x_test: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel if isinstance(self.kernel, NNGP) else NNGP(
            **self.kernel.get_params())
        return kernel.gram(x_test, memory_budget=self.memory_budget)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 0] if self._vector else x

    # -------------------------------------------------------------- predictions
    def __call__(self, t: Any = None, x_test: Any = None, get: Any = None,
                 compute_cov: bool = False):
        """Mean [and covariance] of the infinite ensemble's outputs at time[s] ``t``.

        Parameters
        ----------
        t : None, float or array, default None
            Training time (absolute time ``learning_rate * t``); ``None`` is
            infinite time (a Cholesky solve). An array adds its shape as
            leading axes.
        x_test : array or tensor ``(m, ...)``, optional
            Test inputs (same dtype as ``x_train``); ``None``: outputs on the
            training set (at ``t=None`` the unregularised ``y_train`` with
            zero covariance; pass ``x_test=x_train`` for regularised ones).
        get : None, 'nngp', 'ntk' or a tuple of them, default None (both)
            ``'ntk'``: every layer trained (the NTK ensemble); ``'nngp'``:
            the last layer alone (at ``t=None`` the NNGP's Bayesian posterior).
        compute_cov : bool, default False
            Also return the covariance over initialisations.

        Returns
        -------
        For a string ``get``: the mean tensor, or a :class:`Gaussian`
        ``(mean, covariance)`` with ``compute_cov``. For ``get=None`` or a
        tuple: a namedtuple ``Gaussians`` with one such entry per kernel, in
        the order of ``get`` (``Gaussians(nngp=..., ntk=...)`` for None),
        as neural-tangents.

        Shape
        -----
        mean ``t.shape + (m, k)``, covariance ``t.shape + (m, m)`` (no
        leading axes for scalar or None ``t``; ``m = n`` without ``x_test``).
        """
        gets, single = _canonical_get(get)
        compute_cov = _check_flag(compute_cov, "compute_cov")
        k_dd = self.k_train_train
        k_td: dict[str, torch.Tensor] | None = None
        nngp_tt = None
        if x_test is not None:
            x = self.kernel.prepare(x_test, "x_test")
            if x.dtype != self.x_train.dtype or x.device != self.x_train.device:
                raise TypeError(
                    f"x_test ({x.dtype}, {x.device}) must have x_train's dtype and device "
                    f"({self.x_train.dtype}, {self.x_train.device})"
                )
            if x.shape[1:] != self.x_train.shape[1:]:
                raise ValueError(
                    f"x_test has samples of shape {tuple(x.shape[1:])} but x_train's are "
                    f"{tuple(self.x_train.shape[1:])}"
                )
            nngp_td, ntk_td = self.kernel.gram_nngp_ntk(x, self.x_train,
                                                        memory_budget=self.memory_budget)
            k_td = {"nngp": nngp_td, "ntk": ntk_td}
            if compute_cov:
                nngp_tt = self._nngp_test_test(x)

        out = {}
        for g in gets:
            if t is None:
                out[g] = self._infinite(g, k_dd, k_td, nngp_tt, compute_cov)
            else:
                out[g] = self._finite(g, t, k_dd, k_td, nngp_tt, compute_cov)
        if single:
            return out[gets[0]]
        return _gaussians(gets)(*(out[g] for g in gets))

    def _infinite(self, g, k_dd, k_td, nngp_tt, compute_cov):
        """neural-tangents' ``gp_inference``."""
        y = self.y_train
        if k_td is None:
            mean = y
            if not compute_cov:
                return self._out(mean)
            return Gaussian(self._out(mean), torch.zeros_like(k_dd[g]))
        solver = self._solver(g)
        if g not in self._k_inv_y:
            self._k_inv_y[g] = solver.solve(y)
        mean = k_td[g] @ self._k_inv_y[g]
        if not compute_cov:
            return self._out(mean)
        k_td_inv = solver.solve(k_td["nngp"].T)  # K_g^{-1} K_td^T, (n, m)
        if g == "nngp":
            cov = nngp_tt - k_td["nngp"] @ k_td_inv
        else:
            term_1 = solver.solve(k_td["ntk"].T)  # Theta^{-1} Theta_td^T, (n, m)
            cov = term_1.T @ (k_dd["nngp"] @ term_1)
            term_2 = k_td["ntk"] @ k_td_inv
            cov = cov - (term_2 + term_2.T) + nngp_tt
        return Gaussian(self._out(mean), cov)

    def _finite(self, g, t, k_dd, k_td, nngp_tt, compute_cov):
        """neural-tangents' finite-time branch of ``gradient_descent_mse_ensemble``."""
        y = self.y_train
        eigen = self._eigenspace(g)
        times, t_shape = _times(t, y.dtype, y.device, self.learning_rate)
        if k_td is None:
            mean = eigen.apply(-eigen.expm1(times), y)
        else:
            neg_inv_expm1 = -eigen.inv_expm1(times)
            mean = torch.matmul(k_td[g], eigen.apply(neg_inv_expm1, y))
        mean = self._out(mean.reshape(t_shape + mean.shape[1:]))
        if not compute_cov:
            return mean
        nngp_dd = k_dd["nngp"]
        evals = eigen.evals.clamp_min(0.0)
        if k_td is None:
            if g == "nngp":
                cov = eigen.matrices(evals * torch.exp(-2 * evals * times / eigen.size))
            else:
                decay = eigen.matrices(torch.exp(-evals * times / eigen.size))
                cov = decay @ nngp_dd @ decay.transpose(1, 2)
        else:
            ktd_g = k_td[g]
            if g == "nngp":
                middle = eigen.matrices(-eigen.inv_expm1(2 * times))
                cov = nngp_tt - ktd_g @ middle @ ktd_g.T
            else:
                middle = eigen.matrices(neg_inv_expm1)  # (T, n, n)
                term_1 = middle @ ktd_g.T  # (T, n, m)
                term_2 = ktd_g @ middle @ k_td["nngp"].T  # (T, m, m)
                cov = term_1.transpose(1, 2) @ nngp_dd @ term_1
                cov = cov - (term_2 + term_2.transpose(1, 2)) + nngp_tt
        return Gaussian(mean, cov.reshape(t_shape + cov.shape[1:]))


def gradient_descent_mse_ensemble(
    kernel: Any,
    x_train: Any,
    y_train: Any,
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
    *,
    memory_budget: int | float | str | None = None,
) -> EnsemblePredictFn:
    """The infinitely wide ensemble trained by gradient descent on the MSE: mean and covariance.

    neural-tangents' ``predict.gradient_descent_mse_ensemble`` (with
    ``trace_axes=(-1,)``): over random initialisations, the outputs of an
    infinitely wide network trained with continuous gradient descent on
    ``||f(X_train) - y_train||^2 / (2 y_train.size)`` are Gaussian; this gives
    their mean and covariance at any time (Lee et al. 2019, "Wide neural
    networks of any depth evolve as linear models under gradient descent").

    Parameters
    ----------
    kernel : nngp or ntk kernel, or its spec string
        The architecture (any ``nngp``/``ntk`` parameters). Both its NNGP and
        its NTK are computed (``gram_nngp_ntk``, one pass): the NTK ensemble's
        covariance needs the NNGP. Whether it is the ``nngp`` or the ``ntk``
        family does not matter; ``get`` chooses.
    x_train : array or tensor ``(n, ...)``
        Training inputs, in the kernel's layout; their dtype and device are
        those of the computation.
    y_train : array or tensor ``(n, k)`` (or ``(n,)``)
        Targets.
    learning_rate : float > 0, default 1.0
    diag_reg : float >= 0, default 0.0
        Adds ``diag_reg * trace(K) / n`` to each train Gram's diagonal (or
        ``diag_reg`` with ``diag_reg_absolute_scale=True``).
    diag_reg_absolute_scale : bool, default False
    memory_budget : int or str, optional
        Working memory of the Gram computations (as ``k.gram``).

    Returns
    -------
    EnsemblePredictFn
        ``predict_fn(t=None, x_test=None, get=None, compute_cov=False)``; see
        :meth:`EnsemblePredictFn.__call__`. The train Grams are computed on
        first use; test Grams on every call.

    Shape
    -----
    ``x_train (n, ...)``, ``y_train (n, k)``; mean ``t.shape + (m, k)``,
    covariance ``t.shape + (m, m)``.
    """
    return EnsemblePredictFn(kernel, x_train, y_train, learning_rate, diag_reg,
                             diag_reg_absolute_scale, memory_budget)


# ----------------------------------------------------------------------------- accuracy
def _labels(y: Any, n: int, name: str) -> torch.Tensor:
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.array(y))
    t = t.detach().reshape(-1).cpu()
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} labels but its Gram has {n} rows")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError(f"{name} must hold integer class labels")
    return t.to(torch.int64)


def accuracy_over_time(
    k_train_train: Any,
    y_train: Any,
    k_test_train: Any,
    y_test: Any,
    times: Sequence[float | None],
    learning_rate: float = 1.0,
    diag_reg: float = 0.0,
    diag_reg_absolute_scale: bool = False,
) -> torch.Tensor:
    """Test accuracy of the gradient-descent ensemble mean at each time, from Grams.

    One-vs-all targets (+1 for the class, -1 otherwise), the network at
    initialisation 0 (the ensemble mean: ``fx_train_0 = fx_test_0 = 0``); the
    predicted class is the argmax of :func:`gradient_descent_mse`'s test
    outputs (an affine change of the targets, e.g. one-hot 0/1, predicts the
    same classes). With the NTK this is the accuracy of the infinitely wide
    network trained for time ``t``; with ``t`` infinite it is kernel
    regression (with the ``diag_reg`` ridge).

    Parameters
    ----------
    k_train_train : ``(n, n)``
    y_train : ``(n,)`` integer labels
    k_test_train : ``(m, n)``
    y_test : ``(m,)`` integer labels
    times : sequence of float or None
        ``None`` or ``inf``: infinite time (a Cholesky solve); finite times
        are evaluated together from one eigendecomposition.
    learning_rate, diag_reg, diag_reg_absolute_scale
        As :func:`gradient_descent_mse`.

    Returns
    -------
    torch.Tensor ``(len(times),)``, float64
        The accuracies, in the order of ``times``.
    """
    k = _as_tensor(k_train_train, "k_train_train")
    n = _square(k, "k_train_train").shape[0]
    labels = _labels(y_train, n, "y_train")
    k_td = _as_tensor(k_test_train, "k_test_train", k.dtype, k.device)
    if k_td.ndim != 2 or k_td.shape[1] != n:
        raise ValueError(f"k_test_train must be (m, {n}), got shape {tuple(k_td.shape)}")
    labels_test = _labels(y_test, k_td.shape[0], "y_test")
    classes = torch.unique(labels)
    targets = torch.where(labels[:, None] == classes[None, :], 1.0, -1.0)
    predict_fn = gradient_descent_mse(k, targets.to(k.dtype), learning_rate, diag_reg,
                                      diag_reg_absolute_scale)
    times = list(times)
    if not times:
        raise ValueError("times is empty; give at least one time (None for infinite)")
    finite = [i for i, t in enumerate(times) if t is not None and not math.isinf(t)]
    for i, t in enumerate(times):
        if t is not None and (isinstance(t, bool) or math.isnan(t) or t == -math.inf):
            raise ValueError(f"times[{i}]={t!r} is not a time (a number >= 0, inf or None)")
    accuracies = torch.empty(len(times), dtype=torch.float64)

    def score(outputs: torch.Tensor) -> float:
        predicted = classes[outputs.argmax(-1).cpu()]
        return float((predicted == labels_test).double().mean())

    if finite:
        outputs = predict_fn([float(times[i]) for i in finite], None, 0.0, k_td)
        for row, i in enumerate(finite):
            accuracies[i] = score(outputs[row])
    infinite = [i for i in range(len(times)) if i not in finite]
    if infinite:
        value = score(predict_fn(None, None, 0.0, k_td))
        accuracies[infinite] = value
    return accuracies
