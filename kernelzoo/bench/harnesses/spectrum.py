"""Eigenvalue decay of each exact Gram and its effective dimension.

A Gram whose eigenvalues fall fast has a small effective dimension
``d_eff(lambda) = trace(K (K + n lambda I)^-1) = sum_i mu_i / (mu_i + lambda)``
(``mu_i`` the eigenvalues of ``K / n``): few landmarks or features capture it.
On the similarity harness's points (``sizes.similarity``), at each kernel's
hyperparameters chosen on validation; ``effective_dimension_chosen`` is at the
lambda chosen with those hyperparameters at the largest n_train (the first split
that chose them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import EXACT, KernelCase, linalg_threads
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.metrics import effective_dimension
from kernelzoo.bench.plan import RunConfig

__all__ = ["RELATIVE_LAMBDAS", "Spectrum"]

#: d_eff is reported at these lambdas, relative to the largest eigenvalue of ``K / n``.
RELATIVE_LAMBDAS: tuple[float, ...] = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1)


class Spectrum(Harness):
    name = "spectrum"
    title = "Spectrum and effective dimension"
    order = 40
    metric = "eigenvalue"
    #: eigenvalue ``index`` (1 = largest), ``lam`` (the lambda of a d_eff row, on the scale
    #: of ``K / n``) and ``lam_relative`` (lam / largest eigenvalue)
    columns = ("index", "lam", "lam_relative")

    def planned_n(self, config: RunConfig) -> int:
        return config.sizes.similarity

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        n = self.planned_n(ctx.config)
        gram = ctx.gram(case, ctx.reference_split().train[:n])
        gram = gram.detach().to(device="cpu", dtype=torch.float64).numpy()
        with linalg_threads("cpu"):
            values = np.linalg.eigvalsh(0.5 * (gram + gram.T) / n)[::-1].copy()
        eigenvalues = torch.from_numpy(values)
        rows = [ctx.row(self.name, case, EXACT, "eigenvalue", float(v), index=i, n=n)
                for i, v in enumerate(values, start=1)]
        top = float(eigenvalues[0].clamp_min(1e-300))
        for relative in RELATIVE_LAMBDAS:
            rows.append(ctx.row(self.name, case, EXACT, "effective_dimension",
                                effective_dimension(eigenvalues, relative * top),
                                lam=relative * top, lam_relative=relative, n=n))
        lam = ctx.lambdas.get(case.spec)
        if lam is not None and np.isfinite(lam):
            rows.append(ctx.row(self.name, case, EXACT, "effective_dimension_chosen",
                                effective_dimension(eigenvalues, lam), lam=lam,
                                lam_relative=lam / top, n=n))
        return rows

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, tables

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        section = Section(self.title, (
            "Eigenvalues μ_i of K/n (μ_i/μ_1) and d_eff(λ) = Σ μ_i / (μ_i + λ) = "
            "trace(K (K + nλ I)^-1), at λ relative to μ_1 and at the λ chosen on validation "
            "by the accuracy harness (largest n_train)."))
        section.table(tables.spectrum_table(frame))
        section.figure(out, "spectrum.png", "spectrum", lambda p: plots.plot_spectrum(frame, p))
        return section
