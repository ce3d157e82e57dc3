"""Issue 17: the activations gelu, sin, cos, sign and leaky_relu, and the Myrtle kernels.

Exact kernels against neural-tangents 0.6.5 (``tests/data/nt/*.npz``, written by
``tests/data/make_nt_references.py``), the shared mixin, zero / identical /
large inputs, the finite-width approximations converging with width, clear
errors, and that the new ``negative_slope`` parameter changes nothing for
existing specs and saved files.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo import registry
from kernelzoo.approx.base import payload_checksum
from kernelzoo.kernels.functional.activations import activate, activate_diag, diag_derivative
from tests.kernel_mixin import KernelTestMixin, SpecKernelChecks, rel_err

NT = Path(__file__).resolve().parent / "data" / "nt"
NEW = ("gelu", "sin", "cos", "sign", "leaky_relu")
ACTIVATION_FILES = sorted(p.stem for p in NT.glob("*.npz") if not p.stem.startswith("myrtle"))


@pytest.fixture(autouse=True)
def _eager_only(monkeypatch):
    monkeypatch.setenv("KERNELZOO_COMPILE", "0")


def _load(name):
    data = np.load(NT / f"{name}.npz")
    spec = json.loads(str(data["spec"]))
    x2 = data["x2"] if "x2" in data.files else None
    return spec, data["x1"], x2, {"nngp": data["nngp"], "ntk": data["ntk"]}


def _off_diagonal(a: np.ndarray) -> np.ndarray:
    return a[~np.eye(len(a), dtype=bool)]


# ----------------------------------------------------------------- neural-tangents
def test_every_new_activation_has_references():
    for act in NEW:
        for kind in ("fc", "conv"):
            assert any(n.startswith(f"{kind}_{act}") for n in ACTIVATION_FILES), (act, kind)


@pytest.mark.parametrize("name", ACTIVATION_FILES)
@pytest.mark.parametrize("family,tol", [("nngp", 1e-10), ("ntk", 1e-7)])
def test_activations_match_neural_tangents(name, family, tol):
    spec, x1, x2, ref = _load(name)
    k = kz.kernel(family, **spec)
    gram = k.gram(x1, x2).numpy()
    want = ref[family]
    if spec["activation"] == "sign" and x2 is None:
        # neural-tangents' Sign NNGP diagonal is ~1e-4 off (and with it the NTK's, which
        # after a sign layer is the NNGP of the readout): compare the off-diagonal entries,
        # and the diagonal with its exact value (E[sign(u)^2] = 1 at every position)
        assert rel_err(torch.from_numpy(_off_diagonal(gram)),
                       torch.from_numpy(_off_diagonal(want))) < tol
        if spec.get("readout", "flatten") == "flatten":
            w2, b2 = spec["weight_std"] ** 2, spec["bias_std"] ** 2
            np.testing.assert_allclose(np.diag(gram), w2 + b2, rtol=1e-14)
    else:
        assert rel_err(torch.from_numpy(gram), torch.from_numpy(want)) < tol
    if x2 is None:
        np.testing.assert_allclose(k.diag(x1).numpy(), np.diag(gram), rtol=1e-12)


@pytest.mark.parametrize("depth", [5, 7, 10])
def test_myrtle_matches_neural_tangents(depth):
    spec, x1, _, ref = _load(f"myrtle{depth}")
    assert spec["architecture"] == "myrtle" and spec["depth"] == depth
    nngp, ntk = kz.kernel("ntk", **spec).gram_nngp_ntk(x1)
    assert rel_err(nngp, torch.from_numpy(ref["nngp"])) < 1e-10
    assert rel_err(ntk, torch.from_numpy(ref["ntk"])) < 1e-7
    if depth == 5:
        torch.testing.assert_close(kz.kernel("nngp", **spec).gram(x1), nngp, rtol=1e-13, atol=0)
        torch.testing.assert_close(kz.kernel("ntk", **spec).diag(x1), torch.diagonal(ntk),
                                   rtol=1e-12, atol=0)


@pytest.mark.parametrize("depth,conv_depth,pooling", [
    (5, 4, [1, 2, 2, 8]), (7, 6, [1, 2, 1, 2, 1, 8]), (10, 9, [1, 1, 2, 1, 1, 2, 1, 1, 8]),
])
def test_myrtle_is_the_pooled_conv_net(depth, conv_depth, pooling):
    myrtle = kz.kernel("ntk", architecture="myrtle", depth=depth)
    conv = kz.kernel("ntk", architecture="conv", depth=conv_depth, pooling=pooling,
                     readout="flatten")
    assert myrtle.net.depth == conv_depth and myrtle.net.pooling == tuple(pooling)
    assert myrtle.is_conv and myrtle.net.filter_size == 3 and myrtle.net.padding == "same"
    if depth == 5:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(2, 1, 32, 32, dtype=torch.float64, generator=g)
        torch.testing.assert_close(myrtle.gram(x), conv.gram(x), rtol=1e-13, atol=0)


def test_myrtle_errors_are_named():
    for depth in (2, 4, 6, 11):
        with pytest.raises(ValueError, match=r"architecture='myrtle' takes depth=5, 7 or 10"):
            kz.kernel("nngp", architecture="myrtle", depth=depth)
    with pytest.raises(ValueError, match="fixes pooling"):
        kz.kernel("nngp", architecture="myrtle", depth=5, pooling=[1, 2, 2, 8])
    with pytest.raises(ValueError, match="fixes filter_size"):
        kz.kernel("ntk", architecture="myrtle", depth=7, filter_size=5)
    with pytest.raises(ValueError, match="fixes padding"):
        kz.kernel("ntk", architecture="myrtle", depth=7, padding="valid")
    k = kz.kernel("nngp", architecture="myrtle", depth=5)
    for shape in ((2, 3, 28, 28), (2, 3, 32, 48), (2, 3, 8, 8)):
        with pytest.raises(ValueError, match="so X's height and width must be multiples of 32"):
            k.gram(torch.zeros(shape))


def test_myrtle_memory_estimate_and_budget():
    """One 32x32 pair's working memory is counted at the input size (the largest layer),
    and a budget smaller than that still gives the same Gram (one pair per block)."""
    from kernelzoo.kernels.functional.conv_pairs import full_pair_bytes

    k = kz.kernel("nngp", architecture="myrtle", depth=5)
    per_pair = full_pair_bytes(32, 32, 8, k.net)
    assert 32**4 * 8 * 7 <= per_pair <= 32**4 * 8 * 12
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    full = k.gram(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        small = k.gram(x, memory_budget=per_pair)
    torch.testing.assert_close(small, full, rtol=1e-14, atol=0)


def test_myrtle_stays_out_of_compare_defaults():
    for family in ("nngp", "ntk"):
        variants = registry.kernel_class(family).compare_variants
        assert all(v.get("architecture") != "myrtle" for v in variants)


# ----------------------------------------------------------------- the dual maps
def _gauss_hermite_dual(act, k12, k11, k22, slope=0.01, n=120):
    """E[f(u) f(v)] and E[f'(u) f'(v)] by 2-D Gauss-Hermite quadrature (smooth activations)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / w.sum()
    l11 = math.sqrt(k11)
    l21 = k12 / l11
    l22 = math.sqrt(max(k22 - l21**2, 0.0))
    u = l11 * z[:, None] + 0 * z[None, :]
    v = l21 * z[:, None] + l22 * z[None, :]
    ww = w[:, None] * w[None, :]
    from scipy.special import erf

    def phi(x):
        return 0.5 * (1 + erf(x / math.sqrt(2)))

    f, df = {
        "gelu": (lambda x: x * phi(x),
                 lambda x: phi(x) + x * np.exp(-x * x / 2) / math.sqrt(2 * math.pi)),
        "sin": (np.sin, np.cos),
        "cos": (np.cos, lambda x: -np.sin(x)),
    }[act]
    return float((ww * f(u) * f(v)).sum()), float((ww * df(u) * df(v)).sum())


