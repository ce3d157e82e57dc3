"""matern family: scikit-learn's Matern, its approximations, gpytorch, scikit-learn and compare.

One class runs everything a family gets from declaring its capabilities: the
shared kernel mixin and gpytorch's ``BaseKernelTestCase`` for the exact kernel
and each approximation, and the checks that say it is the right kernel.
"""

from __future__ import annotations

import gpytorch
import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.gaussian_process.kernels import Matern as SklearnMatern
from sklearn.linear_model import RidgeClassifier
from sklearn.pipeline import make_pipeline

import kernelzoo as kz
from kernelzoo.sklearn import KernelFeatures
from tests.kernel_mixin import GpytorchKernelChecks, KernelTestMixin, rel_err

_DIGITS = load_digits()
_X = _DIGITS.data[:120].astype(np.float64) / 16.0
_Y = _DIGITS.target[:120]

#: (nu, method, budget): the exact kernel at every nu, each approximation once
CASES = [
    (0.5, None, None),
    (1.5, None, None),
    (2.5, None, None),
    (0.5, "rff", 64),
    (1.5, "orf", 64),
    (2.5, "nystrom", 5),
]


@pytest.mark.parametrize("nu,method,budget", CASES,
                         ids=[f"nu{nu}-{method or 'exact'}" for nu, method, _ in CASES])
