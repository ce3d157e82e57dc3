"""gpytorch integration: BaseKernelTestCase per family and method, operator types,
ExactGP fits, the Gram cache, and the layerwise CKN trained through the likelihood."""

from __future__ import annotations

import unittest
from unittest.mock import MagicMock, patch

import gpytorch
import linear_operator
import numpy as np
import pytest
import torch
from gpytorch.test.base_kernel_test_case import BaseKernelTestCase
from sklearn.datasets import load_digits

import kernelzoo as kz
from kernelzoo.integrations.gpytorch import ExactKernel, FeatureKernel, cache_key


# name, spec, method, budget, conv, ard
CONFIGS = [
    ("rbf_exact", "rbf(lengthscale=1.5)", None, None, False, True),
    ("rbf_rff", "rbf(lengthscale=1.5)", "rff", 7, False, True),
    ("rbf_orf", "rbf(lengthscale=1.5)", "orf", 7, False, True),
    ("rbf_nystrom", "rbf(lengthscale=1.5)", "nystrom", 5, False, True),
    ("arccos_exact", "arccos(degree=1, depth=2)", None, None, False, False),
    ("arccos_random_features", "arccos(degree=1, depth=2)", "random-features", 64, False, False),
    ("arccos_nystrom", "arccos(degree=0, depth=1)", "nystrom", 5, False, False),
    ("nngp_fc", "nngp(architecture='fc', depth=2, bias_std=0.1)", None, None, False, False),
    ("nngp_fc_monte_carlo", "nngp(architecture='fc', depth=2)", "monte-carlo", 64, False, False),
    ("nngp_conv", "nngp(architecture='conv', depth=1)", None, None, True, False),
    ("nngp_conv_nystrom", "nngp(architecture='conv', depth=1)", "nystrom", 5, True, False),
    ("ntk_fc", "ntk(architecture='fc', depth=2, bias_std=0.1)", None, None, False, False),
    ("ntk_fc_empirical", "ntk(architecture='fc', depth=1)", "empirical", 16, False, False),
    ("ntk_conv", "ntk(architecture='conv', depth=1)", None, None, True, False),
    ("ckn_exact", "ckn(n_layers=2, subsampling=[2, 1])", None, None, True, False),
    ("ckn_layerwise", "ckn(n_layers=2, subsampling=[2, 1])", "layerwise", 4, True, False),
    ("ckn_nystrom", "ckn(n_layers=1)", "nystrom", 5, True, False),
]

#: vector data is gpytorch's own; images are 1 x 5 x 5 (25 columns)
_IMAGE_SHAPE = (1, 5, 5)
_N_PIXELS = 25


def make_gpytorch_kernel(spec, method, budget, image_shape=None, **kwargs):
    k = kz.kernel(spec)
    obj = k if method is None else k.approximate(method, budget=budget, seed=0)
    if image_shape is not None:
        kwargs["image_shape"] = image_shape
    return obj.to_gpytorch(**kwargs)


class _ZooKernelCase(BaseKernelTestCase):
    seed = 0
    spec = method = budget = None
    conv = ard = False

    def _image_shape(self, kwargs):
        return _IMAGE_SHAPE if self.conv else None

    def create_kernel_no_ard(self, **kwargs):
        return make_gpytorch_kernel(
            self.spec, self.method, self.budget, self._image_shape(kwargs), **kwargs
        )

    def create_kernel_ard(self, num_dims, **kwargs):
        if not self.ard:
            raise NotImplementedError  # the base case then skips the ARD checks
        return make_gpytorch_kernel(
            self.spec, self.method, self.budget, ard_num_dims=num_dims, **kwargs
        )

    # images for conv kernels: 25 columns = 1 x 5 x 5 (a 3x3 filter needs >= 3x3 maps)
    def create_data_no_batch(self):
        return torch.randn(50, 2 * _N_PIXELS + 3) if self.conv else super().create_data_no_batch()

    def create_data_single_batch(self):
        return torch.randn(2, 3, _N_PIXELS) if self.conv else super().create_data_single_batch()

    def create_data_double_batch(self):
        return torch.randn(3, 2, 8, _N_PIXELS) if self.conv else super().create_data_double_batch()

    # gpytorch's active_dims checks select 4 and 6 columns: too few for an
    # image; the same checks with selections of one image's worth of columns
    def _check_active_dims(self, active_dims):
        if not self.conv:
            return None
        kernel = self.create_kernel_no_ard(active_dims=active_dims)
        x = self.create_data_no_batch()
        covar = kernel(x).evaluate_kernel().to_dense()
        basic = self.create_kernel_no_ard()(x[:, active_dims]).evaluate_kernel().to_dense()
        self.assertAllClose(covar, basic, rtol=1e-3, atol=1e-5)
        return True

    def test_active_dims_list(self):
        if not self._check_active_dims(list(range(0, 2 * _N_PIXELS, 2))):
            super().test_active_dims_list()

    def test_active_dims_range(self):
        if not self._check_active_dims(list(range(3, 3 + _N_PIXELS))):
            super().test_active_dims_range()


