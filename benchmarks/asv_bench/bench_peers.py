"""kernelzoo beside the tools a user would otherwise pick, in one suite.

Each class has a ``tool`` parameter, so asv's dashboard draws kernelzoo and
its peers on the same graph. A peer that is not installed is skipped.

- Gaussian Gram at n = 4096, d = 784 (MNIST-sized): kernelzoo ``rbf``,
  scikit-learn ``rbf_kernel``, gpytorch ``RBFKernel`` (evaluated to a dense
  tensor) and a bare ``X @ X.T`` (the floor: one GEMM, no exponentials).
- Random features and Nyström: kernelzoo ``rff``/``orf``/``nystrom``,
  scikit-learn ``RBFSampler``/``Nystroem``, gpytorch ``RFFKernel``, compared
  at the same feature dimension D (gpytorch's ``num_samples = D / 2``: it
  stacks a cosine and a sine per sample).
- Conv NNGP/NTK: kernelzoo vs neural-tangents, which lives in its own
  virtualenv (``KERNELZOO_NT_PYTHON``, default ``/work/nt-venv/bin/python``)
  and is timed through a subprocess (``nt_conv_timing.py``); both sides report
  the median seconds of ``CONV_REPEATS`` calls after one warm-up call.

Every peer computes the same kernel, ``exp(-|x - y|^2 / 2)`` (lengthscale 1,
scikit-learn ``gamma = 0.5``), on the same inputs.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from . import _common
from ._common import (
    DEVICES,
    THREADS,
    approximation_or_skip,
    as_numpy,
    device_or_skip,
    make_kernel,
    pin_threads,
    random_images,
    random_vectors,
    relative_error,
    size,
    synchronize,
)

LENGTHSCALE = 1.0
GAMMA = 0.5 / LENGTHSCALE**2  # scikit-learn's parameterisation of the same kernel

GRAM_TOOLS = ["kernelzoo", "scikit-learn", "gpytorch", "torch-matmul"]


def _skip_cpu_only(tool: str, device: torch.device) -> None:
    if device.type != "cpu":
        raise NotImplementedError(f"{tool} runs on the CPU only")


def _import_or_skip(module: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        raise NotImplementedError(f"{module} is not installed: {exc}") from exc


def rbf_gram_fn(tool: str, x: torch.Tensor):
    """A zero-argument callable evaluating the dense Gaussian Gram of ``x`` with ``tool``."""
    device = x.device
    if tool == "kernelzoo":
        kernel = make_kernel(f"rbf(lengthscale={LENGTHSCALE!r})")
        return lambda: kernel.gram(x)
    if tool == "scikit-learn":
        _skip_cpu_only(tool, device)
        pairwise = _import_or_skip("sklearn.metrics.pairwise")
        x_np = as_numpy(x)
        return lambda: pairwise.rbf_kernel(x_np, gamma=GAMMA)
    if tool == "gpytorch":
        gpytorch = _import_or_skip("gpytorch")
        kernel = gpytorch.kernels.RBFKernel().to(device=device, dtype=x.dtype)
        kernel.lengthscale = LENGTHSCALE

        def evaluate():
            with torch.no_grad():
                return kernel(x).to_dense()

        return evaluate
    if tool == "torch-matmul":
        return lambda: x @ x.T
    raise ValueError(f"unknown tool {tool!r}; expected one of {GRAM_TOOLS}")


class PeersRBFGram:
    """Dense Gaussian Gram ``(n, n)`` of X ``(n, 784)``: kernelzoo vs its peers."""

    params = (GRAM_TOOLS, [1024, 4096], ["float32", "float64"], list(DEVICES))
    param_names = ("tool", "n", "dtype", "device")
    repeat = (5, 15, 20.0)
    rounds = 2
    timeout = 300

    def setup(self, tool, n, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.evaluate = rbf_gram_fn(tool, random_vectors(size(n), dtype, self.device))

    def time_gram(self, tool, n, dtype, device):
        self.evaluate()
        synchronize(self.device)

    def peakmem_gram(self, tool, n, dtype, device):
        self.evaluate()


# ---------------------------------------------------------------- approximations

FEATURE_TOOLS = [
    "kernelzoo-rff",
    "kernelzoo-orf",
    "kernelzoo-nystrom",
    "scikit-learn-RBFSampler",
    "scikit-learn-Nystroem",
]
APPROX_GRAM_TOOLS = FEATURE_TOOLS + ["gpytorch-RFFKernel"]


def approx_fns(tool: str, budget: int, x_fit: torch.Tensor, seed: int = 0):
    """``(fit, features, gram)`` callables of ``tool`` at feature dimension ``budget``.

    ``fit()`` returns a fitted model; ``features(model, x)`` the ``(n, D)``
    features (None for gpytorch, which has no public feature map);
    ``gram(model, x)`` the dense approximate Gram ``(n, n)``.
    """
    if tool.startswith("kernelzoo-"):
        kernel = make_kernel(f"rbf(lengthscale={LENGTHSCALE!r})")
        method = tool.removeprefix("kernelzoo-")
        approx = approximation_or_skip(kernel, method, budget, seed=seed)
        return (lambda: approx.fit(x_fit)), (lambda a, x: a.features(x)), (lambda a, x: a.gram(x))
    if tool.startswith("scikit-learn-"):
        _skip_cpu_only(tool, x_fit.device)
        approximation = _import_or_skip("sklearn.kernel_approximation")
        cls = getattr(approximation, tool.removeprefix("scikit-learn-"))
        x_np = as_numpy(x_fit)

        def fit():
            return cls(gamma=GAMMA, n_components=budget, random_state=seed).fit(x_np)

        def features(model, x):
            return model.transform(as_numpy(x))

        def gram(model, x):
            z = features(model, x)
            return z @ z.T

        return fit, features, gram
    if tool == "gpytorch-RFFKernel":
        gpytorch = _import_or_skip("gpytorch")
        if budget % 2:
            raise NotImplementedError("gpytorch-RFFKernel: an even feature dimension")

        def fit():
            torch.manual_seed(seed)  # RFFKernel draws its weights from the global generator
            kernel = gpytorch.kernels.RFFKernel(num_samples=budget // 2, num_dims=x_fit.shape[1])
            kernel = kernel.to(device=x_fit.device, dtype=x_fit.dtype)
            kernel.lengthscale = LENGTHSCALE
            return kernel

        def gram(model, x):
            with torch.no_grad():
                return model(x).to_dense()

        return fit, None, gram
    raise ValueError(f"unknown tool {tool!r}; expected one of {APPROX_GRAM_TOOLS}")


class _PeersApprox:
    """Shared set-up of the approximation peers: X ``(4096, 784)``, feature dimension D."""

    param_names = ("tool", "budget", "dtype", "device")
    repeat = (3, 10, 20.0)
    rounds = 2
    timeout = 300
    n = 4096

    def setup(self, tool, budget, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.x = random_vectors(size(self.n), dtype, self.device)
        self.fit, self.features, self.gram = approx_fns(tool, size(budget), self.x)


class PeersApproxFeatures(_PeersApprox):
    """Fit + ``(n, D)`` features of X ``(4096, 784)`` at feature dimension D."""

    params = (FEATURE_TOOLS, [256, 1024], ["float32"], list(DEVICES))

    def time_fit_features(self, tool, budget, dtype, device):
        self.features(self.fit(), self.x)
        synchronize(self.device)

    def peakmem_fit_features(self, tool, budget, dtype, device):
        self.features(self.fit(), self.x)


class PeersApproxGram(_PeersApprox):
    """Fit + dense approximate Gram ``(n, n)`` of X ``(4096, 784)`` at feature dimension D."""

    params = (APPROX_GRAM_TOOLS, [256, 1024], ["float32"], list(DEVICES))

    def time_fit_gram(self, tool, budget, dtype, device):
        self.gram(self.fit(), self.x)
        synchronize(self.device)


class PeersApproxError:
    """``|K_approx - K|_F / |K|_F`` on 512 held-out vectors, fitted on 2048, at dimension D."""

    params = (APPROX_GRAM_TOOLS, [64, 256, 1024], ["float64"])
    param_names = ("tool", "budget", "dtype")
    rounds = 1
    timeout = 300
    n_fit, n_eval = 2048, 512

    def setup(self, tool, budget, dtype):
        pin_threads()
        device = torch.device("cpu")
        x_fit = random_vectors(size(self.n_fit), dtype, device, seed=0)
        self.x = random_vectors(size(self.n_eval), dtype, device, seed=1)
        fit, _, self.gram = approx_fns(tool, size(budget), x_fit)
        self.model = fit()
        self.exact = _exact_rbf(self.x)

    def track_gram_error(self, tool, budget, dtype):
        return relative_error(torch.as_tensor(self.gram(self.model, self.x)), self.exact)

    track_gram_error.unit = "relative Frobenius error"


def _exact_rbf(x: torch.Tensor) -> torch.Tensor:
    """The reference Gaussian Gram in float64, by direct differences (no kernelzoo)."""
    x64 = x.to(torch.float64)
    return torch.exp(-0.5 * torch.cdist(x64, x64).square() / LENGTHSCALE**2)


# ---------------------------------------------------------------- conv NNGP / NTK

CONV_SPECS = {
    "nngp-conv": "nngp(architecture='conv', depth=2, readout='gap')",
    "ntk-conv": "ntk(architecture='conv', depth=2, readout='gap')",
}
CONV_REPEATS = 3
NT_SCRIPT = Path(__file__).with_name("nt_conv_timing.py")


def nt_python() -> str | None:
    """The python of neural-tangents' venv, or None when absent."""
    path = os.environ.get("KERNELZOO_NT_PYTHON", "/work/nt-venv/bin/python")
    return path if Path(path).is_file() and os.access(path, os.X_OK) else None


