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

from kernelzoo.predict._common import Gaussian
from kernelzoo.predict._ensemble import (
    EnsemblePredictFn,
    accuracy_over_time,
    gradient_descent_mse_ensemble,
)
from kernelzoo.predict._mse import MSEPredictFn, gradient_descent_mse

__all__ = [
    "EnsemblePredictFn",
    "Gaussian",
    "MSEPredictFn",
    "accuracy_over_time",
    "gradient_descent_mse",
    "gradient_descent_mse_ensemble",
]
