"""Harnesses that put the kernels side by side, under one fixed plan.

- :mod:`kernelzoo.bench.plan`: :class:`RunConfig`, the run's plan (sizes, budgets,
  seeds, splits, threads), and the presets ``quick``, ``standard``, ``full``;
- :mod:`kernelzoo.bench.pool`: the run's images, its random splits, and the exact
  Grams computed once over them;
- :mod:`kernelzoo.bench.harness`: the :class:`Harness` interface and the driver;
- ``kernelzoo/bench/harnesses/``: one file per harness (accuracy, approximation,
  similarity, spectrum, stability, speed, gp);
- :mod:`kernelzoo.bench.metrics`: approximation errors, CKA, effective dimension,
  RKHS distances;
- :mod:`kernelzoo.bench.compare`: the main job, ``kernelzoo compare``
  (``kernelzoo.bench.compare.compare`` from Python).

Rows share the columns :data:`COLUMNS`; run metadata (versions, git commit,
machine, the plan) is in ``df.attrs["metadata"]``.
"""

from kernelzoo.bench._common import COLUMNS, EXACT, TIMING_METRICS, run_metadata
from kernelzoo.bench.compare import default_kernels
from kernelzoo.bench.harness import Harness, RunContext, run_harnesses
from kernelzoo.bench.metrics import (
    approximation_errors,
    centered_kernel_alignment,
    effective_dimension,
    rkhs_relative_distance,
)
from kernelzoo.bench.plan import PRESETS, RunConfig, preset

__all__ = [
    "COLUMNS",
    "EXACT",
    "Harness",
    "PRESETS",
    "RunConfig",
    "RunContext",
    "TIMING_METRICS",
    "approximation_errors",
    "centered_kernel_alignment",
    "default_kernels",
    "effective_dimension",
    "preset",
    "rkhs_relative_distance",
    "run_harnesses",
    "run_metadata",
]
