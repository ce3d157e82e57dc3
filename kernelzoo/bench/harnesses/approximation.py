"""How well each approximation tracks its exact kernel as the budget grows.

Every family at one shared n (``sizes.approximation``: the first training
images of split 0), at the hyperparameters chosen on validation; the exact Gram
is a slice of the pool's. Each approximation method of the kernel is fitted on
those points at every budget and seed (labels given to methods that learn from
them), and its Gram compared with the exact one
(:func:`~kernelzoo.bench.metrics.approximation_errors`: relative Frobenius,
spectral and max-entry errors, alignment and CKA), with the time to fit and to
evaluate. Budgets count what each method counts (features, landmarks, width,
anchors per layer); uniform Nyström landmarks of one seed are prefixes of one
seeded permutation, so they are nested along the budgets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kernelzoo.bench._common import (
    EXACT,
    KernelCase,
    describe_error,
    linalg_threads,
    make_approximation,
    methods_of,
    timed,
)
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.metrics import approximation_errors
from kernelzoo.bench.plan import RunConfig

__all__ = ["Approximation"]

#: Errors after which a method is not tried at further budgets/seeds.
_FATAL = (ImportError, NotImplementedError, AttributeError)


class Approximation(Harness):
    name = "approximation"
    title = "Approximation error against budget"
    order = 20
    metric = "rel_frobenius_error"

    def planned_n(self, config: RunConfig) -> int:
        return config.sizes.approximation

    def methods(self, ctx: RunContext, case: KernelCase) -> list[str]:
        return [m for m in methods_of(case) if m != EXACT] if ctx.config.budgets.approximation \
            else []

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        n = self.planned_n(ctx.config)
        index = ctx.reference_split().train[:n]
        exact = ctx.gram(case, index)
        x = ctx.pool.x[torch.as_tensor(index, device=ctx.pool.x.device)]
        labels = ctx.pool.y[index]
        rows: list[dict[str, Any]] = []
        for budget in ctx.config.budgets.approximation:
            for seed in ctx.config.seeds:
                fields = dict(n=n, budget=budget, seed=seed)
                try:
                    approx = make_approximation(case.kernel, method, budget, seed)
                    _, fit_seconds = timed(lambda a=approx: a.fit(x, labels), x.device)
                    gram, eval_seconds = timed(lambda a=approx: a.gram(x), x.device)
                    with linalg_threads("cpu"):
                        errors = approximation_errors(exact, gram)
                except Exception as exc:  # noqa: BLE001 - one failed budget, a row
                    rows.append(ctx.row(self.name, case, method, self.metric, None,
                                        error=describe_error(exc), **fields))
                    if isinstance(exc, _FATAL):
                        return rows
                    continue
                fields["n_features"] = _n_features(approx)
                total = fit_seconds + eval_seconds
                for metric, value in errors.items():
                    rows.append(ctx.row(self.name, case, method, metric, value, seconds=total,
                                        **fields))
                rows.append(ctx.row(self.name, case, method, "fit_seconds", fit_seconds,
                                    seconds=fit_seconds, **fields))
                rows.append(ctx.row(self.name, case, method, "eval_seconds", eval_seconds,
                                    seconds=eval_seconds, **fields))
        return rows

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, tables

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        n = _n_of(frame)
        section = Section(self.title, (
            f"On n = {n} points (the first training images of split 0), at each kernel's "
            "hyperparameters chosen on validation: relative Frobenius error ‖K − K̃‖_F / ‖K‖_F "
            "of each approximation's Gram against the exact Gram, median over the "
            "approximation seeds. The budget counts what each method counts (features, "
            "landmarks, network width, anchors per layer); Nyström landmark sets are nested "
            "along the budgets."))
        section.table(tables.approximation_table(frame))
        section.text("Centred kernel alignment (CKA) of each approximation with its exact "
                     "kernel (1: equal up to scale):")
        section.table(tables.approximation_table(frame, "cka"))
        section.figure(out, "approximation_error.png", "error against budget",
                       lambda p: plots.plot_approximation_error(frame, p))
        section.figure(out, "approximation_error_vs_time.png", "error against time",
                       lambda p: plots.plot_approximation_error(frame, p, against="seconds"))
        return section


def _n_of(frame: pd.DataFrame) -> Any:
    values = frame["n"].dropna().unique()
    return int(values.max()) if len(values) else "-"


def _n_features(approx: Any) -> Any:
    try:
        return int(approx.n_features)
    except Exception:  # noqa: BLE001 - Gram-only approximations have none
        return None
