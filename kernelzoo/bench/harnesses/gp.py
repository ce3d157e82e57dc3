"""Gaussian-process regression (``--harness gp``; not part of the default run).

Each kernel through :func:`kernelzoo.bench.gp.run_gp` on rotated digits (the
rotation angle is the target), with the run's first approximation seed; rows
``rmse``, ``nlpd``, ``coverage95``, ``train_seconds``, ``predict_seconds``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from kernelzoo.bench._common import KernelCase, Progress
from kernelzoo.bench.harness import Harness, RunContext

__all__ = ["GaussianProcess"]


class GaussianProcess(Harness):
    name = "gp"
    title = "Gaussian-process regression (rotated digits)"
    uses = ()
    order = 90
    default = False
    metric = "rmse"
    columns = ("n_test", "source")

    def kernels(self, ctx: RunContext) -> list[KernelCase]:
        return list(ctx.cases)  # the GP learns or keeps its own hyperparameters

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        from kernelzoo.bench.gp import run_gp

        frame = run_gp(kernels=[case], seeds=tuple(ctx.config.seeds[:1]),
                       device=ctx.config.device, dtype=ctx.config.dtype, progress=Progress())
        return frame.astype(object).where(frame.notna(), None).to_dict("records")

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, tables

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        section = Section(self.title, "Mean of each metric (see `results.csv`; "
                          "kernelzoo.bench.gp describes the task and the models).")
        section.table(tables.generic_table(frame, self.name))
        return section
