"""CKN experiments: ``mnist-ckn``, ``fashion-ckn`` (layerwise), ``fashion-ckn-supervised``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from kernelzoo.reproduce._common import (
    SEED,
    Context,
    Record,
    Splits,
    batched,
    load_splits,
    timed,
)


@dataclasses.dataclass(frozen=True)
class CKNConfig:
    """One unsupervised CKN configuration: kernel parameters, anchors, k-means sampling."""

    params: tuple[tuple[str, Any], ...]
    anchors: tuple[int, ...]
    n_patches: int = 50000
    kmeans_iters: int = 10

    def kernel(self):
        from kernelzoo.registry import kernel

        return kernel("ckn", **{k: list(v) if isinstance(v, tuple) else v for k, v in self.params})

    def label(self) -> str:
        return f"{self.kernel().spec} layerwise{list(self.anchors)}"


def ckn_config(
    anchors=(64, 256),
    subsampling=(2, 3),
    centering=False,
    sigma=0.6,
    n_patches=50000,
    kmeans_iters=10,
) -> CKNConfig:
    params = (
        ("filter_size", 3),
        ("subsampling", tuple(subsampling)),
        ("sigma", sigma),
        ("kappa", "exp"),
        ("centering", bool(centering)),
    )
    return CKNConfig(params, tuple(anchors), n_patches, kmeans_iters)


def normalise_rows(f: torch.Tensor) -> torch.Tensor:
    """Per-sample centring and L2 normalisation of feature rows (CKN-Pytorch's final step)."""
    from kernelzoo.classify import center_normalize

    return center_normalize(f)


def _classifiers(ctx: Context, f_fit, y_fit, f_val, y_val, svm: bool):
    """Every classifier variant on one set of features: ``(name, classifier, transform, s)``.

    ``--option features=raw|centre-l2|both`` (default both): the features as they
    are, and/or centred and L2-normalised per sample.
    """
    from kernelzoo.classify import fit_ridge_classifier, fit_squared_hinge_classifier

    which = str(ctx.options.get("features", "both"))
    norms = {"raw": (False,), "centre-l2": (True,), "both": (False, True)}.get(which)
    if norms is None:
        raise ValueError(f"features must be raw, centre-l2 or both, got {which!r}")
    out = []
    for norm in norms:
        tf = normalise_rows if norm else _identity
        a, b = tf(f_fit), tf(f_val)
        t = timed()
        clf = fit_ridge_classifier(a, y_fit, b, y_val, solver="cholesky")
        out.append((f"ridge{'+centre-l2' if norm else ''}", clf, tf, t()))
        if svm:
            t = timed()
            clf = fit_squared_hinge_classifier(a, y_fit, b, y_val, max_iter=500)
            out.append((f"sqhinge-svm{'+centre-l2' if norm else ''}", clf, tf, t()))
        del a, b
    return out


def _identity(f: torch.Tensor) -> torch.Tensor:
    return f


def run_layerwise(
    ctx: Context,
    dataset: str,
    grid: list[CKNConfig],
    group: str,
    svm: bool = False,
    data: Splits | None = None,
) -> Record:
    """Fit every configuration on the fit split, choose on validation, test the chosen once."""
    data = data if data is not None else load_splits(ctx, dataset)
    n_fit = data.x_fit.shape[0]
    ctx.log(
        f"{dataset}: fit {n_fit}, validation {data.x_val.shape[0]}, "
        f"test {data.x_test.shape[0]}; {len(grid)} configurations"
    )
    best: tuple[float, Record, Any, Any, Any] | None = None
    for cfg in grid:
        t = timed()
        approx = cfg.kernel().approximate(
            "layerwise",
            budget=list(cfg.anchors),
            seed=SEED,
            n_patches=cfg.n_patches,
            kmeans_iters=cfg.kmeans_iters,
        )
        approx.fit(data.x_fit)
        t_anchors = t()
        f_fit = batched(approx.features, data.x_fit, "features (fit)", ctx.progress)
        f_val = batched(approx.features, data.x_val, "features (val)", ctx.progress)
        t_feat = t() - t_anchors
        base = t()
        for name, clf, tf, t_clf in _classifiers(ctx, f_fit, data.y_fit, f_val, data.y_val, svm):
            rec = ctx.add(
                Record(
                    ctx.name,
                    cfg.label(),
                    f"layerwise+{name}",
                    n_fit,
                    clf.val_accuracy,
                    None,
                    base + t_clf,
                    details={
                        "lambda": f"{clf.lam:.3g}",
                        "anchors_s": round(t_anchors, 1),
                        "features_s": round(t_feat, 1),
                        "classifier_s": round(t_clf, 1),
                        "n_features": int(f_fit.shape[1]),
                        "seed": SEED,
                        "n_patches": cfg.n_patches,
                        "kmeans_iters": cfg.kmeans_iters,
                    },
                )
            )
            if best is None or clf.val_accuracy > best[0]:
                best = (clf.val_accuracy, rec, approx, clf, tf)
        del f_fit, f_val
    assert best is not None
    _, rec, approx, clf, tf = best
    t = timed()
    f_test = batched(approx.features, data.x_test, "features (test)", ctx.progress)
    rec.test_accuracy = clf.score(tf(f_test), data.y_test)
    rec.chosen = True
    rec.details.update(group=group, test_features_s=round(t(), 1), n_test=int(data.x_test.shape[0]))
    ctx.log(
        f"chosen on validation: {rec.model} [{rec.method}]: test {100 * rec.test_accuracy:.2f}%"
    )
    return rec


def _grid(ctx: Context, configs: list[dict[str, Any]]) -> list[CKNConfig]:
    if ctx.smoke:
        return [
            ckn_config(
                anchors=(8, 16), n_patches=5000, kmeans_iters=3, centering=c.get("centering", False)
            )
            for c in configs[:2]
        ]
    return [ckn_config(**c) for c in configs]


#: the configurations of the quick runs (all tried, chosen on validation)
QUICK_GRID = [
    {"anchors": (64, 128), "subsampling": (2, 3), "centering": False, "n_patches": 20000},
    {"anchors": (64, 128), "subsampling": (2, 3), "centering": True, "n_patches": 20000},
]
#: the configurations of the full runs (narrowed by the quick runs' validation figures)
FULL_GRID = [
    {
        "anchors": (64, 256),
        "subsampling": (2, 3),
        "centering": True,
        "n_patches": 100000,
        "kmeans_iters": 10,
    },
]


def mnist_ckn(ctx: Context) -> None:
    grid = _grid(ctx, _chosen_grid(ctx))
    run_layerwise(ctx, "mnist", grid, "MNIST test accuracy, unsupervised CKN", svm=_svm(ctx))


def fashion_ckn(ctx: Context) -> None:
    grid = _grid(ctx, _chosen_grid(ctx))
    run_layerwise(
        ctx, "fashion-mnist", grid, "Fashion-MNIST test accuracy, unsupervised CKN", svm=_svm(ctx)
    )


def _svm(ctx: Context) -> bool:
    return bool(ctx.options.get("svm", False))


def _chosen_grid(ctx: Context) -> list[dict[str, Any]]:
    """QUICK_GRID or FULL_GRID, or the one configuration of ``--option anchors=64,512
    --option subsampling=2,2 --option centering=1`` (the rest as the grid's last one)."""
    opts = ctx.options
    grid = QUICK_GRID if ctx.quick else FULL_GRID
    if not any(k in opts for k in ("anchors", "subsampling", "centering")):
        return grid
    cfg = dict(grid[-1])
    for key in ("anchors", "subsampling"):
        if key in opts:
            cfg[key] = tuple(int(v) for v in str(opts[key]).split(","))
    if "centering" in opts:
        cfg["centering"] = str(opts["centering"]).lower() in ("1", "true", "yes")
    return [cfg]


# ---------------------------------------------------------------------- supervised


def fashion_ckn_supervised(ctx: Context) -> None:
    """Supervised vs layerwise CKN at the same anchors, same split, same seed.

    Quick: 3 seeds (mean and spread); full: 1 seed.
    """
    data = load_splits(ctx, "fashion-mnist")
    if ctx.smoke:
        anchors, epochs, n_patches, iters, seeds = (4, 8), 1, 2000, 2, [0, 1]
    elif ctx.quick:
        anchors, epochs, n_patches, iters, seeds = (16, 32), 3, 10000, 10, [0, 1, 2]
    else:
        anchors, epochs, n_patches, iters, seeds = (64, 256), 10, 100000, 10, [0]
    epochs = int(ctx.options.get("epochs", epochs))
    lr = float(ctx.options.get("lr", 0.01))
    n_fit = data.x_fit.shape[0]
    cfg = ckn_config(
        anchors=anchors, subsampling=(2, 3), centering=True, n_patches=n_patches, kmeans_iters=iters
    )
    from kernelzoo.classify import fit_ridge_classifier

    results: dict[str, list[float]] = {"layerwise": [], "supervised": []}
    for seed in seeds:
        t = timed()
        lw = (
            cfg.kernel()
            .approximate(
                "layerwise",
                budget=list(anchors),
                seed=seed,
                n_patches=n_patches,
                kmeans_iters=iters,
            )
            .fit(data.x_fit)
        )
        f_fit = batched(lw.features, data.x_fit, "features (fit)", ctx.progress)
        f_val = batched(lw.features, data.x_val, "features (val)", ctx.progress)
        clf = fit_ridge_classifier(f_fit, data.y_fit, f_val, data.y_val)
        f_test = batched(lw.features, data.x_test, "features (test)", ctx.progress)
        test = clf.score(f_test, data.y_test)
        results["layerwise"].append(test)
        ctx.add(
            Record(
                ctx.name,
                cfg.label(),
                "layerwise+ridge",
                n_fit,
                clf.val_accuracy,
                test,
                t(),
                chosen=True,
                details={
                    "seed": seed,
                    "lambda": f"{clf.lam:.3g}",
                    "group": "unsupervised CKN, same anchors",
                },
            )
        )
        del f_fit, f_val, f_test
        t = timed()
        sup = cfg.kernel().approximate(
            "supervised",
            budget=list(anchors),
            seed=seed,
            n_patches=n_patches,
            kmeans_iters=iters,
            epochs=epochs,
            lr=lr,
            lr_final=0.1,
            momentum=0.9,
            batch_size=128,
            min_lambda=1e-4,
            progress=ctx.progress,
        )
        sup.fit_split(data.x_fit, data.y_fit, data.x_val, data.y_val)
        test = sup.score(data.x_test, data.y_test)
        results["supervised"].append(test)
        ctx.add(
            Record(
                ctx.name,
                cfg.label().replace("layerwise", "supervised"),
                "supervised+ridge",
                n_fit,
                sup.val_accuracy_history_[sup.best_epoch_],
                test,
                t(),
                chosen=True,
                details={
                    "seed": seed,
                    "epochs": epochs,
                    "lr": lr,
                    "lr_final": 0.1,
                    "momentum": 0.9,
                    "batch_size": 128,
                    "min_lambda": 1e-4,
                    "kept_refit": sup.best_epoch_,
                    "val_per_refit": [round(v, 4) for v in sup.val_accuracy_history_],
                    "group": "Fashion-MNIST test accuracy, supervised CKN",
                },
            )
        )
    for method, accs in results.items():
        a = 100 * np.asarray(accs)
        ctx.notes.append(
            f"{method}: test {a.mean():.2f}% mean, {a.std():.2f} std over seeds "
            f"{seeds} ({', '.join(f'{v:.2f}' for v in a)})"
        )
    gain = 100 * (np.mean(results["supervised"]) - np.mean(results["layerwise"]))
    ctx.notes.append(
        f"supervised - layerwise at anchors {list(anchors)}: {gain:+.2f} points "
        f"(target: >= +1.00, and supervised >= 94% on the full data)"
    )
