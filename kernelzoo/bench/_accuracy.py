"""Classification accuracy of each kernel and approximation, hyperparameters chosen
on a validation split, the test split touched once at the end."""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    TimeLimit,
    as_input,
    describe_error,
    error_row,
    iter_grid,
    linalg_threads,
    make_approximation,
    make_row,
    methods_of,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
    to_frame,
)
from kernelzoo.classify import fit_kernel_ridge_classifier, fit_ridge_classifier
from kernelzoo.ops.distances import median_pairwise_distance

__all__ = [
    "accuracy",
    "hyperparameter_candidates",
    "with_hyperparameters",
]

_HARNESS = "accuracy"


def _failure(case, method: str, message: str, **fields: Any) -> dict[str, Any]:
    """A failed or skipped test-accuracy measurement (no hyperparameters chosen)."""
    return error_row(_HARNESS, case, method, "test_accuracy", message, params="", **fields)


def hyperparameter_candidates(
    case: KernelCase,
    x_train: torch.Tensor,
    grid: dict[str, dict[str, Sequence[Any]]] | None = None,
) -> list[dict[str, Any]]:
    """The parameter overrides to try for one kernel (``[{}]`` when nothing is searched).

    The values come from the kernel class's :meth:`~kernelzoo.kernels.base.Kernel.search_space`
    (``Param.search``), or from ``grid`` (``{family: {name: values}}``) where given.
    Only parameters the kernel has and the spec did not fix are searched;
    values of parameters with ``search_scale="median_distance"`` are multiples
    of the median pairwise distance of ``x_train``.
    """
    if not case.ok:
        return [{}]
    space = type(case.kernel).search_space()
    values = (
        {name: p.search for name, p in space.items()}
        if grid is None
        else dict(grid.get(case.family, {}))
    )
    names = set(case.kernel.get_params())
    family_grid = {
        name: tuple(v) for name, v in values.items() if name in names and name not in case.fixed
    }
    scaled = {name for name in family_grid
              if name in space and space[name].search_scale == "median_distance"}
    if scaled:
        scale = median_pairwise_distance(x_train)
        family_grid = {
            name: tuple(v * scale for v in vals) if name in scaled else vals
            for name, vals in family_grid.items()
        }
    return list(iter_grid(family_grid))


def with_hyperparameters(case: KernelCase, overrides: dict[str, Any]):
    """The case's kernel with some parameters replaced (the same object when none are).

    The new kernel is of the same class as the case's (so subclasses survive).
    """
    if not overrides:
        return case.kernel
    return type(case.kernel)(**{**case.kernel.get_params(), **overrides})


def _describe(overrides: dict[str, Any], lam: float) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in overrides.items()]
    return ", ".join([*parts, f"lambda={lam:.0e}"])


