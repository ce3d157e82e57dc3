"""GP harness: Gaussian-process regression with every family, exact and approximate.

Tasks
-----
``digits-rotation``
    Images rotated by an angle drawn uniformly in [-45, 45] degrees (seeded);
    the target is the angle (the deep-kernel-learning image regression task).
    MNIST (28 x 28) when its files are installed (``kernelzoo data fetch
    mnist``; ``source='mnist'``), else scikit-learn's 8 x 8 digits, padded to
    12 x 12 so that rotations keep the corners (``source='digits'``). The
    ``dataset`` column says which: ``mnist-rotation`` or ``digits-rotation``.
    Rotation: bilinear ``grid_sample`` with zero padding.
``diabetes``
    scikit-learn's diabetes regression (442 x 10), features standardised on
    the training split; vector kernels only.

Models
------
``exact``
    ``gpytorch.models.ExactGP`` with ``ScaleKernel(k.to_gpytorch())``,
    constant mean and Gaussian noise, trained by Adam on the exact marginal
    likelihood (``gpytorch.settings.max_cholesky_size`` above n, so every
    solve is a Cholesky). Exact conv kernels (ckn, conv nngp/ntk) have fixed
    hyperparameters (choose them on a validation split) and their Gram is
    computed once (cached); rbf learns its lengthscale. Skipped (an error row)
    above ``exact_max_n`` (1000 for conv kernels, 5000 for vector kernels).
``sgpr``
    Titsias' SGPR through ``gpytorch.kernels.InducingPointKernel`` with
    ``budget`` inducing points (a seeded subset of the training inputs; fixed
    for kernels with fixed hyperparameters, trained for rbf).
any approximation method (``nystrom``, ``rff``, ``random-features``, ``layerwise``, ...)
    An exact GP on that approximation's features (low-rank operators); the
    layerwise CKN trains its anchors and sigma through the likelihood.

Rows (one per metric): ``rmse`` and ``nlpd`` (mean negative log predictive
density of the test targets under the predictive N(mu, var + noise)), both in
target units (degrees for rotations); ``coverage95`` (fraction of test targets
inside mu +- 1.96 sd); ``train_seconds``; ``predict_seconds``. ``seconds`` is
the training time on every row. Extra columns: ``n_test``, ``source``.
"""

from __future__ import annotations

import dataclasses
import math
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    describe_error,
    error_row,
    make_row,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)
from kernelzoo.bench.gp_data import diabetes, rotate_images, rotated_digits
from kernelzoo.ops.distances import median_nonzero_distance

__all__ = [
    "DEFAULT_BUDGETS",
    "DEFAULT_KERNELS",
    "diabetes",
    "gp_metrics",
    "rotate_images",
    "rotated_digits",
    "run_gp",
]

HARNESS = "gp"

DEFAULT_KERNELS: dict[str, tuple[str, ...]] = {
    "digits-rotation": (
        "rbf",
        "arccos(degree=1, depth=2)",
        "nngp(architecture='fc', depth=2)",
        "ntk(architecture='fc', depth=2)",
        # flatten readout: the conv kernels' diagonal path (GAP on 28 x 28 MNIST
        # is orders of magnitude slower); the CKN chosen on a validation split
        # of rotated MNIST training images (benchmarks/gp_rotated_mnist.py select)
        "nngp(architecture='conv', depth=2, readout='flatten')",
        "ntk(architecture='conv', depth=2, readout='flatten')",
        "ckn(filter_size=3, subsampling=[2, 3], sigma=0.6)",
    ),
    "diabetes": (
        "rbf",
        "arccos(degree=1, depth=2)",
        "nngp(architecture='fc', depth=2)",
        "ntk(architecture='fc', depth=2)",
    ),
}

#: budget per method (inducing points, features, width, anchors per layer)
DEFAULT_BUDGETS: dict[str, Any] = {
    "sgpr": 128,
    "nystrom": 128,
    "rff": 512,
    "orf": 512,
    "random-features": 512,
    "monte-carlo": 512,
    "empirical": 64,
    "layerwise": [32, 64],
    "supervised": [32, 64],
}

_EXACT_MAX_N = {"conv": 1000, "vector": 5000}
_DATASETS = ("digits-rotation", "diabetes")