def _limit_cpus() -> None:  # runs in the child: same thread budget as the in-process side
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:THREADS])


def run_neural_tangents(x: torch.Tensor, kernel: str, repeats: int, out: str | None = None):
    """Run :mod:`nt_conv_timing` on ``x`` in neural-tangents' venv; its JSON result."""
    python = nt_python()
    if python is None:
        raise NotImplementedError("neural-tangents venv not found (set KERNELZOO_NT_PYTHON)")
    with tempfile.TemporaryDirectory() as tmp:
        x_path = os.path.join(tmp, "x.npy")
        np.save(x_path, as_numpy(x))
        cmd = [python, str(NT_SCRIPT), "--x", x_path, "--kernel", kernel.split("-")[0],
               "--depth", "2", "--repeats", str(repeats)]  # fmt: skip
        if out is not None:
            cmd += ["--out", out]
        env = {**os.environ, "JAX_PLATFORMS": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
        env.pop("PYTHONPATH", None)
        done = subprocess.run(
            cmd, check=False, capture_output=True, text=True, env=env, timeout=600,
            preexec_fn=_limit_cpus if sys.platform == "linux" else None,
        )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"neural-tangents timing failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class PeersConvKernel:
    """Conv NNGP/NTK Gram of X ``(32, 1, 8, 8)``: kernelzoo vs neural-tangents, median seconds.

    A ``track_`` benchmark (not ``time_``) because neural-tangents runs in
    another process: both sides time ``CONV_REPEATS`` calls after a warm-up
    call (which, for neural-tangents, traces and compiles) and report the median.
    """

    params = (["kernelzoo", "neural-tangents"], list(CONV_SPECS), [32], ["float32", "float64"])
    param_names = ("tool", "kernel", "n", "dtype")
    rounds = 1
    timeout = 600

    def setup(self, tool, kernel, n, dtype):
        pin_threads()
        self.x = random_images(size(n), dtype, torch.device("cpu"))
        if tool == "kernelzoo":
            self.kernel = make_kernel(CONV_SPECS[kernel])
        elif nt_python() is None:
            raise NotImplementedError("neural-tangents venv not found (set KERNELZOO_NT_PYTHON)")

    def track_seconds(self, tool, kernel, n, dtype):
        repeats = 1 if _common.SMOKE else CONV_REPEATS
        if tool == "neural-tangents":
            return run_neural_tangents(self.x, kernel, repeats)["median_s"]
        self.kernel.gram(self.x)  # warm-up, as on the neural-tangents side
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            self.kernel.gram(self.x)
            samples.append(time.perf_counter() - start)
        return statistics.median(samples)

    track_seconds.unit = "seconds"
