"""Foundation figures: approximation error of rff/orf/nystrom on digits, and Gram
time of rbf/arccos against scikit-learn's rbf_kernel and a bare X @ X.T.

    python benchmarks/foundation_bench.py [--n 4096] [--d 784] [--repeats 5]

Prints Markdown tables. Timings are medians of ``--repeats`` runs, all in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def approximation_errors(n: int = 1000, seeds=tuple(range(10))) -> None:
    from sklearn.datasets import load_digits

    import kernelzoo as kz

    x = torch.from_numpy(load_digits().data[:n] / 16.0)
    k = kz.kernel("rbf", lengthscale=float(np.sqrt(x.shape[1] / 2)))  # ~ median heuristic scale
    exact = k.gram(x)
    budgets = [64, 128, 256, 512, 1024, 2048, 4096]
    print(f"\nrelative Frobenius error, {k.spec}, {n} digits, mean over seeds {list(seeds)}\n")
    print("| budget | rff | orf | nystrom |")
    print("|---:|---:|---:|---:|")
    for b in budgets:
        row = []
        for method in ("rff", "orf", "nystrom"):
            if method == "nystrom" and b > n:
                row.append("n/a (> n)")
                continue
            errs = [
                float((k.approximate(method, budget=b, seed=s).fit(x).gram(x) - exact).norm()
                      / exact.norm())
                for s in seeds
            ]
            row.append(f"{np.mean(errs):.2e}")
        print(f"| {b} | " + " | ".join(row) + " |")


def gram_speed(n: int, d: int, repeats: int) -> None:
    from sklearn.metrics.pairwise import rbf_kernel

    import kernelzoo as kz

    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, d, generator=g, dtype=torch.float32)
    xn = x.numpy()
    ls = float(np.sqrt(d / 6))
    rows = {
        "bare X @ X.T (torch)": lambda: x @ x.T,
        "scikit-learn rbf_kernel": lambda: rbf_kernel(xn, gamma=1 / (2 * ls**2)),
        "kernelzoo rbf": lambda: kz.kernel("rbf", lengthscale=ls).gram(x),
        "kernelzoo arccos(degree=1, depth=1)": lambda: kz.kernel("arccos").gram(x),
        "kernelzoo arccos(degree=1, depth=3)": lambda: kz.kernel("arccos", depth=3).gram(x),
        "kernelzoo arccos(degree=0, depth=1)": lambda: kz.kernel("arccos", degree=0).gram(x),
    }
    times = {name: _median_time(fn, repeats) for name, fn in rows.items()}
    base = times["bare X @ X.T (torch)"]
    print(f"\nGram time, n={n}, d={d}, float32, CPU, {torch.get_num_threads()} threads, "
          f"median of {repeats}\n")
    print("| what | seconds | / bare product |")
    print("|---|---:|---:|")
    for name, t in times.items():
        print(f"| {name} | {t:.3f} | {t / base:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=4096)
    parser.add_argument("--d", type=int, default=784)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-errors", action="store_true")
    args = parser.parse_args()
    gram_speed(args.n, args.d, args.repeats)
    if not args.skip_errors:
        approximation_errors()
