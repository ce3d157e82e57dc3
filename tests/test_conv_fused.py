"""The fused small-image conv path (functional/conv_fused.py): equal to the eager stages and
to neural-tangents, one compilation per structure (hyperparameters and block sizes at
runtime), the pairs-outermost stages (conv_pairs.py) compiled the same way, the fallback
when compiling fails, the float32 atan2, and huge inputs.

Compilation is traced with a counting backend that runs the captured graphs eagerly
(torch._dynamo's CompileCounter), so these tests are fast and need no C++ compiler;
``benchmarks/perf.py --only conv`` runs the inductor path for real."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch._dynamo.testing import CompileCounter

import kernelzoo as kz
from kernelzoo.kernels.functional import compile as kz_compile
from kernelzoo.kernels.functional import conv_fused

ORACLE = Path(__file__).resolve().parent / "data"


def _images(n, c=2, h=5, w=5, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, h, w, generator=g, dtype=torch.float64).to(dtype)


@pytest.fixture
def counter(monkeypatch):
    """Force the compiled path with a counting backend; yields the counter."""
    count = CompileCounter()
    monkeypatch.setenv("KERNELZOO_COMPILE", "1")
    monkeypatch.setattr(kz_compile, "BACKEND", count)
    monkeypatch.setitem(kz_compile.STATE, "failed", False)
    kz_compile.compiled.cache_clear()
    torch._dynamo.reset()
    yield count
    kz_compile.compiled.cache_clear()
    torch._dynamo.reset()


def _eager(kernel, x, y=None, diag=False):
    import os

    old = os.environ.get("KERNELZOO_COMPILE")
    os.environ["KERNELZOO_COMPILE"] = "0"
    try:
        return kernel.diag(x) if diag else kernel.gram(x, y)
    finally:
        if old is None:
            del os.environ["KERNELZOO_COMPILE"]
        else:
            os.environ["KERNELZOO_COMPILE"] = old


CONFIGS = [
    ("nngp", {"activation": "relu"}),
    ("ntk", {"activation": "relu", "bias_std": 0.3}),
    ("ntk", {"activation": "abs", "padding": "circular"}),
    ("nngp", {"activation": "erf", "padding": "valid", "bias_std": 0.2}),
    ("ntk", {"activation": "erf", "depth": 3, "readout_dense": False}),
    ("ntk", {"activation": "relu", "depth": 1}),
]


@pytest.mark.parametrize("family,params", CONFIGS)
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 2e-5)])
def test_fused_equals_eager_stages(counter, family, params, dtype, tol):
    k = kz.kernel(family, architecture="conv", **params)
    x, y = _images(5, h=6, w=6, dtype=dtype), _images(3, h=6, w=6, seed=1, dtype=dtype)
    assert conv_fused.fused_applies(k.net, x)
    for got, ref in (
        (k.gram(x), _eager(k, x.double())),
        (k.gram(x, y), _eager(k, x.double(), y.double())),
        (k.diag(x), _eager(k, x.double(), diag=True)),
    ):
        assert got.dtype == dtype
        assert float((got.double() - ref).norm() / ref.norm()) < tol
    assert counter.frame_count > 0  # the compiled path ran, not a fallback
    assert torch.equal(k.gram(x), k.gram(x).T)


@pytest.mark.parametrize("family,tol", [("nngp", 1e-10), ("ntk", 1e-7)])
def test_fused_matches_neural_tangents_oracle(counter, family, tol):
    data = np.load(ORACLE / "conv_relu_d2_gap.npz")
    spec = json.loads(str(data["spec"]))
    k = kz.kernel(family, **spec)
    x = torch.from_numpy(data["x1"])
    assert conv_fused.fused_applies(k.net, x)
    ref = torch.from_numpy(data[family])
    gram = k.gram(x)
    assert float((gram - ref).norm() / ref.norm()) < tol
    np.testing.assert_allclose(k.diag(x).numpy(), np.diag(data[family]), rtol=tol)
    gram32 = k.gram(x.float())  # float32: the rational atan2 and float32 rounding
    assert float((gram32.double() - ref).norm() / ref.norm()) < 1e-5


def test_hyperparameters_and_sizes_do_not_recompile(counter):
    """One compilation per (structure, dtype): weight_std, bias_std and the number of
    images (block sizes) are runtime values."""
    x = _images(9, h=4, w=4)
    kz.kernel("ntk", architecture="conv", depth=2).gram(x)
    frames = counter.frame_count
    assert frames > 0
    for weight_std, bias_std in ((1.0, 0.0), (2.0, 0.5), (0.7, 1.3)):
        k = kz.kernel("ntk", architecture="conv", depth=2, weight_std=weight_std,
                      bias_std=bias_std)
        for n in (2, 5, 9):
            got = k.gram(x[:n])
            ref = _eager(k, x[:n])
            assert float((got - ref).norm() / ref.norm()) < 1e-12
    assert counter.frame_count == frames
    kz.kernel("ntk", architecture="conv", depth=3).gram(x)  # a new structure compiles
    assert counter.frame_count > frames


@pytest.mark.parametrize(
    "rest", [{}, {"pooling": [2, 1], "readout": "flatten", "bias_std": 0.3}]
)
def test_pairs_path_compiled_once_and_equal_to_eager(counter, rest):
    """Images above 16x16 take the pairs-outermost stages (conv_pairs), compiled by
    default like the fused path: hyperparameters and block sizes at runtime (one
    compilation per structure and dtype), the branch-free maps inside, values equal
    to the eager stages."""
    x = _images(4, c=1, h=17, w=17, seed=3)
    assert not conv_fused.fused_applies(
        kz.kernel("ntk", architecture="conv", **rest).net, x
    )
    kz.kernel("ntk", architecture="conv", depth=2, **rest).gram(x[:2])
    frames = counter.frame_count
    assert frames > 0
    for weight_std, bias_std in ((1.0, 0.0), (1.7, 0.4)):
        spec = dict(rest, bias_std=bias_std)
        k = kz.kernel("ntk", architecture="conv", depth=2, weight_std=weight_std, **spec)
        for n, budget in ((2, None), (4, None), (4, 25_000_000)):  # budget: blocks of 2 pairs
            got = k.gram(x[:n], memory_budget=budget)
            ref = _eager(k, x[:n])
            assert float((got - ref).norm() / ref.norm()) < 1e-12
    assert counter.frame_count == frames
    k = kz.kernel("nngp", architecture="conv", depth=2, **rest)
    got32 = k.gram(x.float())
    ref = _eager(k, x)
    assert float((got32.double() - ref).norm() / ref.norm()) < 1e-5


def test_pairs_path_budget_of_one_pair_runs_eager(counter):
    """A dynamic pair axis needs blocks of two pairs: where the budget holds only one,
    the eager stages run (within the budget) instead of a padded compiled block."""
    from kernelzoo.kernels.functional.conv_pairs import full_pair_bytes

    x = _images(3, c=1, h=17, w=17, seed=4)
    k = kz.kernel("ntk", architecture="conv", depth=2)
    one = full_pair_bytes(17, 17, x.element_size(), k.net)
    got = k.gram(x, memory_budget=int(1.5 * one))
    assert counter.frame_count == 0
    ref = _eager(k, x)
    assert float((got - ref).norm() / ref.norm()) < 1e-12
    k.gram(x, memory_budget=3 * one)
    assert counter.frame_count > 0


@pytest.mark.parametrize("family", ["nngp", "ntk"])
def test_compile_failure_falls_back_once(monkeypatch, family):
    def broken(*args, **kwargs):
        raise RuntimeError("no compiler here")

    monkeypatch.setenv("KERNELZOO_COMPILE", "1")
    monkeypatch.setattr(torch, "compile", broken)
    monkeypatch.setitem(kz_compile.STATE, "failed", False)
    kz_compile.compiled.cache_clear()
    x = _images(4, h=4, w=4)
    k = kz.kernel(family, architecture="conv", bias_std=0.1)
    with pytest.warns(RuntimeWarning, match="torch.compile failed") as record:
        out = k.gram(x)
    assert len([w for w in record if "torch.compile failed" in str(w.message)]) == 1
    assert kz_compile.STATE["failed"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no second warning
        again = k.gram(x)
    torch.testing.assert_close(out, again, rtol=0, atol=0)
    torch.testing.assert_close(out, _eager(k, x), rtol=0, atol=0)
    kz_compile.compiled.cache_clear()


def test_not_fused_where_it_does_not_apply(monkeypatch):
    monkeypatch.setenv("KERNELZOO_COMPILE", "1")
    x = _images(3, h=4, w=4)
    net = kz.kernel("nngp", architecture="conv").net
    assert conv_fused.fused_applies(net, x)
    for params in ({"readout": "flatten"}, {"pooling": [2, 1]}):
        assert not conv_fused.fused_applies(kz.kernel("nngp", architecture="conv", **params).net,
                                            x)
    assert not conv_fused.fused_applies(net, _images(2, h=17, w=17))  # large images
    assert not conv_fused.fused_applies(net, x.requires_grad_())
    monkeypatch.setenv("KERNELZOO_COMPILE", "0")
    assert not conv_fused.fused_applies(net, x.detach())
    monkeypatch.delenv("KERNELZOO_COMPILE")
    assert not conv_fused.fused_applies(net, x.detach()[:2])  # too little work by default
    digits = torch.zeros(32, 1, 8, 8)
    assert conv_fused.fused_applies(net, digits)  # the default for a Gram of 32 digits


def test_atan2_fast_matches_closed_form():
    angles = torch.linspace(0, math.pi, 20001, dtype=torch.float64)
    for radius in (1e-30, 1.0, 1e30):
        y = (radius * torch.sin(angles)).clamp_min(0).float()
        x = (radius * torch.cos(angles)).float()
        ref = torch.atan2(y.double(), x.double())
        got = conv_fused.atan2_fast(y, x)
        assert got.dtype == torch.float32
        # float32 rounds angles near pi to 2.4e-7; the polynomial adds at most 2e-8
        assert float((got.double() - ref).abs().max()) < 4e-7
    zero = torch.zeros(3)
    assert torch.equal(conv_fused.atan2_fast(zero, zero), zero)
    y = torch.rand(50, dtype=torch.float64)
    x = torch.randn(50, dtype=torch.float64)
    assert torch.equal(conv_fused.atan2_fast(y, x), torch.atan2(y, x))  # float64: closed form


@pytest.mark.parametrize("family", ["nngp", "ntk"])
@pytest.mark.parametrize("readout", ["gap", "flatten"])
def test_conv_huge_float32_inputs(family, readout):
    """Issue 14 item 1: |x| ~ 3e9 and up gave all-NaN float32 Grams; now the homogeneous
    nets are evaluated at unit scale (exact powers of two) and the scale put back."""
    k = kz.kernel(family, architecture="conv", readout=readout)
    x = _images(4, h=5, w=5)
    unit = _eager(k, x)
    for exponent in (32, 40, 60):
        scaled = torch.ldexp(x, torch.tensor(exponent)).float()
        got = k.gram(scaled)
        assert bool(torch.isfinite(got).all())
        back = torch.ldexp(got.double(), torch.tensor(-2 * exponent))
        assert float((back - unit).norm() / unit.norm()) < 1e-5
        diag = torch.ldexp(k.diag(scaled).double(), torch.tensor(-2 * exponent))
        assert float((diag - torch.diagonal(unit)).norm() / torch.diagonal(unit).norm()) < 1e-5
    with pytest.raises(OverflowError, match="X"):  # 2^(2 * 70) exceeds float32
        k.gram(torch.ldexp(x, torch.tensor(70)).float())


def test_conv_with_bias_huge_inputs_raise_or_stay_finite():
    """Not homogeneous (a bias): no silent NaN, a finite Gram or an OverflowError."""
    k = kz.kernel("ntk", architecture="conv", bias_std=0.5)
    x = torch.ldexp(_images(3, h=4, w=4), torch.tensor(40)).float()
    try:
        got = k.gram(x)
    except OverflowError as exc:
        assert "X" in str(exc)
    else:
        assert bool(torch.isfinite(got).all())