# ---------------------------------------------------------------------------- models
def _gp_model(train_x, train_y, covar, likelihood):
    import gpytorch

    class _ExactGP(gpytorch.models.ExactGP):
        def __init__(self):
            super().__init__(train_x, train_y, likelihood)
            self.mean_module = gpytorch.means.ConstantMean()
            self.covar_module = covar

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(
                self.mean_module(x), self.covar_module(x)
            )

    return _ExactGP()


@dataclasses.dataclass(frozen=True)
class _Settings:
    """What every GP fit of one :func:`run_gp` call shares."""

    device: torch.device
    dtype: torch.dtype
    training_iters: int
    lr: float
    gram_dtype: torch.dtype | None
    train_anchors: bool
    methods: Sequence[str] | None
    budget_of: dict[str, Any]
    limits: dict[str, int]


def _covariance(case: KernelCase, method: str, budget: Any, x_train: torch.Tensor,
                image_shape, seed: int, likelihood, settings: _Settings):
    """The gpytorch covariance module for one kernel and method (fitted where needed)."""
    import gpytorch

    gram_dtype, train_anchors = settings.gram_dtype, settings.train_anchors

    kernel = case.kernel
    trained = kernel.trainable_params()
    free = [n for n, kind in trained.items() if kind == "lengthscale" and n not in case.fixed]
    if free:  # an initial lengthscale on the data's scale; the likelihood refines it
        kernel = kernel.replace(**{free[0]: median_nonzero_distance(x_train, seed)})
    conv = getattr(kernel, "is_conv", False)
    shape_opt = {"image_shape": image_shape} if conv else {}
    exact_opt = dict(shape_opt)
    if conv and gram_dtype is not None:
        exact_opt["gram_dtype"] = gram_dtype
    if method == "exact":
        return gpytorch.kernels.ScaleKernel(kernel.to_gpytorch(**exact_opt)), None
    if method == "sgpr":
        base = gpytorch.kernels.ScaleKernel(kernel.to_gpytorch(**exact_opt))
        gen = torch.Generator().manual_seed(seed)
        idx = torch.randperm(len(x_train), generator=gen)[: int(budget)].to(x_train.device)
        covar = gpytorch.kernels.InducingPointKernel(
            base, inducing_points=x_train[idx].clone(), likelihood=likelihood
        )
        if "lengthscale" not in trained.values():  # fixed kernels: fixed points, cached blocks
            covar.inducing_points.requires_grad_(False)
        return covar, None
    approx = kernel.approximate(method, budget=budget, seed=seed)
    fit_x = x_train if not conv else x_train.reshape(len(x_train), *image_shape)
    approx.fit(fit_x)
    gp_opts = dict(shape_opt)
    if approx.trains_features and not train_anchors:
        gp_opts["train_hyperparameters"] = False  # k-means anchors kept, features cached
    return gpytorch.kernels.ScaleKernel(approx.to_gpytorch(**gp_opts)), approx


def gp_metrics(mean: torch.Tensor, var: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """RMSE, mean NLPD and 95% coverage of targets ``y`` under N(mean, var).

    Shape: ``(n,)`` each.

    Parameters
    ----------
    mean, var : torch.Tensor
        Predictive mean and variance.
    y : torch.Tensor
        Targets.

    Returns
    -------
    dict of str to float
        ``rmse``, ``nlpd``, ``coverage95``.
    """
    var = var.clamp_min(1e-12)
    resid = y - mean
    nlpd = 0.5 * (torch.log(2 * math.pi * var) + resid.square() / var)
    return {
        "rmse": float(resid.square().mean().sqrt()),
        "nlpd": float(nlpd.mean()),
        "coverage95": float((resid.abs() <= 1.959963984540054 * var.sqrt()).double().mean()),
    }


def _fit_predict(case, method, budget, data, seed, settings: _Settings):
    import gpytorch

    device, dtype = settings.device, settings.dtype
    training_iters, lr = settings.training_iters, settings.lr

    x_tr, y_tr, x_te, y_te, image_shape, _ = data
    x_tr = torch.as_tensor(x_tr, dtype=dtype, device=device)
    x_te = torch.as_tensor(x_te, dtype=dtype, device=device)
    y_tr = torch.as_tensor(y_tr, dtype=dtype, device=device)
    y_te = torch.as_tensor(y_te, dtype=dtype, device=device)
    y_mean, y_std = y_tr.mean(), y_tr.std().clamp_min(1e-12)
    target = (y_tr - y_mean) / y_std
    torch.manual_seed(seed)
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    covar, approx = _covariance(case, method, budget, x_tr, image_shape, seed, likelihood,
                                settings)
    model = _gp_model(x_tr, target, covar, likelihood).to(device=device, dtype=dtype)
    n_features = getattr(approx, "n_features", None) if approx is not None else (
        int(budget) if method == "sgpr" else None
    )
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=lr)
    big = 10 * (len(x_tr) + len(x_te)) + 1

    def train() -> None:
        model.train()
        likelihood.train()
        for _ in range(training_iters):
            optimizer.zero_grad()
            loss = -mll(model(x_tr), target)
            loss.backward()
            optimizer.step()

    def predict():
        model.eval()
        likelihood.eval()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            pred = likelihood(model(x_te))
            return pred.mean, pred.variance

    with gpytorch.settings.max_cholesky_size(big), warnings.catch_warnings():
        warnings.simplefilter("ignore", gpytorch.utils.warnings.NumericalWarning)
        _, train_seconds = timed(train, device)
        (mean, var), predict_seconds = timed(predict, device)
    metrics = gp_metrics(mean * y_std + y_mean, var * y_std**2, y_te)
    metrics["train_seconds"] = train_seconds
    metrics["predict_seconds"] = predict_seconds
    return metrics, train_seconds, n_features


