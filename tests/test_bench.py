"""kernelzoo.bench on tiny plans: the fixed plan, the pool and its splits, the Gram cache,
the harness framework, every harness, and two identical runs of ``kernelzoo compare``."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import kernelzoo as kz
from kernelzoo.bench import (
    COLUMNS,
    EXACT,
    TIMING_METRICS,
    Harness,
    RunContext,
    approximation_errors,
    centered_kernel_alignment,
    default_kernels,
    effective_dimension,
    preset,
    rkhs_relative_distance,
    run_harnesses,
)
from kernelzoo.bench._common import KernelCase, PeakMemory, resolve_kernels
from kernelzoo.bench.harnesses import HARNESSES, default_harnesses
from kernelzoo.bench.pool import GramCache, load_pool
from kernelzoo.kernels.rbf import RBF

METADATA_KEYS = {"kernelzoo", "torch", "numpy", "python", "git_commit", "platform",
                 "cpu_count", "device_name", "plan"}


def tiny_config(**changes):
    """A plan of a few seconds: 40 training images, 2 splits, small budgets."""
    base = dict(n_train=(20, 40), n_val=20, n_test=20, splits=2, seeds=(0,),
                approximation_n=32, similarity_n=40, stability_n=6, speed_sizes=(8, 16),
                approximation_budgets=(4, 8, 16), accuracy_budgets=(8,), speed_budget=4,
                displacements=(0.25, 0.5), smoothness=(2.0,), shifts=(0, 1, 2), threads=1)
    base.update(changes)
    return preset("quick").replace(**base)


def run_tiny(kernels, harnesses, **changes) -> tuple[dict[str, pd.DataFrame], RunContext]:
    config = tiny_config(**changes)
    pool = load_pool(config)
    ctx = RunContext(config, pool, GramCache(pool.x), resolve_kernels(kernels),
                     metadata={"plan": config.describe()})
    return run_harnesses(ctx, [HARNESSES[name]() for name in harnesses]), ctx


class _Exploding(RBF):
    """An rbf whose Gram raises: stands for a family that breaks at run time."""

    def _block(self, x, y, same, out=None, **options):
        raise RuntimeError("boom in _block")


# ---------------------------------------------------------------------------- the plan
def test_presets_fix_every_size_and_hold_no_time_limit():
    quick, standard, full = preset("quick"), preset("standard"), preset("full")
    assert max(quick.sizes.n_train) == 1000 and quick.splits >= 3
    assert quick.sizes.pool <= 1797  # the embedded digits
    assert standard.splits > quick.splits and full.splits > standard.splits
    assert max(standard.budgets.accuracy) > max(quick.budgets.accuracy)
    assert all(p.time_cap is None for p in (quick, standard, full))
    assert quick.search and quick.search[0].applies({"architecture": "conv"})
    assert not quick.search[0].applies({"architecture": "fc"})


@pytest.mark.parametrize("change, option", [
    ({"splits": 0}, "--splits"), ({"threads": 0}, "--threads"), ({"n_val": 3}, "--n-val"),
    ({"seeds": ()}, "--seeds"), ({"time_cap": -1.0}, "--time-cap"),
])
def test_bad_plans_name_the_option(change, option):
    with pytest.raises(ValueError, match=option):
        preset("quick").replace(**change)


def test_the_cli_reports_a_bad_option_in_one_line(capsys):
    from kernelzoo.cli import main

    assert main(["compare", "--splits", "0"]) == 2
    err = capsys.readouterr().err
    assert "--splits" in err and "Traceback" not in err
    assert main(["compare", "--preset", "quick", "--n-train", "5"]) == 2
    assert "--n-train" in capsys.readouterr().err


def test_default_kernels_are_every_registry_family_with_its_variants():
    specs = default_kernels()
    families = {kz.registry.parse_spec(s)[0] for s in specs}
    assert families == set(kz.available())
    for family in kz.available():
        variants = kz.registry.kernel_class(family).compare_variants
        assert sum(kz.registry.parse_spec(s)[0] == family for s in specs) == len(variants)
    assert "nngp(architecture='conv')" in specs and "ntk(architecture='conv')" in specs


def test_bench_tests_no_family_name():
    """Per-family knowledge is read from the kernel classes, never from name tests."""
    bench = Path(__file__).resolve().parents[1] / "kernelzoo" / "bench"
    names = set(kz.available())
    found = []
    for path in bench.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Compare):
                for side in [node.left, *node.comparators]:
                    if isinstance(side, ast.Constant) and side.value in names:
                        found.append(f"{path.name}:{node.lineno}")
    assert not found


# ---------------------------------------------------------------------------- pool, cache
def test_splits_redraw_disjoint_parts_of_one_pool():
    config = tiny_config(splits=3)
    pool, again = load_pool(config), load_pool(config)
    assert len(pool) == 40 + 20 + 20 and torch.equal(pool.x, again.x)
    for split, twin in zip(pool.splits, again.splits, strict=True):
        parts = [split.train, split.val, split.test]
        assert [len(p) for p in parts] == [40, 20, 20]
        assert len(np.unique(np.concatenate(parts))) == len(pool)
        assert all(np.array_equal(a, b) for a, b in zip(parts, [twin.train, twin.val,
                                                               twin.test], strict=True))
    assert not np.array_equal(pool.splits[0].test, pool.splits[1].test)


def test_too_small_a_dataset_names_the_sizes():
    with pytest.raises(ValueError, match="--n-train"):
        load_pool(preset("quick").replace(n_train=(2000,), n_val=200, n_test=300))


def test_the_nngp_comes_out_of_the_ntk_pass(monkeypatch):
    from kernelzoo.kernels.infinite import InfiniteWidthKernel

    calls = []
    real = InfiniteWidthKernel.gram_nngp_ntk

    def counted(self, X, Y=None, memory_budget=None):
        calls.append(self.family)
        return real(self, X, Y, memory_budget)

    monkeypatch.setattr(InfiniteWidthKernel, "gram_nngp_ntk", counted)
    x = torch.tensor(np.random.default_rng(0).random((6, 1, 5, 5)), dtype=torch.float64)
    cache = GramCache(x)
    nngp = kz.kernel("nngp(architecture='conv', depth=1)")
    ntk = kz.kernel("ntk(architecture='conv', depth=1)")
    k, t = cache.get(nngp), cache.get(ntk)
    assert len(calls) == 1
    torch.testing.assert_close(k, nngp.gram(x))
    torch.testing.assert_close(t, ntk.gram(x))
    cache.release(nngp)
    assert ntk in cache  # kept until its other half is released too
    cache.release(ntk)
    assert nngp not in cache and ntk not in cache


# ---------------------------------------------------------------------------- the driver
def test_a_new_harness_is_one_class_and_its_failures_are_rows():
    class Norms(Harness):
        name = "norms"
        metric = "mean_diag"

        def run(self, ctx, case, method):
            index = ctx.reference_split().train[:10]
            value = float(ctx.gram(case, index).diagonal().mean())
            return [ctx.row(self.name, case, method, self.metric, value, n=10)]

    config = tiny_config()
    pool = load_pool(config)
    cases = resolve_kernels(["rbf", "rbf(bogus=1)"]) + [
        KernelCase("exploding", "rbf", _Exploding(lengthscale=2.0))]
    ctx = RunContext(config, pool, GramCache(pool.x), cases)
    frame = run_harnesses(ctx, [Norms()])["norms"]
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert frame.loc[frame["spec"] == "rbf", "value"].iloc[0] == pytest.approx(1.0)
    assert "bogus" in frame.loc[frame["spec"] == "rbf(bogus=1)", "error"].iloc[0]
    assert "boom" in frame.loc[frame["spec"] == "exploding", "error"].iloc[0]


def test_harnesses_run_after_those_they_use():
    assert list(HARNESSES)[0] == "accuracy" and "gp" not in default_harnesses()
    for name, cls in HARNESSES.items():
        assert all(HARNESSES[used].order < cls.order for used in cls.uses), name


def test_a_time_cap_turns_what_is_left_into_skipped_rows():
    frames, _ = run_tiny(["rbf", "arccos"], ["spectrum"], time_cap=1e-9)
    frame = frames["spectrum"]
    assert (frame["error"].str.startswith("skipped: --time-cap")).all()
    assert set(frame["spec"]) == {"rbf", "arccos"}


# ---------------------------------------------------------------------------- accuracy
def test_every_kernel_sees_the_same_splits_and_sizes():
    frames, ctx = run_tiny(["rbf", "arccos", "ntk"], ["accuracy"])
    acc = frames["accuracy"]
    assert (acc["error"] == "").all(), acc.loc[acc["error"] != "", "error"].tolist()
    exact = acc[(acc["method"] == EXACT) & (acc["metric"] == "test_accuracy")]
    keys = {spec: set(zip(g["split"], g["n"], strict=True)) for spec, g in exact.groupby("spec")}
    assert len(set(map(frozenset, keys.values()))) == 1
    assert next(iter(keys.values())) == {(s, n) for s in (0, 1) for n in (20, 40)}
    approx = acc[(acc["method"] != EXACT) & (acc["metric"] == "test_accuracy")]
    assert set(approx["split"]) == {0} and set(approx["n"]) == {40}
    assert set(ctx.chosen) == {"rbf", "arccos", "ntk"}
    assert "lengthscale" in ctx.chosen["rbf"] and set(ctx.chosen_by_split["rbf"]) == {0, 1}


def test_test_labels_never_choose_anything():
    """Scrambling the test labels of split 0 changes test accuracy only."""
    config = tiny_config(splits=1, accuracy_budgets=(8,))
    results = []
    for scramble in (False, True):
        pool = load_pool(config)
        if scramble:
            test = pool.splits[0].test
            pool.y = pool.y.copy()
            pool.y[test] = (pool.y[test] + 1) % 10
        ctx = RunContext(config, pool, GramCache(pool.x), resolve_kernels(["rbf", "arccos"]))
        results.append(run_harnesses(ctx, [HARNESSES["accuracy"]()])["accuracy"])
    clean, scrambled = results
    chosen = ["spec", "method", "split", "n", "budget", "seed", "params"]
    for metric in ("val_accuracy", "lambda"):
        a = clean[clean["metric"] == metric]
        b = scrambled[scrambled["metric"] == metric]
        pd.testing.assert_frame_equal(a[chosen + ["value"]].reset_index(drop=True),
                                      b[chosen + ["value"]].reset_index(drop=True))
    test_clean = clean.loc[clean["metric"] == "test_accuracy", "value"]
    test_scrambled = scrambled.loc[scrambled["metric"] == "test_accuracy", "value"]
    assert test_clean.mean() > 0.5 and test_scrambled.mean() < 0.2


def test_compare_reports_what_validation_chose():
    from kernelzoo.bench.compare import compare

    frames = compare(["rbf"], harnesses=["accuracy"], n_train=40, n_val=20, n_test=20,
                     splits=2, seeds=(0,), budgets=[8], dtype="float64", progress=False)
    chosen = frames["accuracy"].attrs["chosen_hyperparameters"]["rbf"]
    assert set(chosen) == {"lengthscale"}
    assert METADATA_KEYS <= set(frames["accuracy"].attrs["metadata"])


# ---------------------------------------------------------------------------- approximation
def test_approximation_errors_of_identical_grams_are_zero():
    k = kz.kernel("rbf").gram(torch.randn(30, 4, dtype=torch.float64))
    errors = approximation_errors(k, k.clone())
    assert errors["rel_frobenius_error"] == 0 and errors["rel_max_entry_error"] == 0
    assert errors["rel_spectral_error"] == pytest.approx(0, abs=1e-12)
    assert errors["alignment"] == pytest.approx(1.0, abs=1e-12)
    assert errors["cka"] == pytest.approx(1.0, abs=1e-12)


def test_nystrom_error_falls_along_nested_budgets():
    frames, _ = run_tiny(["rbf", "arccos(depth=2)"], ["accuracy", "approximation"],
                         approximation_budgets=(2, 4, 8, 16), seeds=(0, 1), dtype="float64")
    frame = frames["approximation"]
    assert set(frame["n"]) == {32}
    rows = frame[(frame["metric"] == "rel_frobenius_error") & (frame["method"] == "nystrom")]
    for _, group in rows.groupby(["spec", "seed"]):
        errors = group.sort_values("budget")["value"].to_numpy()
        assert len(errors) == 4 and np.all(np.diff(errors) <= 1e-9), errors
    features = frame[(frame["metric"] == "cka") & (frame["method"] == "rff")]
    assert features["n_features"].tolist() == [2, 2, 4, 4, 8, 8, 16, 16]


# ---------------------------------------------------------------------------- similarity
def test_cka_ignores_scale_and_offset_and_sees_unrelated_grams():
    x = torch.randn(40, 5, dtype=torch.float64)
    k = kz.kernel("rbf(lengthscale=2.0)").gram(x)
    assert centered_kernel_alignment(k, 3.0 * k + 5.0) == pytest.approx(1.0, abs=1e-12)
    noise = torch.randn(40, 40, dtype=torch.float64)
    assert centered_kernel_alignment(k, noise @ noise.T) < 0.5


def test_similarity_rows_pair_every_kernel_on_the_same_points():
    frames, _ = run_tiny(["rbf", "arccos", "ntk"], ["accuracy", "similarity"])
    frame = frames["similarity"]
    assert set(frame["metric"]) == {"cka"} and set(frame["n"]) == {40}
    assert len(frame) == 9 and "spec_other" in frame
    matrix = frame.pivot_table(index="spec", columns="spec_other", values="value")
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-9)
    np.testing.assert_allclose(matrix.to_numpy(), matrix.to_numpy().T, atol=1e-12)


# ---------------------------------------------------------------------------- stability
def test_stability_checks_the_bound_on_non_expansive_ckns():
    assert kz.kernel("ckn(sigma=1.0)").stability_assumptions()["holds"]
    assert not kz.kernel("ckn(sigma=0.6)").stability_assumptions()["holds"]
    assert kz.kernel("rbf").stability_assumptions() is None
    frames, _ = run_tiny(["rbf", "ckn(filter_size=3, sigma=0.6)"], ["stability"],
                         dtype="float64")
    frame = frames["stability"]
    assert (frame["error"] == "").all(), frame.loc[frame["error"] != "", "error"].tolist()
    specs = set(frame["spec"])
    assert {"pixels", "ckn(sigma=1.0, subsampling=[2, 4])"} <= specs
    holds = frame[frame["metric"] == "bound_assumptions_hold"].set_index("spec")["value"]
    assert holds["ckn(sigma=1.0, subsampling=[2, 2])"] == 1.0
    assert holds["ckn(filter_size=3, sigma=0.6)"] == 0.0 and "rbf" not in holds
    shifts = frame[(frame["metric"] == "relative_distance")
                   & (frame["transform"] == "translation")]
    for spec, group in shifts.groupby("spec"):
        distance = group.sort_values("magnitude")["value"].to_numpy()
        assert distance[0] == pytest.approx(0.0, abs=1e-6) and distance[1] > 0.01, spec
    exponent = frame[frame["metric"] == "growth_exponent"].set_index("spec")["value"]
    assert 0.8 < exponent["pixels"] < 1.2  # bilinear warps: first order in the size
    assert {"deformation_slope", "deformation_r2", "translation_slope"} <= set(frame["metric"])


def test_rkhs_distance_never_nan_for_identical_inputs():
    x = torch.rand(5, 1, 8, 8, dtype=torch.float64)
    ratio = rkhs_relative_distance(kz.kernel("arccos(depth=3)"), x, x.clone())
    assert torch.isfinite(ratio).all() and (ratio >= 0).all() and (ratio < 1e-3).all()


# ---------------------------------------------------------------------------- spectrum, speed
def test_spectrum_eigenvalues_and_effective_dimension():
    frames, ctx = run_tiny(["arccos(depth=2)"], ["accuracy", "spectrum"], dtype="float64")
    frame = frames["spectrum"]
    eig = frame[frame["metric"] == "eigenvalue"].sort_values("index")["value"].to_numpy()
    index = ctx.reference_split().train[:40]
    gram = kz.kernel("arccos(depth=2)").gram(ctx.pool.x[index])
    assert len(eig) == 40 and np.all(np.diff(eig) <= 1e-12)
    assert eig.sum() == pytest.approx(float(gram.trace()) / 40, rel=1e-9)
    deff = frame[frame["metric"] == "effective_dimension"].sort_values("lam")["value"]
    assert deff.is_monotonic_decreasing and (deff > 0).all() and (deff <= 40).all()
    chosen = frame[frame["metric"] == "effective_dimension_chosen"]["value"].iloc[0]
    lam = ctx.lambdas["arccos(depth=2)"]
    assert chosen == pytest.approx(effective_dimension(torch.tensor(eig), lam))


def test_speed_reports_throughput_and_memory():
    frames, _ = run_tiny(["arccos"], ["speed"])
    ok = frames["speed"][frames["speed"]["error"] == ""]
    pairs = ok[(ok["method"] == EXACT) & (ok["metric"] == "pairs_per_second")]
    assert sorted(pairs["n"]) == [8, 16] and (pairs["value"] > 0).all()
    assert set(ok.loc[ok["metric"] == "images_per_second", "method"]) == {
        "random-features", "nystrom"}
    assert set(ok["metric"]) <= TIMING_METRICS


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory("cpu") as memory:
        block = torch.ones(64, 2**20 // 8, dtype=torch.float64)  # 64 MiB
        block.add_(1)
    del block
    if not np.isfinite(memory.bytes):
        pytest.skip("no /proc/self/status on this platform")
    assert memory.bytes >= 32 * 2**20


def test_resolve_kernels_keeps_the_family_of_a_broken_spec():
    cases = resolve_kernels(["ckn(nonsense=[1, 2])", "nosuchfamily"])
    assert [c.family for c in cases] == ["ckn", "nosuchfamily"]
    assert all(not c.ok and c.error for c in cases)


# ---------------------------------------------------------------------------- same command twice
TINY_COMMAND = ["compare", "--n-train", "40", "--n-val", "20", "--n-test", "20",
                "--splits", "2", "--seeds", "0", "--budgets", "4,8", "--accuracy-budgets", "8",
                "--threads", "1", "--family", "rbf", "--family", "arccos",
                "--family", "ckn(filter_size=3)",
                "--family", "ntk(architecture='conv', depth=1)", "--no-progress"]


def _science(folder: Path) -> pd.DataFrame:
    """results.csv without what measures time or memory."""
    frame = pd.read_csv(folder / "results.csv", keep_default_na=False, dtype=str)
    frame = frame[~frame["metric"].isin(TIMING_METRICS)].drop(columns=["seconds"])
    return frame.reset_index(drop=True)


def test_the_same_command_twice_gives_the_same_results(tmp_path, capsys):
    from kernelzoo.cli import main

    for name in ("first", "second"):
        assert main([*TINY_COMMAND, "--out", str(tmp_path / name)]) == 0
    capsys.readouterr()
    first, second = _science(tmp_path / "first"), _science(tmp_path / "second")
    assert len(first) > 500  # every harness but speed, whose values are all timings
    assert set(first["harness"]) == set(default_harnesses()) - {"speed"}
    pd.testing.assert_frame_equal(first, second)
    raw = pd.read_csv(tmp_path / "first" / "results.csv")
    assert {"split", "seed"} <= set(raw.columns)
    assert set(raw.loc[raw["harness"] == "accuracy", "split"].dropna()) == {0, 1}


# ---------------------------------------------------------------------------- training time
def test_training_time_reuses_the_accuracy_grams_and_ends_at_kernel_regression(monkeypatch):
    from kernelzoo import predict
    from kernelzoo.bench.harnesses.training_time import DIAG_REG, SCALED_TIMES, TrainingTime
    from kernelzoo.kernels.infinite import InfiniteWidthKernel

    specs = ["ntk", "ntk(architecture='conv', depth=1)", "arccos"]
    frames, ctx = run_tiny(specs, ["accuracy"], dtype="float64")

    def no_new_gram(*args, **kwargs):
        raise AssertionError("training_time evaluated a kernel: it must slice the pool's Gram")

    monkeypatch.setattr(InfiniteWidthKernel, "gram", no_new_gram)
    monkeypatch.setattr(InfiniteWidthKernel, "gram_nngp_ntk", no_new_gram)
    frame = run_harnesses(ctx, [TrainingTime()])["training_time"]
    assert (frame["error"] == "").all(), frame["error"].tolist()
    assert set(frame["spec"]) == {"ntk", "ntk(architecture='conv', depth=1)"}  # NTKs only
    for spec in ("ntk", "ntk(architecture='conv', depth=1)"):
        rows = frame[frame["spec"] == spec].sort_values("time_scaled")
        assert list(rows["time_scaled"]) == [*SCALED_TIMES, np.inf]
        assert (rows["n"] == 40).all() and (rows["split"] == 0).all()
        assert ((rows["value"] >= 0) & (rows["value"] <= 1)).all()
        assert rows["time"].is_monotonic_increasing
        # t = inf: kernel regression on split 0 (one-vs-all +-1 targets)
        case = ctx.tuned(next(c for c in ctx.cases if c.spec == spec))
        split = ctx.reference_split()
        index = np.concatenate([split.train[:40], split.test])
        gram = ctx.grams.get(case.kernel)[index][:, index].double()
        y = torch.as_tensor(ctx.pool.y)
        classes = torch.unique(y[split.train[:40]])
        targets = torch.where(y[split.train[:40], None] == classes, 1.0, -1.0).double()
        test = predict.gradient_descent_mse(gram[:40, :40], targets, diag_reg=DIAG_REG)(
            None, None, 0.0, gram[40:, :40])
        want = float((classes[test.argmax(1)] == y[split.test]).double().mean())
        assert float(rows["value"].iloc[-1]) == pytest.approx(want, abs=1e-12)
    again = run_harnesses(ctx, [TrainingTime()])["training_time"]
    pd.testing.assert_series_equal(again["value"], frame["value"])  # deterministic
