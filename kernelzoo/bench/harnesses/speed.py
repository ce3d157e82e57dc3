"""Time and memory: exact Gram evaluation against n, approximations' features.

Exact kernels: ``gram(X[:n])`` for each n of ``sizes.speed`` (the first
training images of split 0) after one warm-up call: ``gram_seconds`` (median of
up to 5 calls, as many as fit in half a second; timing decides how often a
timing is repeated, never what is measured), ``pairs_per_second`` (``n^2 /
seconds``) and ``peak_memory_bytes`` (growth of the process's peak resident set
on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU). Approximations at
``budgets.speed``: ``fit_seconds`` (fitted on the largest n), then per n
``feature_seconds`` (``features``, or ``gram`` for Gram-only ones),
``images_per_second`` and ``peak_memory_bytes``. All of these are
:data:`~kernelzoo.bench._common.TIMING_METRICS`.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kernelzoo.bench._common import (
    EXACT,
    KernelCase,
    PeakMemory,
    describe_error,
    make_approximation,
    methods_of,
    timed,
)
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.plan import RunConfig

__all__ = ["Speed", "median_time"]

_FATAL = (ImportError, NotImplementedError, AttributeError)


def median_time(fn: Callable[[], Any], device: Any, repeats: int = 5,
                min_seconds: float = 0.5) -> tuple[float, float]:
    """``(median seconds, peak memory bytes)`` of ``fn``: the first call under
    :class:`PeakMemory`, more calls (up to ``repeats``) while they took under
    ``min_seconds`` together."""
    with PeakMemory(device) as memory:
        _, first = timed(fn, device)
    times = [first]
    while len(times) < repeats and sum(times) < min_seconds:
        times.append(timed(fn, device)[1])
    return statistics.median(times), memory.bytes


class Speed(Harness):
    name = "speed"
    title = "Speed and memory"
    order = 60
    metric = "pairs_per_second"

    def planned_n(self, config: RunConfig) -> int:
        return max(config.sizes.speed)

    def methods(self, ctx: RunContext, case: KernelCase) -> list[str]:
        return methods_of(case)

    def _x(self, ctx: RunContext) -> torch.Tensor:
        index = ctx.reference_split().train[: self.planned_n(ctx.config)]
        return ctx.pool.x[torch.as_tensor(index, device=ctx.pool.x.device)]

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        x = self._x(ctx)
        sizes = sorted(ctx.config.sizes.speed)
        if method == EXACT:
            case.kernel.gram(x[:2])  # warm-up: first-call costs are not throughput
            rows = []
            for n in sizes:
                seconds, memory = median_time(lambda m=n: case.kernel.gram(x[:m]), x.device)
                fields = dict(n=n, seconds=seconds)
                rows.append(ctx.row(self.name, case, EXACT, "gram_seconds", seconds, **fields))
                rows.append(ctx.row(self.name, case, EXACT, "pairs_per_second",
                                    n * n / max(seconds, 1e-12), **fields))
                rows.append(ctx.row(self.name, case, EXACT, "peak_memory_bytes", memory,
                                    **fields))
            return rows
        return self._approximation(ctx, case, method, x, sizes)

    def _approximation(self, ctx: RunContext, case: KernelCase, method: str, x: torch.Tensor,
                       sizes: list[int]) -> list[dict[str, Any]]:
        budget, seed = ctx.config.budgets.speed, ctx.config.seeds[0]
        labels = ctx.pool.y[ctx.reference_split().train[: len(x)]]
        model = make_approximation(case.kernel, method, budget, seed)
        _, fit_seconds = timed(lambda: model.fit(x, labels), x.device)
        try:
            n_features = int(model.n_features)
        except Exception:  # noqa: BLE001 - Gram-only approximations
            n_features = None
        fields = dict(budget=budget, seed=seed, n_features=n_features)
        rows = [ctx.row(self.name, case, method, "fit_seconds", fit_seconds, n=len(x),
                        seconds=fit_seconds, **fields)]
        has_features = getattr(model, "has_features", True)
        with contextlib.suppress(Exception):  # warm-up; a failure is reported below
            model.features(x[:2]) if has_features else model.gram(x[:2])
        for n in sizes:
            def extract(m: int = n) -> Any:
                return model.features(x[:m]) if has_features else model.gram(x[:m])

            try:
                seconds, memory = median_time(extract, x.device)
            except Exception as exc:  # noqa: BLE001 - one failed size, a row
                rows.append(ctx.row(self.name, case, method, "images_per_second", None, n=n,
                                    error=describe_error(exc), **fields))
                if isinstance(exc, _FATAL):
                    break
                continue
            for metric, value in (("feature_seconds", seconds),
                                  ("images_per_second", n / max(seconds, 1e-12)),
                                  ("peak_memory_bytes", memory)):
                rows.append(ctx.row(self.name, case, method, metric, value, n=n,
                                    seconds=seconds, **fields))
        return rows

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, tables

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        section = Section(self.title, (
            "Exact Gram: pairs per second (n² / time, median of up to 5 runs after a warm-up); "
            "approximations: feature extraction in images per second at one budget (fitted "
            "beforehand). Peak memory: growth of the process's peak resident set on the CPU, "
            "torch.cuda.max_memory_allocated on a GPU. Timings, unlike every other number "
            "here, change from run to run."))
        section.table(tables.speed_table(frame))
        section.figure(out, "speed.png", "speed", lambda p: plots.plot_speed(frame, p))
        return section
