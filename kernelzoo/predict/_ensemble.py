"""``gradient_descent_mse_ensemble`` and ``accuracy_over_time``: the infinitely wide
ensemble under gradient descent, from an ``nngp``/``ntk`` kernel."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from kernelzoo.kernels.infinite import InfiniteWidthKernel
from kernelzoo.kernels.nngp import NNGP
from kernelzoo.registry import kernel as make_kernel
from kernelzoo.predict._common import (
    _GETS,
    Gaussian,
    _as_tensor,
    _check_flag,
    _check_number,
    _Cholesky,
    _Eigen,
    _gaussians,
    _square,
    _targets,
    _times,
)
from kernelzoo.predict._mse import gradient_descent_mse


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
        raise ValueError(
            f"get must be None, 'nngp', 'ntk' or a non-empty tuple of them, got {get!r}"
        )
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

    def __init__(
        self,
        kernel: Any,
        x_train: Any,
        y_train: Any,
        learning_rate: float,
        diag_reg: float,
        diag_reg_absolute_scale: bool,
        memory_budget: int | float | str | None,
    ) -> None:
        self.kernel = _resolve_kernel(kernel)
        self.learning_rate = _check_number(learning_rate, "learning_rate", 0.0, strict=True)
        self.diag_reg = _check_number(diag_reg, "diag_reg", 0.0, strict=False)
        self.diag_reg_absolute_scale = _check_flag(
            diag_reg_absolute_scale, "diag_reg_absolute_scale"
        )
        self.memory_budget = memory_budget
        self.x_train = self.kernel.prepare(x_train, "x_train")  # early errors on bad inputs
        self.y_train, self._vector = _targets(
            y_train, self.x_train.shape[0], self.x_train.dtype, self.x_train.device
        )
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
            self._eigen[g] = _Eigen(
                self.k_train_train[g],
                self.diag_reg,
                self.diag_reg_absolute_scale,
                self.y_train.numel(),
            )
        return self._eigen[g]

    def _solver(self, g: str) -> _Cholesky:
        if g not in self._cholesky:
            self._cholesky[g] = _Cholesky(
                self.k_train_train[g], self.diag_reg, self.diag_reg_absolute_scale
            )
        return self._cholesky[g]

    def _nngp_test_test(self, x_test: torch.Tensor) -> torch.Tensor:
        kernel = self.kernel if isinstance(self.kernel, NNGP) else NNGP(**self.kernel.get_params())
        return kernel.gram(x_test, memory_budget=self.memory_budget)

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 0] if self._vector else x

    # -------------------------------------------------------------- predictions
    def __call__(
        self, t: Any = None, x_test: Any = None, get: Any = None, compute_cov: bool = False
    ):
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
            nngp_td, ntk_td = self.kernel.gram_nngp_ntk(
                x, self.x_train, memory_budget=self.memory_budget
            )
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
    return EnsemblePredictFn(
        kernel, x_train, y_train, learning_rate, diag_reg, diag_reg_absolute_scale, memory_budget
    )


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
    predict_fn = gradient_descent_mse(
        k, targets.to(k.dtype), learning_rate, diag_reg, diag_reg_absolute_scale
    )
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
