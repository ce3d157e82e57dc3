"""CKN accuracy benchmarks of issue 4: layerwise (k-means Nyström) and supervised CKN.

Two subcommands, each printing one markdown table row per run (and a JSON line):

    python benchmarks/ckn_accuracy.py layerwise --dataset mnist --budget 64 256
    python benchmarks/ckn_accuracy.py supervised --dataset fashion-mnist --budget 64 64 \
        --n-train 12000 --n-val 2000 --epochs 6

Splits: the first ``--n-train`` images of the official training split (all 60000
by default) are shuffled with seed 0 and ``--n-val`` of them are held out as the
validation split, which alone chooses the ridge lambda (and, for ``supervised``,
is what the training reports); the rest is the training part. Test accuracy is
on the first ``--n-test`` images of the official test split, which nothing is
tuned on. Images are the raw pixels in [0, 1] unless ``--standardize`` (per-image
standardisation, :func:`kernelzoo.data.standardize_images`). Features are
computed in float32 in batches; the ridge classifier
(:func:`kernelzoo.classify.fit_ridge_classifier`) works in float64.

``supervised`` first reports the layerwise network that initialises it (same
training part, same anchors, same validation split: ``init``), then the
trained network, so the two rows compare at equal anchors.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import kernelzoo as kz
from kernelzoo.classify import fit_ridge_classifier
from kernelzoo.data import load_dataset, standardize_images


def _splits(args: argparse.Namespace):
    train = load_dataset(args.dataset, split="train", n=args.n_train)
    test = load_dataset(args.dataset, split="test", n=args.n_test)
    x, x_te = train.X, test.X
    if args.standardize:
        x, x_te = standardize_images(x), standardize_images(x_te)
    perm = np.random.default_rng(0).permutation(len(train.y))
    val, tr = perm[: args.n_val], perm[args.n_val:]
    return (torch.from_numpy(x[tr]), torch.from_numpy(train.y[tr]),
            torch.from_numpy(x[val]), torch.from_numpy(train.y[val]),
            torch.from_numpy(x_te), torch.from_numpy(test.y))


def _kernel(args: argparse.Namespace):
    return kz.kernel("ckn", filter_size=args.filter_size, subsampling=args.subsampling,
                     sigma=args.sigma, kappa="exp")


def _report(row: dict) -> None:
    print("| " + " | ".join(str(v) for v in row.values()) + " |")
    print("JSON " + json.dumps(row), flush=True)


def _header(keys: list[str]) -> None:
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys), flush=True)


def _features_and_ridge(approx, x_tr, y_tr, x_val, y_val, x_te, y_te) -> dict:
    t0 = time.perf_counter()
    with torch.no_grad():
        f_tr, f_val, f_te = (approx.features(x) for x in (x_tr, x_val, x_te))
    t_feat = time.perf_counter() - t0
    t0 = time.perf_counter()
    clf = fit_ridge_classifier(f_tr, y_tr, f_val, y_val)
    t_clf = time.perf_counter() - t0
    return {"val": clf.val_accuracy, "test": clf.score(f_te, y_te), "lam": clf.lam,
            "t_feat": t_feat, "t_clf": t_clf, "n_features": f_tr.shape[1]}


def _sizes(x_tr, x_val, x_te) -> str:
    return f"{x_tr.shape[0]}/{x_val.shape[0]}/{x_te.shape[0]}"


def _layerwise(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    x_tr, y_tr, x_val, y_val, x_te, y_te = _splits(args)
    _header(["dataset", "train/val/test", "subsampling", "anchors", "n_features", "val acc",
             "test acc", "fit s", "features s", "ridge s", "total s"])
    for budget in args.budget:
        anchors = [budget] * 2 if len(args.budget_layers) == 0 else args.budget_layers
        t0 = time.perf_counter()
        approx = _kernel(args).approximate("layerwise", budget=anchors, seed=args.seed,
                                           n_patches=args.n_patches,
                                           kmeans_iters=args.kmeans_iters).fit(x_tr)
        t_fit = time.perf_counter() - t0
        res = _features_and_ridge(approx, x_tr, y_tr, x_val, y_val, x_te, y_te)
        _report({
            "dataset": args.dataset, "sizes": _sizes(x_tr, x_val, x_te),
            "subsampling": args.subsampling, "anchors": anchors,
            "n_features": res["n_features"], "val": f"{100 * res['val']:.2f}%",
            "test": f"{100 * res['test']:.2f}%", "fit_s": round(t_fit, 1),
            "features_s": round(res["t_feat"], 1), "ridge_s": round(res["t_clf"], 1),
            "total_s": round(t_fit + res["t_feat"] + res["t_clf"], 1),
        })
        if args.budget_layers:
            break


def _supervised(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    x_tr, y_tr, x_val, y_val, x_te, y_te = _splits(args)
    anchors = args.budget_layers or [args.budget[0]] * 2
    _header(["method", "dataset", "train/val/test", "anchors", "val acc", "test acc",
             "seconds"])
    # the layerwise network that initialises the supervised one (same data, same seed)
    t0 = time.perf_counter()
    init = _kernel(args).approximate("layerwise", budget=anchors, seed=args.seed,
                                     n_patches=args.n_patches,
                                     kmeans_iters=args.kmeans_iters).fit(x_tr)
    res = _features_and_ridge(init, x_tr, y_tr, x_val, y_val, x_te, y_te)
    _report({"method": "layerwise (init)", "dataset": args.dataset,
             "sizes": _sizes(x_tr, x_val, x_te), "anchors": anchors,
             "val": f"{100 * res['val']:.2f}%", "test": f"{100 * res['test']:.2f}%",
             "seconds": round(time.perf_counter() - t0, 1)})
    t0 = time.perf_counter()
    sup = _kernel(args).approximate(
        "supervised", budget=anchors, seed=args.seed, n_patches=args.n_patches,
        kmeans_iters=args.kmeans_iters, epochs=args.epochs, lr=args.lr,
        lr_final=args.lr_final, momentum=args.momentum, batch_size=args.batch_size,
        min_lambda=args.min_lambda, progress=False,
    )
    sup.fit_split(x_tr, y_tr, x_val, y_val)
    t_fit = time.perf_counter() - t0
    print("loss per epoch:", [round(v, 4) for v in sup.loss_history_])
    print("val accuracy per refit:", [round(v, 4) for v in sup.val_accuracy_history_],
          "kept:", sup.best_epoch_, flush=True)
    with torch.no_grad():
        test = sup.score(x_te, y_te)
    _report({"method": f"supervised ({args.epochs} epochs, lr {args.lr})",
             "dataset": args.dataset, "sizes": _sizes(x_tr, x_val, x_te), "anchors": anchors,
             "val": f"{100 * sup.val_accuracy_history_[sup.best_epoch_]:.2f}%",
             "test": f"{100 * test:.2f}%",
             "seconds": round(time.perf_counter() - t0, 1), "fit_s": round(t_fit, 1)})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    for name in ("layerwise", "supervised"):
        p = sub.add_parser(name)
        p.add_argument("--dataset", default="mnist")
        p.add_argument("--n-train", type=int, default=None,
                       help="first images of the training split (default: all 60000)")
        p.add_argument("--n-val", type=int, default=10000)
        p.add_argument("--n-test", type=int, default=None)
        p.add_argument("--budget", type=int, nargs="+", default=[64, 256],
                       help="anchors per layer (same on both layers), one run per value")
        p.add_argument("--budget-layers", type=int, nargs="*", default=[],
                       help="anchors of each layer (overrides --budget; one run)")
        p.add_argument("--filter-size", type=int, default=3)
        p.add_argument("--subsampling", type=int, nargs="+", default=[2, 5])
        p.add_argument("--sigma", type=float, default=0.6)
        p.add_argument("--n-patches", type=int, default=100000)
        p.add_argument("--kmeans-iters", type=int, default=20)
        p.add_argument("--standardize", action="store_true")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=2)
        if name == "supervised":
            p.add_argument("--epochs", type=int, default=10)
            p.add_argument("--lr", type=float, default=1.0)
            p.add_argument("--lr-final", type=float, default=0.1)
            p.add_argument("--momentum", type=float, default=0.9)
            p.add_argument("--batch-size", type=int, default=128)
            p.add_argument("--min-lambda", type=float, default=1e-4)
    args = parser.parse_args()
    {"layerwise": _layerwise, "supervised": _supervised}[args.what](args)


if __name__ == "__main__":
    main()
