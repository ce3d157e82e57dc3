"""Test accuracy on the embedded digits: kernel ridge on the exact and approximate kernels.

The first ``N_TRAIN`` digits of kernelzoo's fixed training split are split into
fit and validation parts (seeded, stratified); the ridge ``alpha`` is chosen
on the validation part, then the ridge is refitted on all ``N_TRAIN`` digits
and scored on the 450 test digits (never used for any choice). Kernel
parameters are fixed (rbf ``lengthscale=2.0`` was picked on the validation
part once). Approximations are fitted on the fit part only.
"""

from __future__ import annotations

import numpy as np
import torch

from . import _common
from ._common import approximation_or_skip, make_kernel, pin_threads, size
from .bench_approx import APPROXIMATIONS, LABELLED

#: label -> spec on digits (labels as in _common.KERNELS)
DIGITS_KERNELS: dict[str, str] = {
    "rbf": "rbf(lengthscale=2.0)",
    "arccos": "arccos(degree=1, depth=1)",
    "arccos-depth3": "arccos(degree=1, depth=3)",
    "nngp-fc": "nngp(architecture='fc', depth=2)",
    "ntk-fc": "ntk(architecture='fc', depth=2)",
    "nngp-conv": "nngp(architecture='conv', depth=2, readout='gap')",
    "ntk-conv": "ntk(architecture='conv', depth=2, readout='gap')",
    "ckn": "ckn(filter_size=3, subsampling=2, sigma=0.6, kappa='exp')",
}
N_TRAIN, N_VAL = 600, 150
#: ridge alphas, relative to the mean of the training Gram's diagonal
RELATIVE_ALPHAS = (1e-8, 1e-6, 1e-4, 1e-2, 1e-1, 1.0)


def _digits(dtype: torch.dtype = torch.float64):
    """Fit, validation and test digits as ``(x, y)`` pairs, x ``(n, 1, 8, 8)`` tensors."""
    from kernelzoo.data.datasets import load_dataset, train_val_test_split

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    n_train = 40 if _common.SMOKE else N_TRAIN
    n_val = min(N_VAL, n_train // 2)
    n_test = size(len(test.y))
    x_fit, y_fit, x_val, y_val, _, _ = train_val_test_split(
        train.X[:n_train], train.y[:n_train], val=n_val, test=0, seed=0
    )

    def tensor(x):
        return torch.as_tensor(x, dtype=dtype)

    return (
        (tensor(x_fit), y_fit),
        (tensor(x_val), y_val),
        (tensor(test.X[:n_test]), test.y[:n_test]),
    )


def _ridge_accuracy(k_fit, y_fit, k_val_fit, y_val, k_train, y_train, k_test_train, y_test):
    """Choose alpha on validation, refit on fit+validation, return test accuracy."""
    from sklearn.kernel_ridge import KernelRidge

    def scores(alpha, k, y, k_eval):
        one_hot = np.eye(10)[y]
        return KernelRidge(alpha=alpha, kernel="precomputed").fit(k, one_hot).predict(k_eval)

    scale = float(np.mean(np.diag(k_fit)))
    val_acc = [
        np.mean(scores(r * scale, k_fit, y_fit, k_val_fit).argmax(1) == y_val)
        for r in RELATIVE_ALPHAS
    ]
    alpha = RELATIVE_ALPHAS[int(np.argmax(val_acc))] * float(np.mean(np.diag(k_train)))
    return float(np.mean(scores(alpha, k_train, y_train, k_test_train).argmax(1) == y_test))


def _accuracy(gram, fit, val, test) -> float:
    """Accuracy from ``gram(A, B)``: one Gram of all digits, sliced."""
    x_all = torch.cat([fit[0], val[0], test[0]])
    k_all = gram(x_all).detach().cpu().numpy().astype(np.float64)
    n_fit, n_train = len(fit[1]), len(fit[1]) + len(val[1])
    y_train = np.concatenate([fit[1], val[1]])
    return _ridge_accuracy(
        k_all[:n_fit, :n_fit], fit[1],
        k_all[n_fit:n_train, :n_fit], val[1],
        k_all[:n_train, :n_train], y_train,
        k_all[n_train:, :n_train], test[1],
    )  # fmt: skip


class DigitsAccuracyExact:
    """Test accuracy of kernel ridge with the exact kernel (float64, CPU)."""

    params = (list(DIGITS_KERNELS),)
    param_names = ("kernel",)
    rounds = 1
    timeout = 600

    def setup(self, kernel):
        pin_threads()
        self.kernel = make_kernel(DIGITS_KERNELS[kernel])
        self.fit, self.val, self.test = _digits()

    def track_test_accuracy(self, kernel):
        return _accuracy(self.kernel.gram, self.fit, self.val, self.test)

    track_test_accuracy.unit = "accuracy"


class DigitsAccuracyApprox:
    """Test accuracy of kernel ridge on an approximate kernel at a budget (float64, CPU)."""

    params = (list(APPROXIMATIONS), [64, 256])
    param_names = ("approximation", "budget")
    rounds = 1
    timeout = 600

    def setup(self, approximation, budget):
        pin_threads()
        kernel_label, method = APPROXIMATIONS[approximation]
        kernel = make_kernel(DIGITS_KERNELS[kernel_label])
        self.fit, self.val, self.test = _digits()
        budget = size(budget)
        if method == "nystrom" and budget > len(self.fit[1]):
            raise NotImplementedError(f"nystrom: budget {budget} > {len(self.fit[1])} digits")
        self.approx = approximation_or_skip(kernel, method, budget, seed=0)
        labels = torch.as_tensor(self.fit[1]) if method in LABELLED else None
        self.approx.fit(self.fit[0], labels)

    def track_test_accuracy(self, approximation, budget):
        return _accuracy(self.approx.gram, self.fit, self.val, self.test)

    track_test_accuracy.unit = "accuracy"