for _name, _spec, _method, _budget, _conv, _ard in CONFIGS:
    _cls = type(
        f"TestBaseKernel_{_name}",
        (_ZooKernelCase, unittest.TestCase),
        {"spec": _spec, "method": _method, "budget": _budget, "conv": _conv, "ard": _ard},
    )
    globals()[_cls.__name__] = _cls
del _cls


# --------------------------------------------------------------------------- data
def _digits(n: int, seed: int = 0):
    """Small digits regression: target = mean ink of the top half minus the bottom half."""
    data = load_digits()
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(data.data))[:n]
    x = data.data[idx] / 16.0
    img = x.reshape(-1, 8, 8)
    y = img[:, :4].mean((1, 2)) - img[:, 4:].mean((1, 2))
    y = (y - y.mean()) / y.std()
    return torch.from_numpy(x), torch.from_numpy(y)


class _GP(gpytorch.models.ExactGP):
    def __init__(self, x, y, base_kernel):
        likelihood = gpytorch.likelihoods.GaussianLikelihood()
        super().__init__(x, y, likelihood)
        self.mean_module = gpytorch.means.ConstantMean()
        self.covar_module = gpytorch.kernels.ScaleKernel(base_kernel)

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(
            self.mean_module(x), self.covar_module(x)
        )


