"""kernelzoo.predict: neural-tangents' predict.gradient_descent_mse(_ensemble), reproduced.

References: tests/data/nt_predict_*.npz, written by tests/data/make_nt_references.py
with neural-tangents 0.6.5 (float64). Each file holds the inputs, neural-tangents'
Grams and its outputs for a list of argument combinations (``cases``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo import predict
from tests.kernel_mixin import rel_err

DATA = Path(__file__).resolve().parent / "data"
CONFIGS = ["fc_relu", "fc_erf", "conv_relu_gap", "conv_relu_flatten"]
TOL = 1e-8  # the contract (float64, diag_reg >= 1e-6)


@pytest.fixture(autouse=True)
def _eager_only(monkeypatch):
    monkeypatch.setenv("KERNELZOO_COMPILE", "0")


_CACHE: dict[str, dict] = {}


def _reference(config: str) -> dict:
    if config not in _CACHE:
        with np.load(DATA / f"nt_predict_{config}.npz") as data:
            ref = {key: data[key] for key in data.files}
        ref["spec"] = json.loads(str(ref["spec"]))
        ref["cases"] = json.loads(str(ref["cases"]))
        _CACHE[config] = ref
    return _CACHE[config]


def _cases(ref: dict, fn: str) -> list[dict]:
    return [case for case in ref["cases"] if case["fn"] == fn]


def _gd_outputs(case: dict, ref: dict) -> dict[str, torch.Tensor]:
    """kernelzoo's outputs for one ``gd`` case, called as the script called neural-tangents."""
    fn = predict.gradient_descent_mse(
        ref[f"{case['kernel']}_train_train"], ref["y_train"], case["learning_rate"],
        case["diag_reg"], case["diag_reg_absolute_scale"])
    t, k_td = case["t"], ref[f"{case['kernel']}_test_train"]
    fx_train_0, fx_test_0 = ref["fx_train_0"], ref["fx_test_0"]
    if case["fx"] == "default":
        return {"train": fn(t)}
    if case["fx"] == "zero_test":
        train, test = fn(t, fx_test_0=0.0, k_test_train=k_td)
        return {"train": train, "test": test}
    if case["fx"] == "arrays":
        train, test = fn(t, fx_train_0, fx_test_0, k_td)
        return {"train": train, "test": test}
    if case["fx"] == "train_none":
        return {"test": fn(t, None, fx_test_0, k_td)}
    assert case["fx"] == "test_none"
    return {"train": fn(t, fx_train_0, None, None)}


def _with_nt_grams(kernel, ref: dict):
    """Make ``kernel`` return neural-tangents' Grams (isolates the prediction algebra)."""
    n_train = len(ref["x_train"])

    def gram_nngp_ntk(X, Y=None, memory_budget=None):
        if Y is None:
            assert len(X) == n_train
            return (torch.from_numpy(ref["nngp_train_train"]),
                    torch.from_numpy(ref["ntk_train_train"]))
        return torch.from_numpy(ref["nngp_test_train"]), torch.from_numpy(ref["ntk_test_train"])

    kernel.gram_nngp_ntk = gram_nngp_ntk
    kernel.gram = lambda X, Y=None, memory_budget=None: torch.from_numpy(ref["nngp_test_test"])
    return kernel


def _ens_outputs(case: dict, ref: dict, kernel) -> dict[str, torch.Tensor]:
    fn = predict.gradient_descent_mse_ensemble(
        kernel, ref["x_train"], ref["y_train"], case["learning_rate"], case["diag_reg"],
        case["diag_reg_absolute_scale"])
    out = fn(case["t"], ref["x_test"] if case["x_test"] else None, None, case["compute_cov"])
    assert out._fields == ("nngp", "ntk")
    result = {}
    for get in ("nngp", "ntk"):
        value = getattr(out, get)
        if case["compute_cov"]:
            assert isinstance(value, predict.Gaussian)
            result[f"{get}__mean"], result[f"{get}__cov"] = value.mean, value.covariance
        else:
            result[f"{get}__mean"] = value
    return result