@pytest.mark.parametrize("act", ["gelu", "sin", "cos"])
def test_smooth_duals_match_quadrature(act):
    for k11, k22, rho in [(0.7, 1.3, 0.4), (2.0, 0.5, -0.8), (1.0, 1.0, 0.999), (0.3, 0.3, 0.0)]:
        k12 = rho * math.sqrt(k11 * k22)
        want_a, want_d = _gauss_hermite_dual(act, k12, k11, k22)
        t = torch.tensor(1.0, dtype=torch.float64)
        a, d = activate(torch.tensor(k12, dtype=torch.float64), t,
                        torch.tensor(k11, dtype=torch.float64),
                        torch.tensor(k22, dtype=torch.float64), act)
        assert abs(float(a) - want_a) < 1e-10 and abs(float(d) - want_d) < 1e-10, (act, rho)
    v = torch.tensor([0.0, 1e-8, 0.5, 3.0, 50.0], dtype=torch.float64)
    a, d = activate(v, torch.ones_like(v), v, v, act)
    torch.testing.assert_close(activate_diag(v, act), a, rtol=1e-13, atol=1e-300)
    torch.testing.assert_close(diag_derivative(v, act), d, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("slope", [0.01, 0.1, -0.5, 1.0, 2.0])
def test_leaky_relu_dual_is_relu_plus_linear(slope):
    """f = s u + (1 - s) relu(u); s = -1 is abs, s = 0 relu, s = 1 the identity."""
    g = torch.Generator().manual_seed(0)
    v1, v2 = torch.rand(50, generator=g, dtype=torch.float64) + 0.1, torch.rand(
        50, generator=g, dtype=torch.float64) + 0.1
    k = (2 * torch.rand(50, generator=g, dtype=torch.float64) - 1) * (v1 * v2).sqrt()
    t = torch.ones_like(k)
    relu_a, relu_d = activate(k, t, v1, v2, "relu")
    a, d = activate(k, t, v1, v2, "leaky_relu", slope)
    torch.testing.assert_close(a, slope * k + (1 - slope) ** 2 * relu_a, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(d, slope + (1 - slope) ** 2 * relu_d, rtol=1e-12, atol=1e-14)
    abs_a, _ = activate(k, t, v1, v2, "abs")
    torch.testing.assert_close(activate(k, t, v1, v2, "leaky_relu", -1.0)[0], abs_a,
                               rtol=1e-12, atol=1e-14)


# ----------------------------------------------------------------- numerics
@pytest.mark.parametrize("act", NEW)
@pytest.mark.parametrize("family", ["nngp", "ntk"])
@pytest.mark.parametrize("architecture", ["fc", "conv"])
def test_zero_identical_and_large_inputs(act, family, architecture):
    """No NaN from zero or identical inputs; identical rows give the diagonal; huge inputs
    give a finite Gram or the documented OverflowError, never NaN."""
    k = kz.kernel(family, architecture=architecture, activation=act, bias_std=0.2, depth=2,
                  readout="gap")
    g = torch.Generator().manual_seed(3)
    shape = (2, 4, 4) if architecture == "conv" else (6,)
    x = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    probe = torch.stack([x[0], x[0], torch.zeros_like(x[0]), x[1], -x[1]])
    gram = k.gram(probe)
    assert bool(torch.isfinite(gram).all())
    torch.testing.assert_close(gram[0, 1], gram[0, 0], rtol=1e-12, atol=0)
    torch.testing.assert_close(torch.diagonal(gram), k.diag(probe), rtol=1e-12, atol=1e-300)
    assert float(torch.linalg.eigvalsh(gram).min()) > -1e-10 * float(gram.diagonal().sum())
    for scale in (1e-150, 1e-8, 1e4, 1e100, 1e300):
        try:
            big = k.gram(probe * scale)
        except OverflowError as exc:
            assert "X" in str(exc)
            continue
        assert bool(torch.isfinite(big).all()), (scale, big)
    leaf = probe.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(k.gram(leaf).sum() + k.diag(leaf).sum(), leaf) if (
        architecture == "fc") else (torch.zeros(1),)
    assert bool(torch.isfinite(grad).all())


@pytest.mark.parametrize("act", ["gelu", "sin", "cos", "sign", "erf"])
def test_non_homogeneous_activations_are_not_declared_homogeneous(act):
    assert kz.kernel("nngp", activation=act).homogeneity is None
    assert kz.kernel("nngp", activation="leaky_relu").homogeneity == 1
    assert kz.kernel("nngp", activation="leaky_relu", bias_std=0.1).homogeneity is None


def test_leaky_relu_scales_like_relu():
    k = kz.kernel("ntk", activation="leaky_relu", negative_slope=0.2, depth=3)
    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(k.gram(8.0 * x), 64.0 * k.gram(x), rtol=1e-13, atol=0)


# ----------------------------------------------------------------- parameters and files
def test_negative_slope_is_leaky_relu_only():
    with pytest.raises(ValueError, match="negative_slope is for activation='leaky_relu'"):
        kz.kernel("nngp", activation="relu", negative_slope=0.2)
    with pytest.raises(TypeError, match="negative_slope"):
        kz.kernel("nngp", activation="leaky_relu", negative_slope="0.1")
    with pytest.raises(ValueError, match="negative_slope"):
        kz.kernel("nngp", activation="leaky_relu", negative_slope=float("nan"))
    k = kz.kernel("nngp(activation='leaky_relu', negative_slope=0.3)")
    assert kz.kernel(k.spec) == k and k.negative_slope == 0.3


OLD_SPECS = [  # spec strings written before negative_slope existed
    "nngp(architecture='fc', depth=2, activation='relu', weight_std=1.4142135623730951, "
    "bias_std=0.0, filter_size=3, padding='same', readout='gap', readout_dense=True, "
    "pooling=None, image_shape=None)",
    "ntk(architecture='conv', depth=3, activation='erf', bias_std=0.1)",
    "nngp",
]


@pytest.mark.parametrize("old", OLD_SPECS)
def test_old_specs_name_the_same_kernel(old):
    k = kz.kernel(old)
    assert k.negative_slope == 0.01
    assert registry.same_kernel(old, k.spec)
    assert kz.kernel(k.spec) == k


def test_old_saved_file_loads_with_the_same_spec(tmp_path):
    """A monte-carlo file whose params and spec predate negative_slope (rewritten so, with
    its checksum) loads, to the kernel of today's spec and the same Gram."""
    x = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    a = kz.kernel("nngp", depth=2, bias_std=0.1).approximate("monte-carlo", budget=16,
                                                               seed=2).fit(x)
    path = tmp_path / "mc.pt"
    a.save(path)
    payload = torch.load(path, weights_only=True)
    payload["params"].pop("negative_slope")
    payload["spec"] = payload["spec"].replace(", negative_slope=0.01", "")
    assert "negative_slope" not in payload["spec"]
    payload["checksum"] = payload_checksum(payload)
    torch.save(payload, path)
    b = kz.load(path)
    assert b.kernel.spec == a.kernel.spec
    torch.testing.assert_close(b.gram(x), a.gram(x), rtol=0, atol=0)


# ----------------------------------------------------------------- finite width
def _x(n=16, d=6, seed=0):
    return torch.randn(n, d, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def _err(k, method, width, x, seeds=(0, 1), **options):
    exact = k.gram(x)
    return np.mean([rel_err(k.approximate(method, budget=width, seed=s, **options).fit(x).gram(x),
                            exact) for s in seeds])


@pytest.mark.parametrize("act", NEW)
def test_monte_carlo_converges_with_width(act):
    k = kz.kernel("nngp", activation=act, bias_std=0.2, negative_slope=0.1 if act ==
                  "leaky_relu" else 0.01)
    x = _x()
    errs = [_err(k, "monte-carlo", w, x) for w in (32, 512, 8192)]
    assert errs[0] > errs[1] > errs[2], errs
    assert errs[2] < 0.05, errs


@pytest.mark.parametrize("act", NEW)
def test_empirical_ntk_converges_with_width(act):
    k = kz.kernel("ntk", activation=act, bias_std=0.2)
    x = _x(n=10)
    errs = [_err(k, "empirical", w, x) for w in (16, 128, 1024)]
    assert errs[0] > errs[2] and errs[1] > errs[2], errs
    assert errs[2] < 0.15, errs


@pytest.mark.parametrize("act", ["gelu", "sign"])
def test_conv_monte_carlo_is_unbiased(act):
    x = torch.randn(3, 2, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    k = kz.kernel("nngp", architecture="conv", depth=1, activation=act, readout="gap",
                  bias_std=0.3)
    a = k.approximate("monte-carlo", budget=32, seed=0, n_samples=100).fit(x)
    assert rel_err(a.gram(x), k.gram(x)) < 0.05


# ----------------------------------------------------------------- the shared mixin
def _vectors(dtype, n=7, m=4, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, d, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(m, d, generator=g, dtype=torch.float64).to(dtype))


def _images(dtype, n=4, m=3, size=4, channels=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, channels, size, size, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(m, channels, size, size, generator=g, dtype=torch.float64).to(dtype))


MIXIN_SPECS = [
    ("nngp", {"activation": "gelu", "bias_std": 0.1}),
    ("ntk", {"activation": "gelu", "depth": 3}),
    ("ntk", {"activation": "sin", "bias_std": 0.3}),
    ("nngp", {"activation": "cos"}),
    ("ntk", {"activation": "sign", "bias_std": 0.1}),
    ("ntk", {"activation": "leaky_relu", "negative_slope": 0.2}),
    ("ntk", {"architecture": "conv", "activation": "gelu", "readout": "gap"}),
    ("nngp", {"architecture": "conv", "activation": "sign", "readout": "flatten"}),
    ("ntk", {"architecture": "conv", "activation": "cos", "pooling": [2, 1]}),
    ("ntk", {"architecture": "conv", "activation": "leaky_relu", "negative_slope": 0.3,
             "readout": "flatten", "bias_std": 0.1}),
]


@pytest.mark.parametrize("family,params", MIXIN_SPECS,
                         ids=[f"{f}-{','.join(f'{k}={v}' for k, v in p.items())}"
                              for f, p in MIXIN_SPECS])
class TestNewActivations(SpecKernelChecks):
    image_inputs = staticmethod(_images)
    vector_inputs = staticmethod(_vectors)


class TestMyrtle(KernelTestMixin):
    """The Myrtle-5 NTK (whose recursion carries the NNGP) through the mixin on three
    and one 32x32 grey images: each image pair carries ~1M position pairs (the smallest
    inputs it takes, about a second per pair)."""

    rtol64 = 1e-10
    rtol32 = 1e-4
    scales = (1e3,)

    def create(self):
        return kz.kernel("ntk", architecture="myrtle", depth=5)

    def inputs(self, dtype=torch.float64):
        return _images(dtype, n=3, m=1, size=32, channels=1)

    def test_gradients_finite_at_zero_and_identical_inputs(self):
        pytest.skip("covered on small conv nets; too slow through the 32x32 recursion")


def test_kernelzoo_list_shows_the_activations_and_myrtle(capsys):
    from kernelzoo.cli import main

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for word in ("gelu", "sin", "cos", "sign", "leaky_relu", "negative_slope=0.01", "myrtle"):
        assert word in out, word