def fit_gp(model, x, y, steps=15, lr=0.1):
    model.train()
    model.likelihood.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = -mll(model(x), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


def _gp_kernel(name):
    for cname, spec, method, budget, conv, _ in CONFIGS:
        if cname == name:
            return spec, method, (20 if method == "nystrom" else budget), conv
    raise KeyError(name)


GP_CASES = [c[0] for c in CONFIGS if c[0] != "ckn_layerwise"]


@pytest.mark.parametrize("name", GP_CASES)
def test_exact_gp_fit_and_predict_per_family(name):
    spec, method, budget, conv = _gp_kernel(name)
    image_shape = (1, 8, 8) if conv else None
    x, y = _digits(50)
    xtr, ytr, xte = x[:40], y[:40], x[40:]
    obj = kz.kernel(spec)
    if method is not None:
        obj = obj.approximate(method, budget=budget, seed=0)
        obj.fit(xtr if image_shape is None else xtr.reshape(-1, *image_shape))
    base = obj.to_gpytorch(image_shape=image_shape)
    model = _GP(xtr, ytr, base).double()
    with gpytorch.settings.max_cholesky_size(10_000):
        losses = fit_gp(model, xtr, ytr)
        model.eval()
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
            pred = model.likelihood(model(xte))
            mean, var = pred.mean, pred.variance
    assert losses[-1] < losses[0], losses
    assert torch.isfinite(mean).all() and mean.shape == (10,)
    assert (var > 0).all()


# --------------------------------------------------------------------------- operators
@pytest.mark.parametrize(
    "spec, method", [("rbf", "rff"), ("arccos", "random-features"), ("rbf", "nystrom")]
)
def test_feature_kernels_return_low_rank_operators_and_linear_prediction(spec, method):
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(60, 3, generator=gen), torch.randn(60, generator=gen)
    xte = torch.randn(8, 3, generator=gen)
    for budget, n_train, root_type, added in (
        (20, 60, linear_operator.operators.LowRankRootLinearOperator,
         linear_operator.operators.LowRankRootAddedDiagLinearOperator),
        (30, 30, linear_operator.operators.RootLinearOperator,
         linear_operator.operators.AddedDiagLinearOperator),
    ):
        a = kz.kernel(spec).approximate(method, budget=budget, seed=0).fit(x[:n_train])
        model = _GP(x[:n_train], y[:n_train], a.to_gpytorch())
        model.train()
        prior = model(x[:n_train]).lazy_covariance_matrix.evaluate_kernel()
        assert isinstance(prior, root_type)
        if budget < n_train:
            assert isinstance(prior, linear_operator.operators.LowRankRootLinearOperator)
        else:
            assert not isinstance(prior, linear_operator.operators.LowRankRootLinearOperator)
        marginal = model.likelihood(model(x[:n_train])).lazy_covariance_matrix.evaluate_kernel()
        assert isinstance(marginal, added)
        cross = a.to_gpytorch()(x[:5], xte).evaluate_kernel()
        assert isinstance(cross, linear_operator.operators.MatmulLinearOperator)
        torch.testing.assert_close(cross.to_dense(), a.gram(x[:5], xte), rtol=1e-5, atol=1e-5)
        strategy = gpytorch.models.exact_prediction_strategies.LinearPredictionStrategy
        wrapped = MagicMock(wraps=strategy)
        with patch(
            "gpytorch.models.exact_prediction_strategies.LinearPredictionStrategy", new=wrapped
        ):
            model.eval()
            out = model.likelihood(model(xte))
            assert torch.isfinite(out.mean + out.variance).all()
            assert wrapped.called


def test_exact_kernel_returns_dense_tensor_equal_to_gram():
    x = torch.randn(12, 4, dtype=torch.float64)
    k = kz.kernel("arccos(degree=1, depth=3)")
    gk = k.to_gpytorch()
    out = gk(x).evaluate_kernel()
    assert isinstance(out, linear_operator.operators.DenseLinearOperator)
    torch.testing.assert_close(out.to_dense(), k.gram(x), rtol=0, atol=0)
    torch.testing.assert_close(gk(x, diag=True), k.diag(x), rtol=0, atol=0)


def test_rbf_lengthscale_is_a_positive_gpytorch_parameter_and_trains():
    x = torch.randn(30, 2, dtype=torch.float64)
    y = torch.sin(3 * x[:, 0])
    for obj in (kz.kernel("rbf", lengthscale=2.0),
                kz.kernel("rbf", lengthscale=2.0).approximate("rff", budget=64).fit(x),
                kz.kernel("rbf", lengthscale=2.0).approximate("nystrom", budget=10).fit(x)):
        gk = obj.to_gpytorch()
        names = dict(gk.named_parameters())
        assert any("raw_lengthscale" in n for n in names), names
        assert torch.allclose(
            next(m for m in gk.modules() if m.has_lengthscale).lengthscale.double(),
            torch.tensor(2.0, dtype=torch.float64),
        )
        model = _GP(x, y, gk).double()
        fit_gp(model, x, y, steps=20)
        ls = next(m for m in gk.modules() if m.has_lengthscale).lengthscale
        assert float(ls) > 0 and abs(float(ls) - 2.0) > 1e-3


def test_rbf_ard_matches_scaled_inputs():
    x = torch.randn(10, 3, dtype=torch.float64)
    gk = kz.kernel("rbf").to_gpytorch(ard_num_dims=3).double()
    gk.lengthscale = torch.tensor([[1.0, 2.0, 4.0]], dtype=torch.float64)
    ref = kz.kernel("rbf").gram(x / torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(gk(x).to_dense(), ref)


def test_bad_options_are_named():
    with pytest.raises(TypeError, match="unknown option 'foo'"):
        kz.kernel("rbf").to_gpytorch(foo=1)
    with pytest.raises(ValueError, match="ard_num_dims"):
        kz.kernel("arccos").to_gpytorch(ard_num_dims=3)
    with pytest.raises(ValueError, match="image_shape"):
        kz.kernel("arccos").to_gpytorch(image_shape=(1, 2, 2))
    with pytest.raises(TypeError, match="train_hyperparameters"):
        kz.kernel("rbf").to_gpytorch(train_hyperparameters="yes")


def test_gram_dtype_computes_in_that_precision_and_returns_the_inputs():
    x, _ = _digits(12)
    k = kz.kernel("ckn(filter_size=3, subsampling=[2])")
    ref = k.gram(x.reshape(-1, 1, 8, 8))
    gk = k.to_gpytorch(image_shape=(1, 8, 8), gram_dtype=torch.float32)
    out = gk(x).to_dense()
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    assert (out - ref).abs().max() > 0  # really computed in float32
    torch.testing.assert_close(gk(x, diag=True), torch.diagonal(ref), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="gram_dtype"):
        k.to_gpytorch(image_shape=(1, 8, 8), gram_dtype="float32")
    with pytest.raises(ValueError, match="gram_dtype"):
        kz.kernel("rbf").to_gpytorch(gram_dtype=torch.float32)  # trains its lengthscale


def test_prediction_reads_only_the_diagonal_of_the_test_test_block():
    # gpytorch's exact prediction evaluates K(test, test) but needs its diagonal:
    # a fixed kernel defers that block, so only n_test diagonal entries are computed
    x, y = _digits(50)
    xtr, ytr, xte = x[:40], y[:40], x[40:]
    k = kz.kernel("arccos(degree=1, depth=2)")
    calls = []
    gram, diag = k.gram, k.diag
    k.gram = lambda a, b=None: (calls.append(("gram", len(a), b is None)), gram(a, b))[1]
    k.diag = lambda a: (calls.append(("diag", len(a))), diag(a))[1]
    model = _GP(xtr, ytr, k.to_gpytorch()).double()
    fit_gp(model, xtr, ytr, steps=3)
    model.eval()
    calls.clear()
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), \
            gpytorch.settings.max_eager_kernel_size(0):
        pred = model.likelihood(model(xte))
        mean, var = pred.mean, pred.variance
    assert ("gram", 10, True) not in calls and ("diag", 10) in calls, calls
    # the same numbers as the dense path
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False):
        model.prediction_strategy = None
        dense = model.likelihood(model(xte))
        torch.testing.assert_close(mean, dense.mean)
        torch.testing.assert_close(var, dense.variance)
        torch.testing.assert_close(pred.covariance_matrix, dense.covariance_matrix)


