"""``kernelzoo reproduce`` (issue 13) and what it added: the ckn ``centering`` option,
per-sample feature normalisation.

Every experiment runs its ``--quick`` path on a tiny generated stand-in (the
data source is injectable; the real data need not be there), with tiny budgets
(``smoke``): these tests check the plumbing (splits, choice on validation, a
single touch of the test split, ``results.json`` and ``results.md``), not figures.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo.classify import center_normalize
from kernelzoo.cli import main
from kernelzoo.reproduce import EXPERIMENTS, run_experiment, standin_loader
from kernelzoo.reproduce._common import stratified_subset

NAMES = ("mnist-ckn", "fashion-ckn", "fashion-ckn-supervised", "fashion-kernels")
KEYS = ("experiment", "model", "method", "n_train", "val_accuracy", "test_accuracy", "seconds")


def test_list_names_every_experiment(capsys):
    assert set(NAMES) <= set(EXPERIMENTS)
    assert main(["reproduce", "--list"]) == 0
    out = capsys.readouterr().out
    for name in NAMES:
        assert name in out


def test_unknown_experiment_is_an_error(capsys):
    assert main(["reproduce", "no-such-thing", "--quick"]) == 2
    assert "unknown experiment" in capsys.readouterr().err


@pytest.mark.parametrize("name", NAMES)
def test_quick_on_a_standin(name, tmp_path):
    out = tmp_path / name
    records = run_experiment(
        name, quick=True, out=out, loader=standin_loader(), smoke=True, progress=False
    )
    rows = json.loads((out / "results.json").read_text())
    assert len(rows) == len(records) >= 2
    for row in rows:
        assert all(k in row for k in KEYS)
        assert row["experiment"] == name
        assert 0.0 <= row["val_accuracy"] <= 1.0
        # the test split is scored only for the chosen models
        assert (row["test_accuracy"] is not None) == row["chosen"]
    assert any(r["chosen"] for r in rows)
    text = (out / "results.md").read_text()
    for part in ("command", "seeds", "wall time", "load average", "machine", "published"):
        assert part in text.lower()


def test_unsupervised_choice_is_made_on_validation(tmp_path):
    records = run_experiment(
        "mnist-ckn", quick=True, out=tmp_path, loader=standin_loader(), smoke=True, progress=False
    )
    chosen = [r for r in records if r.chosen]
    assert len(chosen) == 1
    assert chosen[0].val_accuracy == max(r.val_accuracy for r in records)


def test_missing_data_says_how_to_get_it(tmp_path, monkeypatch):
    from kernelzoo.data import datasets

    monkeypatch.setenv("KERNELZOO_DATA", str(tmp_path))
    monkeypatch.setitem(datasets.SYSTEM_DATA_DIRS, "mnist", ())
    with pytest.raises(FileNotFoundError, match="kernelzoo data fetch mnist"):
        run_experiment("mnist-ckn", quick=True, out=tmp_path / "out", progress=False)


def test_stratified_subset_balances_classes():
    y = torch.as_tensor(np.repeat(np.arange(5), [50, 10, 30, 20, 40]))
    idx = stratified_subset(y, 25)
    assert len(idx) == 25 and len(set(idx.tolist())) == 25
    counts = np.bincount(y[idx].numpy(), minlength=5)
    assert counts.tolist() == [5, 5, 5, 5, 5]


def test_center_normalize_rows():
    f = torch.tensor([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 0.0, 4.0]], dtype=torch.float64)
    g = center_normalize(f)
    assert torch.allclose(g.mean(1), torch.zeros(3, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(g[[0, 2]].norm(dim=1), torch.ones(2, dtype=torch.float64))
    assert torch.equal(g[1], torch.zeros(3, dtype=torch.float64))  # a constant row: zero


# ---------------------------------------------------------------------- centering


def _images(n=6, size=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, size, size, generator=g, dtype=torch.float64)


def test_centering_defaults_off_and_changes_the_kernel():
    x = _images()
    plain = kz.kernel("ckn", subsampling=[2, 2])
    assert plain.centering is False
    centred = kz.kernel("ckn", subsampling=[2, 2], centering=True)
    assert "centering=True" in centred.spec
    assert not torch.allclose(plain.gram(x), centred.gram(x))
    # a constant shift of a whole image leaves its interior patches' centred versions alone
    k1 = kz.kernel("ckn", subsampling=[1], n_layers=1, centering=True)
    inner = x.clone()
    assert torch.isfinite(k1.gram(inner)).all()


def test_centering_single_layer_matches_explicit_centred_patches():
    """One layer, no pooling: k(x, y) = sum_u |z_u||z'_u| kappa(cos) on centred patches."""
    from kernelzoo.kernels.functional.ckn_ops import kappa_fn, patch_matrix

    x = _images(3, 6)
    k = kz.kernel("ckn", subsampling=[1], n_layers=1, centering=True, sigma=0.7)
    p = patch_matrix(x, 3)
    p = p - p.mean(2, keepdim=True)
    n = p.norm(dim=2)
    unit = p / n[..., None]
    expected = torch.empty(3, 3, dtype=torch.float64)
    for i in range(3):
        for j in range(3):
            cos = (unit[i] * unit[j]).sum(1).clamp(-1, 1)
            expected[i, j] = (n[i] * n[j] * kappa_fn(cos, "exp", 0.7)).sum()
    assert torch.allclose(k.gram(x), expected, rtol=1e-10)


