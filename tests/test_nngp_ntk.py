"""nngp and ntk families: neural-tangents' oracle, an independent reference, the shared
mixin, the finite-width approximations and the errors for bad parameters."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo import _validation
from kernelzoo.kernels.functional import compile as kz_compile
from kernelzoo.kernels.functional import conv_pairs
from tests.kernel_mixin import KernelTestMixin, SpecKernelChecks, rel_err

ORACLE = Path(__file__).resolve().parent / "data"  # copies of the shared oracle files
ORACLE_FILES = ["fc_relu_d2", "fc_erf_d3_cross", "conv_relu_d2_gap", "conv_relu_d2_flatten"]


@pytest.fixture(autouse=True)
def _eager_only(monkeypatch):
    """CI runs the eager path (torch.compile is tested on its own below)."""
    monkeypatch.setenv("KERNELZOO_COMPILE", "0")


def _load_oracle(name):
    data = np.load(ORACLE / f"{name}.npz")
    spec = json.loads(str(data["spec"]))
    x2 = data["x2"] if "x2" in data.files else None
    return spec, data["x1"], x2, {"nngp": data["nngp"], "ntk": data["ntk"]}


# ----------------------------------------------------------------- oracle (neural-tangents)
@pytest.mark.parametrize("name", ORACLE_FILES)
@pytest.mark.parametrize("family,tol", [("nngp", 1e-10), ("ntk", 1e-7)])
def test_matches_neural_tangents_oracle(name, family, tol):
    spec, x1, x2, ref = _load_oracle(name)
    k = kz.kernel(family, **spec)
    gram = k.gram(x1, x2)
    assert gram.dtype == torch.float64
    assert rel_err(gram, torch.from_numpy(ref[family])) < tol
    if x2 is None:
        diag = k.diag(x1).numpy()
        np.testing.assert_allclose(diag, np.diag(ref[family]), rtol=tol)


# ----------------------------------------------------------------- independent reference
def _ref_activation(k12, k11, k22, activation, same_position=None):
    """E[f f] and E[f' f'] from the REFERENCES table, with arccos (not atan2)."""
    prod = k11 * k22
    if activation == "erf":
        q = (1 + 2 * k11) * (1 + 2 * k22)
        return (2 / np.pi) * np.arcsin(2 * k12 / np.sqrt(q)), (4 / np.pi) / np.sqrt(q - 4 * k12**2)
    norm = np.sqrt(prod)
    with np.errstate(invalid="ignore", divide="ignore"):
        c = np.where(norm > 0, k12 / np.where(norm > 0, norm, 1), 0.0)
    c = np.clip(c, -1, 1)
    theta = np.arccos(c)
    if same_position is not None:
        theta = np.where(same_position, 0.0, theta)
        c = np.where(same_position, 1.0, c)
    if activation == "relu":
        nngp = norm * (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / (2 * np.pi)
        return nngp, (np.pi - theta) / (2 * np.pi)
    nngp = (2 / np.pi) * norm * (np.sqrt(1 - c**2) + c * np.arcsin(c))
    return nngp, (2 / np.pi) * np.arcsin(c)


def _ref_spec(spec):
    full = {"architecture": "fc", "depth": 2, "activation": "relu", "weight_std": 2**0.5,
            "bias_std": 0.0, "filter_size": 3, "padding": "same", "readout": "gap",
            "readout_dense": True, "pooling": None}
    full.update(spec)
    full["bias_var"] = (full["bias_std"] or 0.0) ** 2
    full["weight_var"] = full["weight_std"] ** 2
    return full


def _ref_fc(x1, x2, spec):
    """Fully connected: the matrix recursion, written out for each of K12, K11, K22."""
    s = _ref_spec(spec)
    d = x1.shape[1]
    k12, k11, k22 = x1 @ x2.T / d, (x1 * x1).sum(1) / d, (x2 * x2).sum(1) / d
    t12 = None
    for layer in range(s["depth"]):
        k12 = s["weight_var"] * k12 + s["bias_var"]
        k11 = s["weight_var"] * k11 + s["bias_var"]
        k22 = s["weight_var"] * k22 + s["bias_var"]
        t12 = k12 if layer == 0 else s["weight_var"] * t12 + k12
        a12, d12 = _ref_activation(k12, k11[:, None], k22[None, :], s["activation"])
        a11, _ = _ref_activation(k11, k11, k11, s["activation"], same_position=True)
        a22, _ = _ref_activation(k22, k22, k22, s["activation"], same_position=True)
        k12, k11, k22, t12 = a12, a11, a22, t12 * d12
    if s["readout_dense"]:
        k12 = s["weight_var"] * k12 + s["bias_var"]
        t12 = s["weight_var"] * t12 + k12
    return k12, t12


def _ref_conv_window(k, s):
    """Conv step on a covariance over position pairs (h1, w1, h2, w2): the f^2 shifts
    (dy, dx) applied to both positions, padding by np.pad (not separable)."""
    f, h, w = s["filter_size"], k.shape[0], k.shape[1]
    if s["padding"] == "valid":
        kp, ho, wo = k, h - f + 1, w - f + 1
    else:
        lo, hi = (f - 1) // 2, f - 1 - (f - 1) // 2
        mode = "wrap" if s["padding"] == "circular" else "constant"
        kp, ho, wo = np.pad(k, [(lo, hi)] * 4, mode=mode), h, w
    out = np.zeros((ho, wo, ho, wo))
    for dy in range(f):
        for dx in range(f):
            out += kp[dy : dy + ho, dx : dx + wo, dy : dy + ho, dx : dx + wo]
    return s["weight_var"] / f**2 * out + s["bias_var"]


def _ref_pool(k, stride):
    """AvgPool (window = stride, SAME zero padding, / stride^2) of both positions, by loops
    over the output position pairs."""
    h, w = k.shape[:2]
    ho, wo = -(-h // stride), -(-w // stride)
    ph, pw = ho * stride - h, wo * stride - w
    kp = np.pad(k, [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)] * 2)
    out = np.zeros((ho, wo, ho, wo))
    for a in range(ho):
        for b in range(wo):
            for c in range(ho):
                for e in range(wo):
                    block = kp[a * stride : (a + 1) * stride, b * stride : (b + 1) * stride,
                               c * stride : (c + 1) * stride, e * stride : (e + 1) * stride]
                    out[a, b, c, e] = block.sum() / stride**4
    return out


def _ref_conv_pair(xa, xb, spec):
    """One image pair (C, H, W): the recursion over all position pairs."""
    s = _ref_spec(spec)
    c = xa.shape[0]
    k = {
        "12": np.einsum("chw,cij->hwij", xa, xb) / c,
        "11": np.einsum("chw,cij->hwij", xa, xa) / c,
        "22": np.einsum("chw,cij->hwij", xb, xb) / c,
    }
    t = None
    pooling = s["pooling"] or [1] * s["depth"]
    for layer in range(s["depth"]):
        k = {key: _ref_conv_window(v, s) for key, v in k.items()}
        t = k["12"] if layer == 0 else _ref_conv_window(t, dict(s, bias_var=0.0)) + k["12"]
        h, w = k["12"].shape[:2]
        var = {key: np.einsum("hwhw->hw", k[key + key]) for key in ("1", "2")}
        same = (np.arange(h)[:, None, None, None] == np.arange(h)[None, None, :, None]) & (
            np.arange(w)[None, :, None, None] == np.arange(w)[None, None, None, :]
        )
        new = {}
        for key, (v1, v2) in {"12": ("1", "2"), "11": ("1", "1"), "22": ("2", "2")}.items():
            new[key], dot = _ref_activation(k[key], var[v1][:, :, None, None],
                                            var[v2][None, None], s["activation"],
                                            None if key == "12" else same)
            if key == "12":
                t = t * dot
        k = new
        if pooling[layer] > 1:
            k = {key: _ref_pool(v, pooling[layer]) for key, v in k.items()}
            t = _ref_pool(t, pooling[layer])
    if s["readout"] == "gap":
        k12, t12 = k["12"].mean(), t.mean()
    else:
        k12, t12 = np.einsum("hwhw->hw", k["12"]).mean(), np.einsum("hwhw->hw", t).mean()
    if s["readout_dense"]:
        k12 = s["weight_var"] * k12 + s["bias_var"]
        t12 = s["weight_var"] * t12 + k12
    return k12, t12


def _ref_conv(x1, x2, spec):
    out = np.array([[_ref_conv_pair(a, b, spec) for b in x2] for a in x1])
    return out[..., 0], out[..., 1]


def _images(n, c=2, h=5, w=5, seed=0, zero_first=False):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, c, h, w))
    if zero_first:
        x[0] = 0.0
    return x


def test_reference_itself_matches_the_oracle():
    """The numpy reference agrees with neural-tangents (so it can judge other configs)."""
    for name in ("conv_relu_d2_gap", "conv_relu_d2_flatten"):
        spec, x1, _, ref = _load_oracle(name)
        nngp, ntk = _ref_conv(x1[:3], x1[:3], spec)
        assert rel_err(torch.from_numpy(nngp), torch.from_numpy(ref["nngp"][:3, :3])) < 1e-10
        assert rel_err(torch.from_numpy(ntk), torch.from_numpy(ref["ntk"][:3, :3])) < 1e-7
    spec, x1, x2, ref = _load_oracle("fc_erf_d3_cross")
    nngp, ntk = _ref_fc(x1, x2, spec)
    assert rel_err(torch.from_numpy(nngp), torch.from_numpy(ref["nngp"])) < 1e-10
    assert rel_err(torch.from_numpy(ntk), torch.from_numpy(ref["ntk"])) < 1e-7


CONV_CONFIGS = [
    {"depth": 1, "activation": "relu", "readout": "gap"},
    {"depth": 3, "activation": "relu", "bias_std": 0.2, "readout": "flatten"},
    {"depth": 2, "activation": "erf", "bias_std": 0.1, "readout": "gap", "weight_std": 1.3},
    {"depth": 2, "activation": "erf", "readout": "flatten", "padding": "circular"},
    {"depth": 2, "activation": "abs", "bias_std": 0.3, "readout": "gap", "padding": "circular"},
    {"depth": 3, "activation": "abs", "readout": "flatten", "readout_dense": False},
    {"depth": 2, "padding": "valid", "readout": "gap", "bias_std": None},
    {"depth": 1, "padding": "valid", "readout": "flatten", "filter_size": 5},
    {"depth": 2, "filter_size": 1, "readout": "gap", "bias_std": 0.1},
    {"depth": 2, "filter_size": 5, "readout": "flatten", "padding": "circular"},
    {"depth": 2, "filter_size": 4, "readout": "gap", "bias_std": 0.1},
    {"depth": 2, "readout": "gap", "readout_dense": False, "bias_std": 0.1},
    {"depth": 2, "pooling": [2, 1], "readout": "gap", "bias_std": 0.1},
    {"depth": 2, "pooling": [1, 2], "readout": "flatten", "activation": "erf"},
    {"depth": 3, "pooling": [2, 1, 2], "readout": "flatten", "activation": "abs",
     "padding": "circular"},
]


@pytest.mark.parametrize("config", CONV_CONFIGS,
                         ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()))
def test_conv_matches_reference(config):
    spec = dict(architecture="conv", **config)
    x1 = _images(3, zero_first=True, seed=1)
    x2 = _images(2, seed=2)
    nngp_ref, ntk_ref = _ref_conv(x1, np.concatenate([x1, x2]), spec)
    for family, ref, tol in (("nngp", nngp_ref, 1e-10), ("ntk", ntk_ref, 1e-7)):
        k = kz.kernel(family, **spec)
        both = np.concatenate([x1, x2])
        assert rel_err(k.gram(x1, both), torch.from_numpy(ref)) < tol
        assert rel_err(k.gram(x1), torch.from_numpy(ref[:, :3])) < tol
        np.testing.assert_allclose(k.diag(x1).numpy(), np.diag(ref[:, :3]), rtol=tol, atol=1e-300)


@pytest.mark.parametrize(
    "config",
    [{"depth": 1, "activation": "relu"}, {"depth": 2, "activation": "erf", "bias_std": 0.5},
     {"depth": 3, "activation": "abs", "bias_std": 0.1, "weight_std": 1.1},
     {"depth": 3, "activation": "relu", "readout_dense": False, "bias_std": None}],
)
def test_fc_matches_reference(config):
    g = np.random.default_rng(3)
    x1, x2 = g.standard_normal((7, 5)), g.standard_normal((4, 5))
    x1[0] = 0.0
    nngp_ref, ntk_ref = _ref_fc(x1, x2, config)
    for family, ref, tol in (("nngp", nngp_ref, 1e-10), ("ntk", ntk_ref, 1e-7)):
        assert rel_err(kz.kernel(family, **config).gram(x1, x2), torch.from_numpy(ref)) < tol


def test_fc_flattens_images_and_conv_takes_image_shape():
    x = _images(4, c=2, h=3, w=3, seed=5)
    fc = kz.kernel("ntk", depth=2)
    torch.testing.assert_close(fc.gram(x), fc.gram(x.reshape(4, -1)))
    conv = kz.kernel("nngp", architecture="conv", image_shape=(2, 3, 3))
    torch.testing.assert_close(conv.gram(x.reshape(4, -1)), conv.gram(x))
    assert kz.kernel(conv.spec) == conv
    assert "image_shape=[2, 3, 3]" in conv.spec
    pooled = kz.kernel("ntk", architecture="conv", pooling=[2, 1], bias_std=None)
    assert kz.kernel(pooled.spec) == pooled
    assert pooled.approximations == ("empirical", "nystrom")
    assert conv.approximations == ("monte-carlo", "nystrom")


def test_float32_close_to_float64():
    x = _images(4, seed=6)
    for family in ("nngp", "ntk"):
        for readout in ("gap", "flatten"):
            k = kz.kernel(family, architecture="conv", readout=readout, bias_std=0.1)
            g64 = k.gram(x)
            g32 = k.gram(x.astype(np.float32))
            assert g32.dtype == torch.float32
            assert rel_err(g32, g64) < 1e-5


def test_symmetric_gram_computes_each_unordered_pair_once():
    pairs = list(conv_pairs.pair_chunks(5, 5, True, 4, torch.device("cpu")))
    rows = torch.cat([r for r, _ in pairs])
    cols = torch.cat([c for _, c in pairs])
    assert len(rows) == 15 and bool((rows <= cols).all())
    assert len({(int(r), int(c)) for r, c in zip(rows, cols)}) == 15
    assert all(len(r) <= 4 for r, _ in pairs)
    cross = list(conv_pairs.pair_chunks(3, 4, False, 5, torch.device("cpu")))
    assert sum(len(r) for r, _ in cross) == 12


def test_monte_carlo_reference_at_large_width():
    """An independent numpy finite network (width 3000, 8 draws) gives the fc NNGP."""
    g = np.random.default_rng(7)
    x = g.standard_normal((6, 5))
    width, draws, b_std = 3000, 8, 0.2
    acc = np.zeros((6, 6))
    for _ in range(draws):
        h = x
        for _layer in range(2):
            w = g.standard_normal((h.shape[1], width))
            h = np.maximum(np.sqrt(2) * h @ w / np.sqrt(h.shape[1])
                           + b_std * g.standard_normal(width), 0)
        acc += 2 * h @ h.T / width + b_std**2
    exact = kz.kernel("nngp", depth=2, bias_std=b_std).gram(x)
    assert rel_err(torch.from_numpy(acc / draws), exact) < 0.03


# ----------------------------------------------------------------- the shared mixin
def _vectors(dtype, n=9, m=5, d=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype))


def _image_batch(dtype, n=5, m=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 2, 4, 4, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(m, 2, 4, 4, generator=g, dtype=torch.float64).to(dtype))


FAMILY_SPECS = [
    ("nngp", {"depth": 2, "bias_std": 0.1}),
    ("ntk", {"depth": 3, "activation": "erf", "bias_std": 0.2}),
    ("ntk", {"depth": 2, "activation": "abs"}),
    ("nngp", {"architecture": "conv", "readout": "gap", "bias_std": 0.1}),
    ("ntk", {"architecture": "conv", "readout": "gap", "bias_std": 0.1}),
    ("nngp", {"architecture": "conv", "readout": "flatten", "activation": "erf"}),
    ("ntk", {"architecture": "conv", "readout": "flatten", "bias_std": 0.1}),
    ("ntk", {"architecture": "conv", "readout": "gap", "pooling": [2, 1], "padding": "circular"}),
]


@pytest.mark.parametrize("family,params", FAMILY_SPECS,
                         ids=[f"{f}-{','.join(f'{k}={v}' for k, v in p.items())}"
                              for f, p in FAMILY_SPECS])
class TestInfiniteWidthKernels(SpecKernelChecks):
    image_inputs = staticmethod(_image_batch)
    vector_inputs = staticmethod(_vectors)


APPROXIMATIONS = [
    ("nngp", {"depth": 2, "bias_std": 0.1}, "monte-carlo", 64, {}),
    ("nngp", {"architecture": "conv", "readout": "gap", "bias_std": 0.1}, "monte-carlo", 8,
     {"n_samples": 2}),
    ("nngp", {"architecture": "conv", "readout": "flatten", "pooling": [2, 1]}, "monte-carlo", 8,
     {}),
    ("ntk", {"depth": 2, "bias_std": 0.1}, "empirical", 16, {}),
    ("ntk", {"architecture": "conv", "readout": "flatten", "bias_std": 0.1}, "empirical", 4, {}),
    ("nngp", {"architecture": "conv", "readout": "gap"}, "nystrom", 4, {}),
    ("ntk", {"depth": 2, "activation": "erf"}, "nystrom", 4, {}),
]


@pytest.mark.parametrize("family,params,method,budget,options", APPROXIMATIONS,
                         ids=[f"{a[0]}-{a[2]}-{a[1].get('architecture', 'fc')}"
                              f"-{a[1].get('readout', '')}" for a in APPROXIMATIONS])
class TestFiniteWidthApproximations(KernelTestMixin):
    is_approximation = True
    rtol64 = 1e-10
    rtol32 = 1e-4

    @pytest.fixture(autouse=True)
    def _params(self, family, params, method, budget, options):
        self.family, self.params, self.method = family, params, method
        self.budget, self.options = budget, options

    def create(self):
        k = kz.kernel(self.family, **self.params)
        return k.approximate(self.method, budget=self.budget, seed=3, **self.options)

    def inputs(self, dtype=torch.float64):
        if self.params.get("architecture") == "conv":
            # the empirical NTK recomputes Jacobians per tile under the mixin's tiny budgets
            return _image_batch(dtype, n=4) if self.method == "empirical" else _image_batch(dtype)
        return _vectors(dtype)


# ----------------------------------------------------------------- approximation quality
def _width_errors(family, method, params, widths, x, seeds=(0, 1)):
    k = kz.kernel(family, **params)
    exact = k.gram(x)
    return np.array([
        np.mean([rel_err(k.approximate(method, budget=w, seed=s).fit(x).gram(x), exact)
                 for s in seeds])
        for w in widths
    ])


def test_monte_carlo_error_falls_with_width():
    x, _ = _vectors(torch.float64, n=20, d=8)
    errs = _width_errors("nngp", "monte-carlo", {"depth": 2, "bias_std": 0.1}, [32, 256, 2048], x)
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.1
    # n_samples independent draws average out like a wider net
    k = kz.kernel("nngp", depth=2, bias_std=0.1)
    one = rel_err(k.approximate("monte-carlo", budget=64, seed=0).fit(x).gram(x), k.gram(x))
    many = k.approximate("monte-carlo", budget=64, seed=0, n_samples=16).fit(x)
    assert many.n_features == 16 * 65
    assert rel_err(many.gram(x), k.gram(x)) < 0.6 * one


def test_monte_carlo_conv_unbiased():
    """The mean over draws of the conv features' Gram approaches the NNGP."""
    x, _ = _image_batch(torch.float64, n=4)
    for readout in ("gap", "flatten"):
        k = kz.kernel("nngp", architecture="conv", depth=1, readout=readout, bias_std=0.3)
        a = k.approximate("monte-carlo", budget=32, seed=0, n_samples=100).fit(x)
        assert rel_err(a.gram(x), k.gram(x)) < 0.03


