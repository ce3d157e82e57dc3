"""CKN benchmarks: exact-kernel speed per image pair, and layerwise approximation error vs anchors.

Usage::

    python benchmarks/ckn_bench.py speed [--repeats 5] [--n 24] [--device cpu|cuda]
    python benchmarks/ckn_bench.py error [--n 500] [--anchors 8 16 32 ...]
    python benchmarks/ckn_bench.py accuracy [--n-train 2000] [--n-test 1000]
    python benchmarks/ckn_bench.py float64 [--n 16] [--repeats 3] [--threads 2]

``speed`` times a Gram of n images (n (n+1)/2 pairs, the self pairs included)
with ``torch.set_num_threads(1)`` and float32, and reports the median over the
repeats of the wall time and of the process CPU time per pair (on a shared
machine the CPU time is the steadier of the two). ``error`` reports the
relative Frobenius error of the layerwise network's Gram against the exact
Gram on scikit-learn's digits (8x8, /16). ``accuracy`` compares layerwise and
supervised CKN features with a ridge classifier (lambda on a validation split)
on digits. ``float64`` times a float64 exact Gram of n rotated MNIST images
with the pooling on banded matrices (what float64 on CPU uses) and on the
depthwise convolutions (what float32 uses), in one process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import kernelzoo as kz


def _speed(args: argparse.Namespace) -> None:
    torch.set_num_threads(1)
    device = torch.device(args.device)
    cases = [((1, 28, 28), [2, 5]), ((3, 32, 32), [2, 5])]
    print("| input | subsampling | pairs | wall ms/pair (median) | CPU ms/pair (median) |")
    print("|---|---|---|---|---|")
    for shape, subs in cases:
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.n, *shape, generator=g).to(device)
        k = kz.kernel("ckn", filter_size=3, subsampling=subs, sigma=0.6, kappa="exp")
        k.gram(x[:3])  # warm up
        pairs = args.n * (args.n + 1) // 2
        walls, cpus = [], []
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize()
            w0, c0 = time.perf_counter(), time.process_time()
            k.gram(x)
            if device.type == "cuda":
                torch.cuda.synchronize()
            walls.append(time.perf_counter() - w0)
            cpus.append(time.process_time() - c0)
        wall = statistics.median(walls) / pairs * 1e3
        cpu = statistics.median(cpus) / pairs * 1e3
        print(f"| {'x'.join(map(str, shape))} | {subs} | {pairs} | {wall:.2f} | {cpu:.2f} |")


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data[:n] / 16.0).reshape(-1, 1, 8, 8)
    return x, data.target[:n]


def _error(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    x, _ = _digits(args.n)
    k = kz.kernel("ckn", filter_size=3, subsampling=[2, 2], sigma=0.6, kappa="exp")
    t0 = time.perf_counter()
    exact = k.gram(x)
    print(f"exact Gram of {args.n} digits: {time.perf_counter() - t0:.1f} s")
    print("| anchors per layer | relative Frobenius error | n_features | fit+gram s |")
    print("|---|---|---|---|")
    for anchors in args.anchors:
        t0 = time.perf_counter()
        a = k.approximate("layerwise", budget=anchors, seed=0).fit(x)
        approx = a.gram(x)
        err = float((approx - exact).norm() / exact.norm())
        print(f"| {anchors} | {100 * err:.3f}% | {a.n_features} | "
              f"{time.perf_counter() - t0:.1f} |", flush=True)


def _accuracy(args: argparse.Namespace) -> None:
    from kernelzoo.classify import fit_ridge_classifier

    torch.set_num_threads(args.threads)
    x, y = _digits(args.n_train + args.n_test)
    x_tr, y_tr = x[: args.n_train], y[: args.n_train]
    x_te, y_te = x[args.n_train:], y[args.n_train:]
    n_val = args.n_train // 5
    k = kz.kernel("ckn", filter_size=3, subsampling=[2, 2], sigma=0.6, kappa="exp")
    print("| method | anchors | test accuracy | seconds |")
    print("|---|---|---|---|")
    for anchors in args.anchors:
        t0 = time.perf_counter()
        a = k.approximate("layerwise", budget=anchors, seed=0).fit(x_tr[n_val:])
        f_tr, f_val = a.features(x_tr[n_val:]), a.features(x_tr[:n_val])
        clf = fit_ridge_classifier(f_tr, y_tr[n_val:], f_val, y_tr[:n_val])
        acc = clf.score(a.features(x_te), y_te)
        print(f"| layerwise | {anchors} | {100 * acc:.2f}% | {time.perf_counter() - t0:.1f} |")
        t0 = time.perf_counter()
        s = k.approximate("supervised", budget=anchors, seed=0, epochs=args.epochs,
                          progress=False).fit(x_tr, y_tr)
        acc = s.score(x_te, y_te)
        print(f"| supervised | {anchors} | {100 * acc:.2f}% | {time.perf_counter() - t0:.1f} |",
              flush=True)


def _float64(args: argparse.Namespace) -> None:
    import kernelzoo.kernels.functional.ckn_ops as ops
    from kernelzoo.bench.gp import rotated_digits

    torch.set_num_threads(args.threads)
    x, *_ = rotated_digits(args.n, 1, seed=1, source="mnist")
    x = torch.tensor(x, dtype=torch.float64).reshape(-1, 1, 28, 28)
    k = kz.kernel("ckn(filter_size=3, subsampling=[2, 3], sigma=0.6)")
    pairs = args.n * (args.n + 1) / 2
    grams = {}
    saved = ops._MKLDNN_DTYPES
    try:
        for label, dtypes in (("banded matrices", saved),
                              ("depthwise convolution", (*saved, torch.float64))):
            ops._MKLDNN_DTYPES = dtypes
            k(x[:4])
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                grams[label] = k(x)
                times.append((time.perf_counter() - start) / pairs * 1e3)
            print(f"| {label} | {statistics.median(times):.2f} | "
                  f"{', '.join(f'{t:.2f}' for t in times)} |", flush=True)
    finally:
        ops._MKLDNN_DTYPES = saved
    diff = (grams["banded matrices"] - grams["depthwise convolution"]).abs().max()
    print(f"max abs difference: {float(diff):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--n", type=int, default=24)
    speed.add_argument("--repeats", type=int, default=5)
    speed.add_argument("--device", default="cpu")
    error = sub.add_parser("error")
    error.add_argument("--n", type=int, default=500)
    error.add_argument("--threads", type=int, default=1)
    error.add_argument("--anchors", type=int, nargs="+",
                       default=[8, 16, 32, 64, 128, 256, 512, 1024])
    acc = sub.add_parser("accuracy")
    acc.add_argument("--n-train", type=int, default=1200)
    acc.add_argument("--n-test", type=int, default=597)
    acc.add_argument("--threads", type=int, default=1)
    acc.add_argument("--epochs", type=int, default=10)
    acc.add_argument("--anchors", type=int, nargs="+", default=[16, 64])
    f64 = sub.add_parser("float64")
    f64.add_argument("--n", type=int, default=16)
    f64.add_argument("--repeats", type=int, default=3)
    f64.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    {"speed": _speed, "error": _error, "accuracy": _accuracy, "float64": _float64}[args.what](args)


if __name__ == "__main__":
    main()
