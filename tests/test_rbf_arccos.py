"""rbf and arccos families: exactness, approximations, and the shared mixin."""

from __future__ import annotations


import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.metrics.pairwise import rbf_kernel

import kernelzoo as kz
from tests.kernel_mixin import KernelTestMixin, rel_err

_DIGITS = load_digits().data[:60].astype(np.float64) / 16.0


def _vectors(dtype, n=14, m=9, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(m, d, generator=g, dtype=torch.float64)
    return x.to(dtype), y.to(dtype)


class VectorInputs:
    def inputs(self, dtype=torch.float64):
        return _vectors(dtype)


# ----------------------------------------------------------------- exact kernels
class TestRBF(VectorInputs, KernelTestMixin):
    scales = (1e-15, 1e-3, 1.0, 1e3, 1e15)

    def create(self):
        return kz.kernel("rbf", lengthscale=1.7)


@pytest.mark.parametrize("degree", [0, 1, 2])
@pytest.mark.parametrize("depth", [1, 3])
class TestArcCos(VectorInputs, KernelTestMixin):
    # degree 0 is scale invariant, degree 1 homogeneous of degree 2 at every
    # depth; degree 2 grows like s^(2^(depth+1)): the documented ranges
    @pytest.fixture(autouse=True)
    def _params(self, degree, depth):
        self.degree, self.depth = degree, depth
        if degree < 2:
            self.scales = (1e-15, 1e-3, 1.0, 1e3, 1e15)
            self.scales32 = (1e-15, 1.0, 1e15) if degree == 0 else (1e-12, 1.0, 1e12)
        else:
            self.scales = (1e-15, 1.0, 1e15) if depth == 1 else (1e-4, 1.0, 1e4)
            self.scales32 = (1e-4, 1.0, 1e4) if depth == 1 else (0.1, 1.0, 10.0)

    def create(self):
        return kz.kernel("arccos", degree=self.degree, depth=self.depth)


# ----------------------------------------------------------------- approximations
APPROX = [
    ("rbf(lengthscale=2.0)", "rff", 64),
    ("rbf(lengthscale=2.0)", "orf", 64),
    ("rbf(lengthscale=2.0)", "nystrom", 8),
    ("arccos(degree=1, depth=2)", "random-features", 64),
    ("arccos(degree=0, depth=1)", "random-features", 64),
    ("arccos(degree=2, depth=1)", "nystrom", 8),
]


@pytest.mark.parametrize("spec,method,budget", APPROX)
class TestApproximations(VectorInputs, KernelTestMixin):
    is_approximation = True
    rtol32 = 1e-4
    rtol64 = 1e-10

    @pytest.fixture(autouse=True)
    def _params(self, spec, method, budget):
        self.spec, self.method, self.budget = spec, method, budget

    def create(self):
        return kz.kernel(self.spec).approximate(self.method, budget=self.budget, seed=3)

    def expects_gradient(self):
        # degree-0 random features are steps: piecewise constant, no gradient
        return not (self.method == "random-features" and "degree=0" in self.spec)


# ----------------------------------------------------------------- exactness
def test_rbf_matches_sklearn():
    x = _DIGITS
    for ls in (0.5, 3.0):
        ours = kz.kernel("rbf", lengthscale=ls).gram(x).numpy()
        np.testing.assert_allclose(
            ours, rbf_kernel(x, gamma=1 / (2 * ls**2)), rtol=1e-12, atol=1e-14
        )
    ours32 = kz.kernel("rbf", lengthscale=3.0).gram(x.astype(np.float32)).numpy()
    np.testing.assert_allclose(ours32, rbf_kernel(x, gamma=1 / 18), atol=2e-6)


def test_rbf_exact_at_huge_scale_and_duplicates():
    x = np.vstack([_DIGITS[:5], _DIGITS[:5]]) * 1e12
    k = kz.kernel("rbf", lengthscale=1e12).gram(x).numpy()
    np.testing.assert_allclose(k, rbf_kernel(x / 1e12, gamma=0.5), rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(k) == 1.0)


def _closed_form(x, y, degree):
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    c = np.clip((x @ y.T) / np.outer(nx, ny), -1, 1)
    t = np.arccos(c)
    j = {
        0: np.pi - t,
        1: np.sin(t) + (np.pi - t) * np.cos(t),
        2: 3 * np.sin(t) * np.cos(t) + (np.pi - t) * (1 + 2 * np.cos(t) ** 2),
    }[degree]
    return np.outer(nx, ny) ** degree * j / np.pi


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_arccos_closed_form_depth1(degree):
    x, y = _DIGITS[:20], _DIGITS[20:35]
    ours = kz.kernel("arccos", degree=degree).gram(x, y).numpy()
    np.testing.assert_allclose(ours, _closed_form(x, y, degree), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_arccos_monte_carlo_depth1(degree):
    """10^6 Gaussian directions: E[2 step(w.x) step(w.y) (w.x)^n (w.y)^n] = k_n."""
    x = _DIGITS[:6]
    g = np.random.default_rng(0)
    acc = np.zeros((6, 6))
    total = 10**6
    for _ in range(10):
        w = g.standard_normal((total // 10, x.shape[1]))
        p = w @ x.T
        h = (p > 0) * p**degree
        acc += 2 * h.T @ h
    mc = acc / total
    ours = kz.kernel("arccos", degree=degree).gram(x).numpy()
    assert np.linalg.norm(ours - mc) / np.linalg.norm(ours) < 1e-2


def _gauss_hermite_layer(kxx, kyy, kxy, degree, n_nodes=120):
    """One arc-cosine layer by 2-D Gauss-Hermite quadrature of 2 E[relu^n(u) relu^n(v)]."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    weights = weights / weights.sum()
    cov = np.array([[kxx, kxy], [kxy, kyy]])
    evals, evecs = np.linalg.eigh(cov)
    root = evecs * np.sqrt(np.clip(evals, 0, None))
    z1, z2 = np.meshgrid(nodes, nodes, indexing="ij")
    w = np.outer(weights, weights)
    u = root[0, 0] * z1 + root[0, 1] * z2
    v = root[1, 0] * z1 + root[1, 1] * z2
    f = lambda t: (t > 0) * np.abs(t) ** degree  # noqa: E731
    return 2 * np.sum(w * f(u) * f(v))


@pytest.mark.parametrize("degree", [1, 2])
@pytest.mark.parametrize("depth", [2, 3])
def test_arccos_deep_against_quadrature(degree, depth):
    """Independent check of the layer recursion: k^(l+1) = 2 E[f(u) f(v)], (u,v) ~ N(0, K^(l))."""
    x = _DIGITS[[1, 7]]
    k = np.array([[x[i] @ x[j] for j in range(2)] for i in range(2)])
    for _ in range(depth):
        k = np.array(
            [
                [_gauss_hermite_layer(k[i, i], k[j, j], k[i, j], degree) for j in range(2)]
                for i in range(2)
            ]
        )
    ours = kz.kernel("arccos", degree=degree, depth=depth).gram(x).numpy()
    # the step/kink makes quadrature converge slowly: a loose, independent check
    np.testing.assert_allclose(ours, k, rtol=5e-3)


def test_arccos_zero_input_gives_zero():
    x = np.vstack([np.zeros(64), _DIGITS[0]])
    for degree in (0, 1, 2):
        k = kz.kernel("arccos", degree=degree, depth=2).gram(x).numpy()
        assert k[0, 0] == 0 and k[0, 1] == 0 and k[1, 1] > 0


# ----------------------------------------------------------------- approximation quality
def _errors(spec, method, budgets, seeds, x):
    k = kz.kernel(spec)
    exact = k.gram(x)
    return np.array(
        [
            [rel_err(k.approximate(method, budget=b, seed=s).fit(x).gram(x), exact) for s in seeds]
            for b in budgets
        ]
    )


@pytest.mark.parametrize(
    "spec,method",
    [
        ("rbf(lengthscale=3.0)", "rff"),
        ("rbf(lengthscale=3.0)", "orf"),
        ("arccos(degree=1, depth=2)", "random-features"),
    ],
)
def test_random_features_error_falls_like_inverse_sqrt_budget(spec, method):
    errs = _errors(spec, method, [64, 256, 1024], range(4), _DIGITS).mean(1)
    assert errs[0] > errs[1] > errs[2]
    slope = np.polyfit(np.log([64, 256, 1024]), np.log(errs), 1)[0]
    assert -0.75 < slope < -0.3, slope


@pytest.mark.parametrize(
    "spec,method", [("rbf(lengthscale=3.0)", "rff"), ("arccos(degree=1)", "random-features")]
)
def test_random_features_unbiased(spec, method):
    """The mean over seeds of the approximate Gram converges to the exact one."""
    x = _DIGITS[:10]
    exact = kz.kernel(spec).gram(x)
    grams = torch.stack(
        [kz.kernel(spec).approximate(method, budget=256, seed=s).fit(x).gram(x) for s in range(200)]
    )
    mean_err = (grams.mean(0) - exact).abs().mean() / exact.abs().mean()
    single_err = (grams[0] - exact).abs().mean() / exact.abs().mean()
    assert mean_err < 0.2 * single_err
    assert mean_err < 0.01


def test_orf_beats_rff_on_average():
    budgets = [64, 128, 256]
    rff = _errors("rbf(lengthscale=3.0)", "rff", budgets, range(5), _DIGITS).mean()
    orf = _errors("rbf(lengthscale=3.0)", "orf", budgets, range(5), _DIGITS).mean()
    assert orf < rff


def test_nystrom_exact_with_all_points_and_nested():
    x = _DIGITS[:40]
    for spec in ("rbf(lengthscale=3.0)", "arccos(degree=1, depth=2)"):
        k = kz.kernel(spec)
        a = k.approximate("nystrom", budget=40, seed=0).fit(x)
        assert rel_err(a.gram(x), k.gram(x)) < 1e-9
    a10 = kz.kernel("rbf").approximate("nystrom", budget=10, seed=4).fit(x)
    a20 = kz.kernel("rbf").approximate("nystrom", budget=20, seed=4).fit(x)
    assert torch.equal(a20.landmarks_[:10], a10.landmarks_)


def test_nystrom_landmark_strategies():
    x = _DIGITS
    k = kz.kernel("rbf(lengthscale=3.0)")
    exact = k.gram(x)
    km = rel_err(
        k.approximate("nystrom", budget=20, seed=0, landmarks="kmeans").fit(x).gram(x), exact
    )
    given = k.approximate("nystrom", landmarks=x[:20]).fit(x)
    assert given.n_features == 20
    assert km < 0.05
    with pytest.raises(ValueError, match="landmarks"):
        k.approximate("nystrom", budget=5, landmarks="farthest")
    with pytest.raises(ValueError, match="budget"):
        k.approximate("nystrom", budget=10, landmarks=x[:20])
    with pytest.raises(ValueError, match="budget"):
        k.approximate("nystrom", budget=1000).fit(x[:10])


def test_seed_gives_same_draws_in_float32_and_float64():
    x = _DIGITS[:10]
    a = kz.kernel("rbf").approximate("rff", budget=32, seed=7).fit(x)
    f64 = a.features(x)
    f32 = a.features(x.astype(np.float32))
    torch.testing.assert_close(f32.double(), f64, atol=1e-5, rtol=1e-5)


def test_gram_symmetry_exploited_when_y_is_none():
    calls = []
    k = kz.kernel("rbf")
    orig = k._block

    def spy(x, y, same, out=None, **options):
        calls.append((len(x), len(y)))
        return orig(x, y, same, out, **options)

    k._block = spy
    x = np.random.default_rng(0).standard_normal((2048, 4))
    k.gram(x)
    # 4 x 4 tiles of 512: the 10 on or above the diagonal, not 16
    assert len(calls) == 10