def _assert_close(outputs: dict, case: dict, ref: dict, tol: float) -> None:
    for key, value in outputs.items():
        expected = torch.from_numpy(ref[f"{case['name']}__{key}"])
        assert isinstance(value, torch.Tensor) and value.dtype == torch.float64
        assert tuple(value.shape) == tuple(expected.shape), (case["name"], key)
        err = rel_err(value, expected)
        assert err < tol, f"{case['name']} {key}: relative error {err:.2e}"


# ----------------------------------------------------------------- against neural-tangents
@pytest.mark.parametrize("config", CONFIGS)
def test_gradient_descent_mse_matches_neural_tangents(config):
    ref = _reference(config)
    cases = _cases(ref, "gd")
    assert len(cases) >= 20
    for case in cases:
        _assert_close(_gd_outputs(case, ref), case, ref, TOL)


@pytest.mark.parametrize("config", CONFIGS)
def test_ensemble_matches_neural_tangents_on_its_grams(config):
    """The ensemble algebra alone: kernelzoo fed neural-tangents' own Grams."""
    ref = _reference(config)
    for case in _cases(ref, "ens"):
        kernel = _with_nt_grams(kz.kernel("ntk", **ref["spec"]), ref)
        _assert_close(_ens_outputs(case, ref, kernel), case, ref, TOL)


@pytest.mark.parametrize("config", CONFIGS)
def test_ensemble_matches_neural_tangents_end_to_end(config):
    """kernelzoo's own Grams; the nngp and ntk families and the spec string give the same.

    Here the Grams differ too: fc_relu's NTK by 1e-9 (neural-tangents' arccos
    diagonal), which the solves amplify to 7.8e-9 in the NTK mean, the closest
    any case comes to the 1e-8 contract; every other output agrees to 2e-13.
    """
    ref = _reference(config)
    spec = ref["spec"]
    kernels = [kz.kernel("nngp", **spec), kz.kernel("ntk", **spec), kz.kernel("ntk", **spec).spec]
    for i, case in enumerate(_cases(ref, "ens")):
        kernel = kernels[i % len(kernels)]
        _assert_close(_ens_outputs(case, ref, kernel), case, ref, TOL)


def test_references_cover_the_contract():
    ref = _reference("conv_relu_gap")
    cases = ref["cases"]
    assert {type(c["t"]).__name__ for c in cases} >= {"NoneType", "float", "list"}
    assert any(c["fn"] == "ens" and c["compute_cov"] and c["x_test"] for c in cases)
    assert any(c["fn"] == "ens" and c["compute_cov"] and not c["x_test"] for c in cases)
    assert {c["fx"] for c in cases if c["fn"] == "gd"} == {
        "default", "zero_test", "arrays", "train_none", "test_none"}
    assert min(c["diag_reg"] for c in cases) == 1e-6
    assert any(c["diag_reg_absolute_scale"] for c in cases)
    assert "GlobalAvgPool" in str(ref["stax"])


# ----------------------------------------------------------------- properties
def _problem(n=10, m=4, k=3, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    xt = torch.randn(m, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, k, generator=g, dtype=torch.float64)
    return x, xt, y


def _grams(spec="ntk(depth=2, bias_std=0.1)", seed=0):
    x, xt, y = _problem(seed=seed)
    kernel = kz.kernel(spec)
    return kernel, x, xt, y, kernel.gram(x), kernel.gram(xt, x)


def test_t_zero_gives_the_initial_outputs():
    _, _, _, y, k, k_td = _grams()
    fx_train_0 = 0.3 * torch.ones_like(y)
    fx_test_0 = torch.arange(12, dtype=torch.float64).reshape(4, 3)
    fn = predict.gradient_descent_mse(k, y, diag_reg=1e-4)
    train, test = fn(0.0, fx_train_0, fx_test_0, k_td)
    torch.testing.assert_close(train, fx_train_0, rtol=0, atol=1e-14)
    torch.testing.assert_close(test, fx_test_0, rtol=0, atol=1e-13)
    kernel, x, xt, y, _, _ = _grams()
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=1e-4)
    out = ens(0.0, xt, compute_cov=True)
    nngp_tt = kz.kernel("nngp", **kernel.get_params()).gram(xt)
    for g in ("nngp", "ntk"):  # at t = 0: the prior, mean 0 and the NNGP covariance
        assert getattr(out, g).mean.abs().max() < 1e-14
        torch.testing.assert_close(getattr(out, g).covariance, nngp_tt, rtol=1e-12, atol=1e-14)


