"""scikit-learn transformer: estimator checks, agreement with kernelzoo, pipelines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

import kernelzoo as kz
from kernelzoo.sklearn import KernelFeatures

_DIGITS = load_digits()
_X = _DIGITS.data[:300].astype(np.float64) / 16.0
_Y = _DIGITS.target[:300]
_X.setflags(write=False)


ESTIMATORS = [
    KernelFeatures(),
    KernelFeatures(kernel="rbf(lengthscale=2.0)", method="rff", budget=32, random_state=0),
    KernelFeatures(kernel="rbf", method="orf", budget=16, random_state=0),
    KernelFeatures(kernel="arccos(degree=2, depth=2)", method="nystrom", budget=8,
                   random_state=0, landmarks="kmeans"),
    KernelFeatures(kernel="nngp(architecture='fc', depth=2)", method="monte-carlo",
                   budget=32, random_state=0),
]


@parametrize_with_checks(ESTIMATORS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize(
    "spec, method, budget",
    [("arccos(degree=1)", "random-features", 64), ("rbf(lengthscale=3.0)", "rff", 40),
     ("rbf(lengthscale=3.0)", "nystrom", 20)],
)
def test_features_equal_kernelzoo_with_seed_equal_random_state(spec, method, budget):
    est = KernelFeatures(kernel=spec, method=method, budget=budget, random_state=3).fit(_X)
    out = est.transform(_X[:10])
    assert isinstance(out, np.ndarray) and out.dtype == np.float64
    assert out.shape == (10, est.n_features_out_)
    ref = kz.kernel(spec).approximate(method, budget=budget, seed=3).fit(_X).features(_X[:10])
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-12)
    assert est.n_features_in_ == 64
    names = est.get_feature_names_out()
    assert len(names) == est.n_features_out_ and names[0] == "kernelfeatures0"


def test_pipeline_classifies_digits():
    x, y = _DIGITS.data / 16.0, _DIGITS.target
    model = make_pipeline(
        KernelFeatures(kernel="arccos(degree=1)", method="random-features", budget=256,
                       random_state=0),
        RidgeClassifier(alpha=1.0),
    )
    assert model.fit(x[:1000], y[:1000]).score(x[1000:], y[1000:]) > 0.9


def test_options_are_parameters_and_survive_clone():
    est = KernelFeatures(kernel="rbf", method="nystrom", budget=5, landmarks="kmeans", eps=1e-6)
    params = est.get_params()
    assert params["landmarks"] == "kmeans" and params["eps"] == 1e-6
    copy = clone(est)
    assert copy.get_params() == params
    copy.set_params(eps=1e-3, budget=7)
    assert copy.get_params()["eps"] == 1e-3 and copy.budget == 7
    copy.fit(_X[:50])
    assert copy.approximation_.opts["eps"] == 1e-3


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="dtype"):
        KernelFeatures(dtype="float16").fit(_X)
    with pytest.raises(TypeError, match="unknown option 'foo'"):
        KernelFeatures(foo=1).fit(_X)
    with pytest.raises(ValueError, match="unknown approximation method"):
        KernelFeatures(kernel="rbf", method="random-features").fit(_X)
    with pytest.raises(ValueError, match="image_shape"):
        KernelFeatures(kernel="arccos", image_shape=(1, 5, 5)).fit(_X)


def test_float32_output_and_nystrom_budget_clipped():
    est = KernelFeatures(kernel="rbf", method="rff", budget=16, random_state=0, dtype="float32")
    assert est.fit_transform(_X[:20]).dtype == np.float32
    with pytest.warns(RuntimeWarning, match="landmarks"):
        out = KernelFeatures(kernel="rbf", method="nystrom", budget=500).fit_transform(_X[:30])
    assert out.shape == (30, 30)


def test_random_state_none_and_instances():
    a = KernelFeatures(budget=16, random_state=np.random.RandomState(0)).fit_transform(_X[:5])
    b = KernelFeatures(budget=16, random_state=np.random.RandomState(0)).fit_transform(_X[:5])
    np.testing.assert_array_equal(a, b)
    assert np.isfinite(KernelFeatures(budget=16).fit_transform(_X[:5])).all()


def test_conv_kernel_features_with_image_shape():
    est = KernelFeatures(kernel="ckn(n_layers=2)", method="layerwise", budget=[8, 16],
                         random_state=0, image_shape=(1, 8, 8))
    out = est.fit_transform(_X[:40])
    ref = kz.kernel("ckn(n_layers=2)").approximate("layerwise", budget=[8, 16], seed=0)
    ref = ref.fit(torch.from_numpy(_X[:40].copy()).reshape(-1, 1, 8, 8))
    np.testing.assert_allclose(out, ref.features(_X[:40].reshape(-1, 1, 8, 8)).numpy(),
                               rtol=1e-10, atol=1e-12)
    assert out.shape == (40, est.n_features_out_)


def test_supervised_method_needs_labels():
    est = KernelFeatures(kernel="ckn(n_layers=1)", method="supervised", budget=[4],
                         random_state=0, image_shape=(1, 8, 8))
    with pytest.raises(ValueError, match="labels"):
        est.fit(_X[:20])
