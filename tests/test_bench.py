"""Harnesses of kernelzoo.bench on tiny inputs: schema, Nyström nesting, stability,
failing kernels, and hyperparameters chosen without the test split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import kernelzoo as kz
from kernelzoo.bench import (
    COLUMNS,
    accuracy,
    approximation,
    approximation_errors,
    effective_dimension,
    spectrum,
    speed,
    stability,
)
from kernelzoo.bench._common import KernelCase, PeakMemory, resolve_kernels
from kernelzoo.kernels.rbf import RBF

METADATA_KEYS = {"kernelzoo", "torch", "numpy", "python", "git_commit", "platform",
                 "cpu_count", "device_name"}


@pytest.fixture(scope="module")
def images():
    """48 digit images (n, 1, 8, 8) in [0, 1] and their labels, read-only."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:48, None] / 16.0).astype(np.float64)
    x.setflags(write=False)
    return x, data.target[:48]


@pytest.fixture(scope="module")
def splits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:, None] / 16.0).astype(np.float32)
    y = data.target
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))[:260]
    x, y = x[order], y[order]
    return x[:120], y[:120], x[120:180], y[120:180], x[180:], y[180:]


class _Exploding(RBF):
    """An rbf whose Gram raises: stands for a family that breaks at run time."""

    def _block(self, x, y, same, out=None):
        raise RuntimeError("boom in _block")


def _exploding_case() -> KernelCase:
    return KernelCase("exploding", "rbf", _Exploding(lengthscale=2.0))


