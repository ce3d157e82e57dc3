"""Rotated-MNIST GP regression table of issue 6 (:func:`kernelzoo.bench.gp.run_gp`).

MNIST digits rotated by a seeded uniform angle in [-45, 45] degrees; the
target is the angle. Training images come from MNIST's training split, test
images from its test split (seed 0). Every kernel is wrapped in gpytorch's
``ScaleKernel``; 50 Adam steps (lr 0.1) on the exact marginal likelihood, then
exact prediction (``max_cholesky_size`` above n: every solve is a Cholesky).
float64 GP; exact conv Grams computed in float32 (``gram_dtype``).

    python benchmarks/gp_rotated_mnist.py exact --out rot1000.csv        # n_train 1000
    python benchmarks/gp_rotated_mnist.py large --out rot5000.csv        # n_train 5000
    python benchmarks/gp_rotated_mnist.py select                         # CKN choice

``exact``: every family exact at n_train = 1000 (rbf, arccos, fc and conv
NNGP/NTK, the exact CKN) plus the layerwise CKN with anchors and sigma trained
through the marginal likelihood. ``large``: n_train = 5000: exact GPs for the
vector kernels, SGPR (512 inducing points) for rbf and the conv NNGP/NTK,
Nyström / random features, and the layerwise CKN (k-means anchors, fixed).
``select``: the CKN hyperparameters and the rbf lengthscale grid, compared on
a validation split drawn from MNIST's *training* images only (seed 1: 1000
fit, 1000 validation), with the layerwise CKN [64, 256] standing for the
exact kernel; outputscale and noise by maximum marginal likelihood on a grid.
Prints a markdown table (and writes ``--out`` as CSV).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
import torch

import kernelzoo as kz
from kernelzoo.bench.gp import rotated_digits, run_gp

CKN = "ckn(filter_size=3, subsampling=[2, 3], sigma=0.6)"
VECTOR = [
    "rbf",
    "arccos(degree=1, depth=2)",
    "nngp(architecture='fc', depth=2)",
    "ntk(architecture='fc', depth=2)",
]
CONV = [
    "nngp(architecture='conv', depth=2, readout='flatten')",
    "ntk(architecture='conv', depth=2, readout='flatten')",
]

RUNS = {
    "exact": (1000, True, [
        (VECTOR, ["exact"], {}),
        (CONV, ["exact"], {}),
        ([CKN], ["exact"], {}),
        ([CKN], ["layerwise"], {"layerwise": [64, 256]}),
    ]),
    "large": (5000, False, [
        ([CKN], ["layerwise"], {"layerwise": [64, 256]}),
        (VECTOR, ["exact"], {}),
        (["rbf"], ["sgpr", "nystrom"], {"sgpr": 512, "nystrom": 512}),
        (["arccos(degree=1, depth=2)"], ["random-features"], {"random-features": 4096}),
        (CONV, ["sgpr"], {"sgpr": 512}),
    ]),
}

SELECT = [
    *(f"rbf(lengthscale={ls})" for ls in (4, 6, 8, 10, 14)),
    "ckn(filter_size=3, subsampling=[2, 5], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[2, 3], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[2, 3], sigma=0.8)",
    "ckn(filter_size=3, subsampling=[2, 2], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[1, 5], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[4, 7], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[2, 14], sigma=0.6)",
    "ckn(filter_size=5, subsampling=[2, 3], sigma=0.6)",
    "ckn(filter_size=3, subsampling=[2, 5], sigma=0.4)",
    "ckn(filter_size=3, subsampling=[2, 5], sigma=1.0)",
    "ckn(filter_size=3, subsampling=[2, 2, 2], sigma=0.6)",
]


def _table(frame: pd.DataFrame) -> str:
    frame = frame.assign(budget=frame.budget.fillna("").astype(str),
                         error=frame.error.fillna(""))
    ok = frame[frame.error == ""]
    wide = ok.pivot_table(index=["spec", "method", "budget"], columns="metric", values="value",
                          aggfunc="first", dropna=False).reset_index()
    lines = ["| kernel | method | budget | RMSE (deg) | NLPD | coverage 95 % | train s | "
             "predict s |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for _, r in wide.dropna(subset=["rmse"]).iterrows():
        lines.append(f"| {r.spec} | {r.method} | {r.budget} | {r.rmse:.2f} | {r.nlpd:.3f} | "
                     f"{r.coverage95:.3f} | {r.train_seconds:.1f} | {r.predict_seconds:.1f} |")
    for _, r in frame[frame.error != ""].drop_duplicates(["spec", "method"]).iterrows():
        lines.append(f"| {r.spec} | {r.method} | {r.budget} | failed: {r.error} |")
    return "\n".join(lines)


def run_tables(which: str, out: str | None) -> pd.DataFrame:
    n_train, train_anchors, runs = RUNS[which]
    frames = []
    for kernels, methods, budgets in runs:
        start = time.perf_counter()
        frame = run_gp("digits-rotation", kernels=kernels, n_train=n_train, n_test=1000,
                       methods=methods, budgets=budgets, source="mnist", training_iters=50,
                       gram_dtype="float32", train_anchors=train_anchors, progress=True)
        frames.append(frame)
        if out:
            pd.concat(frames).to_csv(out, index=False)
        print(f"# {kernels} {methods}: {time.perf_counter() - start:.0f} s", flush=True)
    frame = pd.concat(frames)
    print(_table(frame))
    return frame


def _gp_fixed(k, kc, dc, y, y_val):
    """Outputscale and noise by maximum marginal likelihood (grid); validation RMSE, NLPD."""
    mu, sd = y.mean(), y.std()
    lam, vecs = np.linalg.eigh(k)
    lam = np.clip(lam, 0.0, None)
    u = vecs.T @ ((y - mu) / sd)
    best = max(
        (-0.5 * (np.sum(u * u / (s * lam + nz)) + np.sum(np.log(s * lam + nz))), s, nz)
        for s in np.logspace(-3, 3, 61) for nz in np.logspace(-4, 1, 51)
    )
    _, s, nz = best
    v = s * lam + nz
    mean = s * kc @ (vecs @ (u / v)) * sd + mu
    w = (s * kc) @ vecs
    var = (s * dc - np.sum(w * w / v, 1) + nz) * sd**2
    r = y_val - mean
    return float(np.sqrt(np.mean(r**2))), float(np.mean(0.5 * (np.log(2 * np.pi * var)
                                                                + r**2 / var)))


def select(out: str | None) -> pd.DataFrame:
    x, y, _, _, shape, _ = rotated_digits(2000, 1, seed=1, source="mnist")
    xa, ya, xb, yb = x[:1000], y[:1000], x[1000:], y[1000:]
    rows = []
    for spec in SELECT:
        k = kz.kernel(spec)
        start = time.perf_counter()
        if k.family == "ckn":
            approx = k.approximate("layerwise", budget=[64, 256, 256][: len(k.subsampling)],
                                   seed=0)
            a = torch.tensor(xa, dtype=torch.float32).reshape(-1, *shape)
            b = torch.tensor(xb, dtype=torch.float32).reshape(-1, *shape)
            approx.fit(a)
            fa, fb = approx.features(a).double(), approx.features(b).double()
            kk, kc, dc = (fa @ fa.T).numpy(), (fb @ fa.T).numpy(), (fb * fb).sum(1).numpy()
        else:
            a, b = torch.tensor(xa), torch.tensor(xb)
            kk, kc, dc = k(a).numpy(), k(b, a).numpy(), k.diag(b).numpy()
        rmse, nlpd = _gp_fixed(kk, kc, dc, ya, yb)
        rows.append({"spec": spec, "val_rmse": rmse, "val_nlpd": nlpd,
                     "seconds": time.perf_counter() - start})
        print(rows[-1], flush=True)
    frame = pd.DataFrame(rows)
    if out:
        frame.to_csv(out, index=False)
    print("| kernel | val RMSE (deg) | val NLPD | s |\n|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['spec']} | {r['val_rmse']:.2f} | {r['val_nlpd']:.3f} | {r['seconds']:.0f} |")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["exact", "large", "select"])
    parser.add_argument("--out", default=None, help="CSV file for the rows")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.which == "select":
        select(args.out)
    else:
        run_tables(args.which, args.out)


if __name__ == "__main__":
    main()
