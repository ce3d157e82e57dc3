"""CKN experiments: ``mnist-ckn`` and ``fashion-ckn`` (layerwise CKN)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator
from typing import Any

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
from kernelzoo.reproduce._ridge import (
    NormalEquations,
    evaluate,
    lambda_grid,
    parse_exponents,
    select,
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
    filter_size=3,
) -> CKNConfig:
    params = (
        ("filter_size", filter_size),
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


@dataclasses.dataclass
class Variant:
    """One classifier on one set of features, its lambda chosen on validation."""

    name: str
    model: Any  # ``.score(features, labels)``
    val_accuracy: float
    lam: float
    seconds: float
    details: dict[str, Any]
    refit: Callable[[torch.Tensor, torch.Tensor], Any] | None = None


def _classifiers(ctx: Context, f_fit, y_fit, f_val, y_val, svm: bool) -> Iterator[Variant]:
    """Every classifier variant on one set of features (a generator of :class:`Variant`).

    Options: ``--option features=raw|centre-l2|both`` (default both): the features
    as they are, and/or centred and L2-normalised per sample; ``lambdas=LO:HI``
    (default -8:0): the grid ``top * 10^k``, k = LO..HI, ``top`` the largest eigenvalue
    of the centred ``F^T F / n``; ``sqhinge=ITERS`` (default 0: off): also the
    one-vs-all squared-hinge SVM at every lambda of the grid, ITERS preconditioned
    conjugate-gradient iterations from the ridge solution on the ridge's Cholesky
    factor (:mod:`kernelzoo.reproduce._ridge`; its passes keep the centred float64
    rows in memory when they take at most ``row_cache_gb=3`` GB; ``sqhinge_lambdas=LO:HI``
    restricts it to those k of the grid); ``svm=1``: also
    scikit-learn's ``LinearSVC`` (slow at these sizes).
    """
    from kernelzoo.classify import fit_squared_hinge_classifier

    which = str(ctx.options.get("features", "both"))
    norms = {"raw": (False,), "centre-l2": (True,), "both": (False, True)}.get(which)
    if norms is None:
        raise ValueError(f"features must be raw, centre-l2 or both, got {which!r}")
    exponents = parse_exponents(ctx.options.get("lambdas", "-8:0"))
    iters = int(ctx.options.get("sqhinge", 0))
    svm_lo, svm_hi = parse_exponents(ctx.options.get("sqhinge_lambdas", "-300:300"))
    cache = float(ctx.options.get("row_cache_gb", 3)) * 2**30
    for norm in norms:
        tf = normalise_rows if norm else _identity
        suffix = "+centre-l2" if norm else ""
        t = timed()
        eq = NormalEquations(f_fit, y_fit, tf)
        t_scatter = t()
        ctx.log(f"scatter of {tuple(f_fit.shape)} features{suffix}: {t_scatter:.0f} s")
        ridge, hinge, t_hinge = [], [], 0.0
        for lam in lambda_grid(eq.top(), exponents):
            factor = eq.factor(float(lam))
            if factor is None:  # not positive definite at this lambda (rounding)
                ctx.log(f"lambda {lam:.2e}: not positive definite, skipped")
                continue
            model = eq.ridge(float(lam), factor)
            ridge.append((*evaluate(model, f_val, y_val), model))
            line = f"lambda {lam:.2e}: ridge val {100 * ridge[-1][0]:.2f}%"
            if iters and svm_lo <= round(math.log10(lam / eq.top())) <= svm_hi:
                th = timed()
                if not hinge:
                    eq.keep_rows(cache)
                svm_model, objective = eq.sqhinge(float(lam), iters, factor, start=model)
                hinge.append((*evaluate(svm_model, f_val, y_val), (svm_model, objective)))
                t_hinge += th()
                line += (f", sq-hinge SVM val {100 * hinge[-1][0]:.2f}% (objective "
                         f"{objective[0]:.4g} -> {objective[-1]:.4g}, {th():.0f} s)")
            ctx.log(f"{line} ({t():.0f} s)")
            del factor
        t_all = t()
        if not ridge:
            raise ValueError("ridge: no lambda of the grid gave a positive definite system")
        acc, _, model = select(ridge)
        yield Variant(f"ridge{suffix}", model, acc, model.lam, t_all - t_hinge,
                      {"scatter_s": round(t_scatter, 1), "lambdas": f"1e{exponents[0]}..1e"
                       f"{exponents[1]} x top", "val_per_lambda": _curve(ridge)},
                      refit=_refitter(eq, model.lam, 0, cache))
        if hinge:
            acc, _, (model, objective) = select(hinge)
            yield Variant(f"sqhinge-svm{suffix}", model, acc, model.lam, t_hinge,
                          {"svm_iters": iters, "val_per_lambda": _curve(hinge),
                           "objective_first_last": [round(objective[0], 6),
                                                    round(objective[-1], 6)]},
                          refit=_refitter(eq, model.lam, iters, cache))
        del eq
        if svm:
            a, b = tf(f_fit), tf(f_val)
            t = timed()
            clf = fit_squared_hinge_classifier(a, y_fit, b, y_val, max_iter=500)
            yield Variant(f"sklearn-svm{suffix}", _Scored(clf, tf), clf.val_accuracy, clf.lam,
                          t(), {})
            del a, b


def _curve(entries) -> str:
    """``lambda:accuracy`` for every lambda tried (validation)."""
    out = []
    for acc, _, m in entries:
        lam = (m[0] if isinstance(m, tuple) else m).lam
        out.append(f"{lam:.1e}:{100 * acc:.2f}")
    return " ".join(out)


def _refitter(eq, lam: float, iters: int, cache_bytes: float = 0.0):
    """Refit at the chosen ``lam`` (and SVM iterations) on the fit rows plus new rows
    (the SVM's passes keep the rows in memory up to ``cache_bytes``, as in the search)."""

    def refit(f_more: torch.Tensor, y_more: torch.Tensor):
        eq.add(f_more, y_more)
        factor = eq.factor(lam)
        if factor is None:
            raise ValueError(f"refit: S / n + {lam:.3g} I is not positive definite")
        model = eq.ridge(lam, factor)
        if not iters:
            return model
        eq.keep_rows(cache_bytes)
        return eq.sqhinge(lam, iters, factor, start=model)[0]

    return refit


@dataclasses.dataclass
class _Scored:
    clf: Any
    tf: Callable[[torch.Tensor], torch.Tensor]

    def score(self, f: torch.Tensor, y: torch.Tensor) -> float:
        return self.clf.score(self.tf(f), y)


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
    """Fit every configuration on the fit split, choose on validation, test the chosen once.

    ``--option refit=1``: the chosen classifier (same lambda, same SVM iterations) is
    refitted on fit + validation before the test split is scored; the test accuracy
    of the classifier fitted on the fit split alone is recorded beside it
    (``test_fit_only``), the refitted one is the record's test accuracy.
    ``--option anchor_images=N``: k-means samples its patches from the first N fit
    images only (default all; the patches are sampled among them as usual).
    """
    data = data if data is not None else load_splits(ctx, dataset)
    data = preprocess(data, str(ctx.options.get("input", "pixels")))
    n_fit = data.x_fit.shape[0]
    ctx.log(
        f"{dataset}: fit {n_fit}, validation {data.x_val.shape[0]}, "
        f"test {data.x_test.shape[0]}; {len(grid)} configurations"
    )
    best: tuple[float, Record, Any, Variant, Any] | None = None
    for cfg in grid:
        t = timed()
        approx = cfg.kernel().approximate(
            "layerwise",
            budget=list(cfg.anchors),
            seed=SEED,
            n_patches=cfg.n_patches,
            kmeans_iters=cfg.kmeans_iters,
        )
        approx.fit(data.x_fit[: int(ctx.options.get("anchor_images", data.x_fit.shape[0]))])
        t_anchors = t()
        f_fit = batched(approx.features, data.x_fit, "features (fit)", ctx.progress)
        f_val = batched(approx.features, data.x_val, "features (val)", ctx.progress)
        t_feat = t() - t_anchors
        base = t()
        for var in _classifiers(ctx, f_fit, data.y_fit, f_val, data.y_val, svm):
            rec = ctx.add(
                Record(
                    ctx.name,
                    cfg.label(),
                    f"layerwise+{var.name}",
                    n_fit,
                    var.val_accuracy,
                    None,
                    base + var.seconds,
                    details={
                        "lambda": f"{var.lam:.3g}",
                        "anchors_s": round(t_anchors, 1),
                        "features_s": round(t_feat, 1),
                        "classifier_s": round(var.seconds, 1),
                        "n_features": int(f_fit.shape[1]),
                        "seed": SEED,
                        "n_patches": cfg.n_patches,
                        "kmeans_iters": cfg.kmeans_iters,
                        "input": str(ctx.options.get("input", "pixels")),
                        "anchor_images": int(ctx.options.get("anchor_images", n_fit)),
                        **var.details,
                    },
                )
            )
            if best is None or var.val_accuracy > best[0]:
                best = (var.val_accuracy, rec, approx, var, f_val)
            else:
                var.refit = None  # frees its normal equations
        del f_fit, f_val
    assert best is not None
    _, rec, approx, var, f_val = best
    t = timed()
    f_test = batched(approx.features, data.x_test, "features (test)", ctx.progress)
    rec.details.update(group=group, test_features_s=round(t(), 1), n_test=int(data.x_test.shape[0]))
    rec.test_accuracy = var.model.score(f_test, data.y_test)
    if _flag(ctx, "refit") and var.refit is not None:
        t = timed()
        refitted = var.refit(f_val, data.y_val)
        rec.details.update(test_fit_only=round(rec.test_accuracy, 4), refit_s=round(t(), 1),
                           n_refit=n_fit + int(data.y_val.shape[0]))
        rec.test_accuracy = refitted.score(f_test, data.y_test)
        rec.method += "+refit(fit+val)"
    rec.chosen = True
    ctx.log(
        f"chosen on validation: {rec.model} [{rec.method}]: test {100 * rec.test_accuracy:.2f}%"
    )
    return rec


def _flag(ctx: Context, key: str) -> bool:
    return str(ctx.options.get(key, "0")).lower() in ("1", "true", "yes")


def preprocess(data: Splits, mode: str) -> Splits:
    """``--option input=pixels|gradient|pixels+gradient``: the images as they are, their
    gradient maps (2 channels: horizontal and vertical central differences, zero
    padded; Mairal 2014's CKN-GM input), or both (3 channels). Image preprocessing,
    outside the kernel."""
    if mode == "pixels":
        return data
    if mode not in ("gradient", "pixels+gradient"):
        raise ValueError(f"input must be pixels, gradient or pixels+gradient, got {mode!r}")

    def maps(x: torch.Tensor) -> torch.Tensor:
        return image_maps(x, with_pixels=mode == "pixels+gradient")

    return Splits(maps(data.x_fit), data.y_fit, maps(data.x_val), data.y_val,
                  maps(data.x_test), data.y_test)


def image_maps(x: torch.Tensor, with_pixels: bool = False) -> torch.Tensor:
    """Gradient maps ``(n, 2, H, W)`` of ``(n, 1, H, W)`` images (central differences, halved;
    ``with_pixels``: the image as a first channel)."""
    import torch.nn.functional as F

    kernel = torch.zeros(2, 1, 3, 3, dtype=x.dtype)
    kernel[0, 0, 1, 0], kernel[0, 0, 1, 2] = -0.5, 0.5
    kernel[1, 0, 0, 1], kernel[1, 0, 2, 1] = -0.5, 0.5
    grads = F.conv2d(x, kernel, padding=1)
    return torch.cat([x, grads], 1) if with_pixels else grads


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
    _run(ctx, "mnist", "MNIST test accuracy, unsupervised CKN")


def fashion_ckn(ctx: Context) -> None:
    _run(ctx, "fashion-mnist", "Fashion-MNIST test accuracy, unsupervised CKN")


def _run(ctx: Context, dataset: str, group: str) -> None:
    """The grid (:func:`run_layerwise`), or with ``--option seeds=0,1`` an ensemble of
    its one configuration with independent anchors (:mod:`kernelzoo.reproduce._ensemble`)."""
    grid = _grid(ctx, _chosen_grid(ctx))
    if "seeds" not in ctx.options:
        run_layerwise(ctx, dataset, grid, group, svm=_svm(ctx))
        return
    from kernelzoo.reproduce._ensemble import parse_seeds, run_ensemble

    if len(grid) != 1 or _svm(ctx):
        raise ValueError("seeds: an ensemble takes one configuration (set anchors=...) "
                         "and no svm=1")
    data = preprocess(load_splits(ctx, dataset), str(ctx.options.get("input", "pixels")))
    run_ensemble(ctx, data, grid[0], parse_seeds(ctx.options["seeds"]), group, _classifiers,
                 _flag(ctx, "refit"))


def _svm(ctx: Context) -> bool:
    return _flag(ctx, "svm")


#: ``--option KEY=V[,V...]`` that set one configuration's kernel and anchors
CONFIG_OPTIONS = ("anchors", "subsampling", "centering", "sigma", "filter_size", "n_patches",
                  "kmeans_iters")


def _chosen_grid(ctx: Context) -> list[dict[str, Any]]:
    """QUICK_GRID or FULL_GRID, or the one configuration of ``--option anchors=64,512
    --option subsampling=2,2 --option centering=1 --option sigma=0.6,0.5 --option
    filter_size=5,3 --option n_patches=100000 --option kmeans_iters=10`` (the rest as
    the grid's last one; sigma and filter_size: one value, or one per layer)."""
    opts = ctx.options
    grid = QUICK_GRID if ctx.quick else FULL_GRID
    if not any(k in opts for k in CONFIG_OPTIONS):
        return grid
    cfg = dict(grid[-1])
    for key in ("anchors", "subsampling", "filter_size"):
        if key in opts:
            cfg[key] = tuple(int(v) for v in str(opts[key]).split(","))
    for key in ("n_patches", "kmeans_iters"):
        if key in opts:
            cfg[key] = int(opts[key])
    if "sigma" in opts:
        sig = tuple(float(v) for v in str(opts["sigma"]).split(","))
        cfg["sigma"] = sig[0] if len(sig) == 1 else sig
    if "centering" in opts:
        cfg["centering"] = _flag(ctx, "centering")
    return [cfg]