def test_long_times_approach_infinite_time():
    kernel, x, xt, y, k, k_td = _grams()
    fn = predict.gradient_descent_mse(k, y, diag_reg=1e-3)
    t_long = 1e9
    assert rel_err(fn(t_long, 0.0, 0.0, k_td)[1], fn(None, 0.0, 0.0, k_td)[1]) < 1e-9
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=1e-3)
    finite, infinite = ens(t_long, xt, compute_cov=True), ens(None, xt, compute_cov=True)
    for g in ("nngp", "ntk"):
        assert rel_err(getattr(finite, g).mean, getattr(infinite, g).mean) < 1e-9
        assert rel_err(getattr(finite, g).covariance, getattr(infinite, g).covariance) < 1e-8
    # the training outputs converge to y_train (the dynamics under K + diag_reg I, as
    # neural-tangents), not to the regularised fit K (K + diag_reg I)^-1 y
    assert rel_err(fn(t_long), y) < 1e-9
    assert rel_err(fn(None, 0.0, 0.0, k)[1], y) > 1e-4


def test_infinite_time_interpolates_the_training_targets():
    kernel = kz.kernel("ntk(architecture='conv', depth=2, bias_std=0.1)")
    g = torch.Generator().manual_seed(3)
    images = torch.randn(6, 1, 5, 5, dtype=torch.float64, generator=g)
    y = torch.randn(6, 2, dtype=torch.float64, generator=g)
    ens = predict.gradient_descent_mse_ensemble(kernel, images, y, diag_reg=1e-10)
    out = ens(None, images, compute_cov=True)  # x_test = x_train: the regularised fit
    for g in ("nngp", "ntk"):
        assert rel_err(getattr(out, g).mean, y) < 1e-6
        assert getattr(out, g).covariance.abs().max() < 1e-6
    # x_test=None: exactly y_train and zero covariance, as neural-tangents
    train = ens(None, None, get="ntk", compute_cov=True)
    assert torch.equal(train.mean, y) and torch.equal(train.covariance, torch.zeros(6, 6).double())
    # and gradient_descent_mse at a late time fits the training set
    fn = predict.gradient_descent_mse(kernel.gram(images), y, diag_reg=1e-10)
    assert rel_err(fn(1e12), y) < 1e-6


def test_ensemble_mean_is_gradient_descent_from_zero():
    kernel, x, xt, y, k, k_td = _grams()
    times = torch.tensor([[0.5, 5.0], [50.0, 500.0]], dtype=torch.float64)
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, learning_rate=0.3, diag_reg=1e-5)
    fn = predict.gradient_descent_mse(k, y, learning_rate=0.3, diag_reg=1e-5)
    mean = ens(times, xt, get="ntk")
    assert mean.shape == (2, 2, 4, 3)
    torch.testing.assert_close(mean, fn(times, 0.0, 0.0, k_td)[1], rtol=1e-12, atol=1e-14)
    # the NNGP ensemble is gradient descent with the NNGP Gram
    nngp = kz.kernel("nngp", **kernel.get_params())
    fn_nngp = predict.gradient_descent_mse(nngp.gram(x), y, learning_rate=0.3, diag_reg=1e-5)
    torch.testing.assert_close(ens(times, xt, get="nngp"),
                               fn_nngp(times, 0.0, 0.0, nngp.gram(xt, x))[1],
                               rtol=1e-12, atol=1e-14)


def test_return_structure_follows_get():
    kernel, x, xt, y, _, _ = _grams()
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=1e-4)
    both = ens(1.0, xt)
    assert type(both).__name__ == "Gaussians" and both._fields == ("nngp", "ntk")
    single = ens(1.0, xt, get="NTK")
    assert isinstance(single, torch.Tensor)
    torch.testing.assert_close(single, both.ntk, rtol=0, atol=0)
    swapped = ens(1.0, xt, get=("ntk", "nngp"), compute_cov=True)
    assert swapped._fields == ("ntk", "nngp")
    assert isinstance(swapped.ntk, predict.Gaussian) and swapped.ntk.covariance.shape == (4, 4)
    assert ens(None, None, get=("nngp",))._fields == ("nngp",)