def test_last_dim_is_batch_vector_kernel():
    x = torch.randn(6, 3, dtype=torch.float64)
    gk = kz.kernel("arccos").to_gpytorch()
    with pytest.warns(DeprecationWarning):
        out = gk(x, last_dim_is_batch=True).to_dense()
    assert out.shape == (3, 6, 6)
    torch.testing.assert_close(out[1], kz.kernel("arccos").gram(x[:, 1:2]))


# --------------------------------------------------------------------------- caching
def test_fixed_exact_gram_is_computed_once_in_a_training_loop():
    x, y = _digits(30)
    k = kz.kernel("arccos(degree=1, depth=2)")
    gk = k.to_gpytorch()
    assert isinstance(gk, ExactKernel)
    calls = {"n": 0}
    original = k.gram

    def counting_gram(*args, **kwargs):
        calls["n"] += 1
        return original(*args, **kwargs)

    k.gram = counting_gram  # instance attribute shadows the method
    model = _GP(x, y, gk).double()
    losses = fit_gp(model, x, y, steps=8)
    assert calls["n"] == 1, calls
    assert losses[-1] < losses[0]
    # same content in a new tensor object: still a hit; new content: a miss
    gk(x.clone()).to_dense()
    assert calls["n"] == 1
    gk(x[:5] + 1.0).to_dense()
    assert calls["n"] == 2
    assert gk.n_evaluations == 2


