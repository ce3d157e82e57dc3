"""What the device checks run on: one case per family variant and approximation, small
inputs, and a counter of the operations that make the host wait for a device.

Shared by ``tests/test_device.py`` and ``benchmarks/gpu_check.py`` (which imports
it from the repository root), so that the GPU script and the tests check the same
cases.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import kernelzoo as kz

_aten = torch.ops.aten

#: operations whose result the host must read (on CUDA: a synchronisation)
SYNC_OPS = frozenset({
    _aten.nonzero.default,
    _aten._local_scalar_dense.default,  # .item(), bool(t), float(t), int(t)
    _aten.is_nonzero.default,
    _aten.equal.default,
    _aten.masked_select.default,
    _aten._unique2.default,
    _aten.unique_dim.default,
    _aten.unique_consecutive.default,
})


class HostSyncCounter(TorchDispatchMode):
    """Counts, by name, the operations of :data:`SYNC_OPS` (and boolean-mask indexing,
    and copies from the host to another device) run inside the ``with`` block, on any
    device: on a CPU machine it shows where the GPU path would wait for the device."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: dict[str, int] = {}

    @property
    def count(self) -> int:
        return sum(self.ops.values())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        hit = func in SYNC_OPS
        if func in (_aten._to_copy.default, _aten.copy_.default):
            hit = _host_to_device(func, args, kwargs or {})
        if func is _aten.index.Tensor:
            hit = any(isinstance(i, torch.Tensor) and i.dtype == torch.bool
                      for i in args[1] if i is not None)
        if hit:
            self.ops[str(func)] = self.ops.get(str(func), 0) + 1
        return func(*args, **(kwargs or {}))


def _host_to_device(func, args, kwargs) -> bool:
    """A copy from a CPU tensor to another device: on a GPU, a blocking copy (the host
    waits for the device's queue). Seen on a CPU machine with ``device="meta"``."""
    if func is _aten._to_copy.default:
        src, dst = args[0], kwargs.get("device")
        return src.device.type == "cpu" and dst is not None and torch.device(dst).type != "cpu"
    dst, src = args[0], args[1]
    return src.device.type == "cpu" and dst.device.type != "cpu"


@dataclasses.dataclass(frozen=True)
class Case:
    """A kernel (or an approximation of it) and the input it takes."""

    spec: str
    images: bool  # (n, C, H, W) input, else (n, d)
    method: str | None = None  # an approximation method, or the exact kernel
    budget: Any = None  # the approximation's budget
    labels: bool = False  # fit needs labels

    @property
    def name(self) -> str:
        return self.spec if self.method is None else f"{self.spec} / {self.method}"

    def model(self, x: torch.Tensor, y: torch.Tensor | None = None, seed: int = 0):
        """The exact kernel, or the approximation fitted on ``x`` (quietly)."""
        k = kz.kernel(self.spec)
        if self.method is None:
            return k
        a = k.approximate(self.method, budget=self.budget, seed=seed, **_fit_options(self.method))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return a.fit(x, y if self.labels else None)


def _fit_options(method: str) -> dict[str, Any]:
    return {"epochs": 1, "progress": False} if method == "supervised" else {}


CONV = "architecture='conv'"
EXACT = [
    Case("rbf(lengthscale=3.0)", False),
    Case("matern(nu=1.5, lengthscale=3.0)", False),
    Case("arccos(degree=1, depth=2)", False),
    Case("arccos(degree=0, depth=1)", False),
    Case("nngp(depth=2)", False),
    Case("ntk(depth=2)", False),
    Case(f"nngp({CONV}, depth=2, readout='gap')", True),
    Case(f"ntk({CONV}, depth=2, readout='gap')", True),
    Case(f"nngp({CONV}, depth=2, readout='flatten')", True),
    Case(f"ntk({CONV}, depth=2, readout='flatten')", True),
    Case("ckn(subsampling=[2, 2])", True),
]
APPROXIMATIONS = [
    Case("rbf(lengthscale=3.0)", False, "rff", 32),
    Case("rbf(lengthscale=3.0)", False, "orf", 32),
    Case("rbf(lengthscale=3.0)", False, "nystrom", 8),
    Case("matern(nu=1.5, lengthscale=3.0)", False, "rff", 32),
    Case("arccos(degree=1, depth=2)", False, "random-features", 32),
    Case("arccos(degree=1, depth=2)", False, "nystrom", 8),
    Case("nngp(depth=2)", False, "monte-carlo", 32),
    Case("ntk(depth=2)", False, "empirical", 8),
    Case(f"nngp({CONV}, depth=2, readout='gap')", True, "nystrom", 8),
    Case("ckn(subsampling=[2, 2])", True, "layerwise", [4, 8]),
    Case("ckn(subsampling=[2, 2])", True, "supervised", [4, 8], labels=True),
    Case("ckn(subsampling=[2, 2])", True, "nystrom", 8),
]


def inputs(case: Case, n: int, dtype: torch.dtype = torch.float64, seed: int = 0):
    """``(x, labels)`` on the CPU: 8x8 one-channel images or 64-dim vectors, values in [0, 1)."""
    g = torch.Generator().manual_seed(seed)
    shape = (n, 1, 8, 8) if case.images else (n, 64)
    x = torch.rand(shape, generator=g, dtype=torch.float64).to(dtype)
    return x, torch.arange(n) % 3