def test_decompositions_and_train_grams_are_cached(monkeypatch):
    kernel, x, xt, y, k, k_td = _grams()
    calls = {"eigh": 0, "gram": 0}
    eigh = torch.linalg.eigh

    def counting_eigh(a):
        calls["eigh"] += 1
        return eigh(a)

    monkeypatch.setattr(torch.linalg, "eigh", counting_eigh)
    fn = predict.gradient_descent_mse(k, y, diag_reg=1e-4)
    for t in (1.0, [2.0, 3.0], 4.0):
        fn(t, 0.0, 0.0, k_td)
    assert calls["eigh"] == 1
    gram_nngp_ntk = kernel.gram_nngp_ntk

    def counting(X, Y=None, memory_budget=None):
        calls["gram"] += Y is None
        return gram_nngp_ntk(X, Y, memory_budget=memory_budget)

    kernel.gram_nngp_ntk = counting
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=1e-4)
    assert calls["gram"] == 0  # computed on first use
    for t in (1.0, 2.0, None, None):
        ens(t, xt)
    assert calls["gram"] == 1 and calls["eigh"] == 3  # one per kernel


def test_numpy_in_torch_out_and_one_output_column():
    _, _, _, y, k, k_td = _grams()
    fn2 = predict.gradient_descent_mse(k.numpy(), y[:, :1].numpy(), diag_reg=1e-4)
    fn1 = predict.gradient_descent_mse(k, y[:, 0], diag_reg=1e-4)
    for t in (None, 2.0, [1.0, 10.0]):
        train2, test2 = fn2(t, 0.1, 0.0, k_td.numpy())
        train1, test1 = fn1(t, 0.1, 0.0, k_td)
        assert isinstance(train2, torch.Tensor) and train2.dtype == torch.float64
        assert train1.shape == train2.shape[:-1] and test1.shape == test2.shape[:-1]
        torch.testing.assert_close(test1, test2[..., 0], rtol=1e-13, atol=1e-14)
    fx = torch.linspace(0, 1, 10, dtype=torch.float64)
    torch.testing.assert_close(fn1(0.0, fx), fx)


def test_float32_stays_float32():
    _, _, _, y, k, k_td = _grams()
    train, test = predict.gradient_descent_mse(k.float(), y, diag_reg=1e-3)(5.0, 0.0, 0.0, k_td)
    assert train.dtype == test.dtype == torch.float32


def test_accuracy_over_time():
    g = torch.Generator().manual_seed(0)
    centers = 3 * torch.randn(3, 6, generator=g, dtype=torch.float64)
    labels = torch.arange(30) % 3
    x = centers[labels] + 0.5 * torch.randn(30, 6, generator=g, dtype=torch.float64)
    kernel = kz.kernel("ntk(depth=2, bias_std=0.1)")
    xtr, xte, ytr, yte = x[:21], x[21:], labels[:21], labels[21:]
    k, k_td = kernel.gram(xtr), kernel.gram(xte, xtr)
    times = [0.0, 10.0, None, math.inf, 1e4]
    acc = predict.accuracy_over_time(k, ytr, k_td, yte, times, diag_reg=1e-6)
    assert acc.shape == (5,) and acc.dtype == torch.float64
    assert acc[2] == acc[3] == 1.0  # well-separated clusters: kernel regression is exact
    # each value is the argmax of gradient_descent_mse's outputs on +-1 targets
    targets = torch.where(ytr[:, None] == torch.arange(3)[None, :], 1.0, -1.0).double()
    out = predict.gradient_descent_mse(k, targets, diag_reg=1e-6)(10.0, None, 0.0, k_td)
    assert acc[1] == (out.argmax(1) == yte).double().mean()
    # t = 0: every output is 0, argmax picks the first class
    assert acc[0] == (yte == 0).double().mean()
    # labels need not start at 0; one-hot 0/1 targets give the same classes
    acc_shifted = predict.accuracy_over_time(k, ytr + 5, k_td, yte + 5, times, diag_reg=1e-6)
    torch.testing.assert_close(acc_shifted, acc)


