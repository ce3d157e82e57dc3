"""CKN family: oracle, independent references, the shared mixin, Nyström networks, supervised."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo.approx.ckn import CKNLayer, spherical_kmeans
from kernelzoo.kernels.functional.ckn_ops import pooling_matrix
from kernelzoo.ops.linalg import inv_sqrt_psd
from tests.kernel_mixin import KernelTestMixin, rel_err

ORACLE = Path(__file__).resolve().parent / "data"  # copies of the shared oracle files


def _images(n, c, h, w, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype)


# ----------------------------------------------------------------- independent references
def _kappa(u, name, sigma):
    u = np.clip(u, -1.0, 1.0)
    if name == "exp":
        return np.exp((u - 1.0) / sigma**2)
    theta = np.arccos(u)
    if name == "arccos0":
        return 1.0 - theta / np.pi
    if name == "arccos1":
        return (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi
    return u**2


def _pool_weights(size, s):
    """w[i, a] = exp(-(a - s i)^2 / s^2) / Z for |a - s i| <= s (written out independently)."""
    if s == 1:
        return np.eye(size)
    z = sum(math.exp(-(t * t) / (s * s)) for t in range(-s, s + 1))
    out = (size - 1) // s + 1
    w = np.zeros((out, size))
    for i in range(out):
        for a in range(size):
            if abs(a - s * i) <= s:
                w[i, a] = math.exp(-((a - s * i) ** 2) / (s * s)) / z
    return w


def _naive_ckn(x, y, filters, subs, sigmas, kappas):
    """Position by position: Grams of all position pairs for (x,y), (x,x), (y,y), explicit loops."""
    same = np.array_equal(x, y)
    grams = {
        "xy": np.einsum("cij,ckl->ijkl", x, y),
        "xx": np.einsum("cij,ckl->ijkl", x, x),
        "yy": np.einsum("cij,ckl->ijkl", y, y),
    }
    for f, s, sigma, kappa in zip(filters, subs, sigmas, kappas):
        h, w = grams["xy"].shape[:2]
        r = f // 2
        patch = {}
        for key, k in grams.items():
            kp = np.zeros_like(k)
            for u1 in range(h):
                for u2 in range(w):
                    for v1 in range(h):
                        for v2 in range(w):
                            tot = 0.0
                            for o1 in range(-r, r + 1):
                                for o2 in range(-r, r + 1):
                                    a1, a2, b1, b2 = u1 + o1, u2 + o2, v1 + o1, v2 + o2
                                    if 0 <= a1 < h and 0 <= a2 < w and 0 <= b1 < h and 0 <= b2 < w:
                                        tot += k[a1, a2, b1, b2]
                            kp[u1, u2, v1, v2] = tot
            patch[key] = kp
        norm = {
            "x": np.sqrt(np.maximum(np.einsum("ijij->ij", patch["xx"]), 0)),
            "y": np.sqrt(np.maximum(np.einsum("ijij->ij", patch["yy"]), 0)),
        }
        mapped = {}
        for key, (a, b) in {"xy": "xy", "xx": "xx", "yy": "yy"}.items():
            den = norm[a][:, :, None, None] * norm[b][None, None, :, :]
            with np.errstate(divide="ignore", invalid="ignore"):
                cos = np.where(den > 0, patch[key] / np.where(den > 0, den, 1), 0)
            if a == b or same:  # a position with itself: cosine exactly 1
                hh, ww_ = norm[a].shape
                cos.reshape(hh * ww_, hh * ww_)[np.diag_indices(hh * ww_)] = 1.0
            mapped[key] = np.where(den > 0, den * _kappa(cos, kappa, sigma), 0)
        wh, ww = _pool_weights(h, s), _pool_weights(w, s)
        grams = {key: np.einsum("ia,jb,kc,ld,abcd->ijkl", wh, ww, wh, ww, m)
                 for key, m in mapped.items()}
    return float(np.einsum("ijij->", grams["xy"]))


def _naive_gram(x, y, spec):
    k = kz.kernel(spec)
    p = (k.filter_size, k.subsampling, k.sigma, k.kappa)
    return np.array([[_naive_ckn(a, b, *p) for b in y] for a in x])


def _poly2_features(x, filters, subs):
    """Explicit feature maps of kappa = u^2: z -> |z| (z/|z|) (x) (z/|z|) = z z^T / |z|."""
    m = x
    for f, s in zip(filters, subs):
        c, h, w = m.shape
        r = f // 2
        pad = np.pad(m, ((0, 0), (r, r), (r, r)))
        patches = np.stack([pad[:, o1:o1 + h, o2:o2 + w] for o1 in range(f) for o2 in range(f)], 1)
        patches = patches.reshape(c * f * f, h, w)
        norms = np.linalg.norm(patches, axis=0)
        outer = np.einsum("ahw,bhw->abhw", patches, patches).reshape(-1, h, w)
        feats = np.where(norms > 0, outer / np.where(norms > 0, norms, 1), 0)
        m = np.einsum("ia,jb,cab->cij", _pool_weights(h, s), _pool_weights(w, s), feats)
    return m.reshape(-1)


# ----------------------------------------------------------------- oracle
@pytest.mark.parametrize("name", ["ckn_exp1_s3", "ckn_exp2"])
def test_matches_oracle(name):
    data = np.load(ORACLE / f"{name}.npz")
    k = kz.kernel("ckn", **json.loads(str(data["spec"])))
    ref = data["gram"]
    ours = k.gram(data["x1"]).numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(k.diag(data["x1"]).numpy(), np.diag(ref), rtol=1e-10)
    # the differentiable path gives the same numbers
    x = torch.tensor(data["x1"], requires_grad=True)
    np.testing.assert_allclose(k.gram(x).detach().numpy(), ref, rtol=1e-10,
                               atol=1e-10 * np.abs(ref).max())
    ours32 = k.gram(data["x1"].astype(np.float32)).numpy()
    np.testing.assert_allclose(ours32, ref, rtol=2e-5, atol=2e-5 * np.abs(ref).max())


# ----------------------------------------------------------------- independent references
NAIVE_CASES = [
    ("ckn(filter_size=3, subsampling=2, sigma=0.6, kappa='exp')", (2, 5, 5)),
    ("ckn(filter_size=[5], subsampling=[3], sigma=[0.8], kappa=['exp'])", (1, 6, 6)),
    ("ckn(filter_size=[1, 3], subsampling=[1, 2], kappa=['arccos0', 'arccos1'], sigma=1.0)",
     (3, 4, 5)),
    (("ckn(filter_size=[3, 1, 3], subsampling=[1, 2, 1], sigma=[0.5, 0.7, 1.0], "
     "kappa=['exp', 'poly2', 'arccos1'])"), (1, 6, 5)),
    ("ckn(filter_size=3, subsampling=3, kappa='arccos0', n_layers=1)", (2, 6, 5)),
]


@pytest.mark.parametrize("spec,shape", NAIVE_CASES)
def test_matches_naive_position_loop(spec, shape):
    x = _images(3, *shape, seed=1)
    y = _images(2, *shape, seed=2)
    x[2] = 0.0  # a zero image
    y[1] = 0.7  # a constant image
    k = kz.kernel(spec)
    ref = _naive_gram(x.numpy(), y.numpy(), spec)
    np.testing.assert_allclose(k.gram(x, y).numpy(), ref, rtol=1e-10, atol=1e-12)
    ref_xx = _naive_gram(x.numpy(), x.numpy(), spec)
    np.testing.assert_allclose(k.gram(x).numpy(), ref_xx, rtol=1e-10, atol=1e-12)
    assert np.all(k.gram(x).numpy()[2] == 0)


@pytest.mark.parametrize("filters,subs,shape", [
    ([3, 1], [2, 1], (1, 5, 5)),
    ([1, 3], [2, 2], (2, 6, 6)),
    ([3], [1], (2, 4, 4)),
])
def test_poly2_equals_explicit_feature_maps(filters, subs, shape):
    x = _images(3, *shape, seed=3)
    x[1, :, :2] = 0.0  # zero patches
    feats = np.stack([_poly2_features(a, filters, subs) for a in x.numpy()])
    k = kz.kernel("ckn", filter_size=filters, subsampling=subs, kappa="poly2")
    np.testing.assert_allclose(k.gram(x).numpy(), feats @ feats.T, rtol=1e-10, atol=1e-12)


def test_pooling_matrix_matches_written_out_filter():
    for size, s in [(7, 1), (7, 2), (6, 3), (28, 2), (14, 5)]:
        np.testing.assert_allclose(pooling_matrix(size, s).numpy(), _pool_weights(size, s),
                                   rtol=1e-14, atol=0)
        assert pooling_matrix(size, s).shape[0] == (size - 1) // s + 1


def test_homogeneous_and_translation_of_zero_padding():
    x = _images(3, 1, 6, 6, seed=4)
    k = kz.kernel("ckn", kappa=["exp", "arccos1"])
    torch.testing.assert_close(k.gram(3.0 * x), 9.0 * k.gram(x), rtol=1e-10, atol=0)


def test_constant_and_zero_images_no_nan_values_or_gradients():
    k = kz.kernel("ckn", filter_size=[3, 3], subsampling=[2, 2])
    x = torch.stack([torch.zeros(1, 6, 6), torch.full((1, 6, 6), 0.5), torch.ones(1, 6, 6)])
    x = x.double().requires_grad_(True)
    g = k.gram(x)
    assert torch.isfinite(g).all() and g[0].abs().max() == 0
    torch.testing.assert_close(g[1, 2], 2 * g[1, 1], rtol=1e-12, atol=0)  # homogeneity
    (grad,) = torch.autograd.grad(g.sum() + k.diag(x).sum(), x)
    assert torch.isfinite(grad).all()


def test_input_layouts_and_spec():
    x = _images(3, 1, 6, 6, seed=5)
    k = kz.kernel("ckn")
    assert k.spec == ("ckn(filter_size=[3, 3], subsampling=[2, 2], sigma=[0.6, 0.6], "
                      "kappa=['exp', 'exp'], n_layers=2, image_shape=None, centering=False)")
    assert kz.kernel(k.spec) == k
    k2 = kz.kernel("ckn", filter_size=[3, 5], n_layers=2, image_shape=(1, 6, 6))
    assert kz.kernel(k2.spec) == k2 and k2.sigma == [0.6, 0.6]
    ref = k.gram(x)
    torch.testing.assert_close(k.gram(x[:, 0]), ref)  # (n, H, W): one channel
    torch.testing.assert_close(kz.kernel("ckn", image_shape=[1, 6, 6]).gram(x.reshape(3, -1)), ref)
    assert k.approximations == ("layerwise", "supervised", "nystrom")


@pytest.mark.parametrize("kwargs,error,match", [
    ({"filter_size": 4}, ValueError, "filter_size"),
    ({"filter_size": [3, 2]}, ValueError, "filter_size"),
    ({"subsampling": 0}, ValueError, "subsampling"),
    ({"sigma": 0.0}, ValueError, "sigma"),
    ({"sigma": -1.0, "kappa": "exp"}, ValueError, "sigma"),
    ({"kappa": "relu"}, ValueError, "kappa"),
    ({"filter_size": [3, 3], "subsampling": [2, 2, 2]}, ValueError, "subsampling"),
    ({"n_layers": 3, "filter_size": [3, 3]}, ValueError, "filter_size"),
    ({"n_layers": 0}, ValueError, "n_layers"),
    ({"filter_size": 2.5}, TypeError, "filter_size"),
    ({"image_shape": (1, 6)}, ValueError, "image_shape"),
    ({"depth": 2}, TypeError, "depth"),
])
def test_bad_parameters_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        kz.kernel("ckn", **kwargs)


def test_sigma_ignored_without_exp_and_bad_inputs():
    assert kz.kernel("ckn", sigma=0.0, kappa="poly2").sigma == [0.0, 0.0]
    k = kz.kernel("ckn", filter_size=[5, 5])
    with pytest.raises(ValueError, match="smaller than the filter"):
        k.gram(_images(2, 1, 4, 4))
    with pytest.raises(ValueError, match="smaller than the filter"):
        k.gram(_images(2, 1, 6, 6))  # 6 -> 3 after the first pooling
    with pytest.raises(ValueError, match="channel"):
        kz.kernel("ckn").gram(_images(2, 1, 6, 6), _images(2, 2, 6, 6))
    with pytest.raises(ValueError, match="image_shape"):
        kz.kernel("ckn").gram(_images(2, 1, 6, 6).reshape(2, -1))


def test_gradcheck_exact_kernel():
    x = _images(2, 1, 4, 4, seed=6).requires_grad_(True)
    y = _images(2, 1, 4, 4, seed=7)
    k = kz.kernel("ckn", filter_size=[3, 1], subsampling=[2, 1], kappa=["exp", "arccos1"])
    assert torch.autograd.gradcheck(lambda a: k.gram(a, y), (x,))


def test_blocks_and_tiles_do_not_change_values():
    x = _images(7, 2, 6, 6, seed=8)
    k = kz.kernel("ckn", kappa=["arccos1", "exp"])
    ref = k.gram(x)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for budget in (1, 30_000, 300_000):
            torch.testing.assert_close(k.gram(x, memory_budget=budget), ref, rtol=1e-12, atol=0)
            torch.testing.assert_close(k.gram(x, x[:3], memory_budget=budget), ref[:, :3],
                                       rtol=1e-12, atol=0)
    with pytest.warns(RuntimeWarning, match="budget"):
        k.gram(x[:2], memory_budget=1000)


# ----------------------------------------------------------------- shared mixin
class CKNInputs:
    shape = (2, 5, 5)

    def inputs(self, dtype=torch.float64):
        return _images(8, *self.shape, seed=11, dtype=dtype), _images(5, *self.shape, seed=12,
                                                                       dtype=dtype)


@pytest.mark.parametrize("spec", [
    "ckn",
    "ckn(filter_size=[3, 1], subsampling=[1, 2], kappa=['arccos0', 'arccos1'])",
    "ckn(filter_size=[3], subsampling=[3], kappa=['poly2'], sigma=[1.0])",
])
class TestCKN(CKNInputs, KernelTestMixin):
    @pytest.fixture(autouse=True)
    def _spec(self, spec):
        self.spec = spec

    def create(self):
        return kz.kernel(self.spec)


APPROX = [
    ("ckn", "layerwise", 6),
    ("ckn(kappa=['arccos1', 'exp'])", "layerwise", [5, 4]),
    ("ckn", "nystrom", 5),
]


@pytest.mark.parametrize("spec,method,budget", APPROX)
class TestCKNApproximations(CKNInputs, KernelTestMixin):
    is_approximation = True
    shape = (1, 6, 6)

    @pytest.fixture(autouse=True)
    def _params(self, spec, method, budget):
        self.spec, self.method, self.budget = spec, method, budget

    def create(self):
        return kz.kernel(self.spec).approximate(self.method, budget=self.budget, seed=3)


def _labelled(n=60, seed=0, dtype=torch.float64):
    """Two classes of 1x6x6 images: a horizontal or a vertical bar, shifted, with noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = 0.3 * torch.randn(n, 1, 6, 6, generator=g, dtype=torch.float64)
    pos = torch.randint(1, 5, (n,), generator=g)
    for i in range(n):
        if y[i] == 0:
            x[i, 0, pos[i], :] += 1.0
        else:
            x[i, 0, :, pos[i]] += 1.0
    return x.to(dtype), y