@pytest.mark.parametrize("n_layers", [1, 2])
def test_layerwise_converges_to_exact_with_centering(n_layers):
    x = _images(5, 10, seed=1)
    sub = [2] * n_layers
    k = kz.kernel("ckn", subsampling=sub, n_layers=n_layers, centering=True)
    exact = k.gram(x)
    errors = []
    for budget in (16, 64, 512):
        a = k.approximate(
            "layerwise", budget=[budget] * n_layers, n_patches=20000, kmeans_iters=10
        ).fit(x)
        f = a.features(x)
        errors.append(float((f @ f.T - exact).norm() / exact.norm()))
    assert errors[-1] < errors[0]
    assert errors[-1] < (1e-8 if n_layers == 1 else 0.05), errors


def test_centering_gradients_agree_with_values():
    x = _images(3, 8).requires_grad_(True)
    k = kz.kernel("ckn", subsampling=[2, 2], centering=True)
    with_grad = k.gram(x)
    with torch.no_grad():
        without = k.gram(x.detach())
    assert torch.allclose(with_grad, without, rtol=1e-9)
    with_grad.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_supervised_keeps_centering():
    x = _images(20, 10, seed=2).float()
    y = torch.arange(20) % 2
    k = kz.kernel("ckn", subsampling=[2, 2], centering=True)
    sup = k.approximate(
        "supervised",
        budget=[4, 4],
        n_patches=2000,
        kmeans_iters=2,
        epochs=1,
        lr=0.01,
        progress=False,
    ).fit(x, y)
    net = sup.network()
    assert net.layers[0].centering and not net.layers[1].centering
    assert np.isfinite(sup.score(x, y))


def test_ridge_cholesky_solver_matches_eigh():
    from kernelzoo.classify import fit_ridge_classifier

    g = torch.Generator().manual_seed(0)
    f, fv = (torch.randn(n, 30, generator=g, dtype=torch.float64) for n in (300, 100))
    y, yv = ((v[:, 0] + 0.5 * v[:, 1] > 0).long() + (v[:, 2] > 1).long() for v in (f, fv))
    lams = [1e-4, 1e-2, 1e-1, 1.0]
    a = fit_ridge_classifier(f, y, fv, yv, lambdas=lams)
    b = fit_ridge_classifier(f, y, fv, yv, lambdas=lams, solver="cholesky")
    assert a.lam == b.lam and a.val_accuracy == b.val_accuracy
    assert torch.allclose(a.weight, b.weight, atol=1e-12)
    assert torch.allclose(a.intercept, b.intercept, atol=1e-12)
    with pytest.raises(ValueError, match="solver"):
        fit_ridge_classifier(f, y, fv, yv, solver="qr")
