"""``gradient_descent_mse``: outputs of a linearised network trained by gradient descent,
from a Gram."""

from __future__ import annotations

from typing import Any

import torch

from kernelzoo.predict._common import (
    _as_tensor,
    _broadcast,
    _check_flag,
    _check_number,
    _Cholesky,
    _Eigen,
    _square,
    _targets,
    _times,
)


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

    def __init__(
        self,
        k_train_train: Any,
        y_train: Any,
        learning_rate: float,
        diag_reg: float,
        diag_reg_absolute_scale: bool,
    ) -> None:
        self.learning_rate = _check_number(learning_rate, "learning_rate", 0.0, strict=True)
        self.diag_reg = _check_number(diag_reg, "diag_reg", 0.0, strict=False)
        self.diag_reg_absolute_scale = _check_flag(
            diag_reg_absolute_scale, "diag_reg_absolute_scale"
        )
        k = _as_tensor(k_train_train, "k_train_train")
        self.k_train_train = _square(k, "k_train_train")
        self.y_train, self._vector = _targets(y_train, k.shape[0], k.dtype, k.device)
        self._eigen: _Eigen | None = None
        self._cholesky: _Cholesky | None = None

    @property
    def eigen(self) -> _Eigen:
        if self._eigen is None:
            self._eigen = _Eigen(
                self.k_train_train,
                self.diag_reg,
                self.diag_reg_absolute_scale,
                self.y_train.numel(),
            )
        return self._eigen

    @property
    def cholesky(self) -> _Cholesky:
        if self._cholesky is None:
            self._cholesky = _Cholesky(
                self.k_train_train, self.diag_reg, self.diag_reg_absolute_scale
            )
        return self._cholesky

    def _out(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 0] if self._vector else x

    def __call__(
        self, t: Any = None, fx_train_0: Any = 0.0, fx_test_0: Any = None, k_test_train: Any = None
    ):
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
            raise ValueError(
                "fx_test_0 is given but k_test_train is None; pass the (m, n) "
                "test-train Gram to get test-set predictions"
            )
        k, y = self.k_train_train, self.y_train
        n, n_out = y.shape
        kw = {"dtype": k.dtype, "device": k.device, "vector_targets": self._vector}
        fx_train = (
            None if fx_train_0 is None else _broadcast(fx_train_0, "fx_train_0", (n, n_out), **kw)
        )
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
    return MSEPredictFn(k_train_train, y_train, learning_rate, diag_reg, diag_reg_absolute_scale)
