"""Exact Gram matrices of every kernel family: time, peak memory, GPU memory.

``kernel`` is a label of :data:`_common.KERNELS` (vector kernels take
``(n, 784)`` Gaussian vectors, conv kernels ``(n, 1, 8, 8)`` Gaussian images);
a family whose module does not exist yet is skipped.
"""

from __future__ import annotations

import torch

from ._common import (
    CONV_KERNELS,
    DEVICES,
    KERNELS,
    VECTOR_KERNELS,
    device_or_skip,
    kernel_inputs,
    pin_threads,
    synchronize,
)


class _GramBase:
    # asv repeat = (min repeats, max repeats, max seconds), two rounds: the
    # machine is shared, so every figure is a median over several samples.
    repeat = (3, 10, 10.0)
    rounds = 2
    timeout = 300

    def setup(self, kernel, n, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        self.kernel, self.x = kernel_inputs(kernel, n, dtype, self.device)

    def time_gram(self, kernel, n, dtype, device):
        self.kernel.gram(self.x)
        synchronize(self.device)

    def peakmem_gram(self, kernel, n, dtype, device):
        self.kernel.gram(self.x)


class GramVector(_GramBase):
    """``k.gram(X)`` of a vector kernel, X ``(n, 784)``."""

    params = (VECTOR_KERNELS, [256, 2048], ["float32", "float64"], list(DEVICES))
    param_names = ("kernel", "n", "dtype", "device")


class GramConv(_GramBase):
    """``k.gram(X)`` of a conv kernel, X ``(n, 1, 8, 8)``."""

    params = (CONV_KERNELS, [32, 128], ["float32", "float64"], list(DEVICES))
    param_names = ("kernel", "n", "dtype", "device")


class GramMemoryBudget:
    """``k.gram(X, memory_budget=...)``: the cost of tiling under a small budget."""

    params = (["rbf", "arccos", "ntk-conv"], ["4MB", "64MB", "1GB"], ["float32"], list(DEVICES))
    param_names = ("kernel", "budget", "dtype", "device")
    repeat = (3, 10, 10.0)
    rounds = 2
    timeout = 300
    #: rows of X: vector kernels, conv kernels
    n_vectors, n_images = 2048, 128

    def setup(self, kernel, budget, dtype, device):
        pin_threads()
        self.device = device_or_skip(device)
        n = self.n_vectors if KERNELS[kernel][1] == "vectors" else self.n_images
        self.kernel, self.x = kernel_inputs(kernel, n, dtype, self.device)

    def time_gram(self, kernel, budget, dtype, device):
        self.kernel.gram(self.x, memory_budget=budget)
        synchronize(self.device)

    def peakmem_gram(self, kernel, budget, dtype, device):
        self.kernel.gram(self.x, memory_budget=budget)


class GramGPUMemory:
    """Peak CUDA memory of ``k.gram(X)`` (``torch.cuda.max_memory_allocated``), in bytes."""

    params = (list(KERNELS), [128, 1024], ["float32", "float64"])
    param_names = ("kernel", "n", "dtype")
    rounds = 1
    timeout = 300

    def setup(self, kernel, n, dtype):
        pin_threads()
        self.device = device_or_skip("cuda")
        if KERNELS[kernel][1] == "images" and n > 128:
            raise NotImplementedError("conv kernels: n <= 128 (position pairs make large n slow)")
        self.kernel, self.x = kernel_inputs(kernel, n, dtype, self.device)

    def track_gpu_peak_memory(self, kernel, n, dtype):
        torch.cuda.synchronize(self.device)
        torch.cuda.reset_peak_memory_stats(self.device)
        base = torch.cuda.memory_allocated(self.device)
        self.kernel.gram(self.x)
        torch.cuda.synchronize(self.device)
        return torch.cuda.max_memory_allocated(self.device) - base

    track_gpu_peak_memory.unit = "bytes"