def test_fixed_feature_map_is_cached_and_cache_can_be_disabled():
    x = torch.randn(20, 3, dtype=torch.float64)
    a = kz.kernel("arccos").approximate("nystrom", budget=8).fit(x)
    gk = a.to_gpytorch()
    assert isinstance(gk, FeatureKernel)
    for _ in range(3):
        gk(x).to_dense()
    assert gk.n_evaluations == 1
    off = a.to_gpytorch(cache_size=0)
    for _ in range(3):
        off(x).to_dense()
    assert off.n_evaluations == 3


def test_cache_key_is_by_content():
    x = torch.randn(4, 3)
    assert cache_key(x) == cache_key(x.clone())
    assert cache_key(x) != cache_key(x.double())
    assert cache_key(x) != cache_key(x.reshape(3, 4))
    y = x.clone()
    y[0, 0] += 1
    assert cache_key(x) != cache_key(y)


def test_pickled_kernel_keeps_working():
    import pickle

    x = torch.randn(8, 3, dtype=torch.float64)
    a = kz.kernel("rbf").approximate("orf", budget=6).fit(x)
    gk = a.to_gpytorch()
    ref = gk(x).to_dense()
    clone = pickle.loads(pickle.dumps(gk))
    torch.testing.assert_close(clone(x).to_dense(), ref)


# --------------------------------------------------------------------------- CKN GPs
def test_exact_ckn_gp_regression_learns_only_scale_and_noise():
    x, y = _digits(40, seed=1)
    gk = kz.kernel("ckn(n_layers=2, subsampling=[2, 2])").to_gpytorch(image_shape=(1, 8, 8))
    assert list(gk.parameters()) == []
    model = _GP(x[:30], y[:30], gk).double()
    with gpytorch.settings.max_cholesky_size(10_000):
        losses = fit_gp(model, x[:30], y[:30], steps=10)
        model.eval()
        with torch.no_grad():
            pred = model.likelihood(model(x[30:]))
    assert losses[-1] < losses[0]
    assert torch.isfinite(pred.mean).all() and (pred.variance > 0).all()
    # one Gram of the training set, one cross block, one test diagonal/block
    assert gk.n_evaluations <= 4, gk.n_evaluations


def test_layerwise_ckn_anchors_train_through_marginal_likelihood():
    x, y = _digits(40, seed=2)
    a = kz.kernel("ckn(n_layers=2, subsampling=[2, 2])").approximate(
        "layerwise", budget=[8, 16], seed=0
    )
    a.fit(x[:30].reshape(-1, 1, 8, 8))
    gk = a.to_gpytorch(image_shape=(1, 8, 8))
    model = _GP(x[:30], y[:30], gk).double()
    with gpytorch.settings.max_cholesky_size(10_000):
        gk(x[:2]).to_dense()  # binds the CKN layers as submodules
        anchor_params = [p for n, p in gk.named_parameters() if n.startswith("network")]
        assert anchor_params, dict(gk.named_parameters()).keys()
        before = [p.detach().clone() for p in anchor_params]
        losses = fit_gp(model, x[:30], y[:30], steps=15, lr=0.05)
        model.eval()
        with torch.no_grad():
            pred = model.likelihood(model(x[30:]))
    assert losses[-1] < losses[0], losses
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, anchor_params))
    assert torch.isfinite(pred.mean).all() and (pred.variance > 0).all()


# --------------------------------------------------------------------------- GP harness
def test_rotate_images_identity_and_quarter_turn():
    from kernelzoo.bench.gp import rotate_images

    img = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    torch.testing.assert_close(rotate_images(img, torch.zeros(1)), img)
    quarter = rotate_images(img, torch.full((1,), 90.0))
    torch.testing.assert_close(quarter[0, 0], torch.rot90(img[0, 0], 1), atol=1e-12, rtol=0)