def _methods_for(case: KernelCase, methods: Sequence[str] | None, n_train: int,
                 exact_max_n: dict[str, int]) -> list[tuple[str, str]]:
    """``(method, reason_not_run)`` pairs for one kernel."""
    kernel = case.kernel
    conv = bool(getattr(kernel, "is_conv", False))
    limit = exact_max_n["conv" if conv else "vector"]
    if methods is None:
        chosen = ["exact" if n_train <= limit else "sgpr"]
        # approximations whose features train through the likelihood (the layerwise CKN)
        chosen += [m for m in kernel.approximations
                   if kernel.approximation_class(m).trains_features]
    else:
        chosen = list(methods)
    out = []
    for method in chosen:
        reason = ""
        if method == "exact" and n_train > limit:
            reason = f"n_train={n_train} > exact limit {limit} for this kernel; use sgpr"
        elif method not in ("exact", "sgpr") and method not in kernel.approximations:
            continue  # methods of other families
        out.append((method, reason))
    return out


def run_gp(
    dataset: str = "digits-rotation",
    kernels: Sequence[Any] | None = None,
    n_train: int = 300,
    n_test: int | None = None,
    methods: Sequence[str] | None = None,
    budgets: dict[str, Any] | None = None,
    device: Any = "cpu",
    dtype: Any = "float64",
    seeds: Sequence[int] = (0,),
    out: str | os.PathLike | None = None,
    progress: bool | Progress = True,
    training_iters: int = 50,
    lr: float = 0.1,
    source: str = "auto",
    exact_max_n: dict[str, int] | None = None,
    gram_dtype: Any = None,
    train_anchors: bool = True,
) -> pd.DataFrame:
    """GP regression with each kernel and method; one tidy row per metric.

    More than eight parameters because this is a harness's public entry point: every
    size, budget and training setting is a keyword with a default (as scikit-learn
    estimators take theirs), so that a run is fully stated by its call.

    Parameters
    ----------
    dataset : {"digits-rotation", "diabetes"}
    kernels : spec strings or kernels, optional
        Default :data:`DEFAULT_KERNELS` of the dataset. Conv kernels are
        skipped (error row) on ``diabetes``.
    n_train, n_test : int
        Sizes; ``n_test`` defaults to 200 for rotations and to the rest of the
        442 samples for ``diabetes``.
    methods : list of str, optional
        ``"exact"``, ``"sgpr"`` and approximation methods; default: exact
        (sgpr above ``exact_max_n``), plus ``layerwise`` for ckn. Methods a
        family does not have are left out for it.
    budgets : dict, optional
        Method -> budget, over :data:`DEFAULT_BUDGETS`.
    device, dtype : where and in which precision to compute.
    seeds : data split, rotation angles, inducing points and approximations.
    out : path, optional
        A ``.csv`` file, or a folder that gets ``gp.csv``.
    progress : bool or Progress
    training_iters, lr : Adam on the negative marginal log likelihood.
    source : {"auto", "mnist", "digits"}
        Images for ``digits-rotation`` (auto: MNIST if installed).
    exact_max_n : dict, optional
        ``{"conv": 1000, "vector": 5000}``: the largest exact GP per kind.
    gram_dtype : dtype, optional
        Precision of the Gram blocks of exact convolutional kernels (``exact``
        and ``sgpr``), cast to ``dtype`` for the GP: ``"float32"`` makes an
        exact 28 x 28 CKN about 3x cheaper on CPU. Default: ``dtype``.
    train_anchors : bool, default True
        Train the ``layerwise`` CKN's anchors and sigma through the marginal
        likelihood (features recomputed at every step); False keeps the
        k-means anchors (features computed once).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`kernelzoo.bench._common.COLUMNS` plus ``n_test`` and
        ``source``; ``df.attrs["metadata"]`` records versions and machine.
    """
    if dataset not in _DATASETS:
        raise ValueError(f"dataset={dataset!r} is not allowed; expected one of {_DATASETS}")
    if n_test is None:
        n_test = 200 if dataset == "digits-rotation" else max(1, 442 - n_train)
    for name, value in (("n_train", n_train), ("n_test", n_test), ("training_iters",
                                                                      training_iters)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    torch_dtype = parse_dtype(dtype)
    try:
        gram_torch_dtype = None if gram_dtype is None else parse_dtype(gram_dtype)
    except ValueError:
        raise ValueError(
            f"gram_dtype must be 'float32', 'float64' or None, got {gram_dtype!r}"
        ) from None
    if not isinstance(train_anchors, bool):
        raise ValueError(f"train_anchors must be True or False, got {train_anchors!r}")
    device = torch.device(device)
    settings = _Settings(
        device=device, dtype=torch_dtype, training_iters=training_iters, lr=lr,
        gram_dtype=gram_torch_dtype, train_anchors=train_anchors, methods=methods,
        budget_of={**DEFAULT_BUDGETS, **(budgets or {})},
        limits={**_EXACT_MAX_N, **(exact_max_n or {})},
    )
    cases = resolve_kernels(kernels if kernels is not None else DEFAULT_KERNELS[dataset])
    bar = None
    if isinstance(progress, Progress):
        tracker = progress
    else:
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(seeds) * len(cases), desc=f"gp {dataset}", leave=False)
        tracker = Progress(bar)
    rows: list[dict[str, Any]] = []
    name = dataset
    try:
        for seed in seeds:
            if dataset == "diabetes":
                data = diabetes(n_train, n_test, seed)
            else:
                data = rotated_digits(n_train, n_test, seed, source)
            name = data[5]
            common = {"seed": seed, "dataset": name, "n": n_train, "device": device,
                      "dtype": torch_dtype, "n_test": len(data[3]), "source": name}
            for case in cases:
                tracker.note(case.spec)
                rows.extend(_rows_for_case(case, data, seed, common, settings))
                tracker.step(case.spec)
    finally:
        if bar is not None:
            bar.close()
    frame = to_frame(rows, extra_columns=("n_test", "source"),
                     metadata=run_metadata(device, harness=HARNESS, dataset=name,
                                           gram_dtype=str(gram_torch_dtype or torch_dtype),
                                           train_anchors=train_anchors))
    if out is not None:
        path = os.fspath(out)
        if not path.endswith(".csv"):
            os.makedirs(path, exist_ok=True)
            path = os.path.join(path, "gp.csv")
        frame.to_csv(path, index=False)
    return frame


def _rows_for_case(case, data, seed, common, settings: _Settings) -> list[dict[str, Any]]:
    rows = []
    budget_of = settings.budget_of
    if not case.ok:
        return [error_row(HARNESS, case, "exact", "rmse", case.error, **common)]
    if getattr(case.kernel, "is_conv", False) and data[4] is None:
        return [error_row(HARNESS, case, "exact", "rmse",
                          f"{case.family} is convolutional; {common['dataset']} has no images",
                          **common)]
    for method, reason in _methods_for(case, settings.methods, common["n"], settings.limits):
        budget = None if method == "exact" else budget_of.get(method)
        if reason:
            rows.append(error_row(HARNESS, case, method, "rmse", reason, budget=budget, **common))
            continue
        try:
            metrics, seconds, n_features = _fit_predict(case, method, budget, data, seed, settings)
        except Exception as exc:  # noqa: BLE001 - a failing kernel is a row, the run goes on
            rows.append(error_row(HARNESS, case, method, "rmse", describe_error(exc),
                                  budget=budget, **common))
            continue
        for metric, value in metrics.items():
            rows.append(make_row(HARNESS, case, method, metric, value, budget=budget,
                                 n_features=n_features, seconds=seconds, **common))
    return rows