def test_empirical_ntk_error_falls_with_width():
    x, _ = _vectors(torch.float64, n=20, d=8)
    errs = _width_errors("ntk", "empirical", {"depth": 2, "bias_std": 0.1}, [16, 64, 256], x)
    assert errs[0] > errs[1] > errs[2]
    assert errs[2] < 0.25


def test_empirical_ntk_tiles_and_features_budget(monkeypatch):
    x, y = _vectors(torch.float64, n=7, m=4)
    a = kz.kernel("ntk", depth=2).approximate("empirical", budget=32, seed=1).fit(x)
    full = a.gram(x)
    tiled = a.gram(x, memory_budget=a.n_features * 8 * 4 * 3)  # a few rows per tile
    torch.testing.assert_close(tiled, full)
    torch.testing.assert_close(a.gram(x, y, memory_budget=20_000), a.gram(x, y))
    torch.testing.assert_close(a.diag(x), torch.diagonal(full))
    monkeypatch.setattr(_validation, "_global_budget", 1000)
    with pytest.raises(ValueError, match="Jacobian.*memory budget"):
        a.features(x)


# ----------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "params,error,match",
    [
        ({"depth": 0}, ValueError, "depth"),
        ({"activation": "tanh"}, ValueError, "activation"),
        ({"architecture": "rnn"}, ValueError, "architecture"),
        ({"padding": "reflect"}, ValueError, "padding"),
        ({"readout": "max"}, ValueError, "readout"),
        ({"weight_std": 0.0}, ValueError, "weight_std"),
        ({"bias_std": -1.0}, ValueError, "bias_std"),
        ({"filter_size": 0}, ValueError, "filter_size"),
        ({"architecture": "conv", "pooling": [2]}, ValueError, "pooling has 1 entries but depth=2"),
        ({"architecture": "conv", "pooling": 2}, TypeError, "pooling"),
        ({"architecture": "conv", "pooling": [0, 1]}, ValueError, "pooling"),
        ({"pooling": [1, 1]}, ValueError, "pooling is for architecture='conv'"),
        ({"image_shape": (3, 4)}, ValueError, "image_shape"),
        ({"widht": 3}, TypeError, "unknown parameter 'widht'"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    for family in ("nngp", "ntk"):
        with pytest.raises(error, match=match):
            kz.kernel(family, **params)


def test_bad_inputs_are_named():
    k = kz.kernel("ntk", architecture="conv", padding="valid", filter_size=3, depth=2)
    with pytest.raises(ValueError, match="padding='valid'.*leaves no pixel"):
        k.gram(_images(2, h=4, w=4))
    conv = kz.kernel("nngp", architecture="conv")
    with pytest.raises(ValueError, match="image_shape"):
        conv.gram(np.ones((3, 18)))
    with pytest.raises(ValueError, match="channels"):
        conv.gram(_images(2, c=2), _images(2, c=3))
    with pytest.raises(ValueError, match="image_shape"):
        kz.kernel("nngp", architecture="conv", image_shape=(2, 3, 3)).gram(np.ones((3, 17)))
    with pytest.raises(ValueError, match="readout_dense=True"):
        kz.kernel("ntk", readout_dense=False).approximate("empirical", budget=8)
    with pytest.raises(ValueError, match="monte-carlo"):
        kz.kernel("ntk").approximate("monte-carlo", budget=8)
    with pytest.raises(TypeError, match="budget"):
        kz.kernel("nngp").approximate("monte-carlo", budget=None)
    with pytest.raises(ValueError, match="n_samples"):
        kz.kernel("nngp").approximate("monte-carlo", budget=8, n_samples=0)


def test_tiny_budget_warns_and_agrees():
    x = _images(3, h=4, w=4)
    k = kz.kernel("ntk", architecture="conv", bias_std=0.1)
    with pytest.warns(RuntimeWarning, match="one image pair needs"):
        small = k.gram(x, memory_budget=1000)
    torch.testing.assert_close(small, k.gram(x), rtol=1e-12, atol=0)


# ----------------------------------------------------------------- torch.compile
# (the fallback on a compile failure: tests/test_conv_fused.py)


@pytest.mark.slow
def test_compiled_path_matches_eager(monkeypatch, request):
    if "slow" not in (request.config.getoption("-m") or ""):
        pytest.skip("compiles for ~20 s: run with -m slow")
    monkeypatch.setitem(kz_compile.STATE, "failed", False)
    x = _images(4, h=5, w=5, seed=9)
    k = kz.kernel("ntk", architecture="conv", bias_std=0.1, depth=2)
    budget = 400_000  # blocks of 3 of the 10 pairs, the last one shorter (dynamic axis)
    eager = k.gram(x, memory_budget=budget)
    monkeypatch.setenv("KERNELZOO_COMPILE", "1")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a fallback would warn
        compiled = k.gram(x, memory_budget=budget)
        cross = k.gram(x[:3], x[1:], memory_budget=budget)
    assert rel_err(compiled, eager) < 1e-12
    assert rel_err(cross, eager[:3, 1:]) < 1e-12
    assert not math.isnan(float(compiled.sum()))


@pytest.mark.parametrize(
    "rest",
    [
        "architecture='fc', depth=3, bias_std=0.2",
        "architecture='conv', depth=2",
        "architecture='conv', readout='flatten', bias_std=0.3",
        "architecture='conv', depth=2, pooling=[2, 1], readout='flatten'",
    ],
)
def test_gram_nngp_ntk_equals_each_family(rest):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(5, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randn(3, 1, 6, 6, generator=g, dtype=torch.float64)
    nngp, ntk = kz.kernel(f"nngp({rest})"), kz.kernel(f"ntk({rest})")
    for kernel in (nngp, ntk):
        for args in ((x,), (x, y)):
            k, t = kernel.gram_nngp_ntk(*args)
            torch.testing.assert_close(k, nngp.gram(*args), rtol=1e-13, atol=0)
            torch.testing.assert_close(t, ntk.gram(*args), rtol=1e-13, atol=0)
            assert not torch.equal(k, t)
