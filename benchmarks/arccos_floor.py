"""What one arc-cosine layer costs beside the GEMM it follows (issue 16's arccos rows).

The arccos Gram of depth L is one GEMM of unit rows and L elementwise maps of the
cosines. This times, in one process, the bare ``X @ X.T`` (n=4096, d=784, float32)
and one degree-1 map over the same 4096^2 cosines: in place with torch's vectorised
ops (:func:`~kernelzoo.kernels.functional.dot.arccos_fn_`), on the whole matrix and on
row chunks that stay in the L2 cache, and as one ``torch.compile``-fused pass. Each
extra layer adds at least the cheapest of these to ``time / GEMM``.

Usage: ``python benchmarks/arccos_floor.py [--threads 2] [--repeats 7]``
"""

from __future__ import annotations

import argparse
import math
import os
import torch

from kernelzoo.kernels.functional.dot import arccos_fn_

from foundation_bench import _median_time  # one timer for the benchmark scripts


def fused_layer(c: torch.Tensor) -> torch.Tensor:
    """One degree-1 arc-cosine map written for inductor."""
    s = (1 - c * c).clamp_min(0).sqrt()
    return s / math.pi + c * (1 - torch.acos(c) / math.pi)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    n, d = 4096, 784
    x = torch.randn(n, d)
    x = x / x.norm(dim=1, keepdim=True)
    out = torch.empty(n, n)
    print(f"load average (1 min) at the start: {os.getloadavg()[0]:.2f}; "
          f"{args.threads} threads, medians of {args.repeats}")
    gemm = _median_time(lambda: torch.mm(x, x.T, out=out), args.repeats)
    print(f"| measure | ms | / GEMM |\n|---|---|---|\n| bare X @ X.T | {gemm * 1e3:.1f} | 1 |")
    cos = out.clamp(-1.0, 1.0)
    for rows in (n, 256, 64):
        chunk, work = cos[:rows].clone(), torch.empty(rows, n)
        t = _median_time(lambda: [arccos_fn_(chunk, 1, work) for _ in range(n // rows)],
                        args.repeats)
        print(f"| one degree-1 layer, in place, chunks of {rows} rows | {t * 1e3:.1f} | "
              f"{t / gemm:.3f} |")
    compiled = torch.compile(fused_layer)
    t = _median_time(lambda: compiled(cos), args.repeats)
    print(f"| one degree-1 layer, torch.compile fused | {t * 1e3:.1f} | {t / gemm:.3f} |")
    print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
