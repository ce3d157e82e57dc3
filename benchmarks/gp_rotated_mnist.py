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
    python benchmarks/gp_rotated_mnist.py curve --sizes 1000 5000 20000  # learning curve
    python benchmarks/gp_rotated_mnist.py slant                          # writers' slant

``exact``: every family exact at n_train = 1000 (rbf, arccos, fc and conv
NNGP/NTK, the exact CKN) plus the layerwise CKN with anchors and sigma trained
through the marginal likelihood. ``large``: n_train = 5000: SGPR (512 inducing
points) for rbf and the fc and conv NNGP/NTK,
Nyström / random features, and the layerwise CKN (k-means anchors, fixed).
(A dense n = 5000 GP costs about 20 s per Adam step on 2 CPU cores in
float64: the layerwise CKN row, 1039 s for 50 steps; exact rbf/arccos/fc
GPs at that size were left out for that reason, and the ``curve``
subcommand gives near-exact rbf figures there.)
``select``: the CKN hyperparameters and the rbf lengthscale grid, compared on
a validation split drawn from MNIST's *training* images only (seed 1: 1000
fit, 1000 validation), with the layerwise CKN (anchors [256], [64, 256] or
[64, 128, 256] by depth) standing for the exact kernel; outputscale and
noise by maximum marginal likelihood on a grid.
``curve``: RMSE against n_train for the layerwise CKN (k-means anchors
[64, 256]) and rbf Nyström features (as many landmarks as the CKN has
features, lengthscale 7: the middle of the selection's best), a GP in feature
space (Bayesian linear regression on the features, outputscale and noise by
maximum marginal likelihood on a grid), test = 1000 rotated MNIST test images.
``slant``: how much unrotated MNIST digits already lean (first 20000
training images, image moments): the principal-axis angle of elongated
digits per class, and the shear angle cov(row, col) / var(row) of every
digit. A rotation by theta of a digit written at angle phi looks like a digit
written at theta + phi, so the spread of phi bounds what any regressor of the
angle can reach from the image alone.
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
        (["rbf"], ["sgpr", "nystrom"], {"sgpr": 512, "nystrom": 512}),
        (["arccos(degree=1, depth=2)"], ["random-features"], {"random-features": 2048}),
        (VECTOR[2:] + CONV, ["sgpr"], {"sgpr": 512}),
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
    "ckn(filter_size=5, subsampling=[5], sigma=0.6)",
    "ckn(filter_size=5, subsampling=[3], sigma=0.6)",
]


def _finish(rows: list[dict], out: str | None, columns: dict[str, str]) -> pd.DataFrame:
    """The rows as a frame, written to ``out`` (CSV) and printed as a markdown table."""
    frame = pd.DataFrame(rows)
    if out:
        frame.to_csv(out, index=False)

    def cell(value) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 10 else f"{value:.2f}"
        return str(value)

    print("| " + " | ".join(columns.values()) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(cell(row[key]) for key in columns) + " |")
    return frame


def _table(frame: pd.DataFrame) -> str:
    budget = frame.budget.astype(object)
    frame = frame.assign(budget=budget.where(budget.notna(), "").astype(str),
                         error=frame.error.astype(object).where(frame.error.notna(), ""))
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


def run_tables(which: str, out: str | None, groups: list[int] | None = None,
               seed: int = 0) -> pd.DataFrame:
    n_train, train_anchors, runs = RUNS[which]
    frames = []
    for i, (kernels, methods, budgets) in enumerate(runs):
        if groups is not None and i not in groups:
            continue
        start = time.perf_counter()
        frame = run_gp("digits-rotation", kernels=kernels, n_train=n_train, n_test=1000,
                       methods=methods, budgets=budgets, source="mnist", training_iters=50,
                       gram_dtype="float32", train_anchors=train_anchors, progress=True,
                       seeds=(seed,))
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
            budget = {1: [256], 2: [64, 256], 3: [64, 128, 256]}[len(k.subsampling)]
            approx = k.approximate("layerwise", budget=budget, seed=0)
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
    return _finish(rows, out, {"spec": "kernel", "val_rmse": "val RMSE (deg)",
                               "val_nlpd": "val NLPD", "seconds": "s"})


def _primal_gp(f_tr, y, f_te, y_te):
    """GP with covariance s F F^T + noise, in the primal (D x D); ML over (s, noise) on a grid."""
    mu, sd = y.mean(), y.std()
    t = (y - mu) / sd
    n = len(t)
    lam, vecs = np.linalg.eigh(f_tr.T @ f_tr)  # nonzero eigenvalues of F F^T
    lam = np.clip(lam, 0.0, None)
    proj = vecs.T @ (f_tr.T @ t)  # U^T F^T t
    tt = float(t @ t)
    best = None
    for s in np.logspace(-4, 3, 71):
        for nz in np.logspace(-3, 1, 41):
            v = s * lam + nz
            # t^T (s F F^T + nz I)^-1 t and log det, via the D x D eigenproblem
            quad = (tt - np.sum(s * proj**2 / v)) / nz
            logdet = np.sum(np.log(v)) + (n - len(lam)) * np.log(nz)
            ll = -0.5 * (quad + logdet)
            if best is None or ll > best[0]:
                best = (ll, s, nz)
    _, s, nz = best
    v = s * lam + nz
    w = vecs @ (s * proj / v)  # posterior mean weights
    g = f_te @ vecs
    mean = (f_te @ w) * sd + mu
    var = (np.sum(s * nz * g * g / v, 1) + nz) * sd**2
    r = y_te - mean
    return (float(np.sqrt(np.mean(r**2))),
            float(np.mean(0.5 * (np.log(2 * np.pi * var) + r**2 / var))),
            float(np.mean(np.abs(r) <= 1.959963984540054 * np.sqrt(var))))


