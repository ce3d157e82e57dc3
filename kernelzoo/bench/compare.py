"""The main job, ``kernelzoo compare``: every family through every harness, one report.

Without arguments: every family of the registry (exact, and each of its
approximations) on the embedded digits (8 x 8 images), all harnesses at small
sizes, a progress bar, and a report in ``reports/<timestamp>/``.

Sizes come from one table, :data:`SIZE_TABLE`: for each harness, the largest
size and the seconds of exact-kernel work allowed per kernel. Each kernel's
Gram throughput is measured first (the "probe": Grams of growing size until one
takes a quarter of a second), and each harness
runs it at the largest size of :data:`SIZE_LADDER` whose estimated number of
kernel evaluations fits those seconds. Cheap kernels thus run at the table's
largest sizes, expensive ones (exact CKN, conv NNGP/NTK) at smaller ones,
with no rule per family; the sizes used are in every row (``n``) and in the
report's metadata.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import (
    KernelCase,
    Progress,
    parse_dtype,
    resolve_kernels,
    run_metadata,
    timed,
)

__all__ = [
    "DEFAULT_KERNELS",
    "HARNESSES",
    "SIZE_TABLE",
    "STABILITY_VARIANTS",
    "add_arguments",
    "compare",
    "run",
]

#: Harnesses run by default, in order.
HARNESSES: tuple[str, ...] = ("approximation", "accuracy", "stability", "spectrum", "speed")

#: One spec per family of the registry, plus the convolutional variants of nngp/ntk.
#: Families of the registry missing here are added by name.
DEFAULT_KERNELS: tuple[str, ...] = (
    "rbf",
    "arccos",
    "nngp",
    "ntk",
    "nngp(architecture='conv')",
    "ntk(architecture='conv')",
    "ckn",
)

#: More depths and pooling sizes, for the stability harness only (exact kernels).
STABILITY_VARIANTS: tuple[str, ...] = (
    "ckn(n_layers=1, subsampling=2)",
    "ckn(n_layers=3, subsampling=[1, 2, 2])",
    "ckn(subsampling=[1, 1])",
    "ckn(subsampling=[2, 4])",
    "nngp(architecture='conv', depth=1)",
    "nngp(architecture='conv', pooling=[2, 2])",
)


@dataclass(frozen=True)
class SizeRule:
    """A harness's largest size, seconds of exact-kernel work per kernel, and seconds per
    approximation method (after which its larger budgets are skipped; None: no limit)."""

    n_max: int
    seconds: float
    method_seconds: float | None = None


#: The one size table (see the module docstring). ``accuracy``'s n is the largest n_train.
SIZE_TABLE: dict[str, SizeRule] = {
    "approximation": SizeRule(n_max=384, seconds=4.0, method_seconds=5.0),
    "accuracy": SizeRule(n_max=1000, seconds=15.0, method_seconds=6.0),
    "stability": SizeRule(n_max=24, seconds=2.0),
    "spectrum": SizeRule(n_max=384, seconds=2.0),
    "speed": SizeRule(n_max=512, seconds=3.0),
}

#: Sizes a harness may run at.
SIZE_LADDER: tuple[int, ...] = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768,
                                1000, 1500, 2000, 3000, 5000, 10000)

#: Default budgets: the approximation harness keeps those <= n / 2, the accuracy
#: harness those <= n_train, the speed harness uses the largest <= half its largest n.
DEFAULT_BUDGETS: dict[str, tuple[int, ...]] = {
    "approximation": (4, 8, 16, 32, 64, 128),
    "accuracy": (16, 64, 256),
    "speed": (64,),
}

_DATA_HARNESSES = ("approximation", "accuracy", "stability", "spectrum", "speed")


# ---------------------------------------------------------------------------- arguments
def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``kernelzoo compare`` to ``parser``."""
    parser.add_argument("--dataset", default="digits",
                        choices=["digits", "mnist", "fashion-mnist", "cifar10"],
                        help="images to compare on (default: the embedded 8x8 digits)")
    parser.add_argument("--root", default=None,
                        help="data folder for mnist/fashion-mnist/cifar10 "
                             "(default $KERNELZOO_DATA or the cache)")
    parser.add_argument("--family", action="append", metavar="SPEC", default=None,
                        help="kernel spec, repeatable (a spec contains commas), e.g. "
                             "--family rbf --family \"ckn(subsampling=[2, 2])\"; "
                             "default: every family")
    parser.add_argument("--harness", action="append", metavar="NAME", default=None,
                        help="harness(es) to run, repeatable or comma list: "
                             f"{', '.join(HARNESSES)}, gp (default: all but gp)")
    parser.add_argument("--budgets", default=None,
                        help="comma list of approximation budgets (default: a geometric "
                             "grid per harness, capped by the size)")
    parser.add_argument("--n-train", type=int, default=None,
                        help=f"largest training size for accuracy (default "
                             f"{SIZE_TABLE['accuracy'].n_max}, less for expensive kernels)")
    parser.add_argument("--n-val", type=int, default=200, help="validation size (default 200)")
    parser.add_argument("--n-test", type=int, default=300, help="test size (default 300)")
    parser.add_argument("--seeds", default="0,1", help="comma list of seeds (default 0,1)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--threads", default="auto",
                        help="CPU threads for torch: a number, or auto (default: 1 when the "
                             "machine is oversubscribed, load average >= CPU count, where "
                             "threads waiting on each other make torch several times slower; "
                             "otherwise torch's default)")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply the seconds of the size table (larger: bigger sizes)")
    parser.add_argument("--out", default=None,
                        help="report folder (default reports/<timestamp>/)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _parse_ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in _comma_list(text)]
    except ValueError:
        raise ValueError(f"{name} must be a comma list of integers, got {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise ValueError(f"{name} must be a non-empty comma list of integers >= 0, got {text!r}")
    return values


def resolve_threads(value: str | int | None) -> int | None:
    """``--threads``: an int, or ``"auto"``/None (1 on an oversubscribed CPU, else None)."""
    if value is None or value == "auto":
        try:
            busy = os.getloadavg()[0] >= (os.cpu_count() or 1)
        except OSError:
            busy = False
        return 1 if busy else None
    try:
        threads = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"--threads must be a positive integer or auto, got {value!r}") from None
    if threads < 1:
        raise ValueError(f"--threads must be a positive integer or auto, got {value!r}")
    return threads


def _parse_harnesses(values: Sequence[str] | None) -> list[str]:
    if not values:
        return list(HARNESSES)
    names = [name for value in values for name in _comma_list(value)]
    allowed = (*HARNESSES, "gp")
    for name in names:
        if name not in allowed:
            raise ValueError(f"--harness {name!r} is not allowed; expected one of "
                             f"{', '.join(allowed)}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------- sizes
def _pair_cost(harness: str, n: int, budgets: Sequence[int], n_seeds: int, n_candidates: int,
               n_val: int, n_test: int) -> float:
    """Kernel evaluations a harness needs at size n (Nyström's counted as the dearest)."""
    if harness == "approximation":
        kept = [b for b in budgets if b <= n // 2]
        return n * n + n_seeds * sum(b * b + n * b for b in kept)
    if harness == "accuracy":
        kept = [b for b in budgets if b <= n]
        return (n_candidates * (n + n_val) * n + n_test * n
                + n_seeds * sum(b * b + (n + n_val + n_test) * b for b in kept))
    if harness == "stability":
        return n * 8 * 8  # eight transformations, chunks of 4 pairs + 2 diagonals
    if harness == "spectrum":
        return n * n
    if harness == "speed":
        ladder = _speed_ladder(n)
        return sum(s * s for s in ladder) + sum(s * max(budgets, default=0) for s in ladder)
    raise ValueError(f"unknown harness {harness!r}")


def _speed_ladder(n: int) -> list[int]:
    """Sizes of the speed harness: n, n/2, n/4, ... down to 16 (at most 6 sizes)."""
    sizes = [n]
    while sizes[-1] // 2 >= 16 and len(sizes) < 6:
        sizes.append(sizes[-1] // 2)
    return sorted(sizes)


def choose_size(harness: str, pairs_per_second: float, rule: SizeRule, *, n_available: int,
                budgets: Sequence[int] = (), n_seeds: int = 1, n_candidates: int = 1,
                n_val: int = 0, n_test: int = 0, time_scale: float = 1.0) -> int:
    """The largest ladder size whose estimated cost fits ``rule.seconds * time_scale``."""
    limit = min(rule.n_max, n_available)
    ladder = [s for s in SIZE_LADDER if s <= limit] or [max(2, limit)]
    chosen = ladder[0]
    for size in ladder:
        cost = _pair_cost(harness, size, budgets, n_seeds, n_candidates, n_val, n_test)
        if cost / max(pairs_per_second, 1e-9) <= rule.seconds * time_scale:
            chosen = size
    return chosen


def _probe(case: KernelCase, x: torch.Tensor, min_seconds: float = 0.25,
           n_max: int = 512) -> float:
    """Kernel evaluations per second of one Gram (NaN if the kernel fails).

    After a warm-up on 4 inputs, Grams of 32, 64, ... inputs until one takes
    ``min_seconds`` (or ``n_max`` inputs): cheap kernels are measured at a
    size where per-call overhead no longer dominates.
    """
    if not case.ok:
        return math.nan
    try:
        case.kernel.gram(x[:4])
        n = min(32, len(x))
        while True:
            _, seconds = timed(lambda m=n: case.kernel.gram(x[:m]), x.device)
            if seconds >= min_seconds or n >= min(n_max, len(x)):
                return n * n / max(seconds, 1e-9)
            n = min(2 * n, n_max, len(x))
    except Exception:  # noqa: BLE001 - the harnesses report the error
        return math.nan


# ---------------------------------------------------------------------------- data
@dataclass
class CompareData:
    """The images and splits of one run (numpy, float32 images ``(n, C, H, W)``)."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def _stratified_subset(split, size: int, seed: int):
    """``(X, y)`` of a dataset split, a seeded stratified subset of ``size`` if it is larger."""
    from kernelzoo.data import train_val_test_split

    if len(split) <= size:
        return split.X, split.y
    keep = train_val_test_split(np.arange(len(split)), split.y, val=0, test=size, seed=seed)[4]
    return split.X[keep], split.y[keep]


def load_compare_data(dataset: str, root: str | None, n_train_max: int, n_val: int,
                      n_test: int, seed: int = 0) -> CompareData:
    """Train (with validation carved out of it, stratified and seeded) and test images."""
    from kernelzoo.data import load_dataset, train_val_test_split

    pool = n_train_max + n_val
    train = load_dataset(dataset, "train", root=root)
    test = load_dataset(dataset, "test", root=root)
    X, y = _stratified_subset(train, pool, seed)  # all of a small training split
    if n_val >= len(y):
        raise ValueError(f"--n-val {n_val} leaves no training example out of {len(y)}")
    X_train, y_train, _, _, X_val, y_val = train_val_test_split(X, y, val=0, test=n_val,
                                                                seed=seed)
    # a seeded order, so that smaller n_train are nested prefixes with every class
    order = np.random.default_rng(seed).permutation(len(y_train))
    X_train, y_train = X_train[order], y_train[order]
    X_test, y_test = _stratified_subset(test, n_test, seed)
    return CompareData(dataset, X_train, y_train, X_val, y_val, X_test, y_test)


# ---------------------------------------------------------------------------- the job
def compare(
    kernels: Sequence[str] | None = None,
    *,
    dataset: str = "digits",
    root: str | None = None,
    harnesses: Sequence[str] = HARNESSES,
    budgets: Sequence[int] | None = None,
    n_train: int | None = None,
    n_val: int = 200,
    n_test: int = 300,
    seeds: Sequence[int] = (0, 1),
    device: Any = "cpu",
    dtype: Any = "float32",
    time_scale: float = 1.0,
    stability_variants: Sequence[str] | None = None,
    progress: bool = True,
) -> dict[str, pd.DataFrame]:
    """Run the harnesses on one dataset; returns ``{harness: DataFrame}``.

    ``kernels`` default to :data:`DEFAULT_KERNELS` plus any registry family
    they miss; ``stability_variants`` (default :data:`STABILITY_VARIANTS`
    when ``kernels`` is None) join the stability harness only. Sizes follow
    :data:`SIZE_TABLE` and each kernel's measured throughput. The accuracy
    harness runs first when asked for; the other harnesses then evaluate each
    kernel at the hyperparameters it chose on the validation split (rows keep
    the requested spec; ``metadata["kernels"]`` gives the kernel used).
    """
    from kernelzoo import registry as kz

    dtype = parse_dtype(dtype)
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: CUDA is not available on this machine")
    if not seeds:
        raise ValueError("seeds must not be empty")
    if kernels is None:
        kernels = list(DEFAULT_KERNELS) + [f for f in kz.available()
                                           if not any(s.split("(")[0] == f
                                                      for s in DEFAULT_KERNELS)]
        if stability_variants is None:
            stability_variants = STABILITY_VARIANTS
    stability_variants = list(stability_variants or ())
    table = {name: SizeRule(n_train if (name == "accuracy" and n_train) else rule.n_max,
                            rule.seconds, rule.method_seconds)
             for name, rule in SIZE_TABLE.items()}
    data = load_compare_data(dataset, root, table["accuracy"].n_max, n_val, n_test,
                             seed=seeds[0])
    x_pool = torch.as_tensor(np.concatenate([data.X_train, data.X_val])).to(device, dtype)
    y_pool = np.concatenate([data.y_train, data.y_val])
    cases = resolve_kernels(kernels)
    variant_cases = resolve_kernels(stability_variants)
    data_harnesses = [h for h in harnesses if h in _DATA_HARNESSES]
    total = sum(len(cases) + (len(variant_cases) if h == "stability" else 0)
                for h in data_harnesses)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total + ("gp" in harnesses), desc=f"compare {dataset}",
                   unit="task", dynamic_ncols=True)
    tracker = Progress(bar)
    throughput: dict[str, float] = {}
    for case in cases + variant_cases:
        tracker.note(f"probe {case.spec}")
        throughput[case.spec] = _probe(case, x_pool)
    metadata = run_metadata(device, dataset=dataset, dtype=str(dtype).replace("torch.", ""),
                            probe_pairs_per_second=throughput, sizes={}, harness_seconds={})
    frames: dict[str, pd.DataFrame] = {}
    # accuracy first: the other harnesses then use the hyperparameters it chose on validation
    order = sorted(data_harnesses, key=lambda h: h != "accuracy")
    try:
        for harness in order:
            run_cases = cases + (variant_cases if harness == "stability" else [])
            frames[harness] = _run_harness(harness, run_cases, data, x_pool, y_pool, table,
                                           budgets, seeds, throughput, device, dtype,
                                           time_scale, tracker, metadata, frames)
            if harness == "accuracy":
                cases = _tuned(cases, frames[harness].attrs.get("chosen_hyperparameters", {}))
        metadata["kernels"] = {case.spec: (case.kernel.spec if case.ok else case.error)
                               for case in cases + variant_cases}
        if "gp" in harnesses:
            frames["gp"] = _run_gp(kernels if kernels is not None else None, seeds, device,
                                   dtype, tracker)
    finally:
        if bar is not None:
            bar.close()
    for frame in frames.values():
        frame.attrs["metadata"] = metadata
    return {h: frames[h] for h in [*data_harnesses, "gp"] if h in frames}


def _tuned(cases: list[KernelCase], chosen: dict[str, dict[str, Any]]) -> list[KernelCase]:
    """The cases with the hyperparameters the accuracy harness chose (label unchanged)."""
    from kernelzoo.bench._accuracy import with_hyperparameters

    out = []
    for case in cases:
        overrides = chosen.get(case.spec)
        if case.ok and overrides:
            kernel = with_hyperparameters(case, overrides)
            case = KernelCase(case.spec, case.family, kernel, "", {**case.fixed, **overrides})
        out.append(case)
    return out


def _budgets_for(harness: str, budgets: Sequence[int] | None) -> list[int]:
    return list(budgets) if budgets else list(DEFAULT_BUDGETS[harness])


def _run_harness(harness: str, cases: list[KernelCase], data: CompareData,
                 x_pool: torch.Tensor, y_pool: np.ndarray, table: dict[str, SizeRule],
                 budgets: Sequence[int] | None, seeds: Sequence[int],
                 throughput: dict[str, float], device: Any, dtype: torch.dtype,
                 time_scale: float, tracker: Progress, metadata: dict[str, Any],
                 frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    from kernelzoo import bench
    from kernelzoo.bench._accuracy import hyperparameter_candidates

    parts = []
    sizes = metadata["sizes"].setdefault(harness, {})
    spent = metadata["harness_seconds"].setdefault(harness, {})
    common = {"dataset": data.name, "device": device, "dtype": dtype, "progress": tracker,
              "metadata": metadata}
    for case in cases:
        rate = throughput.get(case.spec, math.nan)
        rate = rate if math.isfinite(rate) else 1e12  # a failing kernel fails at any size
        start = time.perf_counter()
        if harness == "approximation":
            grid = _budgets_for(harness, budgets)
            n = choose_size(harness, rate, table[harness], n_available=len(x_pool),
                            budgets=grid, n_seeds=len(seeds), time_scale=time_scale)
            kept = [b for b in grid if b <= n // 2] or [max(1, n // 4)]
            frame = bench.approximation([case], x_pool[:n], kept, seeds, y=y_pool[:n],
                                        method_seconds=table[harness].method_seconds,
                                        **common)
        elif harness == "accuracy":
            grid = _budgets_for(harness, budgets)
            n_candidates = (len(hyperparameter_candidates(case, x_pool[:64]))
                            if case.ok else 1)
            n = choose_size(harness, rate, table[harness], n_available=len(data.X_train),
                            budgets=grid, n_seeds=len(seeds), n_candidates=n_candidates,
                            n_val=len(data.X_val), n_test=len(data.X_test),
                            time_scale=time_scale)
            n_train = sorted({max(8, n // 4), max(8, n // 2), n})
            kept = [b for b in grid if b <= n] or [max(1, n // 2)]
            frame = bench.accuracy([case], data.X_train, data.y_train, data.X_val, data.y_val,
                                   data.X_test, data.y_test, n_train=n_train, budgets=kept,
                                   seeds=seeds, method_seconds=table[harness].method_seconds,
                                   **common)
        elif harness == "stability":
            n = choose_size(harness, rate, table[harness], n_available=len(data.X_test),
                            time_scale=time_scale)
            frame = bench.stability([case], data.X_test[:n], seed=seeds[0],
                                    include_pixels=not parts, **common)
        elif harness == "spectrum":
            n = choose_size(harness, rate, table[harness], n_available=len(x_pool),
                            time_scale=time_scale)
            frame = bench.spectrum([case], x_pool[:n],
                                   chosen_lambdas=_chosen_lambdas(frames.get("accuracy")),
                                   **common)
        else:  # speed
            grid = _budgets_for(harness, budgets)
            n = choose_size(harness, rate, table[harness], n_available=len(x_pool),
                            budgets=grid[-1:], time_scale=time_scale)
            ladder = _speed_ladder(n)
            budget = max([b for b in grid if b <= ladder[-1] // 2] or [max(1, ladder[-1] // 4)])
            frame = bench.speed([case], x_pool[: ladder[-1]], sizes=ladder, budget=budget,
                                seed=seeds[0], y=y_pool[: ladder[-1]], **common)
        sizes[case.spec] = n
        spent[case.spec] = round(time.perf_counter() - start, 2)
        parts.append(frame)
    combined = pd.concat(parts, ignore_index=True, sort=False) if parts else pd.DataFrame()
    combined.attrs["metadata"] = metadata
    chosen = {}
    for frame in parts:
        chosen.update(frame.attrs.get("chosen_hyperparameters", {}))
    combined.attrs["chosen_hyperparameters"] = chosen
    return combined


def _chosen_lambdas(accuracy: pd.DataFrame | None) -> dict[str, float]:
    """Lambda chosen on validation for each exact kernel at its largest n_train."""
    if accuracy is None or accuracy.empty:
        return {}
    rows = accuracy[(accuracy["metric"] == "lambda") & (accuracy["method"] == "exact")
                    & (accuracy["error"] == "")]
    chosen = {}
    for spec, group in rows.groupby("spec", sort=False):
        chosen[spec] = float(group.sort_values("n")["value"].iloc[-1])
    return chosen


def _run_gp(kernels: Sequence[str] | None, seeds: Sequence[int], device: Any,
            dtype: torch.dtype, tracker: Progress) -> pd.DataFrame:
    try:
        from kernelzoo.bench.gp import run_gp
    except ImportError as exc:
        raise ValueError(f"--harness gp: kernelzoo.bench.gp is not available ({exc})") from None
    tracker.note("gp")
    frame = run_gp(kernels=kernels, seeds=tuple(seeds[:1]), device=device,
                   dtype=str(dtype).replace("torch.", ""), progress=tracker)
    tracker.step("gp")
    return frame


# ---------------------------------------------------------------------------- CLI entry
def _default_out() -> str:
    return os.path.join("reports", time.strftime("%Y%m%d-%H%M%S"))


def run(args: argparse.Namespace) -> int:
    """``kernelzoo compare``: run, write the report, print where it is and the headline."""
    from kernelzoo.report import write_report

    start = time.perf_counter()
    harnesses = _parse_harnesses(args.harness)
    seeds = _parse_ints(args.seeds, "--seeds")
    budgets = _parse_ints(args.budgets, "--budgets") if args.budgets else None
    if budgets is not None and 0 in budgets:
        raise ValueError(f"--budgets must be positive integers, got {args.budgets!r}")
    for name in ("n_train", "n_val", "n_test"):
        value = getattr(args, name)
        if value is not None and value < 2:
            raise ValueError(f"--{name.replace('_', '-')} must be >= 2, got {value}")
    if args.time_scale <= 0:
        raise ValueError(f"--time-scale must be > 0, got {args.time_scale}")
    kernels = None
    if args.family:
        kernels = [spec for spec in args.family if spec.strip()]
        if not kernels:
            raise ValueError("--family needs a kernel spec")
    threads = resolve_threads(args.threads)
    threads_before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        frames = compare(
            kernels, dataset=args.dataset, root=args.root, harnesses=harnesses,
            budgets=budgets, n_train=args.n_train, n_val=args.n_val, n_test=args.n_test,
            seeds=seeds, device=args.device, dtype=args.dtype, time_scale=args.time_scale,
            progress=not args.no_progress,
        )
    finally:
        torch.set_num_threads(threads_before)
    out = args.out or _default_out()
    command = "kernelzoo compare " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "compare" else "kernelzoo compare"
    written = write_report(frames, out, title=f"kernelzoo compare: {args.dataset}",
                           metadata={"command": command,
                                     "wall_seconds": time.perf_counter() - start})
    elapsed = time.perf_counter() - start
    print(f"\nreport: {written['report']}  (results.csv, PNG plots beside it; "
          f"{elapsed:.0f} s)")
    if written.get("headline"):
        print(written["headline"])
    failures = _count_failures(frames)
    if failures:
        print(f"{failures} measurement(s) failed or were skipped; see 'Failures and skips' "
              f"in the report.")
    return 0


def _count_failures(frames: dict[str, pd.DataFrame]) -> int:
    return int(sum((frame["error"].fillna("") != "").sum() for frame in frames.values()
                   if not frame.empty and "error" in frame))