class TestMatern(KernelTestMixin, GpytorchKernelChecks):
    scales = (1e-15, 1e-3, 1.0, 1e3, 1e15)

    @pytest.fixture(autouse=True)
    def _case(self, nu, method, budget):
        self.nu, self.method, self.budget = nu, method, budget
        self.is_approximation = method is not None
        self.kernel = kz.kernel("matern", nu=nu, lengthscale=1.7)

    def create(self):
        if self.method is None:
            return self.kernel
        return self.kernel.approximate(self.method, budget=self.budget, seed=3)

    def inputs(self, dtype=torch.float64):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(14, 6, generator=g, dtype=torch.float64)
        y = torch.randn(9, 6, generator=g, dtype=torch.float64)
        return x.to(dtype), y.to(dtype)

    def _exact_only(self):
        if self.method is not None:
            pytest.skip("exact kernel only")

    def _approximation_only(self, *methods):
        if self.method not in methods:
            pytest.skip(f"{', '.join(methods)} only")

    # ------------------------------------------------------------ the right kernel
    def test_equals_scikit_learn_matern(self):
        self._exact_only()
        x, y = _X[:80], _X[80:]
        # near-duplicates and a far-from-origin copy: where the GEMM expansion cancels
        near = np.vstack([x[:5], x[:5] + 1e-9, x[:5]])
        for lengthscale in (0.5, 3.0, 30.0):
            k = kz.kernel("matern", nu=self.nu, lengthscale=lengthscale)
            ref = SklearnMatern(length_scale=lengthscale, nu=self.nu)
            assert rel_err(k.gram(x), ref(x)) < 1e-12
            assert rel_err(k.gram(x, y), ref(x, y)) < 1e-12
            assert rel_err(k.gram(near), ref(near)) < 1e-12
            far = kz.kernel("matern", nu=self.nu, lengthscale=lengthscale * 1e6)
            assert rel_err(far.gram(near * 1e6 + 3e6), ref(near)) < 1e-12
        gram = k.gram(near)  # rows 10..14 repeat rows 0..4: distance exactly 0
        assert torch.all(torch.diagonal(gram) == 1.0)
        assert torch.all(torch.diagonal(gram[:5, 10:]) == 1.0)
        assert torch.equal(k.diag(x), torch.ones(len(x), dtype=torch.float64))

    def test_rejects_other_smoothness(self):
        self._exact_only()
        with pytest.raises(ValueError, match="nu"):
            kz.kernel("matern", nu=1.0)
        with pytest.raises(TypeError, match="nu"):
            kz.kernel("matern", nu="smooth")
        assert kz.kernel(self.kernel.spec) == self.kernel
        assert self.kernel.approximations == ("rff", "orf", "nystrom")

    # ------------------------------------------------------------ approximations
    def test_random_features_error_falls_as_the_budget_grows(self):
        self._approximation_only("rff", "orf")
        k = kz.kernel("matern", nu=self.nu, lengthscale=3.0)
        exact = k.gram(_X[:60])
        budgets = [64, 256, 1024]
        errors = np.array([
            np.mean([rel_err(k.approximate(self.method, budget=b, seed=s).fit(_X[:60])
                             .gram(_X[:60]), exact) for s in range(4)])
            for b in budgets
        ])
        assert errors[0] > errors[1] > errors[2], errors
        slope = np.polyfit(np.log(budgets), np.log(errors), 1)[0]
        assert -0.75 < slope < -0.3, slope  # Monte Carlo: error ~ budget^(-1/2)

    def test_random_features_are_unbiased(self):
        self._approximation_only("rff")
        x = _X[:10]
        k = kz.kernel("matern", nu=self.nu, lengthscale=3.0)
        exact = k.gram(x)
        grams = torch.stack([k.approximate("rff", budget=256, seed=s).fit(x).gram(x)
                             for s in range(200)])
        mean_err = (grams.mean(0) - exact).abs().mean() / exact.abs().mean()
        single_err = (grams[0] - exact).abs().mean() / exact.abs().mean()
        assert mean_err < 0.2 * single_err and mean_err < 0.01

    def test_nystrom_is_exact_with_every_point_as_landmark(self):
        self._approximation_only("nystrom")
        x = _X[:30]
        k = kz.kernel("matern", nu=self.nu, lengthscale=3.0)
        errors = [rel_err(k.approximate("nystrom", budget=b, seed=0).fit(x).gram(x), k.gram(x))
                  for b in (5, 15, 30)]
        assert errors[0] > errors[1] > errors[2] and errors[2] < 1e-8, errors

    # ------------------------------------------------------------ gpytorch, scikit-learn
    def test_lengthscale_trains_through_the_marginal_likelihood(self):
        x = torch.from_numpy(_X[:40])
        y = torch.from_numpy((_Y[:40] % 2).astype(np.float64)) - 0.5
        obj = self.create()
        if self.method is not None:
            obj.fit(x)
        base = obj.to_gpytorch()

        class GP(gpytorch.models.ExactGP):
            def __init__(self):
                super().__init__(x, y, gpytorch.likelihoods.GaussianLikelihood())
                self.mean_module = gpytorch.means.ConstantMean()
                self.covar_module = gpytorch.kernels.ScaleKernel(base)

            def forward(self, z):
                return gpytorch.distributions.MultivariateNormal(
                    self.mean_module(z), self.covar_module(z))

        model = GP().double()
        lengthscale = next(m for m in base.modules() if m.has_lengthscale)
        assert float(lengthscale.lengthscale.detach()) == pytest.approx(1.7)
        mll = gpytorch.mlls.ExactMarginalLogLikelihood(model.likelihood, model)
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        model.train()
        losses = []
        with gpytorch.settings.max_cholesky_size(10_000):
            for _ in range(10):
                opt.zero_grad()
                loss = -mll(model(x), y)
                loss.backward()
                opt.step()
                losses.append(float(loss))
        assert losses[-1] < losses[0]
        assert abs(float(lengthscale.lengthscale.detach()) - 1.7) > 1e-3

    def test_scikit_learn_transformer(self):
        self._approximation_only("rff", "orf", "nystrom")
        spec = self.kernel.spec
        est = KernelFeatures(kernel=spec, method=self.method, budget=self.budget,
                             random_state=3)
        out = est.fit_transform(_X)
        ref = self.kernel.approximate(self.method, budget=self.budget, seed=3).fit(_X)
        np.testing.assert_allclose(out, ref.features(_X).numpy(), rtol=1e-12, atol=1e-12)
        model = make_pipeline(KernelFeatures(kernel="matern(lengthscale=3.0)", method="rff",
                                             budget=256, random_state=0),
                              RidgeClassifier(alpha=1e-3))
        assert model.fit(_X[:100], _Y[:100]).score(_X[:100], _Y[:100]) > 0.9

    # ------------------------------------------------------------ kernelzoo compare
    def test_compare_runs_it_by_default_with_the_lengthscale_chosen_on_validation(
        self, monkeypatch
    ):
        if (self.nu, self.method) != (1.5, None):
            pytest.skip("once")
        from kernelzoo.bench import compare as compare_module

        class Stop(Exception):
            pass

        seen = []

        def capture(specs, *args, **kwargs):
            seen.extend(specs)
            raise Stop

        with monkeypatch.context() as patch:
            patch.setattr(compare_module, "resolve_kernels", capture)
            with pytest.raises(Stop):
                compare_module.compare(harnesses=["accuracy"], progress=False)
        assert "matern" in [kz.registry.parse_spec(s)[0] for s in seen]

        frames = compare_module.compare(
            ["matern"], harnesses=["accuracy"], n_train=48, n_val=40, n_test=40, seeds=(0,),
            budgets=[8], dtype="float64", progress=False)
        accuracy = frames["accuracy"]
        assert (accuracy.error == "").all(), accuracy.error.unique()
        chosen = accuracy.attrs["chosen_hyperparameters"]["matern"]
        assert set(chosen) == {"lengthscale"} and chosen["lengthscale"] != 1.0
        used = kz.kernel(accuracy.attrs["metadata"]["kernels"]["matern"])
        assert used.lengthscale == pytest.approx(chosen["lengthscale"])
        assert {"exact", "rff", "orf", "nystrom"} <= set(accuracy.method)