def test_run_gp_tiny_returns_tidy_rows():
    from kernelzoo.bench._common import COLUMNS
    from kernelzoo.bench.gp import run_gp

    df = run_gp("diabetes", kernels=["rbf", "arccos", "ckn"], n_train=30, n_test=20,
                methods=["exact", "sgpr", "rff"], budgets={"sgpr": 8, "rff": 16},
                training_iters=3, progress=False)
    assert list(df.columns[: len(COLUMNS)]) == list(COLUMNS)
    ok = df[df.error == ""]
    assert set(ok.metric) == {"rmse", "nlpd", "coverage95", "train_seconds", "predict_seconds"}
    assert set(zip(ok.spec, ok.method)) == {("rbf", "exact"), ("rbf", "sgpr"), ("rbf", "rff"),
                                            ("arccos", "exact"), ("arccos", "sgpr")}
    assert np.isfinite(ok.value).all()
    cov = ok[ok.metric == "coverage95"].value
    assert ((cov >= 0) & (cov <= 1)).all()
    # a conv kernel on tabular data is an error row, not an exception
    assert df[df.spec == "ckn"].error.str.contains("no images").all()
    assert (df.dataset == "diabetes").all() and (df.harness == "gp").all()


def test_run_gp_rotated_digits_with_ckn(tmp_path):
    from kernelzoo.bench.gp import rotated_digits, run_gp

    xtr, ytr, _, yte, shape, name = rotated_digits(12, 6, seed=0, source="digits")
    assert shape == (1, 12, 12) and name == "digits-rotation"
    assert xtr.shape == (12, 144) and np.all(np.abs(np.r_[ytr, yte]) <= 45)
    df = run_gp("digits-rotation", kernels=["ckn(n_layers=1, subsampling=4)"], n_train=20,
                n_test=10, methods=["exact", "layerwise"], budgets={"layerwise": [8]},
                training_iters=2, progress=False, source="digits", out=tmp_path)
    assert (df.error == "").all(), df.error.tolist()
    assert set(df.method) == {"exact", "layerwise"}
    assert (tmp_path / "gp.csv").exists()
    # float32 Gram blocks for the float64 GP; fixed k-means anchors
    opts = dict(kernels=["ckn(n_layers=1, subsampling=4)"], n_train=20, n_test=10,
                budgets={"layerwise": [8]}, training_iters=2, progress=False, source="digits")
    lean = run_gp("digits-rotation", methods=["exact", "layerwise"], gram_dtype="float32",
                  train_anchors=False, **opts)
    assert (lean.error == "").all(), lean.error.tolist()
    assert lean.attrs["metadata"]["gram_dtype"] == "torch.float32"

    def rmse(frame, method):
        return frame[(frame.metric == "rmse") & (frame.method == method)].value.item()

    assert rmse(lean, "exact") == pytest.approx(rmse(df, "exact"), rel=1e-4)
    assert np.isfinite(rmse(lean, "layerwise"))
    with pytest.raises(ValueError, match="gram_dtype"):
        run_gp("digits-rotation", methods=["exact"], gram_dtype="half", **opts)
    with pytest.raises(ValueError, match="train_anchors"):
        run_gp("digits-rotation", methods=["exact"], train_anchors="no", **opts)


@pytest.mark.parametrize(
    "spec",
    ["nngp(architecture='fc', depth=2, bias_std=0.3)",
     "ntk(architecture='fc', depth=2, bias_std=0.1, activation='erf')",
     "ntk(architecture='fc', depth=1)"],
)
def test_fc_nngp_ntk_weight_and_bias_std_are_trainable(spec):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, generator=gen, dtype=torch.float64)
    y = torch.tanh(x[:, 0] - x[:, 1])
    k = kz.kernel(spec)
    gk = k.to_gpytorch().double()
    names = {n for n, _ in gk.named_parameters()}
    has_bias = (k.bias_std or 0) > 0
    assert names == ({"raw_weight_std", "raw_bias_std"} if has_bias else {"raw_weight_std"})
    # the initial values went through float32 parameters: 1e-6 agreement
    torch.testing.assert_close(gk(x).to_dense(), k.gram(x), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gk(x, x[:3]).to_dense(), k.gram(x, x[:3]), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gk(x, diag=True), k.diag(x), rtol=1e-6, atol=1e-6)
    before = float(gk.weight_std.detach())
    model = _GP(x, y, gk).double()
    losses = fit_gp(model, x, y, steps=10)
    assert losses[-1] < losses[0]
    assert float(gk.weight_std.detach()) != before and float(gk.weight_std.detach()) > 0
    fixed = k.to_gpytorch(train_hyperparameters=False)
    assert list(fixed.parameters()) == []
