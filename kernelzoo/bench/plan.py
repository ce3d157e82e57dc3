"""The fixed plan of a run: one configuration object, and the named presets.

Everything that decides *what* is measured (sizes, budgets, hyperparameter
grids, seeds, splits, threads) comes from a :class:`RunConfig`: a preset
(:data:`PRESETS`) with command-line overrides on top. Nothing is derived from
measured timings or the machine's load, so the same command gives the same
``results.csv`` (apart from its time and memory columns, see
:data:`~kernelzoo.bench._common.TIMING_METRICS`).

Presets (sizes for the embedded 8 x 8 digits, 1797 images; other datasets take
the same sizes unless overridden):

``quick`` (default)
    every default family's exact accuracy at n_train 1000 (and 125, 250, 500)
    over 3 random splits; approximations' accuracy at budget 64 on split 0;
    approximation error at n = 256; kernel similarity and spectra on 1000
    training images; stability on 32 images; speed at n <= 256; 2 threads. The
    conv NNGP/NTK search only ``bias_std=0`` (their Gram is the dearest).
``standard`` (about 30 minutes on 2 cores)
    n_train up to 1200, 5 splits (approximations on every split), budgets 64 and
    256, two approximation draws, the full grids, approximation error at n = 512.
``full`` (hours on a CPU; or a GPU)
    as ``standard`` with 10 splits, three draws, budgets up to 1024, and all
    cores.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "Budgets",
    "NESTED_FIELDS",
    "PRESETS",
    "POOL_SEED",
    "RunConfig",
    "SearchRule",
    "Sizes",
    "StabilityPlan",
    "n_train_ladder",
    "preset",
]

#: Keys of :meth:`RunConfig.replace` that change a nested field: key -> (group, field).
NESTED_FIELDS: dict[str, tuple[str, str]] = {
    "n_train": ("sizes", "n_train"),
    "n_val": ("sizes", "n_val"),
    "n_test": ("sizes", "n_test"),
    "approximation_n": ("sizes", "approximation"),
    "similarity_n": ("sizes", "similarity"),
    "stability_n": ("sizes", "stability"),
    "speed_sizes": ("sizes", "speed"),
    "approximation_budgets": ("budgets", "approximation"),
    "accuracy_budgets": ("budgets", "accuracy"),
    "speed_budget": ("budgets", "speed"),
    "shifts": ("stability", "shifts"),
    "displacements": ("stability", "displacements"),
    "smoothness": ("stability", "smoothness"),
}

#: Seed of the draw of the image pool (the images a run uses, out of the dataset).
POOL_SEED = 0


@dataclasses.dataclass(frozen=True)
class Sizes:
    """How many images each harness uses.

    ``n_train``: the training sizes of the accuracy harness, shared by every
    family (nested prefixes of each split's training set; the largest is the
    common n_train of the headline). ``n_val``, ``n_test``: validation and test
    sizes of every split. ``approximation``: the points of the approximation-error
    harness; ``similarity``: those of the kernel-similarity (CKA) and spectrum
    harnesses; ``stability``: the images the stability harness deforms;
    ``speed``: the Gram sizes the speed harness times.
    """

    n_train: tuple[int, ...] = (125, 250, 500, 1000)
    n_val: int = 200
    n_test: int = 300
    approximation: int = 256
    similarity: int = 1000
    stability: int = 32
    speed: tuple[int, ...] = (64, 128, 256)

    @property
    def pool(self) -> int:
        """Images of the pool: every split re-draws train/validation/test out of them."""
        return max(self.n_train) + self.n_val + self.n_test


@dataclasses.dataclass(frozen=True)
class Budgets:
    """Approximation budgets (what each method counts) per harness."""

    approximation: tuple[int, ...] = (4, 8, 16, 32, 64, 128)
    accuracy: tuple[int, ...] = (64,)
    speed: int = 64


@dataclasses.dataclass(frozen=True)
class StabilityPlan:
    """Transformations of the stability harness.

    ``shifts``: horizontal translations in pixels; ``displacements`` x
    ``smoothness``: smooth random deformations of ``||tau||_inf`` pixels whose
    fields are smoothed by a Gaussian of that many pixels (smoother fields have
    smaller ``||grad tau||_inf`` at the same size). ``max_grad``: the fit of the
    bound's form uses deformations with ``||grad tau||_inf`` up to this (the
    bound assumes <= 1/2).
    """

    shifts: tuple[int, ...] = (0, 1, 2, 3)
    displacements: tuple[float, ...] = (0.25, 0.5, 1.0)
    smoothness: tuple[float, ...] = (1.0, 2.0, 3.0)
    max_grad: float = 0.5


@dataclasses.dataclass(frozen=True)
class SearchRule:
    """Kernels whose parameters equal ``when`` search ``values`` instead of their own grid.

    Both are tuples of ``(parameter, value)`` pairs (``values``: ``(parameter,
    tuple of values)``), so that a rule names parameters, never families.
    """

    when: tuple[tuple[str, Any], ...]
    values: tuple[tuple[str, tuple[Any, ...]], ...]

    def applies(self, params: Mapping[str, Any]) -> bool:
        return all(name in params and params[name] == value for name, value in self.when)

    def describe(self) -> str:
        when = ", ".join(f"{k}={v!r}" for k, v in self.when)
        values = "; ".join(f"{k} in {list(v)}" for k, v in self.values)
        return f"kernels with {when} search {values} only"


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """One run of ``kernelzoo compare``: data, sizes, draws, hardware, budgets.

    ``splits`` random train/validation/test splits (split index = its seed);
    ``seeds`` the approximation draws; ``approximation_splits`` how many of the
    splits the approximations' accuracy is measured on; ``threads`` CPU threads
    for torch and BLAS (None: torch's default); ``time_cap`` an opt-in limit in
    seconds after which the remaining measurements become skipped rows;
    ``reference`` the spec the headline's paired differences are taken against.
    """

    preset: str = "quick"
    dataset: str = "digits"
    root: str | None = None
    sizes: Sizes = Sizes()
    budgets: Budgets = Budgets()
    stability: StabilityPlan = StabilityPlan()
    search: tuple[SearchRule, ...] = ()
    seeds: tuple[int, ...] = (0,)
    splits: int = 3
    approximation_splits: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    threads: int | None = 2
    time_cap: float | None = None
    reference: str = "rbf"

    def replace(self, **changes: Any) -> RunConfig:
        """A copy with some fields changed, validated.

        Besides the fields of this class, the keys of :data:`NESTED_FIELDS` change a
        field of ``sizes``, ``budgets`` or ``stability`` (e.g. ``n_val=100``,
        ``accuracy_budgets=(8,)``). The shared sizes (approximation, similarity,
        speed) are capped at the largest n_train, and the stability size at n_test;
        budgets above half the approximation size, above the largest n_train
        (accuracy), or above half the largest speed size are left out.
        """
        nested: dict[str, dict[str, Any]] = {"sizes": {}, "budgets": {}, "stability": {}}
        for key in [k for k in changes if k in NESTED_FIELDS]:
            group, name = NESTED_FIELDS[key]
            nested[group][name] = changes.pop(key)
        for group, values in nested.items():
            if values:
                changes[group] = dataclasses.replace(getattr(self, group), **values)
        config = dataclasses.replace(self, **changes)
        sizes, n_max = config.sizes, max(config.sizes.n_train)
        sizes = dataclasses.replace(
            sizes, approximation=min(sizes.approximation, n_max),
            similarity=min(sizes.similarity, n_max), stability=min(sizes.stability, sizes.n_test),
            speed=tuple(sorted({min(s, n_max) for s in sizes.speed})))
        budgets = config.budgets
        budgets = dataclasses.replace(
            budgets,
            approximation=tuple(b for b in budgets.approximation
                                if b <= sizes.approximation // 2),
            accuracy=tuple(b for b in budgets.accuracy if b <= n_max),
            speed=max(1, min(budgets.speed, max(sizes.speed) // 2)))
        return dataclasses.replace(config, sizes=sizes, budgets=budgets).validated()

    def validated(self) -> RunConfig:
        """Itself, after checking every value (errors name the command-line option)."""
        _positive_ints(self.sizes.n_train, "--n-train", minimum=10)
        for name in ("n_val", "n_test"):
            _positive_ints([getattr(self.sizes, name)], "--" + name.replace("_", "-"), 10)
        for name in ("approximation", "similarity", "stability"):
            _positive_ints([getattr(self.sizes, name)], f"the {name} size", 2)
        _positive_ints(self.sizes.speed, "the speed sizes", 2)
        for name in ("approximation", "accuracy"):
            _positive_ints(getattr(self.budgets, name), "--budgets", 1, allow_empty=True)
        _positive_ints([self.budgets.speed], "--budgets", 1)
        _positive_ints(self.seeds, "--seeds", 0)
        _positive_ints([self.splits], "--splits", 1)
        _positive_ints([self.approximation_splits], "--approximation-splits", 0)
        if self.threads is not None:
            _positive_ints([self.threads], "--threads", 1)
        if self.time_cap is not None and not self.time_cap > 0:
            raise ValueError(f"--time-cap must be > 0 seconds, got {self.time_cap}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"--dtype must be float32 or float64, got {self.dtype!r}")
        if max(self.sizes.approximation, self.sizes.similarity) > max(self.sizes.n_train):
            raise ValueError(
                "the approximation and similarity sizes must be <= the largest --n-train "
                f"({max(self.sizes.n_train)}); got {self.sizes.approximation} and "
                f"{self.sizes.similarity}")
        if self.sizes.stability > self.sizes.n_test:
            raise ValueError(f"the stability size ({self.sizes.stability}) must be <= --n-test "
                             f"({self.sizes.n_test})")
        if max(self.sizes.speed) > max(self.sizes.n_train):
            raise ValueError(f"the speed sizes must be <= the largest --n-train, got "
                             f"{list(self.sizes.speed)}")
        return self

    def describe(self) -> dict[str, Any]:
        """The plan as plain data (it goes into the report's metadata)."""
        plan = dataclasses.asdict(self)
        plan["search"] = [rule.describe() for rule in self.search]
        plan["pool"] = self.sizes.pool
        return plan


def _positive_ints(values: Sequence[Any], option: str, minimum: int,
                   allow_empty: bool = False) -> None:
    values = list(values)
    if not values and not allow_empty:
        raise ValueError(f"{option} needs at least one value")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            shown = values[0] if len(values) == 1 else values
            what = "an integer" if len(values) == 1 else "integers"
            raise ValueError(f"{option} must be {what} >= {minimum}, got {shown}")


def n_train_ladder(n: int) -> tuple[int, ...]:
    """The training sizes for a largest size ``n``: n/8, n/4, n/2, n (at least 10 each)."""
    return tuple(sorted({max(10, n // 8), max(10, n // 4), max(10, n // 2), n}))


_CONV_SEARCH = SearchRule(when=(("architecture", "conv"),), values=(("bias_std", (0.0,)),))

#: The named plans (see the module docstring).
PRESETS: dict[str, RunConfig] = {
    "quick": RunConfig(search=(_CONV_SEARCH,)),
    "standard": RunConfig(
        preset="standard",
        sizes=Sizes(n_train=(150, 300, 600, 1200), n_val=250, n_test=340, approximation=512,
                    similarity=1200, stability=64, speed=(64, 128, 256, 512)),
        budgets=Budgets(approximation=(4, 8, 16, 32, 64, 128, 256), accuracy=(64, 256)),
        seeds=(0, 1), splits=5, approximation_splits=5,
    ),
    "full": RunConfig(
        preset="full",
        sizes=Sizes(n_train=(150, 300, 600, 1200), n_val=250, n_test=340, approximation=1024,
                    similarity=1200, stability=128, speed=(64, 128, 256, 512, 1024)),
        budgets=Budgets(approximation=(4, 8, 16, 32, 64, 128, 256, 512),
                        accuracy=(64, 256, 1024)),
        seeds=(0, 1, 2), splits=10, approximation_splits=10, threads=os.cpu_count() or 1,
    ),
}


def preset(name: str) -> RunConfig:
    """The preset called ``name`` (``quick``, ``standard`` or ``full``)."""
    if name not in PRESETS:
        raise ValueError(f"--preset {name!r} is not one of {', '.join(PRESETS)}")
    return PRESETS[name]
