"""Kernel similarity: centred kernel alignment (CKA) between the exact Grams of every
pair of kernels on the same points.

On ``sizes.similarity`` points (the first training images of split 0, the
spectrum harness's points), at each kernel's hyperparameters chosen on
validation: ``CKA(K_a, K_b) = <H K_a H, H K_b H>_F / (|H K_a H|_F |H K_b H|_F)``
(``H`` the centring matrix), 1 for Grams equal up to scale and an added
constant. One row per ordered pair (``spec``, ``spec_other``), metric ``cka``;
how alike each approximation is to its own exact kernel is the ``cka`` metric of
the approximation harness, summarised in this section too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from kernelzoo.bench._common import EXACT, KernelCase
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.metrics import center, centered_kernel_alignment
from kernelzoo.bench.plan import RunConfig

__all__ = ["Similarity"]


class Similarity(Harness):
    name = "similarity"
    title = "Kernel similarity (centred kernel alignment)"
    uses = ("accuracy", "approximation")
    order = 30
    metric = "cka"
    columns = ("spec_other",)

    def __init__(self) -> None:
        self._centered: dict[str, np.ndarray] = {}

    def planned_n(self, config: RunConfig) -> int:
        return config.sizes.similarity

    def _get(self, ctx: RunContext, case: KernelCase) -> np.ndarray:
        if case.spec not in self._centered:
            index = ctx.reference_split().train[: self.planned_n(ctx.config)]
            self._centered[case.spec] = center(ctx.gram(case, index))
        return self._centered[case.spec]

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        mine = self._get(ctx, case)
        rows = []
        for other in self.kernels(ctx):
            if not other.ok:
                continue
            try:
                value = centered_kernel_alignment(mine, self._get(ctx, other), centered=True)
                error = ""
            except Exception as exc:  # noqa: BLE001 - the other kernel's failure, a row
                value, error = None, f"{type(exc).__name__}: {exc}"[:200]
            rows.append(ctx.row(self.name, case, EXACT, "cka", value, error=error,
                                n=self.planned_n(ctx.config), spec_other=other.spec))
        return rows

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, summaries

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        matrix = summaries.similarity_matrix(frame)
        n = frame["n"].dropna().max()
        section = Section(self.title, (
            f"CKA between the exact Grams of every pair of kernels on the same n = {n} points "
            "(the first training images of split 0), each at its hyperparameters chosen on "
            "validation: ⟨HK₁H, HK₂H⟩_F / (‖HK₁H‖_F ‖HK₂H‖_F), H the centring matrix; 1 means "
            "equal up to scale. Kernels that are alike here also rank images alike."))
        section.figure(out, "similarity.png", "CKA heat map",
                       lambda p: plots.plot_similarity(matrix, p))
        section.table(matrix)
        closest = summaries.nearest_kernels(matrix)
        if not closest.empty:
            section.text("For each kernel, the most similar other kernel:")
            section.table(closest)
        approx = frames.get("approximation")
        if approx is not None and not approx.empty:
            alike = summaries.approximation_cka_summary(approx)
            if not alike.empty:
                section.text("How alike each approximation is to its exact kernel: CKA at "
                             "its largest budget (median over seeds), from the approximation "
                             "harness.")
                section.table(alike)
        return section