def _check_schema(frame: pd.DataFrame) -> None:
    assert list(frame.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert METADATA_KEYS <= set(frame.attrs["metadata"])
    ok = frame[frame["error"] == ""]
    assert len(ok) > 0
    assert np.isfinite(ok["value"].to_numpy(dtype=float)).all()


# ---------------------------------------------------------------------------- schema
def test_every_harness_has_the_schema(images, splits):
    x, _ = images
    frames = [
        approximation(["rbf(lengthscale=2.0)"], x, budgets=[4, 8], seeds=[0]),
        stability(["arccos"], x[:6], shifts=(0, 1), displacements=(0.5,)),
        spectrum(["rbf(lengthscale=2.0)"], x[:20]),
        speed(["rbf(lengthscale=2.0)"], x, sizes=(8, 16), budget=4, repeats=1),
        accuracy(["rbf(lengthscale=2.0)"], *splits, budgets=[8], n_train=[60, 120],
                 methods=["exact", "nystrom"]),
    ]
    for frame in frames:
        _check_schema(frame)
    assert set(frames[0]["metric"]) >= {"rel_frobenius_error", "rel_spectral_error",
                                        "rel_max_entry_error", "alignment", "fit_seconds",
                                        "eval_seconds", "gram_seconds"}
    assert set(frames[0]["method"]) == {"exact", "rff", "orf", "nystrom"}
    assert set(frames[4]["metric"]) == {"test_accuracy", "val_accuracy", "lambda"}
    assert sorted(frames[4].loc[frames[4]["method"] == "exact", "n"].unique()) == [60, 120]
    assert {"transform", "magnitude", "tau_inf", "grad_tau_inf"} <= set(frames[1].columns)


def test_approximation_errors_of_identical_grams_are_zero():
    k = kz.kernel("rbf").gram(torch.randn(30, 4, dtype=torch.float64))
    errors = approximation_errors(k, k.clone())
    assert errors["rel_frobenius_error"] == 0 and errors["rel_max_entry_error"] == 0
    assert errors["rel_spectral_error"] == pytest.approx(0, abs=1e-12)
    assert errors["alignment"] == pytest.approx(1.0, abs=1e-12)


def test_budgets_count_features(images):
    x, _ = images
    frame = approximation(["arccos"], x, budgets=[4, 16], seeds=[0], methods=["nystrom"])
    rows = frame[(frame["metric"] == "rel_frobenius_error") & (frame["method"] == "nystrom")]
    assert rows["n_features"].tolist() == [4, 16]
    assert rows["budget"].tolist() == [4, 16]


# ---------------------------------------------------------------------------- Nyström nesting
def test_nystrom_error_non_increasing_along_nested_budgets(images):
    x, _ = images
    budgets = [2, 4, 8, 16, 32, 48]
    frame = approximation(["rbf(lengthscale=3.0)", "arccos(depth=2)"], x, budgets=budgets,
                          seeds=[0, 1, 2], methods=["nystrom"], dtype=torch.float64)
    for metric in ("rel_frobenius_error", "rel_spectral_error"):
        rows = frame[(frame["metric"] == metric) & (frame["method"] == "nystrom")]
        for _, group in rows.groupby(["spec", "seed"]):
            errors = group.sort_values("budget")["value"].to_numpy()
            assert len(errors) == len(budgets)
            assert np.all(np.diff(errors) <= 1e-9), (metric, errors)
            assert errors[-1] < 1e-6  # all 48 points as landmarks: exact


# ---------------------------------------------------------------------------- stability
def test_translation_distance_zero_at_zero_and_growing(images):
    x, _ = images
    frame = stability(["rbf(lengthscale=3.0)", "arccos(depth=2)"], x[:12],
                      shifts=(0, 1, 2, 3), displacements=(0.5, 1.5), dtype=torch.float64)
    rows = frame[(frame["metric"] == "relative_distance") & (frame["transform"] ==
                                                             "translation")]
    assert set(rows["spec"]) == {"pixels", "rbf(lengthscale=3.0)", "arccos(depth=2)"}
    for spec, group in rows.groupby("spec"):
        distance = group.sort_values("magnitude")["value"].to_numpy()
        assert distance[0] == pytest.approx(0.0, abs=1e-6), spec
        # grows with t until the shifted digit no longer overlaps (then it saturates)
        assert distance[1] > 0.05 and np.all(np.diff(distance[:3]) > 0), (spec, distance)
        assert distance[3] >= 0.98 * distance[2], (spec, distance)
    deformed = frame[(frame["metric"] == "relative_distance") & (frame["transform"] !=
                                                                 "translation")]
    for _, group in deformed.groupby("spec"):
        ordered = group.sort_values("magnitude")
        assert ordered["value"].is_monotonic_increasing
        assert (ordered["tau_inf"].to_numpy() == pytest.approx([0.5, 1.5]))
        assert (ordered["grad_tau_inf"] > 0).all()


def test_rkhs_distance_never_nan_for_identical_inputs(images):
    from kernelzoo.bench import rkhs_relative_distance

    x = torch.tensor(images[0][:5])
    ratio = rkhs_relative_distance(kz.kernel("arccos(depth=3)"), x, x.clone())
    assert torch.isfinite(ratio).all() and (ratio >= 0).all() and (ratio < 1e-3).all()


# ---------------------------------------------------------------------------- failures
def test_a_failing_kernel_is_reported_not_fatal(images, splits):
    x, _ = images
    kernels = ["rbf(bogus=1)", _exploding_case(), "arccos"]
    frames = {
        "approximation": approximation(kernels, x[:20], budgets=[4], seeds=[0]),
        "stability": stability(kernels, x[:4], shifts=(0, 1), displacements=()),
        "spectrum": spectrum(kernels, x[:10]),
        "speed": speed(kernels, x[:16], sizes=(8,), budget=4, repeats=1),
        "accuracy": accuracy(kernels, *splits, budgets=[8], n_train=[60],
                             methods=["exact", "nystrom"]),
    }
    for name, frame in frames.items():
        bad = frame[frame["spec"] == "rbf(bogus=1)"]
        assert len(bad) >= 1 and bad["error"].str.contains("bogus").all(), name
        assert bad["value"].isna().all()
        boom = frame[(frame["spec"] == "exploding") & (frame["error"] != "")]
        assert boom["error"].str.contains("boom").any(), name
        good = frame[(frame["spec"] == "arccos") & (frame["error"] == "")]
        assert len(good) > 0, name


def test_resolve_kernels_keeps_the_family_of_a_broken_spec():
    cases = resolve_kernels(["ckn(nonsense=[1, 2])", "nosuchfamily"])
    assert [c.family for c in cases] == ["ckn", "nosuchfamily"]
    assert all(not c.ok and c.error for c in cases)


# ---------------------------------------------------------------------------- test split unseen
def _chosen(frame: pd.DataFrame) -> pd.DataFrame:
    rows = frame[frame["metric"].isin(["val_accuracy", "lambda"])]
    return rows[["spec", "method", "budget", "seed", "n", "metric", "value", "params"]] \
        .reset_index(drop=True)


def test_hyperparameters_do_not_depend_on_the_test_split(splits):
    x_tr, y_tr, x_va, y_va, x_te, y_te = splits
    kernels = ["rbf", "arccos(depth=2)"]
    kwargs = {"budgets": [16], "n_train": [60, 120], "methods": ["exact", "nystrom", "rff"]}
    clean = accuracy(kernels, x_tr, y_tr, x_va, y_va, x_te, y_te, **kwargs)
    rng = np.random.default_rng(1)
    noisy_x = rng.random(x_te.shape).astype(np.float32)
    noisy_y = rng.permutation(y_te)
    corrupt = accuracy(kernels, x_tr, y_tr, x_va, y_va, noisy_x, noisy_y, **kwargs)
    assert (clean["error"] == "").all(), clean.loc[clean["error"] != "", "error"].tolist()
    # the rbf lengthscale and every lambda were searched, and chosen identically
    assert clean["params"].str.contains("lengthscale=").any()
    pd.testing.assert_frame_equal(_chosen(clean), _chosen(corrupt))
    assert clean.attrs["chosen_hyperparameters"] == corrupt.attrs["chosen_hyperparameters"]
    test_clean = clean[clean["metric"] == "test_accuracy"]["value"].to_numpy()
    test_noisy = corrupt[corrupt["metric"] == "test_accuracy"]["value"].to_numpy()
    assert test_clean.mean() > 0.6 and test_noisy.mean() < 0.4


def test_test_labels_reach_only_the_final_scoring(splits, monkeypatch):
    """A spy on the classifier helpers: the test labels never go into a fit."""
    import kernelzoo.bench._accuracy as harness

    x_tr, y_tr, x_va, y_va, x_te, y_te = splits
    y_test = np.full_like(y_te, 99)  # a label that exists nowhere else
    fitted_with = []
    real_kernel, real_linear = harness.fit_kernel_ridge_classifier, harness.fit_ridge_classifier

    def spy_kernel(*args, **kwargs):
        fitted_with.extend([np.asarray(args[1]), np.asarray(args[3])])
        return real_kernel(*args, **kwargs)

    def spy_linear(*args, **kwargs):
        fitted_with.extend([np.asarray(args[1]), np.asarray(args[3])])
        return real_linear(*args, **kwargs)

    monkeypatch.setattr(harness, "fit_kernel_ridge_classifier", spy_kernel)
    monkeypatch.setattr(harness, "fit_ridge_classifier", spy_linear)
    frame = accuracy(["arccos"], x_tr, y_tr, x_va, y_va, x_te, y_test, budgets=[8],
                     n_train=[60])
    assert fitted_with and not any((labels == 99).any() for labels in fitted_with)
    assert (frame.loc[frame["metric"] == "test_accuracy", "value"] == 0).all()


# ---------------------------------------------------------------------------- spectrum, speed
def test_spectrum_eigenvalues_and_effective_dimension(images):
    x, _ = images
    frame = spectrum(["arccos(depth=2)"], x[:30], chosen_lambdas={"arccos(depth=2)": 1e-3},
                     dtype=torch.float64)
    eig = frame[frame["metric"] == "eigenvalue"].sort_values("index")["value"].to_numpy()
    gram = kz.kernel("arccos(depth=2)").gram(torch.tensor(x[:30]))
    assert len(eig) == 30 and np.all(np.diff(eig) <= 1e-12)
    assert eig.sum() == pytest.approx(float(gram.trace()) / 30, rel=1e-9)
    deff = frame[frame["metric"] == "effective_dimension"].sort_values("lam")["value"]
    assert deff.is_monotonic_decreasing and (deff > 0).all() and (deff <= 30).all()
    chosen = frame[frame["metric"] == "effective_dimension_chosen"]["value"].iloc[0]
    assert chosen == pytest.approx(effective_dimension(torch.tensor(eig), 1e-3))


def test_speed_reports_throughput_and_memory(images):
    x, y = images
    frame = speed(["arccos"], x, sizes=(16, 32), budget=8, y=y, repeats=2)
    ok = frame[frame["error"] == ""]
    pairs = ok[(ok["method"] == "exact") & (ok["metric"] == "pairs_per_second")]
    assert sorted(pairs["n"]) == [16, 32] and (pairs["value"] > 0).all()
    images_per_s = ok[ok["metric"] == "images_per_second"]
    assert set(images_per_s["method"]) == {"random-features", "nystrom"}
    assert "peak_memory_bytes" in set(ok["metric"])


def test_peak_memory_sees_a_large_allocation():
    with PeakMemory("cpu") as memory:
        block = torch.ones(64, 2**20 // 8, dtype=torch.float64)  # 64 MiB
        block.add_(1)
    del block
    if not np.isfinite(memory.bytes):
        pytest.skip("no /proc/self/status on this platform")
    assert memory.bytes >= 32 * 2**20
