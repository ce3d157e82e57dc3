"""Classification accuracy over random splits; everything chosen on validation.

Exact kernels: one-vs-all kernel ridge on slices of the pool's Gram (one Gram
per hyperparameter value, :class:`~kernelzoo.bench.pool.GramCache`). In every
split and at every n_train (nested prefixes of the split's training part), the
kernel's hyperparameters (``Param.search`` of its class, or a
:class:`~kernelzoo.bench.plan.SearchRule` of the plan) and the ridge lambda are
chosen by validation accuracy; only then is the test part scored, once.
Approximations (features: ridge; Gram-only: kernel ridge) run at the largest
n_train on the first ``approximation_splits`` splits, at the hyperparameters
the exact kernel chose in that split, for every budget and seed.

Rows: ``test_accuracy``, ``val_accuracy``, ``lambda`` per (split, n, method,
budget, seed); extra column ``params`` (the chosen hyperparameters).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import torch

from kernelzoo.bench._common import (
    EXACT,
    KernelCase,
    describe_error,
    iter_grid,
    linalg_threads,
    make_approximation,
    methods_of,
    timed,
)
from kernelzoo.bench.harness import Harness, RunContext, tuned_case
from kernelzoo.bench.plan import RunConfig
from kernelzoo.bench.pool import Split
from kernelzoo.classify import fit_kernel_ridge_classifier, fit_ridge_classifier
from kernelzoo.ops.distances import median_pairwise_distance

__all__ = ["Accuracy", "hyperparameter_candidates"]


def hyperparameter_candidates(case: KernelCase, config: RunConfig,
                              x_scale: torch.Tensor) -> list[dict[str, Any]]:
    """The parameter overrides to try for one kernel (``[{}]`` when nothing is searched).

    Values come from the kernel class's ``search_space()`` (``Param.search``), or
    from the first of ``config.search``'s rules that applies to the kernel.
    Parameters fixed in the spec are not searched; values of parameters with
    ``search_scale="median_distance"`` are multiples of the median pairwise
    distance of ``x_scale`` (the pool's images: inputs only, no labels).
    """
    if not case.ok:
        return [{}]
    space = type(case.kernel).search_space()
    values = {name: tuple(p.search) for name, p in space.items()}
    params = case.kernel.get_params()
    for rule in config.search:
        if rule.applies(params):
            values.update({name: tuple(v) for name, v in rule.values if name in params})
            break
    grid = {name: v for name, v in values.items() if name not in case.fixed}
    scaled = [n for n in grid if n in space and space[n].search_scale == "median_distance"]
    if scaled:
        scale = median_pairwise_distance(x_scale)
        grid.update({name: tuple(v * scale for v in grid[name]) for name in scaled})
    return list(iter_grid(grid))


def _describe(overrides: dict[str, Any], lam: float) -> str:
    parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}" for k, v in overrides.items()]
    return ", ".join([*parts, f"lambda={lam:.0e}"])


def _take(gram: torch.Tensor, rows: np.ndarray, cols: np.ndarray) -> torch.Tensor:
    r = torch.as_tensor(rows, device=gram.device)
    c = torch.as_tensor(cols, device=gram.device)
    return gram.index_select(0, r).index_select(1, c)


class Accuracy(Harness):
    """Test accuracy: exact kernels over every split and n_train, approximations at the
    largest n_train (see the module docstring)."""

    name = "accuracy"
    title = "Classification accuracy"
    uses = ()
    order = 10
    metric = "test_accuracy"
    columns = ("params",)

    def planned_n(self, config: RunConfig) -> int:
        return max(config.sizes.n_train)

    def methods(self, ctx: RunContext, case: KernelCase) -> list[str]:
        if not ctx.config.budgets.accuracy or not ctx.config.approximation_splits:
            return [EXACT]
        return methods_of(case)

    def kernels(self, ctx: RunContext) -> list[KernelCase]:
        return list(ctx.cases)  # the hyperparameters are chosen here

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        if method == EXACT:
            return self._exact(ctx, case)
        return self._approximation(ctx, case, method)

    # ------------------------------------------------------------------ exact
    def _exact(self, ctx: RunContext, case: KernelCase) -> list[dict[str, Any]]:
        sizes = sorted(ctx.config.sizes.n_train)
        y = ctx.pool.y
        candidates = hyperparameter_candidates(case, ctx.config, ctx.pool.x)
        kernels = [tuned_case(case, c).kernel for c in candidates]
        best: dict[tuple[int, int], tuple[Any, int]] = {}  # (split, n) -> (classifier, cand.)
        for index, kernel in enumerate(kernels):
            shown = _describe(candidates[index], 0).rpartition("lambda=")[0].rstrip(", ")
            ctx.progress.note(f"accuracy: {case.spec} {shown[:40]}")
            gram = ctx.grams.get(kernel)
            for split in ctx.pool.splits:
                for n in sizes:
                    train = split.train[:n]
                    with linalg_threads(gram.device):
                        clf = fit_kernel_ridge_classifier(
                            _take(gram, train, train), y[train],
                            _take(gram, split.val, train), y[split.val])
                    key = (split.index, n)
                    if key not in best or clf.val_accuracy > best[key][0].val_accuracy:
                        best[key] = (clf, index)
        rows = []
        for (split_index, n), (clf, index) in sorted(best.items()):
            split = ctx.pool.splits[split_index]
            gram = ctx.grams.get(kernels[index])
            train = split.train[:n]
            test_acc = clf.score(_take(gram, split.test, train), y[split.test])
            fields = dict(n=n, split=split_index, params=_describe(candidates[index], clf.lam),
                          seconds=ctx.grams.gram_seconds(kernels[index]))
            for metric, value in (("test_accuracy", test_acc),
                                  ("val_accuracy", clf.val_accuracy), ("lambda", clf.lam)):
                rows.append(ctx.row(self.name, case, EXACT, metric, value, **fields))
        self._remember(ctx, case, candidates, kernels, best, max(sizes))
        return rows

    @staticmethod
    def _remember(ctx: RunContext, case: KernelCase, candidates: list[dict[str, Any]],
                  kernels: list[Any], best: dict, n_max: int) -> None:
        """Keep the choices (per split, and the one most splits made), release other Grams."""
        per_split = {s: best[(s, n_max)][1] for s in range(len(ctx.pool.splits))}
        counts = Counter(per_split.values())
        top = max(counts.values())
        consensus = next(i for i in per_split.values() if counts[i] == top)  # first split's tie
        ctx.chosen[case.spec] = dict(candidates[consensus])
        ctx.chosen_by_split[case.spec] = {s: dict(candidates[i]) for s, i in per_split.items()}
        first = next(s for s, i in per_split.items() if i == consensus)
        ctx.lambdas[case.spec] = float(best[(first, n_max)][0].lam)
        for index, kernel in enumerate(kernels):
            if index != consensus:
                ctx.grams.release(kernel)

    def section(self, frames: dict[str, Any], out: Any) -> Any:
        from kernelzoo.report import Section, plots, summaries

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        splits = frame["split"].dropna().nunique()
        section = Section(self.title, (
            f"Test accuracy over {splits} random splits of the same pool of images (train, "
            "validation and test re-drawn in each split, stratified; the split index is its seed). "
            "Exact kernels: one-vs-all kernel ridge. In every split and at every n_train, the "
            "kernel's hyperparameters and the ridge λ are chosen on the validation part; the test "
            "part is scored once, at the end. Every kernel sees the same splits and the same "
            "training sizes. Mean ± standard deviation over splits:"))
        section.table(summaries.accuracy_vs_n_table(frame))
        section.figure(out, "accuracy_vs_n_train.png", "accuracy against n_train",
                       lambda p: plots.plot_accuracy_vs_n(frame, p))
        approx = summaries.accuracy_table(frame)
        if not approx.empty:
            section.text("Approximations at the largest n_train (features: ridge; Gram only: "
                         "kernel ridge), at the hyperparameters the exact kernel chose in the same "
                         "split, λ chosen on validation; mean over the splits and seeds they ran "
                         "on (`splits` column):")
            section.table(approx)
            section.figure(out, "accuracy.png", "accuracy against budget",
                           lambda p: plots.plot_accuracy(frame, p))
        chosen = summaries.chosen_parameters_table(frame)
        if not chosen.empty:
            section.text("Hyperparameters and λ chosen on validation at the largest n_train, "
                         "per split:")
            section.table(chosen)
        return section


    # ------------------------------------------------------------------ approximations
    def _approximation(self, ctx: RunContext, case: KernelCase,
                       method: str) -> list[dict[str, Any]]:
        n = max(ctx.config.sizes.n_train)
        rows = []
        for split in ctx.pool.splits[: ctx.config.approximation_splits]:
            kernel = ctx.tuned(case, split.index).kernel
            params = ctx.chosen_by_split.get(case.spec, {}).get(split.index, {})
            for budget in ctx.config.budgets.accuracy:
                for seed in ctx.config.seeds:
                    fields = dict(n=n, split=split.index, budget=budget, seed=seed)
                    try:
                        (model, clf, test_acc), seconds = timed(
                            lambda b=budget, s=seed: self._fit_score(ctx, kernel, method, b, s,
                                                                     split), ctx.pool.x.device)
                    except Exception as exc:  # noqa: BLE001 - one failed budget, a row
                        rows.append(ctx.row(self.name, case, method, self.metric, None,
                                            error=describe_error(exc), **fields))
                        continue
                    fields.update(n_features=_n_features(model), seconds=seconds,
                                  params=_describe(params, clf.lam))
                    for metric, value in (("test_accuracy", test_acc),
                                          ("val_accuracy", clf.val_accuracy),
                                          ("lambda", clf.lam)):
                        rows.append(ctx.row(self.name, case, method, metric, value, **fields))
        return rows

    @staticmethod
    def _fit_score(ctx: RunContext, kernel: Any, method: str, budget: int, seed: int,
                   split: Split) -> tuple[Any, Any, float]:
        n = max(ctx.config.sizes.n_train)
        x, y = ctx.pool.x, ctx.pool.y
        train = split.train[:n]
        x_train = x[torch.as_tensor(train, device=x.device)]
        x_val = x[torch.as_tensor(split.val, device=x.device)]
        x_test = x[torch.as_tensor(split.test, device=x.device)]
        model = make_approximation(kernel, method, budget, seed).fit(x_train, y[train])
        if getattr(model, "has_features", True):
            f_train, f_val = model.features(x_train), model.features(x_val)
            with linalg_threads(f_train.device):
                clf = fit_ridge_classifier(f_train, y[train], f_val, y[split.val])
            test = model.features(x_test)
        else:
            k_train, k_val = model.gram(x_train), model.gram(x_val, x_train)
            with linalg_threads(k_train.device):
                clf = fit_kernel_ridge_classifier(k_train, y[train], k_val, y[split.val])
            test = model.gram(x_test, x_train)
        return model, clf, clf.score(test, y[split.test])


def _n_features(model: Any) -> Any:
    try:
        return int(model.n_features)
    except Exception:  # noqa: BLE001 - Gram-only approximations have none
        return None

