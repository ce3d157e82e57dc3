"""The blocked normal equations of ``kernelzoo reproduce`` (ridge, squared-hinge SVM by
majorisation-minimisation, refit on more rows) and the issue-13 options that use them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kernelzoo.classify import center_normalize, fit_ridge_classifier
from kernelzoo.reproduce import run_experiment, standin_loader
from kernelzoo.reproduce._ckn import image_maps
from kernelzoo.reproduce._ridge import (
    NormalEquations,
    evaluate,
    lambda_grid,
    one_vs_all,
    parse_exponents,
)


def _data(n, d=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    f = torch.randn(n, d, generator=g, dtype=torch.float64).float() + 2.0
    y = (f[:, 0] + 0.5 * f[:, 1] > 2.5).long() + (f[:, 2] > 3).long()
    return f, y


def _identity(b):
    return b


@pytest.mark.parametrize("tf", [_identity, center_normalize])
def test_ridge_matches_the_cholesky_classifier(tf):
    f, y = _data(300)
    fv, yv = _data(100, seed=1)
    # small blocks: several row and column blocks are exercised
    eq = NormalEquations(f, y, tf, rows=64, cols=5)
    lams = list(lambda_grid(eq.top(), (-4, 0)))
    ref = fit_ridge_classifier(tf(f), y, tf(fv), yv, lambdas=lams, solver="cholesky")
    model = eq.ridge(ref.lam)
    ref_scores = ref.decision_function(tf(fv).double())
    assert torch.allclose(model.scores(fv), ref_scores, atol=1e-9)
    assert evaluate(model, fv, yv)[0] == pytest.approx(ref.score(tf(fv).double(), yv))


def test_refit_on_more_rows_equals_fitting_on_all():
    f, y = _data(200)
    f2, y2 = _data(70, seed=2)
    fv, _ = _data(50, seed=1)
    lam = 1e-3
    grown = NormalEquations(f, y, _identity, rows=32, cols=4).add(f2, y2)
    whole = NormalEquations(torch.cat([f, f2]), torch.cat([y, y2]), _identity)
    assert torch.allclose(grown.scatter, whole.scatter, atol=1e-8)
    assert torch.allclose(grown.ridge(lam).scores(fv), whole.ridge(lam).scores(fv), atol=1e-9)
    a, _ = grown.sqhinge(lam, 5)
    b, _ = whole.sqhinge(lam, 5)
    assert torch.allclose(a.scores(fv), b.scores(fv), atol=1e-8)


def test_squared_hinge_descends_to_the_optimum():
    f, y = _data(300)
    lam = 1e-2
    eq = NormalEquations(f, y, _identity)
    model, objective = eq.sqhinge(lam, 60)
    assert all(b <= a + 1e-12 for a, b in zip(objective, objective[1:]))
    assert objective[-1] < objective[0]
    # stationarity: the gradient of (1/n) sum max(0, 1 - y s)^2 + lam |W|^2 vanishes
    fc = f.double() - eq.mean
    t = one_vs_all(y, eq.classes)
    s = fc @ model.weight + model.intercept
    r = -t * (1 - t * s).clamp_min(0)
    grad_w = 2 * fc.T @ r / len(y) + 2 * lam * model.weight
    grad_b = 2 * r.mean(0)
    assert float(grad_w.abs().max()) < 1e-6 and float(grad_b.abs().max()) < 1e-6


def test_lambda_options():
    assert parse_exponents("-11:-2") == (-11, -2)
    with pytest.raises(ValueError, match="LO:HI"):
        parse_exponents("-2:-11")
    grid = lambda_grid(2.0, (-3, 0))
    assert np.allclose(grid, [2e-3, 2e-2, 2e-1, 2.0])


def test_gradient_maps():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    g = image_maps(x)
    assert g.shape == (1, 2, 4, 4)
    assert float(g[0, 0, 1, 1]) == 1.0 and float(g[0, 1, 1, 1]) == 4.0  # d/dcol, d/drow
    assert image_maps(x, with_pixels=True).shape == (1, 3, 4, 4)


def test_quick_with_the_new_options(tmp_path):
    options = {"refit": "1", "sqhinge": "3", "lambdas": "-10:-2", "input": "pixels+gradient",
               "sqhinge_lambdas": "-6:-4",
               "features": "raw", "anchor_images": "100"}
    records = run_experiment("mnist-ckn", quick=True, out=tmp_path, loader=standin_loader(),
                             options=options, smoke=True, progress=False)
    methods = {r.method for r in records}
    assert {"layerwise+ridge", "layerwise+sqhinge-svm"} <= {m.split("+refit")[0]
                                                             for m in methods}
    chosen = [r for r in records if r.chosen]
    assert len(chosen) == 1 and chosen[0].method.endswith("+refit(fit+val)")
    assert "test_fit_only" in chosen[0].details
    rows = json.loads((tmp_path / "results.json").read_text())
    assert all(r["details"]["input"] == "pixels+gradient" for r in rows)
    assert all(r["details"]["anchor_images"] == 100 for r in rows)
    assert all(r["details"]["lambdas"] == "1e-10..1e-2 x top" for r in rows
               if r["method"].startswith("layerwise+ridge"))
    svm = [r for r in rows if r["method"].startswith("layerwise+sqhinge")]
    assert len(svm[0]["details"]["val_per_lambda"].split()) == 3  # sqhinge_lambdas=-6:-4


def test_rows_kept_in_memory_give_the_same_svm():
    f, y = _data(150)
    fv, _ = _data(40, seed=1)
    eq = NormalEquations(f, y, center_normalize, rows=32)
    a, obj_a = eq.sqhinge(1e-3, 4)
    assert not eq.keep_rows(10) and eq.keep_rows(1e9)
    b, obj_b = eq.sqhinge(1e-3, 4)
    assert torch.allclose(a.scores(fv), b.scores(fv), atol=1e-12) and obj_a == obj_b


def test_configuration_options():
    from kernelzoo.reproduce._ckn import _chosen_grid, ckn_config
    from kernelzoo.reproduce._common import Context

    opts = {"anchors": "64,512", "sigma": "0.6,0.5", "filter_size": "5,3", "n_patches": "1000",
            "kmeans_iters": "3", "centering": "1"}
    (cfg,) = _chosen_grid(Context("mnist-ckn", False, standin_loader(), options=opts))
    k = ckn_config(**cfg).kernel()
    assert k.sigma == [0.6, 0.5] and k.filter_size == [5, 3] and k.centering
    assert cfg["anchors"] == (64, 512) and cfg["n_patches"] == 1000 and cfg["kmeans_iters"] == 3
