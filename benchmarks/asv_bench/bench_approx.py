"""Approximations of every family: fit, features, approximate Gram, and error at a budget.

``approximation`` is a label of :data:`APPROXIMATIONS` (``"kernel/method"``);
``budget`` counts what the method counts (features, landmarks, width, anchors
per layer). Approximations are fitted on ``N_FIT`` inputs and evaluated on
``N_EVAL`` others; an approximation whose module does not exist yet is skipped.
"""

from __future__ import annotations

from ._common import (
    DEVICES,
    KERNELS,
    approximation_or_skip,
    device_or_skip,
    kernel_inputs,
    pin_threads,
    random_labels,
    relative_error,
    size,
    synchronize,
)

#: label -> (kernel label in KERNELS, method)
APPROXIMATIONS: dict[str, tuple[str, str]] = {
    "rbf/rff": ("rbf", "rff"),
    "rbf/orf": ("rbf", "orf"),
    "rbf/nystrom": ("rbf", "nystrom"),
    "arccos/random-features": ("arccos", "random-features"),
    "arccos/nystrom": ("arccos", "nystrom"),
    "nngp-fc/monte-carlo": ("nngp-fc", "monte-carlo"),
    "ntk-fc/empirical": ("ntk-fc", "empirical"),
    "nngp-conv/monte-carlo": ("nngp-conv", "monte-carlo"),
    "nngp-conv/nystrom": ("nngp-conv", "nystrom"),
    "ntk-conv/empirical": ("ntk-conv", "empirical"),
    "ckn/layerwise": ("ckn", "layerwise"),
    "ckn/supervised": ("ckn", "supervised"),
    "ckn/nystrom": ("ckn", "nystrom"),
}
#: methods whose fit uses labels
LABELLED = ("supervised",)
#: fitting / evaluation sizes: vector kernels, conv kernels
N_FIT = {"vectors": 2048, "images": 256}
N_EVAL = {"vectors": 512, "images": 64}
BUDGETS = [64, 256, 1024]


def _prepare(approximation: str, budget: int, dtype: str, device):
    """(unfitted approximation, its ``N_FIT`` training inputs, labels or None, exact kernel)."""
    kernel_label, method = APPROXIMATIONS[approximation]
    n_fit = N_FIT[KERNELS[kernel_label][1]]
    if method == "nystrom" and budget > n_fit:
        raise NotImplementedError(f"nystrom: budget {budget} > {n_fit} landmark candidates")
    kernel, x = kernel_inputs(kernel_label, n_fit, dtype, device)
    approx = approximation_or_skip(kernel, method, size(budget), seed=0)
    labels = random_labels(len(x)) if method in LABELLED else None
    return approx, x, labels, kernel


class _ApproxBase:
    # many combinations: fewer samples each than the Gram benchmarks
    params = (
        list(APPROXIMATIONS),
        [BUDGETS[0], BUDGETS[-1]],
        ["float32", "float64"],
        list(DEVICES),
    )
    param_names = ("approximation", "budget", "dtype", "device")
    repeat = (2, 5, 5.0)
    rounds = 2
    timeout = 300


class ApproxFit(_ApproxBase):
    """``a.fit(X)`` (``a.fit(X, y)`` for supervised methods), X of ``N_FIT`` rows."""

    def setup(self, approximation, budget, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.approx, self.x, self.labels, _ = _prepare(approximation, budget, dtype, self.device)

    def time_fit(self, approximation, budget, dtype, device):
        self.approx.fit(self.x, self.labels)
        synchronize(self.device)

    def peakmem_fit(self, approximation, budget, dtype, device):
        self.approx.fit(self.x, self.labels)


class ApproxFeatures(_ApproxBase):
    """``a.features(X)`` of a fitted approximation, X of ``N_FIT`` rows."""

    def setup(self, approximation, budget, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.approx, self.x, labels, _ = _prepare(approximation, budget, dtype, self.device)
        if not self.approx.has_features:
            raise NotImplementedError(f"{approximation} has no explicit features")
        self.approx.fit(self.x, labels)

    def time_features(self, approximation, budget, dtype, device):
        self.approx.features(self.x)
        synchronize(self.device)

    def peakmem_features(self, approximation, budget, dtype, device):
        self.approx.features(self.x)


class ApproxGram(_ApproxBase):
    """``a.gram(X)`` of a fitted approximation, X of ``N_EVAL`` rows."""

    def setup(self, approximation, budget, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.approx, x_fit, labels, _ = _prepare(approximation, budget, dtype, self.device)
        self.approx.fit(x_fit, labels)
        _, self.x = kernel_inputs(
            APPROXIMATIONS[approximation][0], _n_eval(approximation), dtype, self.device, seed=1
        )

    def time_gram(self, approximation, budget, dtype, device):
        self.approx.gram(self.x)
        synchronize(self.device)

    def peakmem_gram(self, approximation, budget, dtype, device):
        self.approx.gram(self.x)


def _n_eval(approximation: str) -> int:
    return N_EVAL[KERNELS[APPROXIMATIONS[approximation][0]][1]]


class ApproxError:
    """``|K_approx - K|_F / |K|_F`` on ``N_EVAL`` held-out inputs, fitted on ``N_FIT``."""

    params = (list(APPROXIMATIONS), BUDGETS, ["float32", "float64"])
    param_names = ("approximation", "budget", "dtype")
    rounds = 1
    timeout = 300

    def setup(self, approximation, budget, dtype):
        pin_threads()
        device = device_or_skip("cpu")
        self.approx, x_fit, labels, kernel = _prepare(approximation, budget, dtype, device)
        self.approx.fit(x_fit, labels)
        _, self.x = kernel_inputs(
            APPROXIMATIONS[approximation][0], _n_eval(approximation), dtype, device, seed=1
        )
        self.exact = kernel.gram(self.x)

    def track_gram_error(self, approximation, budget, dtype):
        return relative_error(self.approx.gram(self.x), self.exact)

    track_gram_error.unit = "relative Frobenius error"
