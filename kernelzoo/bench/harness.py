"""The harness interface, the run context, and the one driver that runs harnesses.

A harness is a subclass of :class:`Harness` in one file of
``kernelzoo/bench/harnesses/``: it says which kernels and methods it measures
(:meth:`Harness.kernels`, :meth:`Harness.methods`), how many images it uses
(:meth:`Harness.planned_n`, from the plan only), measures one (kernel, method)
in :meth:`Harness.run` (a list of tidy rows), and writes its report section
(:meth:`Harness.section`). :func:`run_harnesses` loops over harnesses, kernels
and methods, turns every failure into an error row, and turns whatever an
opt-in time cap cuts into a skipped row.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    EXACT,
    KernelCase,
    Progress,
    describe_error,
    error_row,
    make_row,
    to_frame,
)
from kernelzoo.bench.plan import RunConfig
from kernelzoo.bench.pool import GramCache, Pool, Split

__all__ = ["Harness", "RunContext", "run_harnesses", "tuned_case"]


def tuned_case(case: KernelCase, overrides: dict[str, Any]) -> KernelCase:
    """``case`` with some parameters replaced (its label kept); ``case`` itself if none."""
    if not case.ok or not overrides:
        return case
    kernel = type(case.kernel)(**{**case.kernel.get_params(), **overrides})
    return KernelCase(case.spec, case.family, kernel, "", {**case.fixed, **overrides})


@dataclasses.dataclass
class RunContext:
    """What the harnesses of one run share.

    ``cases``: the run's kernels as requested; ``chosen``: per spec, the
    hyperparameters the accuracy harness chose on validation (the choice most
    splits made at the largest n_train), and ``chosen_by_split`` per split;
    ``lambdas``: per spec, the ridge lambda chosen at the largest n_train in the
    first split that chose those hyperparameters; ``frames``: the DataFrames of the
    harnesses run so far.
    """

    config: RunConfig
    pool: Pool
    grams: GramCache
    cases: list[KernelCase]
    progress: Progress = dataclasses.field(default_factory=Progress)
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    chosen: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    chosen_by_split: dict[str, dict[int, dict[str, Any]]] = dataclasses.field(
        default_factory=dict)
    lambdas: dict[str, float] = dataclasses.field(default_factory=dict)
    frames: dict[str, pd.DataFrame] = dataclasses.field(default_factory=dict)
    started: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def dtype(self) -> torch.dtype:
        return self.pool.x.dtype

    def common(self) -> dict[str, Any]:
        """Fields every row of this run has."""
        return {"dataset": self.pool.name, "device": self.config.device,
                "dtype": self.pool.x.dtype}

    def row(self, harness: str, case: KernelCase, method: str, metric: str, value: Any,
            **fields: Any) -> dict[str, Any]:
        return make_row(harness, case, method, metric, value, **self.common(), **fields)

    def tuned(self, case: KernelCase, split: int | None = None) -> KernelCase:
        """``case`` at the hyperparameters chosen on validation (of ``split`` if given)."""
        if split is not None and case.spec in self.chosen_by_split:
            return tuned_case(case, self.chosen_by_split[case.spec].get(split, {}))
        return tuned_case(case, self.chosen.get(case.spec, {}))

    def reference_split(self) -> Split:
        """Split 0: the points the single-n harnesses take (its first training images)."""
        return self.pool.splits[0]

    def gram(self, case: KernelCase, index: np.ndarray) -> torch.Tensor:
        """The exact Gram of the pool images ``index``: a slice of the pool's Gram when
        it is computed already (by the accuracy harness), else the Gram of those images."""
        index_t = torch.as_tensor(index, device=self.pool.x.device)
        if case.kernel not in self.grams:
            return case.kernel.gram(self.pool.x.index_select(0, index_t))
        full = self.grams.get(case.kernel)
        return full.index_select(0, index_t).index_select(1, index_t)

    def cap_reached(self) -> bool:
        cap = self.config.time_cap
        return cap is not None and time.perf_counter() - self.started > cap


class Harness:
    """One kind of measurement. Subclass it in a new file of ``bench/harnesses/``.

    Class attributes: ``name`` (the ``harness`` column and ``--harness`` value),
    ``title`` (its report heading), ``uses`` (harnesses whose results it reads when
    they are part of the run: the hyperparameters and lambdas the accuracy harness
    chooses; without them it measures the kernels as given), ``order`` (harnesses
    run by increasing order, which respects ``uses``), ``default`` (part of a plain
    ``kernelzoo compare``), ``metric`` (the metric of its error rows) and
    ``columns`` (its extra columns).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    uses: ClassVar[tuple[str, ...]] = ("accuracy",)
    order: ClassVar[int] = 100
    default: ClassVar[bool] = True
    metric: ClassVar[str] = "value"
    columns: ClassVar[tuple[str, ...]] = ()

    def planned_n(self, config: RunConfig) -> int | None:
        """How many images this harness uses, from the plan alone."""
        return None

    def kernels(self, ctx: RunContext) -> list[KernelCase]:
        """The kernels to measure (default: the run's, at their chosen hyperparameters)."""
        return [ctx.tuned(case) for case in ctx.cases]

    def methods(self, ctx: RunContext, case: KernelCase) -> list[str]:
        """The methods to measure for one kernel (default: the exact kernel only)."""
        return [EXACT]

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        """Measure one (kernel, method): tidy rows (``ctx.row(...)``). May raise."""
        raise NotImplementedError

    def finish(self, ctx: RunContext, frame: pd.DataFrame) -> pd.DataFrame:
        """After every kernel: add or reshape rows (default: nothing)."""
        return frame

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        """Its part of the report (a :class:`kernelzoo.report.Section`), or None."""
        return None


