"""Shared pieces of the asv suite: threads, sizes, data, devices and skips.

A benchmark whose setup raises ``NotImplementedError`` is reported by asv as
skipped ("n/a"): that is how the suite skips CUDA without a GPU, a method that
a kernel does not have (parameter grids cross kernels and methods) and a peer
library that is not installed. A kernelzoo module that fails to import is an
error, never a skip.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

#: Threads for torch and for the BLAS under numpy/scikit-learn, pinned so that
#: timings are comparable between runs and machines. One by default: on a
#: shared machine every multi-threaded op waits for all its threads to be
#: scheduled (measured here under load: rbf Gram n=256 took 0.02 s on one
#: thread, 0.6 s on two). Set KERNELZOO_BENCH_THREADS to measure scaling, and
#: compare only results taken with the same setting.
THREADS = int(os.environ.get("KERNELZOO_BENCH_THREADS", "1"))

#: Smoke mode (set by tests/test_asv_suite.py): every size is shrunk to a few
#: rows, so that each benchmark's setup and body run in milliseconds.
SMOKE = os.environ.get("KERNELZOO_BENCH_SMOKE", "") not in ("", "0")
SMOKE_N = 12
SMOKE_DIM = 16

DTYPES: dict[str, torch.dtype] = {"float32": torch.float32, "float64": torch.float64}
DEVICES: tuple[str, ...] = ("cpu", "cuda")

#: Shape of the images given to the conv kernels (the embedded digits' shape).
IMAGE_SHAPE: tuple[int, int, int] = (1, 8, 8)
#: Dimension of the vectors given to the vector kernels (MNIST's 28 x 28).
VECTOR_DIM = 784

_thread_limits: Any = None


def pin_threads() -> None:
    """Pin torch's and the BLAS libraries' thread pools to :data:`THREADS`."""
    global _thread_limits
    torch.set_num_threads(THREADS)
    if _thread_limits is None:
        from threadpoolctl import threadpool_limits

        _thread_limits = threadpool_limits(limits=THREADS)


def size(n: int) -> int:
    """``n``, or a tiny size in smoke mode."""
    return min(int(n), SMOKE_N) if SMOKE else int(n)  # read at call time: tests may set it


def device_or_skip(name: str) -> torch.device:
    """The device named ``name``; skips the benchmark (NotImplementedError) without CUDA."""
    if name == "cuda" and not torch.cuda.is_available():
        raise NotImplementedError("no CUDA device")
    return torch.device(name)


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (call inside the timed body of GPU benchmarks)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_kernel(spec: str):
    """``kz.kernel(spec)``."""
    import kernelzoo as kz

    return kz.kernel(spec)


def approximation_options(method: str) -> dict[str, Any]:
    """Options the suite passes: no progress bars; one supervised epoch in smoke mode."""
    if method != "supervised":
        return {}
    return {"progress": False, **({"epochs": 1} if SMOKE else {})}


def approximation_or_skip(kernel, method: str, budget: Any, seed: int = 0):
    """``kernel.approximate(method, budget, seed)``; skips a method the kernel does not have."""
    if method not in kernel.approximations:
        raise NotImplementedError(f"{kernel.family} has no approximation {method!r}")
    return kernel.approximate(method, budget=budget, seed=seed, **approximation_options(method))


def random_vectors(n: int, dtype: str, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Gaussian vectors ``(n, VECTOR_DIM)`` of norm about 1 (so that ``rbf`` with
    lengthscale 1 is neither all ones nor all zeros), drawn on the CPU in float64.
    """
    gen = torch.Generator().manual_seed(seed)
    dim = SMOKE_DIM if SMOKE else VECTOR_DIM
    x = torch.randn(n, dim, generator=gen, dtype=torch.float64) / dim**0.5
    return x.to(device=device, dtype=DTYPES[dtype])


def random_images(n: int, dtype: str, device: torch.device, seed: int = 0) -> torch.Tensor:
    """Standard Gaussian images ``(n, *IMAGE_SHAPE)``, drawn on the CPU in float64."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *IMAGE_SHAPE, generator=gen, dtype=torch.float64)
    return x.to(device=device, dtype=DTYPES[dtype])


def random_labels(n: int, n_classes: int = 10, seed: int = 0) -> torch.Tensor:
    """Integer labels ``(n,)`` in ``[0, n_classes)`` for methods whose fit uses labels."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen) % n_classes


#: Benchmarked kernels: label -> (spec, input kind). Vector kernels get
#: :func:`random_vectors`, conv kernels :func:`random_images`.
KERNELS: dict[str, tuple[str, str]] = {
    "rbf": ("rbf(lengthscale=1.0)", "vectors"),
    "arccos": ("arccos(degree=1, depth=1)", "vectors"),
    "arccos-depth3": ("arccos(degree=1, depth=3)", "vectors"),
    "nngp-fc": ("nngp(architecture='fc', depth=2)", "vectors"),
    "ntk-fc": ("ntk(architecture='fc', depth=2)", "vectors"),
    "nngp-conv": ("nngp(architecture='conv', depth=2, readout='gap')", "images"),
    "ntk-conv": ("ntk(architecture='conv', depth=2, readout='gap')", "images"),
    "ckn": ("ckn(filter_size=3, subsampling=2, sigma=0.6, kappa='exp')", "images"),
}
VECTOR_KERNELS = [label for label, (_, kind) in KERNELS.items() if kind == "vectors"]
CONV_KERNELS = [label for label, (_, kind) in KERNELS.items() if kind == "images"]


def kernel_inputs(label: str, n: int, dtype: str, device: torch.device, seed: int = 0):
    """The kernel of ``label`` and ``n`` inputs of the kind it takes (skips absent families)."""
    spec, kind = KERNELS[label]
    kernel = make_kernel(spec)
    make = random_vectors if kind == "vectors" else random_images
    return kernel, make(size(n), dtype, device, seed)


def relative_error(approx: torch.Tensor, exact: torch.Tensor) -> float:
    """``|approx - exact|_F / |exact|_F`` in float64."""
    exact64 = exact.detach().to("cpu", torch.float64)
    diff = approx.detach().to("cpu", torch.float64) - exact64
    return float(torch.linalg.matrix_norm(diff) / torch.linalg.matrix_norm(exact64))


def as_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()
