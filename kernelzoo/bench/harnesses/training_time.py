"""Accuracy against training time: NTK predictions under gradient descent.

For each neural tangent kernel of the run (``ntk``: ``tangent`` in its class), at
the hyperparameters the accuracy harness chose, the test accuracy of the
infinitely wide network trained by continuous gradient descent on the MSE loss
for time ``t``
(:func:`kernelzoo.predict.accuracy_over_time`: neural-tangents'
``predict.gradient_descent_mse``, one-vs-all targets, outputs 0 at
initialisation), at several ``t`` and at ``t = inf``, where the network is
kernel regression (ridge ``DIAG_REG`` relative to the mean diagonal).

The points are split 0's first ``max(sizes.n_train)`` training images and its
test images: their Gram is a slice of the pool's Gram that the accuracy
harness computed already (no new kernel evaluation). Times are given on a
scale free of the kernel's magnitude: ``t_scaled = learning_rate * t *
trace(K) / y_train.size``, so the mode of eigenvalue ``mu`` of ``K`` decays as
``exp(-t_scaled mu / trace(K))``; the grid :data:`SCALED_TIMES` is fixed, so the
rows are deterministic.

Rows: ``test_accuracy`` per (kernel, time); extra columns ``time`` (t) and
``time_scaled`` (inf for the kernel-regression limit).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import EXACT, KernelCase, linalg_threads
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.plan import RunConfig
from kernelzoo.predict import accuracy_over_time

__all__ = ["DIAG_REG", "SCALED_TIMES", "TrainingTime"]

#: training times on the scale ``learning_rate * t * trace(K) / y_train.size``
SCALED_TIMES: tuple[float, ...] = (1.0, 10.0, 1e2, 1e3, 1e4, 1e5, 1e6)
#: ``diag_reg`` of the predictions (relative to the mean diagonal of the train Gram)
DIAG_REG = 1e-6
LEARNING_RATE = 1.0


class TrainingTime(Harness):
    """NTK test accuracy after gradient-descent training for several times and at
    infinite time (see the module docstring)."""

    name = "training_time"
    title = "Accuracy against training time (NTK, gradient descent)"
    order = 45
    metric = "test_accuracy"
    columns = ("time", "time_scaled")

    def planned_n(self, config: RunConfig) -> int:
        return max(config.sizes.n_train)

    def kernels(self, ctx: RunContext) -> list[KernelCase]:
        # neural tangent kernels (the class says so: ``tangent``), whose kernel regression
        # is the trained network's limit
        return [ctx.tuned(case) for case in ctx.cases
                if case.ok and getattr(case.kernel, "tangent", False)]

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        split = ctx.reference_split()
        train = split.train[: self.planned_n(ctx.config)]
        index = np.concatenate([train, split.test])
        gram = ctx.gram(case, index).detach().to(device="cpu", dtype=torch.float64)
        n = len(train)
        k_train, k_test = gram[:n, :n], gram[n:, :n]
        labels = torch.as_tensor(np.asarray(ctx.pool.y))
        y_train = labels[torch.as_tensor(train)]
        y_test = labels[torch.as_tensor(split.test)]
        n_outputs = int(torch.unique(y_train).numel())
        trace = float(torch.diagonal(k_train).sum())
        times = [s * n * n_outputs / (LEARNING_RATE * trace) for s in SCALED_TIMES]
        with linalg_threads("cpu"):
            accuracy = accuracy_over_time(k_train, y_train, k_test, y_test, [*times, None],
                                          learning_rate=LEARNING_RATE, diag_reg=DIAG_REG)
        rows = []
        for t, scaled, value in zip([*times, math.inf], [*SCALED_TIMES, math.inf],
                                    accuracy.tolist(), strict=True):
            rows.append(ctx.row(self.name, case, EXACT, "test_accuracy", value, time=t,
                                time_scaled=scaled, n=n, split=split.index))
        return rows

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, tables

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        section = Section(self.title, (
            "Test accuracy of the infinitely wide network (the NTK ensemble mean, outputs 0 at "
            "initialisation) after gradient descent on the MSE loss for time t "
            "(neural-tangents' predict.gradient_descent_mse), against "
            "t·trace(K)/(n·classes); ∞ is kernel regression "
            f"(diag_reg {DIAG_REG:g} relative to the mean diagonal). Split 0, the accuracy "
            "harness's largest n_train and its chosen hyperparameters."))
        section.table(tables.training_time_table(frame))
        section.figure(out, "training_time.png", "accuracy against training time",
                       lambda p: plots.plot_training_time(frame, p))
        return section