class TestSupervisedMixin(CKNInputs, KernelTestMixin):
    is_approximation = True
    shape = (1, 6, 6)

    def create(self):
        return kz.kernel("ckn").approximate(
            "supervised", budget=[4, 4], seed=0, epochs=1, batch_size=8, progress=False
        )

    def fitted(self, dtype=torch.float64):
        x, _ = self.inputs(dtype)
        return self.create().fit(x, torch.arange(x.shape[0]) % 2)


# ----------------------------------------------------------------- Nyström networks
def test_layerwise_equals_exact_with_all_patches_as_anchors():
    x = _images(3, 1, 5, 5, seed=13)
    for spec in ("ckn", "ckn(filter_size=[3, 3], subsampling=[2, 1], kappa=['arccos1', 'poly2'])",
                 "ckn(kappa='exp', sigma=1.0, n_layers=3, subsampling=[1, 2, 1])"):
        k = kz.kernel(spec)
        a = k.approximate("layerwise", budget=10_000, seed=0).fit(x)
        assert a.anchors_[0].shape[0] == 75  # every distinct non-zero patch of 3 images
        assert rel_err(a.gram(x), k.gram(x)) < 1e-7


def test_layerwise_error_decreases_with_anchors(digits):
    x = torch.tensor(digits[0][:20].reshape(-1, 1, 8, 8))
    k = kz.kernel("ckn")
    exact = k.gram(x)
    errors = [rel_err(k.approximate("layerwise", budget=b, seed=0).fit(x).gram(x), exact)
              for b in (4, 16, 64)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.02


def test_layerwise_seeded_and_options():
    x = _images(6, 1, 6, 6, seed=14)
    k = kz.kernel("ckn")
    a = k.approximate("layerwise", budget=[5, 3], seed=4, n_patches=50).fit(x)
    b = k.approximate("layerwise", budget=[5, 3], seed=4, n_patches=50).fit(x)
    c = k.approximate("layerwise", budget=[5, 3], seed=5, n_patches=50).fit(x)
    assert all(torch.equal(p, q) for p, q in zip(a.anchors_, b.anchors_))
    assert not torch.equal(a.anchors_[0], c.anchors_[0])
    assert [z.shape[0] for z in a.anchors_] == [5, 3]
    assert a.n_features == 3 * 2 * 2
    for z in a.anchors_:
        torch.testing.assert_close(z.norm(dim=1), torch.ones(z.shape[0], dtype=z.dtype))
    with pytest.raises(ValueError, match="budget"):
        k.approximate("layerwise", budget=[4, 4, 4])
    with pytest.raises(TypeError, match="budget"):
        k.approximate("layerwise", budget=2.5)
    with pytest.raises(TypeError, match="unknown option"):
        k.approximate("layerwise", budget=4, n_anchors=3)


def test_spherical_kmeans_recovers_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.nn.functional.normalize(torch.randn(3, 5, generator=g, dtype=torch.float64))
    pts = centres.repeat(40, 1) + 0.01 * torch.randn(120, 5, generator=g, dtype=torch.float64)
    pts = torch.nn.functional.normalize(pts)
    found = spherical_kmeans(pts, 3, 10, torch.Generator().manual_seed(1))
    assert (found @ centres.T).max(0).values.min() > 0.999


def test_gradcheck_inv_sqrt_and_layer():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(5, 5, generator=g, dtype=torch.float64)
    s = (a @ a.T + 0.5 * torch.eye(5, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda m: inv_sqrt_psd(0.5 * (m + m.T), eps=1e-3), (s,))
    anchors = torch.randn(3, 2 * 9, generator=g, dtype=torch.float64)
    layer = CKNLayer(anchors, 3, 2, "exp", 0.8, eps=1e-3).double()
    x = torch.randn(2, 2, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp: layer(inp), (x,))
    weight = layer.weight.detach().clone().requires_grad_(True)

    def by_anchors(w):
        return torch.func.functional_call(layer, {"weight": w}, (x.detach(),))

    assert torch.autograd.gradcheck(by_anchors, (weight,))
    arc = CKNLayer(anchors, 3, 1, "arccos1", 1.0).double()
    assert torch.autograd.gradcheck(lambda inp: arc(inp), (x,))


# ----------------------------------------------------------------- supervised
def test_supervised_training_learns():
    x, y = _labelled(80, seed=0)
    a = kz.kernel("ckn", filter_size=[3, 3], subsampling=[2, 2]).approximate(
        "supervised", budget=[8, 8], seed=0, epochs=4, batch_size=16, lr=2.0, progress=False,
    ).fit(x, y)
    assert a.loss_history_[-1] < a.loss_history_[0]
    xt, yt = _labelled(80, seed=1)
    assert a.score(xt, yt) > 0.75
    assert a.predict(xt).shape == (80,)
    lw = kz.kernel("ckn").approximate("layerwise", budget=[8, 8], seed=0).fit(x)
    assert not torch.equal(a.anchors_[0], lw.anchors_[0])  # the anchors moved
    for z in a.anchors_:
        torch.testing.assert_close(z.norm(dim=1), torch.ones(z.shape[0], dtype=z.dtype))


def test_supervised_needs_labels_and_squared_hinge(tmp_path):
    x, y = _labelled(40, seed=2)
    k = kz.kernel("ckn")
    with pytest.raises(ValueError, match="labels"):
        k.approximate("supervised", budget=4, progress=False).fit(x)
    with pytest.raises(ValueError, match="classifier"):
        k.approximate("supervised", budget=4, classifier="hinge")
    a = k.approximate("supervised", budget=4, seed=1, epochs=2, batch_size=10,
                      classifier="squared_hinge", progress=False).fit(x, y)
    a.save(tmp_path / "s.pt")
    b = kz.load(tmp_path / "s.pt")
    torch.testing.assert_close(b.predict(x), a.predict(x))
    assert a.score(x, y) > 0.6


# ----------------------------------------------------------------- fast paths of the exact kernel
def test_pair_pooling_equals_dense_pooling_products():
    from kernelzoo.kernels.functional.ckn_ops import (
        PairPooling,
        pool_pairs,
        trace_pooled,
        trace_weights,
    )

    g = torch.Generator().manual_seed(20)
    for (h, w), s in [((7, 6), 2), ((14, 14), 5), ((5, 8), 3)]:
        m = torch.randn(3, h, w, h, w, generator=g, dtype=torch.float64)
        g_rows, g_cols = pooling_matrix(h, s), pooling_matrix(w, s)
        ref = pool_pairs(m, g_rows, g_cols)
        pool = PairPooling(s, torch.float64)
        torch.testing.assert_close(pool(m), ref, rtol=1e-12, atol=1e-14)
        # padded columns after the second image's positions are ignored
        padded = torch.cat([m.reshape(3, h, w, h * w),
                            torch.randn(3, h, w, 5, generator=g, dtype=torch.float64)], 3)
        torch.testing.assert_close(pool(padded), ref, rtol=1e-12, atol=1e-14)
        weights = trace_weights((h, w), s).reshape(-1)
        torch.testing.assert_close(m.reshape(3, -1) @ weights,
                                   trace_pooled(m, g_rows.T @ g_rows, g_cols.T @ g_cols),
                                   rtol=1e-12, atol=1e-14)


def test_pair_pooling_float64_takes_the_matrix_path_and_agrees_with_float32_convolutions():
    # float64 on CPU has no oneDNN depthwise convolution (a per-channel fallback
    # 30-60x slower): PairPooling uses the banded products there
    from kernelzoo.kernels.functional.ckn_ops import PairPooling

    g = torch.Generator().manual_seed(23)
    m = torch.randn(2, 9, 9, 9, 9, generator=g, dtype=torch.float64)
    out64 = PairPooling(3, torch.float64)(m)
    out32 = PairPooling(3, torch.float32)(m.float())
    torch.testing.assert_close(out64, pool_pairs_ref(m, 3), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(out32.double(), out64, rtol=1e-5, atol=1e-5)
    m.requires_grad_(True)
    PairPooling(3, torch.float64)(m).sum().backward()
    assert torch.isfinite(m.grad).all()


def pool_pairs_ref(m, s):
    from kernelzoo.kernels.functional.ckn_ops import pool_pairs

    h, w = m.shape[1], m.shape[2]
    return pool_pairs(m, pooling_matrix(h, s), pooling_matrix(w, s))


@pytest.mark.parametrize("dtype,size", [(torch.float64, 8), (torch.float32, 16)])
def test_channel_padding_and_sub_blocks_do_not_change_values(monkeypatch, dtype, size):
    import kernelzoo.kernels.ckn as ckn_module
    import kernelzoo.kernels.ckn_plan as ckn_plan
    from kernelzoo.kernels.functional.ckn_ops import channel_padding

    assert channel_padding(size * size, torch.finfo(dtype).bits // 8) > 0  # the padded geometry
    x = _images(5, 1, size, size, seed=21, dtype=dtype)
    y = _images(3, 1, size, size, seed=22, dtype=dtype)
    for spec in ("ckn(subsampling=[2, 3])", "ckn(kappa=['arccos1', 'exp'], subsampling=[2, 2])"):
        k = kz.kernel(spec)
        padded = k.gram(x, y)
        with monkeypatch.context() as patch:
            patch.setattr(ckn_module, "channel_padding", lambda positions, item: 0)
            torch.testing.assert_close(padded, k.gram(x, y), rtol=1e-12 if dtype == torch.float64
                                       else 1e-6, atol=0)
        with monkeypatch.context() as patch:  # several pairs per first-layer sub-block and block
            item = torch.finfo(dtype).bits // 8  # 2 pairs per sub-block, 7 per block
            patch.setattr(ckn_plan, "_CPU_BLOCK_BYTES", 2 * item * size**4)
            patch.setattr(ckn_plan, "_CPU_LATER_BYTES", 7 * item * size**4 // 16)
            plan = k._plan(x)
            assert (k._pairs_per_block(plan, x, 1 << 30), plan.first_block) == (7, 2)
            torch.testing.assert_close(k.gram(x, y), padded, rtol=1e-12 if dtype == torch.float64
                                       else 1e-6, atol=0)


def test_exp_with_small_sigma_does_not_overflow():
    # log2(e) / sigma^2 >= 64: the last layer subtracts 1/sigma^2 before the exponential
    spec = "ckn(filter_size=3, subsampling=[2, 2], sigma=[0.6, 0.1], kappa='exp')"
    x = _images(2, 1, 5, 5, seed=23)
    y = _images(2, 1, 5, 5, seed=24)
    ref = _naive_gram(x.numpy(), y.numpy(), spec)
    np.testing.assert_allclose(kz.kernel(spec).gram(x, y).numpy(), ref, rtol=1e-10, atol=1e-14)
    g32 = kz.kernel(spec).gram(x.float(), y.float())
    assert torch.isfinite(g32).all()
    np.testing.assert_allclose(g32.double().numpy(), ref, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "spec", ["ckn(n_layers=1, subsampling=2)", "ckn(n_layers=1, subsampling=1)", "ckn",
             "ckn(n_layers=1, kappa='arccos1')"]
)
def test_fast_path_equals_differentiable_path_over_many_sub_blocks(spec):
    """Regression: the fused-exp buffer was reused across first-layer sub-blocks
    without pooling (one layer), so n >= 8 images gave a wrong, non-PSD Gram."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(24, 1, 12, 12, generator=g, dtype=torch.float64)
    k = kz.kernel(spec)
    fast = k.gram(x)
    slow = k.gram(x.clone().requires_grad_(True)).detach()
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=1e-10 * float(slow.abs().max()))
    assert torch.linalg.eigvalsh(fast).min() > -1e-8 * float(fast.abs().max())
