"""The kernel contract: registry, spec strings, validation, CLI, tiling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kernelzoo as kz
from kernelzoo.cli import main
from kernelzoo.ops.tiling import choose_tile, tiled_gram
from kernelzoo.registry import parse_spec

X = np.random.default_rng(0).standard_normal((12, 5))


def test_available_is_sorted_and_complete():
    fams = kz.available()
    assert fams == sorted(fams)
    assert {"rbf", "arccos", "nngp", "ntk", "ckn"} <= set(fams)


@pytest.mark.parametrize(
    "spec", ["rbf", "rbf(lengthscale=2.5)", "arccos(degree=2, depth=3)", "arccos(depth=2)"]
)
def test_spec_roundtrip(spec):
    k = kz.kernel(spec)
    assert kz.kernel(k.spec) == k
    assert kz.kernel(k.spec).spec == k.spec
    assert "(" in k.spec


def test_spec_equals_keyword_form_and_keywords_override():
    assert kz.kernel("arccos(degree=0, depth=2)") == kz.kernel("arccos", degree=0, depth=2)
    assert kz.kernel("rbf(lengthscale=2.0)", lengthscale=3.0).lengthscale == 3.0
    assert kz.kernel("rbf").spec == "rbf(lengthscale=1.0)"


def test_spec_parsing_is_literal_only():
    assert parse_spec("f(a=[1, 2], b='x', c=None, d=True, e=-0.5, g=bare)") == (
        "f",
        {"a": [1, 2], "b": "x", "c": None, "d": True, "e": -0.5, "g": "bare"},
    )
    for bad in ("rbf(lengthscale=__import__('os'))", "rbf(1.0)", "rbf(lengthscale=1", "1+2", ""):
        with pytest.raises(ValueError):
            parse_spec(bad)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: kz.kernel("gaussian"), "unknown kernel family 'gaussian'.*available: arccos"),
        (lambda: kz.kernel("rbf", scale=2), "unknown parameter 'scale'.*lengthscale"),
        (lambda: kz.kernel("rbf", lengthscale=0), "lengthscale must be finite and > 0"),
        (lambda: kz.kernel("rbf", lengthscale="a"), "lengthscale must be a number"),
        (lambda: kz.kernel("arccos", degree=3), r"degree=3 is not allowed.*\[0, 1, 2\]"),
        (lambda: kz.kernel("arccos", depth=0), "depth must be >= 1"),
        (
            lambda: kz.kernel("rbf").approximate("magic", budget=3),
            "unknown approximation method 'magic'.*rff",
        ),
        (lambda: kz.kernel("rbf").approximate("rff", budget=0), "budget must be > 0"),
        (
            lambda: kz.kernel("rbf").approximate("rff", budget=2.5),
            "budget must be a positive integer",
        ),
        (lambda: kz.kernel("rbf").approximate("rff", budget=8, bogus=1), "unknown option 'bogus'"),
        (lambda: kz.kernel("rbf").approximate("rff", budget=8).features(X), "not fitted"),
    ],
)
def test_errors_name_the_problem(call, match):
    with pytest.raises((ValueError, TypeError, RuntimeError), match=match):
        call()


def test_input_validation():
    k = kz.kernel("rbf")
    with pytest.raises(ValueError, match="2-D"):
        k.gram(np.ones(5))
    with pytest.raises(ValueError, match="mismatched feature shapes"):
        k.gram(np.ones((3, 4)), np.ones((3, 5)))
    with pytest.raises(ValueError, match="Inf"):
        k.gram(np.array([[1.0, np.inf]]))
    with pytest.raises(TypeError, match="numbers"):
        k.gram(np.array([["a", "b"]]))
    a = kz.kernel("rbf").approximate("rff", budget=8).fit(X)
    with pytest.raises(ValueError, match="fitted on"):
        a.features(np.ones((2, 3)))
    # integers become float32; float32 and float64 are kept
    assert k.gram(np.ones((2, 3), dtype=np.int64)).dtype == torch.float32
    assert k.gram(X.astype(np.float32)).dtype == torch.float32
    assert k.gram(X).dtype == torch.float64


def test_images_are_flattened_by_vector_kernels():
    imgs = np.random.default_rng(1).random((4, 1, 3, 3))
    k = kz.kernel("arccos")
    torch.testing.assert_close(k.gram(imgs), k.gram(imgs.reshape(4, -1)))


def test_memory_budget_strings_and_global_default(monkeypatch):
    from kernelzoo._validation import parse_memory_budget

    assert parse_memory_budget("2GB") == 2 * 10**9
    assert parse_memory_budget("1GiB") == 2**30
    assert parse_memory_budget(1e6) == 10**6
    with pytest.raises(ValueError, match="memory_budget"):
        parse_memory_budget("lots")
    with pytest.raises(ValueError, match="> 0"):
        parse_memory_budget(-1)
    monkeypatch.setenv("KERNELZOO_MEMORY_BUDGET", "3MB")
    assert kz.get_memory_budget() == 3 * 10**6
    kz.set_memory_budget("5MB")
    try:
        assert kz.get_memory_budget() == 5 * 10**6
    finally:
        kz.set_memory_budget(None)


def test_tiles_respect_the_budget():
    seen = []

    def block(x, y, same):
        seen.append(len(x) * len(y))
        return x @ y.T

    def cost(r, c, x):
        return 8 * r * c

    x = torch.randn(100, 3, dtype=torch.float64)
    out = tiled_gram(block, x, None, 8 * 400, cost)
    torch.testing.assert_close(out, x @ x.T)
    assert max(seen) <= 400
    out = tiled_gram(block, x, x[:37], 8 * 400, cost)
    torch.testing.assert_close(out, x @ x[:37].T)
    assert choose_tile(10, 10, 1, lambda r, c: 8 * r * c)[2] is False


def test_tiles_on_threads_equal_tiles_in_turn():
    """With torch on several threads, buffer-writing tiles run side by side (one torch
    thread each); the Gram is the same, the caller's thread count comes back, every
    worker holds its own tile (so a tile gets budget / threads), and a failing tile
    still raises."""
    import threading

    x = torch.randn(300, 5, dtype=torch.float64)
    seen, names = [], set()

    def block(a, b, same, out):
        seen.append(len(a) * len(b))
        names.add((threading.current_thread().name, torch.get_num_threads()))
        return a @ b.T if out is None else torch.mm(a, b.T, out=out)

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        both = tiled_gram(block, x, None, 8 * 3 * 4000, lambda r, c, _: 8 * 3 * r * c, into=True)
        assert torch.get_num_threads() == 2
        assert max(seen) <= 2000 and len(seen) > 2  # 2 workers x 3 tiles of 8 bytes each
        assert names and all(count == 1 for _, count in names)  # torch on one thread each

        def broken(a, b, same, out):
            raise RuntimeError("tile failed")

        with pytest.raises(RuntimeError, match="tile failed"):
            tiled_gram(broken, x, None, 8 * 3 * 4000, lambda r, c, _: 8 * 3 * r * c, into=True)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    one = tiled_gram(block, x, None, 8 * 3 * 4000, lambda r, c, _: 8 * 3 * r * c, into=True)
    torch.testing.assert_close(both, one, rtol=1e-15, atol=1e-15)
    assert torch.equal(both, both.T)


def test_indivisible_block_warns():
    x = torch.randn(5, 3, dtype=torch.float64)
    with pytest.warns(RuntimeWarning, match="indivisible block"):
        tiled_gram(lambda a, b, s: a @ b.T, x, None, 10, lambda r, c, x: 100)


# ----------------------------------------------------------------- property tests
FAMILIES = [
    "rbf(lengthscale=1.3)",
    "arccos(degree=0, depth=2)",
    "arccos(degree=1, depth=1)",
    "arccos(degree=2, depth=2)",
]


@pytest.mark.parametrize("spec", FAMILIES)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 9),
    m=st.integers(1, 6),
    d=st.integers(1, 7),
    log_scale=st.floats(-3, 3),
    seed=st.integers(0, 2**16),
    f32=st.booleans(),
)
def test_properties_over_shapes_and_scales(spec, n, m, d, log_scale, seed, f32):
    """Symmetric, PSD, finite, diag == diagonal, cross block == block, any shape/scale."""
    g = np.random.default_rng(seed)
    dtype = np.float32 if f32 else np.float64
    x = (g.standard_normal((n, d)) * 10**log_scale).astype(dtype)
    y = (g.standard_normal((m, d)) * 10**log_scale).astype(dtype)
    k = kz.kernel(spec)
    full = k.gram(np.concatenate([x, y])).double()
    kx = full[:n, :n]
    assert torch.isfinite(full).all()
    torch.testing.assert_close(full, full.T)
    rtol = 1e-4 if f32 else 1e-9
    scale = float(full.abs().max()) or 1.0
    torch.testing.assert_close(k.diag(x).double(), torch.diagonal(kx), rtol=rtol, atol=rtol * scale)
    torch.testing.assert_close(k.gram(x, y).double(), full[:n, n:], rtol=rtol, atol=rtol * scale)
    assert torch.linalg.eigvalsh(full).min() >= -1e-3 * scale if f32 else -1e-8 * scale


# ----------------------------------------------------------------- CLI
def test_cli_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for fam in ("rbf", "arccos"):
        assert fam in out
    assert "lengthscale=1.0" in out and "approximations: rff, orf, nystrom" in out


def test_cli_gram_equals_python(tmp_path, capsys):
    xp, yp, out = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "k.npy"
    np.save(xp, X)
    np.save(yp, X[:4])
    assert (
        main(
            [
                "gram",
                "arccos(degree=1, depth=2)",
                "--x",
                str(xp),
                "--out",
                str(out),
                "--dtype",
                "float64",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(np.load(out), kz.kernel("arccos(degree=1, depth=2)").gram(X).numpy())
    assert (
        main(
            [
                "gram",
                "rbf(lengthscale=2.0)",
                "--x",
                str(xp),
                "--y",
                str(yp),
                "--out",
                str(out),
                "--dtype",
                "float64",
                "--memory-budget",
                "1MB",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(
        np.load(out), kz.kernel("rbf(lengthscale=2.0)").gram(X, X[:4]).numpy()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize(
    "args,message",
    [
        (["gram", "gaussian", "--x", "{x}", "--out", "{o}"], "unknown kernel family"),
        (["gram", "rbf(scale=1)", "--x", "{x}", "--out", "{o}"], "unknown parameter 'scale'"),
        (["gram", "rbf", "--x", "{missing}", "--out", "{o}"], "file not found"),
        (["gram", "rbf", "--x", "{nan}", "--out", "{o}"], "NaN"),
        (["gram", "rbf", "--x", "{empty}", "--out", "{o}"], "empty"),
        (
            ["gram", "rbf", "--x", "{x}", "--y", "{other}", "--out", "{o}"],
            "mismatched feature shapes",
        ),
        (["gram", "rbf", "--x", "{vec}", "--out", "{o}"], "2-D"),
        (["gram", "rbf", "--x", "{x}", "--out", "{o}", "--memory-budget", "0"], "memory_budget"),
        (["gram", "rbf", "--x", "{x}"], "exactly one of --out"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    paths = {
        "x": X,
        "nan": np.array([[np.nan, 1.0]]),
        "empty": np.zeros((0, 5)),
        "other": np.ones((3, 2)),
        "vec": np.ones(5),
    }
    fmt = {"o": str(tmp_path / "k.npy"), "missing": str(tmp_path / "none.npy")}
    for name, arr in paths.items():
        np.save(tmp_path / f"{name}.npy", arr)
        fmt[name] = str(tmp_path / f"{name}.npy")
    code = main([a.format(**fmt) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_mixed_dtypes_error_names_both():
    with pytest.raises(TypeError, match="float64 and torch.float32"):
        kz.kernel("rbf").gram(X, X.astype(np.float32))