def curve(sizes: list[int], out: str | None) -> pd.DataFrame:
    x, y, x_te, y_te, shape, _ = rotated_digits(max(sizes), 1000, seed=0, source="mnist")
    rows = []
    ckn = kz.kernel(CKN).approximate("layerwise", budget=[64, 256], seed=0)
    tr = torch.tensor(x, dtype=torch.float32).reshape(-1, *shape)
    te = torch.tensor(x_te, dtype=torch.float32).reshape(-1, *shape)
    ckn.fit(tr[:1000])  # anchors from the first 1000 images, as at n = 1000
    feats = {"ckn layerwise [64, 256]": (torch.cat([ckn.features(b) for b in tr.split(1000)]),
                                         ckn.features(te))}
    width = feats["ckn layerwise [64, 256]"][0].shape[1]
    rbf = kz.kernel("rbf(lengthscale=7.0)").approximate("nystrom", budget=width, seed=0)
    rbf.fit(torch.tensor(x))
    feats[f"rbf nystrom ({width})"] = (rbf.features(torch.tensor(x)), rbf.features(
        torch.tensor(x_te)))
    for name, (f_all, f_te) in feats.items():
        f_all, f_te = f_all.double().numpy(), f_te.double().numpy()
        for n in sizes:
            start = time.perf_counter()
            rmse, nlpd, cov = _primal_gp(f_all[:n], y[:n], f_te, y_te)
            rows.append({"features": name, "n_train": n, "rmse": rmse, "nlpd": nlpd,
                         "coverage95": cov, "seconds": time.perf_counter() - start})
            print(rows[-1], flush=True)
    return _finish(rows, out, {"features": "features", "n_train": "n_train",
                               "rmse": "RMSE (deg)", "nlpd": "NLPD",
                               "coverage95": "coverage 95 %"})


def slant(out: str | None) -> pd.DataFrame:
    from kernelzoo.data import load_dataset

    train = load_dataset("mnist", "train", n=20000)
    x = np.asarray(train.X, dtype=np.float64).reshape(-1, 28, 28)
    labels = np.asarray(train.y)
    r, c = np.mgrid[:28, :28]
    mass = x.sum((1, 2))
    dr = r - ((x * r).sum((1, 2)) / mass)[:, None, None]
    dc = c - ((x * c).sum((1, 2)) / mass)[:, None, None]
    vrr, vcc = (x * dr**2).sum((1, 2)) / mass, (x * dc**2).sum((1, 2)) / mass
    vrc = (x * dr * dc).sum((1, 2)) / mass
    axis = 0.5 * np.degrees(np.arctan2(2 * vrc, vrr - vcc))  # principal axis vs vertical
    elongation = np.sqrt((vrr - vcc) ** 2 + 4 * vrc**2) / (vrr + vcc)
    shear = np.degrees(np.arctan(vrc / vrr))
    rows = []
    for digit in range(10):
        mine = labels == digit
        long = mine & (elongation > 0.5)
        rows.append({"digit": digit, "n": int(mine.sum()), "shear_mean": shear[mine].mean(),
                     "shear_sd": shear[mine].std(), "n_elongated": int(long.sum()),
                     "axis_sd": axis[long].std() if long.sum() > 1 else float("nan")})
    frame = pd.DataFrame(rows)
    if out:
        frame.to_csv(out, index=False)
    print("| digit | n | shear mean (deg) | shear SD (deg) | elongated n | principal-axis SD "
          "(deg) |\n|---:|---:|---:|---:|---:|---:|")
    for r_ in rows:
        print(f"| {r_['digit']} | {r_['n']} | {r_['shear_mean']:.1f} | {r_['shear_sd']:.1f} | "
              f"{r_['n_elongated']} | {r_['axis_sd']:.1f} |")
    pooled = np.sqrt(np.mean([shear[labels == d].var() for d in range(10)]))
    print(f"pooled within-class shear SD: {pooled:.1f} deg")
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["exact", "large", "select", "curve", "slant"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 2000, 5000, 10000, 20000])
    parser.add_argument("--out", default=None, help="CSV file for the rows")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0,
                        help="exact/large: data draw and rotations (1 is the selection's)")
    parser.add_argument("--groups", type=int, nargs="+", default=None,
                        help="run only these groups of kernels (0-based, in RUNS order)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.which == "select":
        select(args.out)
    elif args.which == "curve":
        curve(args.sizes, args.out)
    elif args.which == "slant":
        slant(args.out)
    else:
        run_tables(args.which, args.out, args.groups, args.seed)


if __name__ == "__main__":
    main()
