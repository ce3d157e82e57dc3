"""The asv suite never rots: import every module and run each benchmark once, tiny.

asv itself is not needed: the benchmarks are discovered the way asv discovers
them (public classes of every module of ``benchmarks/asv_bench``, methods named
``time_``/``peakmem_``/``track_``), run in the suite's smoke mode (every size
shrunk to a few rows) at the smallest numeric parameters and every other
parameter value. A setup that raises ``NotImplementedError`` is a skip, as in
asv (no GPU, a method the kernel does not have, a peer not installed); a
kernelzoo module that fails to import fails here.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import json
import math
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SUITE = "benchmarks.asv_bench"
PREFIXES = ("time_", "peakmem_", "track_", "mem_", "timeraw_")


def _suite_modules():
    package = importlib.import_module(SUITE)
    return [
        importlib.import_module(info.name)
        for info in pkgutil.iter_modules(package.__path__, f"{SUITE}.")
    ]


def _benchmark_classes():
    found = []
    for module in _suite_modules():
        for name, obj in vars(module).items():
            if name.startswith("_") or not inspect.isclass(obj):
                continue
            methods = [m for m in dir(obj) if m.startswith(PREFIXES)]
            if methods:
                found.append(
                    pytest.param(obj, methods, id=f"{module.__name__[len(SUITE) + 1 :]}.{name}")
                )
    return found


def _smallest_grid(params):
    """Every value of categorical parameters, the smallest of numeric ones."""
    grid = []
    for values in params:
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            grid.append([min(values)])
        else:
            grid.append(list(values))
    return itertools.product(*grid)


@pytest.fixture(autouse=True)
def smoke_mode(monkeypatch):
    common = importlib.import_module(f"{SUITE}._common")
    monkeypatch.setattr(common, "SMOKE", True)


def test_suite_is_a_package_asv_can_import():
    names = {m.__name__.rsplit(".", 1)[1] for m in _suite_modules()}
    assert {"bench_gram", "bench_approx", "bench_accuracy", "bench_peers"} <= names
    assert len(_benchmark_classes()) >= 10


@pytest.mark.parametrize(("cls", "methods"), _benchmark_classes())
def test_benchmark_runs_once_at_smallest_parameters(cls, methods):
    params = getattr(cls, "params", ())
    if params and not isinstance(params[0], (list, tuple)):
        params = (params,)
    names = getattr(cls, "param_names", ())
    assert len(names) == len(params), f"{cls.__name__}: param_names and params disagree"
    ran, skipped = 0, []
    for combo in _smallest_grid(params):
        labelled = dict(zip(names, combo))
        if labelled.get("tool") == "neural-tangents":
            continue  # a subprocess in another venv: test_neural_tangents_script (slow)
        bench = cls()
        try:
            if hasattr(bench, "setup"):
                bench.setup(*combo)
        except NotImplementedError as exc:
            skipped.append((combo, str(exc)))
            continue
        for method in methods:
            result = getattr(bench, method)(*combo)
            if method.startswith("track_"):
                assert isinstance(result, (int, float)) and math.isfinite(result), (method, combo)
                assert getattr(getattr(cls, method), "unit", None), f"{method} has no unit"
        if hasattr(bench, "teardown"):
            bench.teardown(*combo)
        ran += 1
    reasons = " ".join(reason for _, reason in skipped)
    needs_gpu = "no CUDA device" in reasons and not torch.cuda.is_available()
    assert ran > 0 or needs_gpu, skipped
    for _, reason in skipped:  # skips are only for the documented reasons
        assert re.search(
            r"no CUDA|not installed|CPU only|has no|budget|n <=|venv",
            reason,
        ), reason


def test_rbf_runs_in_every_core_benchmark():
    """rbf exists since the foundation: its benchmarks must run, never skip."""
    from benchmarks.asv_bench import bench_approx, bench_gram, bench_peers

    bench = bench_gram.GramVector()
    bench.setup("rbf", 256, "float32", "cpu")
    bench.time_gram("rbf", 256, "float32", "cpu")
    err = bench_approx.ApproxError()
    err.setup("rbf/nystrom", 64, "float64")
    assert 0 <= err.track_gram_error("rbf/nystrom", 64, "float64") < 1
    peers = bench_peers.PeersRBFGram()
    peers.setup("kernelzoo", 1024, "float32", "cpu")
    assert peers.evaluate().shape == (12, 12)


def test_rbf_peers_compute_the_same_kernel():
    from benchmarks.asv_bench.bench_peers import GRAM_TOOLS, _exact_rbf, rbf_gram_fn

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(40, 784, generator=gen, dtype=torch.float64) / 28
    reference = _exact_rbf(x)
    for tool in GRAM_TOOLS:
        if tool == "torch-matmul":
            continue
        gram = torch.as_tensor(np.asarray(rbf_gram_fn(tool, x)()))
        torch.testing.assert_close(gram, reference, rtol=1e-10, atol=1e-12, msg=tool)


def test_approximation_peers_approximate_the_same_kernel():
    from benchmarks.asv_bench.bench_peers import APPROX_GRAM_TOOLS, _exact_rbf, approx_fns

    gen = torch.Generator().manual_seed(4)
    x_fit = torch.randn(300, 784, generator=gen, dtype=torch.float64) / 28
    x = torch.randn(50, 784, generator=gen, dtype=torch.float64) / 28
    exact = _exact_rbf(x)
    for tool in APPROX_GRAM_TOOLS:
        fit, features, gram = approx_fns(tool, 256, x_fit)
        model = fit()
        approx = torch.as_tensor(np.asarray(gram(model, x)))
        error = float((approx - exact).norm() / exact.norm())
        assert error < 0.25, (tool, error)
        if features is not None:
            assert np.asarray(features(model, x)).shape == (50, 256), tool


def test_asv_config_runs_offline_with_pinned_torch():
    text = (ROOT / "asv.conf.json").read_text()
    config = json.loads(
        "\n".join(line for line in text.splitlines() if not line.strip().startswith("//"))
    )
    assert config["branches"] == ["main"]
    assert config["repo"] == "."
    assert config["results_dir"].startswith(".asv")
    assert (ROOT / config["benchmark_dir"] / "__init__.py").is_file()
    assert config["matrix"]["req"]["torch"] == ["2.13.0"]


@pytest.mark.slow
def test_asv_check_passes():
    asv = shutil.which("asv") or str(Path(sys.executable).with_name("asv"))
    if not Path(asv).is_file():
        pytest.skip("asv is not installed (pip install asv)")
    done = subprocess.run(
        [asv, "check", "--python=same"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "No problems found" in done.stdout


@pytest.mark.slow
def test_neural_tangents_script(tmp_path):
    from benchmarks.asv_bench.bench_peers import nt_python, run_neural_tangents

    if nt_python() is None:
        pytest.skip("no neural-tangents venv")
    x = torch.randn(3, 1, 4, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = tmp_path / "k.npy"
    result = run_neural_tangents(x, "ntk-conv", repeats=1, out=str(out))
    assert result["median_s"] > 0
    gram = np.load(out)
    assert gram.shape == (3, 3)
    np.testing.assert_allclose(gram, gram.T, rtol=1e-12)