def _error(ctx: RunContext, harness: Harness, case: KernelCase, method: str,
           message: str) -> dict[str, Any]:
    return error_row(harness.name, case, method, harness.metric, message,
                     n=harness.planned_n(ctx.config), **ctx.common())


def run_one(ctx: RunContext, harness: Harness) -> pd.DataFrame:
    """Run one harness over its kernels and methods; failures and cuts become rows."""
    rows: list[dict[str, Any]] = []
    for case in harness.kernels(ctx):
        ctx.progress.note(f"{harness.name}: {case.spec}")
        if not case.ok:
            rows.append(_error(ctx, harness, case, EXACT, case.error))
            ctx.progress.step(case.spec)
            continue
        try:
            methods = harness.methods(ctx, case)
        except Exception as exc:  # noqa: BLE001 - reported as a row
            methods = []
            rows.append(_error(ctx, harness, case, EXACT, describe_error(exc)))
        for method in methods:
            if ctx.cap_reached():
                rows.append(_error(ctx, harness, case, method,
                                   f"skipped: --time-cap {ctx.config.time_cap:g} s reached"))
                continue
            ctx.progress.note(f"{harness.name}: {case.spec} {method}")
            try:
                rows.extend(harness.run(ctx, case, method))
            except Exception as exc:  # noqa: BLE001 - reported as a row
                rows.append(_error(ctx, harness, case, method, describe_error(exc)))
        ctx.progress.step(case.spec)
    frame = to_frame(rows, extra_columns=harness.columns, metadata=ctx.metadata)
    frame = harness.finish(ctx, frame)
    frame.attrs["metadata"] = ctx.metadata
    return frame


def run_harnesses(ctx: RunContext, harnesses: Sequence[Harness]) -> dict[str, pd.DataFrame]:
    """Run ``harnesses`` in their ``order``; returns ``{name: DataFrame}`` (also in
    ``ctx.frames``), each with ``attrs["metadata"]`` and its own seconds in
    ``ctx.metadata["harness_seconds"]``."""
    spent = ctx.metadata.setdefault("harness_seconds", {})
    ordered = sorted(harnesses, key=lambda h: h.order)
    position = {h.name: i for i, h in enumerate(ordered)}
    for harness in ordered:
        late = [u for u in harness.uses if position.get(u, -1) > position[harness.name]]
        if late:
            raise ValueError(f"harness {harness.name!r} uses {late} but runs before them; "
                             f"give it a larger order")
    for harness in ordered:
        start = time.perf_counter()
        ctx.frames[harness.name] = run_one(ctx, harness)
        spent[harness.name] = round(time.perf_counter() - start, 2)
    return dict(ctx.frames)
