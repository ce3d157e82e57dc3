"""Accuracy helpers: ridge / squared hinge on features, kernel ridge on Grams."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge

from kernelzoo.classify import (
    fit_kernel_ridge_classifier,
    fit_ridge_classifier,
    fit_squared_hinge_classifier,
)


@pytest.fixture(scope="module")
def split(digits):
    x, y = digits
    return (x[:600], y[:600]), (x[600:900], y[600:900]), (x[900:1200], y[900:1200])


@pytest.mark.parametrize("wide", [False, True])
def test_ridge_matches_sklearn_at_the_chosen_lambda(split, wide):
    (xt, yt), (xv, yv), _ = split
    if wide:  # n < d: the F F^T route
        xt, yt = xt[:40], yt[:40]
    clf = fit_ridge_classifier(xt, yt, xv, yv)
    targets = np.where(yt[:, None] == np.arange(10)[None, :], 1.0, -1.0)
    ref = Ridge(alpha=clf.lam * len(xt)).fit(xt, targets)
    np.testing.assert_allclose(clf.weight.numpy(), ref.coef_.T, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(clf.intercept.numpy(), ref.intercept_, rtol=1e-6, atol=1e-8)
    assert clf.val_accuracy == pytest.approx(clf.score(xv, yv))


def test_ridge_lambda_is_chosen_on_validation_and_generalises(split):
    (xt, yt), (xv, yv), (xs, ys) = split
    clf = fit_ridge_classifier(xt, yt, xv, yv)
    grid = clf.lam * np.array([1e-3, 1.0, 1e3])
    accs = [fit_ridge_classifier(xt, yt, xv, yv, lambdas=[lam]).val_accuracy for lam in grid]
    assert accs[1] >= max(accs)  # the chosen lambda is best on validation among these
    assert clf.score(xs, ys) > 0.85
    assert clf.predict(torch.tensor(xs)).shape == (len(xs),)


def test_squared_hinge(split):
    (xt, yt), (xv, yv), (xs, ys) = split
    clf = fit_squared_hinge_classifier(xt, yt, xv, yv, lambdas=[1e-4, 1e-2])
    assert clf.weight.shape == (64, 10)
    assert clf.score(xs, ys) > 0.85
    two = fit_squared_hinge_classifier(xt, yt % 2, xv, yv % 2, lambdas=[1e-3])
    assert two.weight.shape == (64, 2) and two.score(xs, ys % 2) > 0.7


def test_kernel_ridge_equals_linear_ridge_with_linear_kernel(split):
    (xt, yt), (xv, yv), (xs, ys) = split
    xt_c = xt - xt.mean(0)
    lam = 1e-2
    lin = fit_ridge_classifier(xt_c, yt, xv - xt.mean(0), yv, lambdas=[lam])
    ker = fit_kernel_ridge_classifier(xt_c @ xt_c.T, yt, (xv - xt.mean(0)) @ xt_c.T, yv,
                                      lambdas=[lam])
    xs_c = xs - xt.mean(0)
    np.testing.assert_allclose(ker.decision_function(xs_c @ xt_c.T).numpy(),
                               lin.decision_function(torch.tensor(xs_c)).numpy(), atol=1e-8)
    rbf = np.exp(-0.5 * ((xt[:, None] - xt[None]) ** 2).sum(-1) / 9)
    rbf_v = np.exp(-0.5 * ((xv[:, None] - xt[None]) ** 2).sum(-1) / 9)
    rbf_s = np.exp(-0.5 * ((xs[:, None] - xt[None]) ** 2).sum(-1) / 9)
    assert fit_kernel_ridge_classifier(rbf, yt, rbf_v, yv).score(rbf_s, ys) > 0.9


def test_bad_arguments(split):
    (xt, yt), (xv, yv), _ = split
    with pytest.raises(ValueError, match="F_val"):
        fit_ridge_classifier(xt, yt, xv[:, :10], yv)
    with pytest.raises(ValueError, match="y_train"):
        fit_ridge_classifier(xt, yt[:5], xv, yv)
    with pytest.raises(ValueError, match="lambdas"):
        fit_ridge_classifier(xt, yt, xv, yv, lambdas=[-1.0])
    with pytest.raises(ValueError, match="K_train"):
        fit_kernel_ridge_classifier(xt, yt, xv, yv)