def _as_labels(y: Any) -> np.ndarray:
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def accuracy(
    kernels: Iterable[Any],
    X_train: Any,
    y_train: Any,
    X_val: Any,
    y_val: Any,
    X_test: Any,
    y_test: Any,
    *,
    n_train: Sequence[int] | None = None,
    budgets: Sequence[Any] = (64, 256),
    seeds: Sequence[int] = (0,),
    methods: Sequence[str] | None = None,
    exact_max_n: int | None = None,
    method_seconds: float | None = None,
    hyperparameters: dict[str, dict[str, Sequence[Any]]] | None = None,
    lambdas: Sequence[float] | None = None,
    approximations_at_every_n: bool = False,
    dataset: str = "",
    device: Any = "cpu",
    dtype: Any = torch.float32,
    progress: Progress | None = None,
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Test accuracy against n_train and budget, everything chosen on the validation split.

    Exact kernels: one-vs-all kernel ridge on the exact Gram. Approximations
    with features: one-vs-all linear ridge on the features; Gram-only
    approximations: kernel ridge on their Gram. The ridge lambda (from
    ``lambdas``) and the kernel's own hyperparameters (the family's entry of
    ``Param.search`` of each kernel class, parameters fixed in the spec excepted) are
    chosen by validation accuracy; only then are the test inputs and labels
    used, once per reported number. Approximations reuse the kernel
    hyperparameters chosen for the exact kernel at the same n_train when it
    ran, and otherwise choose them with their largest budget and first seed;
    their lambda is chosen per budget and seed.

    Parameters
    ----------
    kernels : iterable of spec strings or kernels
    X_train, y_train, X_val, y_val, X_test, y_test
        The three splits (see :func:`kernelzoo.data.train_val_test_split`).
    n_train : sequence of int, optional
        Training sizes (nested prefixes of the training split); default all of it.
    budgets, seeds : sequences
        Budgets and seeds of the approximations.
    methods : sequence of str, optional
        Keep only these methods (``"exact"`` and/or approximation names).
    exact_max_n : int, optional
        The exact kernel runs only at training sizes up to this (its Gram
        costs ``n^2``); larger ones get a row saying so.
    method_seconds : float, optional
        Once an approximation method has taken this long for a kernel, its
        remaining (larger) budgets get a "skipped" row instead of running.
    hyperparameters : dict, optional
        Replaces the kernels' own ``Param.search`` values.
    lambdas : sequence of float, optional
        Ridge values; default :func:`kernelzoo.classify.default_lambdas` (a grid
        that follows the scale of the Gram or features). The objective is
        ``(1/n) |F W + b - Y|^2 + lambda |W|^2`` (kernelzoo.classify).
    approximations_at_every_n : bool
        Run approximations at every ``n_train`` (default: the largest only).

    Returns
    -------
    pandas.DataFrame
        Metrics ``test_accuracy``, ``val_accuracy``, ``lambda`` per (method,
        budget, seed, n_train); ``n`` is n_train. Extra column ``params``:
        the chosen hyperparameters. ``df.attrs["chosen_hyperparameters"]``
        maps each spec to the overrides its exact kernel chose at the largest
        n_train (``{}`` when nothing was searched).

    Shape
    -----
    ``X_*``: (n_*, ...); ``y_*``: (n_*,).
    """
    dtype = parse_dtype(dtype)
    progress = progress or Progress()
    x_train, x_val, x_test = (as_input(a, device, dtype) for a in (X_train, X_val, X_test))
    y_train, y_val, y_test = (_as_labels(a) for a in (y_train, y_val, y_test))
    sizes = sorted({int(s) for s in (n_train or [len(x_train)])})
    if sizes[0] < 2 or sizes[-1] > len(x_train):
        raise ValueError(f"n_train must be in [2, {len(x_train)}], got {sizes}")
    data = _Splits(x_train, y_train, x_val, y_val, x_test, y_test)
    common = {"dataset": dataset, "device": device, "dtype": dtype}
    settings = {
        "limit": method_seconds,
        "budgets": budgets,
        "seeds": seeds,
        "lambdas": lambdas,
        "grid": hyperparameters,
        "every_n": approximations_at_every_n,
    }
    rows: list[dict[str, Any]] = []
    chosen_by_spec: dict[str, dict[str, Any]] = {}
    for case in resolve_kernels(kernels):
        if not case.ok:
            rows.append(_failure(case, "exact", case.error, n=sizes[-1], **common))
            progress.step(case.spec)
            continue
        wanted = methods_of(case, methods)
        chosen: dict[int, dict[str, Any]] = {}
        if "exact" in wanted:
            progress.note(f"{case.spec} exact")
            rows.extend(_exact(case, data, sizes, exact_max_n, settings, common, chosen))
            if chosen:
                chosen_by_spec[case.spec] = dict(chosen[max(chosen)])
        for method in wanted:
            if method == "exact":
                continue
            progress.note(f"{case.spec} {method}")
            rows.extend(_approximate(case, method, data, sizes, settings, common, chosen))
        progress.step(case.spec)
    frame = to_frame(rows, extra_columns=("params",), metadata=metadata or run_metadata(device))
    frame.attrs["chosen_hyperparameters"] = chosen_by_spec
    return frame


class _Splits:
    def __init__(self, x_train, y_train, x_val, y_val, x_test, y_test) -> None:
        self.x_train, self.y_train = x_train, y_train
        self.x_val, self.y_val = x_val, y_val
        self.x_test, self.y_test = x_test, y_test


def _exact(
    case: KernelCase,
    data: _Splits,
    sizes: list[int],
    exact_max_n: int | None,
    settings: dict[str, Any],
    common: dict[str, Any],
    chosen: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    runnable = [s for s in sizes if exact_max_n is None or s <= exact_max_n]
    for s in sizes:
        if s not in runnable:
            rows.append(
                _failure(
                    case,
                    "exact",
                    f"skipped: exact Gram limited to n_train <= {exact_max_n}",
                    n=s,
                    **common,
                )
            )
    if not runnable:
        return rows
    n_max = runnable[-1]
    x_fit = data.x_train[:n_max]
    try:
        candidates = hyperparameter_candidates(case, x_fit, settings["grid"])
        # validation: one Gram of (train + val) against train per candidate, sliced per size
        best: dict[int, tuple[Any, int]] = {}  # size -> (classifier, candidate)
        seconds = 0.0
        kernels = []
        stacked = torch.cat([x_fit, data.x_val])
        for index, overrides in enumerate(candidates):
            kernel = with_hyperparameters(case, overrides)
            gram, elapsed = timed(lambda k=kernel: k.gram(stacked, x_fit), x_fit.device)
            kernels.append(kernel)
            seconds += elapsed
            for s in runnable:
                with linalg_threads(gram.device):
                    clf = fit_kernel_ridge_classifier(
                        gram[:s, :s],
                        data.y_train[:s],
                        gram[n_max:, :s],
                        data.y_val,
                        settings["lambdas"],
                    )
                if s not in best or clf.val_accuracy > best[s][0].val_accuracy:
                    best[s] = (clf, index)
        # test: only now, with the chosen kernel and lambda (one test Gram per chosen kernel)
        test_grams: dict[int, torch.Tensor] = {}
        for s in runnable:
            clf, index = best[s]
            if index not in test_grams:
                test_grams[index], elapsed = timed(
                    lambda k=kernels[index]: k.gram(data.x_test, x_fit), x_fit.device
                )
                seconds += elapsed
            test_acc = clf.score(test_grams[index][:, :s], data.y_test)
            chosen[s] = candidates[index]
            fields = dict(
                n=s, params=_describe(candidates[index], clf.lam), seconds=seconds, **common
            )
            rows.append(make_row(_HARNESS, case, "exact", "test_accuracy", test_acc, **fields))
            rows.append(
                make_row(_HARNESS, case, "exact", "val_accuracy", clf.val_accuracy, **fields)
            )
            rows.append(make_row(_HARNESS, case, "exact", "lambda", clf.lam, **fields))
    except Exception as exc:  # noqa: BLE001
        rows.append(_failure(case, "exact", describe_error(exc), n=n_max, **common))
    return rows


def _approximate(
    case: KernelCase,
    method: str,
    data: _Splits,
    sizes: list[int],
    settings: dict[str, Any],
    common: dict[str, Any],
    chosen: dict[int, dict[str, Any]],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    budgets, seeds = list(settings["budgets"]), list(settings["seeds"])
    limit = TimeLimit(settings["limit"])
    for s in sizes if settings["every_n"] else sizes[-1:]:
        x_fit, y_fit = data.x_train[:s], data.y_train[:s]
        try:
            if s in chosen:
                overrides = chosen[s]
            else:
                candidates = hyperparameter_candidates(case, x_fit, settings["grid"])
                scores = []
                for candidate in candidates:
                    model = _fit(case, candidate, method, budgets[-1], seeds[0], x_fit, y_fit)
                    clf = _classifier(model, x_fit, y_fit, data, settings["lambdas"])
                    scores.append(clf.val_accuracy)
                overrides = candidates[int(np.argmax(scores))]
        except Exception as exc:  # noqa: BLE001
            rows.append(_failure(case, method, describe_error(exc), n=s, **common))
            continue
        for budget in budgets:
            for seed in seeds:
                fields = dict(n=s, budget=budget, seed=seed, **common)
                if limit.exceeded(method):
                    rows.append(_failure(case, method, limit.message(method), **fields))
                    continue
                try:
                    job = functools.partial(
                        _fit_classifier,
                        case,
                        overrides,
                        method,
                        budget,
                        seed,
                        x_fit,
                        y_fit,
                        data,
                        settings["lambdas"],
                    )
                    (model, clf), seconds = timed(job, x_fit.device)
                    limit.add(method, seconds)
                    test_other = _other(model, data.x_test, x_fit)  # the test set, once
                    test_acc = clf.score(test_other, data.y_test)
                except Exception as exc:  # noqa: BLE001
                    rows.append(_failure(case, method, describe_error(exc), **fields))
                    continue
                fields.update(
                    n_features=_n_features(model),
                    seconds=seconds,
                    params=_describe(overrides, clf.lam),
                )
                rows.append(make_row(_HARNESS, case, method, "test_accuracy", test_acc, **fields))
                rows.append(
                    make_row(_HARNESS, case, method, "val_accuracy", clf.val_accuracy, **fields)
                )
                rows.append(make_row(_HARNESS, case, method, "lambda", clf.lam, **fields))
    return rows


def _n_features(model: Any) -> Any:
    try:
        return int(model.n_features)
    except Exception:  # noqa: BLE001
        return None


def _fit(
    case: KernelCase,
    overrides: dict[str, Any],
    method: str,
    budget: Any,
    seed: int,
    x_fit: torch.Tensor,
    y_fit: np.ndarray,
) -> Any:
    kernel = with_hyperparameters(case, overrides)
    return make_approximation(kernel, method, budget, seed).fit(x_fit, y_fit)


def _other(model: Any, x_other: torch.Tensor, x_fit: torch.Tensor) -> torch.Tensor:
    """What the ridge path needs of new inputs: features, or the Gram against training inputs."""
    if getattr(model, "has_features", True):
        return model.features(x_other)
    return model.gram(x_other, x_fit)


def _classifier(
    model: Any,
    x_fit: torch.Tensor,
    y_fit: np.ndarray,
    data: _Splits,
    lambdas: Sequence[float] | None,
) -> Any:
    """Ridge on features where the approximation has them, kernel ridge on its Gram otherwise."""
    if getattr(model, "has_features", True):
        train, val = model.features(x_fit), model.features(data.x_val)
        with linalg_threads(train.device):
            return fit_ridge_classifier(train, y_fit, val, data.y_val, lambdas)
    train, val = model.gram(x_fit), model.gram(data.x_val, x_fit)
    with linalg_threads(train.device):
        return fit_kernel_ridge_classifier(train, y_fit, val, data.y_val, lambdas)


def _fit_classifier(case, overrides, method, budget, seed, x_fit, y_fit, data, lambdas):
    model = _fit(case, overrides, method, budget, seed, x_fit, y_fit)
    return model, _classifier(model, x_fit, y_fit, data, lambdas)
