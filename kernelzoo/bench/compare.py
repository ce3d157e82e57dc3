"""The main job, ``kernelzoo compare``: every family through every harness, one report.

Without arguments: every family of the registry with each of its
``compare_variants`` (the NNGP and NTK also as conv nets), exact and
approximated, on the embedded digits, under the ``quick`` plan
(:mod:`kernelzoo.bench.plan`), with a progress bar, into
``reports/<timestamp>/``: ``report.md``, ``report.html``, ``results.csv``,
``metadata.json`` and PNG plots. What is measured comes from the plan and the
command line only; the same command gives the same ``results.csv`` apart from
the time and memory columns.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from kernelzoo.bench._common import Progress, resolve_kernels, run_metadata
from kernelzoo.bench.harness import Harness, RunContext, run_harnesses
from kernelzoo.bench.plan import PRESETS, RunConfig, n_train_ladder, preset
from kernelzoo.bench.pool import GramCache, load_pool

__all__ = ["add_arguments", "compare", "default_kernels", "rewrite_report", "run"]


def default_kernels() -> list[str]:
    """Every registry family with each of its ``compare_variants`` (parameter overrides)."""
    from kernelzoo import registry
    from kernelzoo.bench.harnesses.stability import variant_spec

    specs = []
    for family in registry.available():
        for overrides in getattr(registry.kernel_class(family), "compare_variants", ({},)):
            specs.append(variant_spec(family, dict(overrides)))
    return specs


# ---------------------------------------------------------------------------- options
def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ints(text: str, option: str, allow_empty: bool = False) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in _comma_list(text))
    except ValueError:
        raise ValueError(f"{option} must be a comma list of integers, got {text!r}") from None
    if not values and not allow_empty:
        raise ValueError(f"{option} needs at least one integer, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``kernelzoo compare`` to ``parser``."""
    from kernelzoo.bench.harnesses import HARNESSES

    add = parser.add_argument
    add("--preset", default="quick", choices=list(PRESETS),
        help="the plan: quick (default, a few minutes on 2 cores), standard (~30 min), full")
    add("--dataset", default="digits", choices=["digits", "mnist", "fashion-mnist", "cifar10"],
        help="images to compare on (default: the embedded 8x8 digits)")
    add("--root", default=None, help="data folder for mnist/fashion-mnist/cifar10 "
                                     "(default $KERNELZOO_DATA or the cache)")
    add("--family", action="append", metavar="SPEC", default=None,
        help="kernel spec, repeatable (a spec contains commas), e.g. --family rbf --family "
             "\"ckn(subsampling=[2, 2])\"; default: every family and its variants")
    add("--harness", action="append", metavar="NAME", default=None,
        help=f"harness(es), repeatable or a comma list: {', '.join(HARNESSES)} "
             "(default: all but gp)")
    add("--n-train", type=int, default=None,
        help="largest training size, shared by every kernel (also run: n/8, n/4, n/2)")
    add("--n-val", type=int, default=None, help="validation size of every split")
    add("--n-test", type=int, default=None, help="test size of every split")
    add("--splits", type=int, default=None,
        help="random train/validation/test splits (split i uses seed i)")
    add("--seeds", default=None, help="comma list of approximation seeds (draws)")
    add("--approximation-splits", type=int, default=None,
        help="how many splits the approximations' accuracy runs on")
    add("--budgets", default=None, help="comma list of budgets of the approximation harness")
    add("--accuracy-budgets", default=None,
        help="comma list of budgets at which approximations' accuracy is measured "
             "(empty: exact kernels only)")
    add("--device", default=None, help="cpu or cuda[:N] (default cpu)")
    add("--dtype", default=None, choices=["float32", "float64"])
    add("--threads", type=int, default=None,
        help="CPU threads for torch and BLAS (default: the preset's; results can differ "
             "in the last bits between thread counts, never between runs)")
    add("--time-cap", type=float, default=None,
        help="opt-in limit in seconds: what is left when it is reached becomes skipped rows")
    add("--reference", default=None,
        help="spec the headline's paired differences are taken against (default rbf)")
    add("--out", default=None, help="report folder (default reports/<timestamp>/)")
    add("--screenshot", action="store_true",
        help="also write report.png, the HTML report in headless Chromium")
    add("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """The plan: ``--preset``, then every option given on the command line."""
    changes: dict[str, Any] = {"dataset": args.dataset, "root": args.root}
    if args.n_train is not None:
        if args.n_train < 10:
            raise ValueError(f"--n-train must be >= 10, got {args.n_train}")
        changes["n_train"] = n_train_ladder(args.n_train)
    for name in ("n_val", "n_test", "splits", "approximation_splits", "device", "dtype",
                 "threads", "time_cap", "reference"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.seeds is not None:
        changes["seeds"] = _ints(args.seeds, "--seeds")
    if args.budgets is not None:
        changes["approximation_budgets"] = _ints(args.budgets, "--budgets")
    if args.accuracy_budgets is not None:
        changes["accuracy_budgets"] = _ints(args.accuracy_budgets, "--accuracy-budgets",
                                            allow_empty=True)
    return preset(args.preset).replace(**changes)


def _harness_names(values: Sequence[str] | None) -> list[str]:
    from kernelzoo.bench.harnesses import HARNESSES, default_harnesses

    if not values:
        return default_harnesses()
    names = [name for value in values for name in _comma_list(value)]
    for name in names:
        if name not in HARNESSES:
            raise ValueError(f"--harness {name!r} is not allowed; expected one of "
                             f"{', '.join(HARNESSES)}")
    return list(dict.fromkeys(names))


# ---------------------------------------------------------------------------- the job
@contextlib.contextmanager
def fixed_threads(threads: int | None) -> Iterator[None]:
    """torch's and BLAS's CPU threads set to ``threads`` for the block (None: unchanged)."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(before)


def _overrides(config: RunConfig, overrides: dict[str, Any]) -> RunConfig:
    """Python-level shortcuts: an int ``n_train`` is a ladder, ``budgets`` both grids."""
    overrides = dict(overrides)
    if isinstance(overrides.get("n_train"), int):
        overrides["n_train"] = n_train_ladder(overrides["n_train"])
    if "budgets" in overrides:
        budgets = tuple(overrides.pop("budgets"))
        overrides.setdefault("approximation_budgets", budgets)
        overrides.setdefault("accuracy_budgets", budgets)
    for key in ("seeds", "n_train", "approximation_budgets", "accuracy_budgets"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return config.replace(**overrides)


def execute(kernels: Sequence[Any] | None, config: RunConfig, harnesses: Sequence[str],
            progress: bool = True) -> tuple[dict[str, pd.DataFrame], RunContext,
                                            list[Harness]]:
    """Run the named harnesses on ``kernels`` (default :func:`default_kernels`) under
    ``config``: ``(frames, context, harness objects)``."""
    from kernelzoo.bench.harnesses import HARNESSES

    if str(config.device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {config.device}: CUDA is not available on this machine")
    cases = resolve_kernels(list(kernels) if kernels is not None else default_kernels())
    objects = [HARNESSES[name]() for name in harnesses]
    load_start = _load_average()
    start, cpu_start = time.perf_counter(), time.process_time()
    with fixed_threads(config.threads):
        pool = load_pool(config)
        metadata = run_metadata(config.device, dataset=config.dataset, dtype=config.dtype,
                                preset=config.preset, plan=config.describe(),
                                load_average_start=load_start)
        bar = _bar(progress, config)
        ctx = RunContext(config, pool, GramCache(pool.x, Progress(bar)), cases,
                         Progress(bar), metadata)
        try:
            if bar is not None:
                bar.total = sum(len(h.kernels(ctx)) for h in objects)
            frames = run_harnesses(ctx, objects)
        finally:
            if bar is not None:
                bar.close()
    metadata.update(
        wall_seconds=time.perf_counter() - start, cpu_seconds=time.process_time() - cpu_start,
        load_average_end=_load_average(),
        kernels={c.spec: (ctx.tuned(c).kernel.spec if c.ok else c.error) for c in cases})
    if "accuracy" in frames:
        frames["accuracy"].attrs["chosen_hyperparameters"] = dict(ctx.chosen)
    return frames, ctx, objects


def _bar(progress: bool, config: RunConfig) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=0, desc=f"compare {config.dataset} ({config.preset})", unit="task",
                dynamic_ncols=True)


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def compare(kernels: Sequence[Any] | None = None, config: RunConfig | None = None, *,
            harnesses: Sequence[str] | None = None, progress: bool = True,
            **overrides: Any) -> dict[str, pd.DataFrame]:
    """Run the harnesses; returns ``{harness: DataFrame}``.

    ``config`` defaults to the ``quick`` preset; ``overrides`` change its fields
    (:meth:`RunConfig.replace`, e.g. ``n_train=48`` for the ladder up to 48,
    ``seeds=(0,)``, ``budgets=[8]`` for both budget grids, ``dtype="float64"``).
    The accuracy frame's ``attrs["chosen_hyperparameters"]`` maps each spec to the
    hyperparameters chosen on validation.
    """
    config = _overrides(config or preset("quick"), overrides)
    names = list(harnesses) if harnesses is not None else _harness_names(None)
    frames, _, _ = execute(kernels, config, _harness_names(names), progress)
    return frames


# ---------------------------------------------------------------------------- report
def _plan_section(metadata: dict[str, Any]) -> Any:
    from kernelzoo.report import Section

    plan = metadata.get("plan") or {}
    sizes, budgets = plan.get("sizes", {}), plan.get("budgets", {})
    section = Section("Plan", (
        f"Preset `{plan.get('preset')}`: every number below comes from this plan and the "
        "command line, never from timings or the machine's load. "
        f"A pool of {plan.get('pool')} images (seed 0); {plan.get('splits')} random splits "
        f"of it into train ({max(sizes.get('n_train', [0]))}), validation "
        f"({sizes.get('n_val')}) and test ({sizes.get('n_test')}); exact accuracy at n_train "
        f"{', '.join(map(str, sizes.get('n_train', [])))} for every kernel. Approximation "
        f"error at n = {sizes.get('approximation')} (budgets "
        f"{', '.join(map(str, budgets.get('approximation', [])))}), similarity and spectrum "
        f"on {sizes.get('similarity')} images, stability on {sizes.get('stability')}, speed "
        f"at n = {', '.join(map(str, sizes.get('speed', [])))}. Approximations' accuracy at "
        f"budgets {', '.join(map(str, budgets.get('accuracy', []))) or '(none)'} on "
        f"{plan.get('approximation_splits')} split(s); approximation seeds "
        f"{', '.join(map(str, plan.get('seeds', [])))}; CPU threads: {plan.get('threads')}."))
    for rule in plan.get("search", []):
        section.text(f"Hyperparameter search narrowed by the preset: {rule}.")
    used = metadata.get("kernels") or {}
    if used:
        section.text("Each kernel as requested and as evaluated by the harnesses after "
                     "accuracy (hyperparameters most splits chose on validation):")
        section.table(pd.DataFrame({"kernel": list(used), "evaluated as": list(used.values())})
                      .set_index("kernel"))
    return section


def _sections(frames: dict[str, pd.DataFrame], out: Path, metadata: dict[str, Any]) -> list:
    from kernelzoo.bench.harnesses import HARNESSES

    sections = [_plan_section(metadata)]
    for name, cls in HARNESSES.items():
        if name in frames:
            section = cls().section(frames, out)
            if section is not None:
                sections.append(section)
    return sections


def _write(frames: dict[str, pd.DataFrame], out: str | os.PathLike, metadata: dict[str, Any],
           reference: str, screenshot: bool = False) -> dict[str, str]:
    from kernelzoo.report import write_report

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = _sections(frames, out, metadata)
    written = write_report(frames, out, title=f"kernelzoo compare: {metadata.get('dataset')}",
                           metadata=metadata, sections=sections, reference=reference)
    if screenshot:
        from kernelzoo.report.browser import screenshot as take

        written["screenshot"] = take(written["html"], out / "report.png")
    return written


def rewrite_report(folder: str | os.PathLike, screenshot: bool = False) -> dict[str, str]:
    """Rewrite a report folder's Markdown, HTML and plots from its ``results.csv`` and
    ``metadata.json`` (e.g. after a change to the report), without measuring again."""
    from kernelzoo.report import read_results

    frame = read_results(folder)
    metadata = dict(frame.attrs.get("metadata", {}))
    frames = {name: part.reset_index(drop=True) for name, part in
              frame.groupby("harness", sort=False)}
    reference = (metadata.get("plan") or {}).get("reference", "rbf")
    return _write(frames, folder, metadata, reference, screenshot)


# ---------------------------------------------------------------------------- CLI entry
def _default_out() -> str:
    return os.path.join("reports", time.strftime("%Y%m%d-%H%M%S"))


def run(args: argparse.Namespace) -> int:
    """``kernelzoo compare``: run, write the report, print where it is and the headline."""
    start = time.perf_counter()
    config = config_from_args(args)
    names = _harness_names(args.harness)
    kernels = None
    if args.family:
        kernels = [spec for spec in args.family if spec.strip()]
        if not kernels:
            raise ValueError("--family needs a kernel spec")
    frames, ctx, _ = execute(kernels, config, names, progress=not args.no_progress)
    command = "kernelzoo compare " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "compare" else "kernelzoo compare"
    ctx.metadata.update(command=command, wall_seconds=time.perf_counter() - start)
    written = _write(frames, args.out or _default_out(), ctx.metadata, config.reference,
                     args.screenshot)
    print(f"\nreport: {written['report']} and {written['html']} (results.csv, PNG plots "
          f"beside them; {time.perf_counter() - start:.0f} s)")
    if written.get("headline"):
        print(written["headline"])
    failures = int(sum((f["error"].fillna("") != "").sum() for f in frames.values()
                       if not f.empty and "error" in f))
    if failures:
        print(f"{failures} measurement(s) failed or were skipped; see 'Failures and skips' "
              f"in the report.")
    return 0