# ----------------------------------------------------------------- errors
def test_errors_name_the_argument():
    kernel, x, xt, y, k, k_td = _grams()
    with pytest.raises(ValueError, match="diag_reg"):
        predict.gradient_descent_mse(k, y, diag_reg=-1e-3)
    with pytest.raises(ValueError, match="learning_rate"):
        predict.gradient_descent_mse(k, y, learning_rate=0.0)
    with pytest.raises(TypeError, match="diag_reg_absolute_scale"):
        predict.gradient_descent_mse(k, y, diag_reg_absolute_scale="yes")
    with pytest.raises(ValueError, match="k_train_train"):
        predict.gradient_descent_mse(k[:, :5], y)
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse(k, y[:7])
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse(k, y[:, :, None])
    fn = predict.gradient_descent_mse(k, y, diag_reg=1e-4)
    with pytest.raises(ValueError, match="fx_train_0 and fx_test_0"):
        fn(1.0, None, None)
    with pytest.raises(ValueError, match="k_test_train"):
        fn(1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="k_test_train"):
        fn(1.0, 0.0, 0.0, k_td[:, :4])
    with pytest.raises(ValueError, match="fx_train_0"):
        fn(1.0, torch.zeros(3, 3))
    with pytest.raises(ValueError, match="fx_test_0"):
        fn(None, 0.0, torch.zeros(5, 3), k_td)
    with pytest.raises(TypeError, match="t must"):
        fn("soon")
    with pytest.raises(ValueError, match="diag_reg"):  # singular Gram at infinite time
        predict.gradient_descent_mse(torch.ones(3, 3).double(), torch.ones(3, 1))(None, 0.0, 0.0,
                                                                                   torch.ones(1, 3))

    empirical = kz.kernel("ntk").approximate("empirical", budget=16)
    for bad in ("rbf", kz.kernel("rbf"), object(), empirical):
        with pytest.raises(TypeError, match="kernel must be an nngp or ntk kernel"):
            predict.gradient_descent_mse_ensemble(bad, x, y)
    with pytest.raises(ValueError, match="diag_reg"):
        predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=-1.0)
    with pytest.raises(ValueError, match="y_train"):
        predict.gradient_descent_mse_ensemble(kernel, x, y[:3])
    with pytest.raises(ValueError, match="x_train"):
        predict.gradient_descent_mse_ensemble(kernel, x[:, 0], y)
    ens = predict.gradient_descent_mse_ensemble(kernel, x, y, diag_reg=1e-4)
    for bad_get in ("nngpp", ("ntk", "ntk"), (), ("ntk", 3), "ntkgp"):
        with pytest.raises(ValueError, match="get"):
            ens(1.0, xt, get=bad_get)
    with pytest.raises(TypeError, match="x_test"):
        ens(1.0, xt.float())
    with pytest.raises(ValueError, match="x_test"):
        ens(1.0, xt[:, :3])
    with pytest.raises(TypeError, match="compute_cov"):
        ens(1.0, xt, compute_cov="no")
    with pytest.raises(ValueError, match="times"):
        predict.accuracy_over_time(k, torch.arange(10) % 2, k_td, torch.arange(4) % 2, [])


@pytest.mark.gpu
def test_cuda_matches_cpu():
    kernel = kz.kernel("ntk(architecture='conv', depth=2, bias_std=0.1)")
    g = torch.Generator().manual_seed(4)
    images = torch.randn(8, 2, 6, 6, dtype=torch.float64, generator=g)
    test = images[:3] + 0.1
    y = torch.randn(8, 3, dtype=torch.float64, generator=g)
    cpu = predict.gradient_descent_mse_ensemble(kernel, images, y, diag_reg=1e-5)
    gpu = predict.gradient_descent_mse_ensemble(kernel, images.cuda(), y.cuda(), diag_reg=1e-5)
    for t in (None, [1.0, 100.0]):
        a, b = cpu(t, test, compute_cov=True), gpu(t, test.cuda(), compute_cov=True)
        for g in ("nngp", "ntk"):
            assert getattr(b, g).mean.device.type == "cuda"
            assert rel_err(getattr(b, g).mean.cpu(), getattr(a, g).mean) < 1e-10
            assert rel_err(getattr(b, g).covariance.cpu(), getattr(a, g).covariance) < 1e-10
