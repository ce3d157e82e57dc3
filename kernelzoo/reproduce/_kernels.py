"""``fashion-kernels``: every family on Fashion-MNIST, at stated and equal n.

Two groups, each at one n for every model in it:

- **all fit images** (8000 with ``--quick``): rbf, arccos, fc NNGP and NTK through
  Nyström features (``nystrom_budget`` uniform landmarks; an exact ``n x n``
  eigendecomposition of 8000 took 4 minutes on the 2-core machine), and the
  layerwise CKN; one-vs-all ridge on the features, lambda on validation;
- **conv n** (``conv_n`` fit and ``conv_val`` validation images, a stratified
  subset; test on a stratified ``conv_test`` subset of the test split): exact
  kernel ridge with conv NNGP and NTK (GAP and flatten readouts), rbf and the
  CKN on the very same images. A depth-3 pooled conv entry on 28x28 costs
  5.6 ms (NNGP) and 8.2 ms (NTK) in float32 on a quiet 2-core CPU, 41 and 48
  us on an H200, so ``conv_n`` is a parameter (``--option conv_n=N``; n = 200
  with 200 validation and 600 test images, the full run's defaults, took 72
  minutes with ``--quick`` on that CPU).

Each family's own hyperparameters are fixed and stated in its spec (ReLU,
depth 2 for the fc networks, the rbf lengthscale at the median pairwise
distance of the fit images); lambda is chosen on validation. The conv nets
are depth 3 with average pooling [2, 2, 1] by default (chosen on a
validation-only screen: depth-2 nets see 5x5 patches and scored below rbf);
``conv_depth`` and ``conv_pooling`` set them. ``--option device=cuda``
computes the conv group's exact Grams on a GPU (the inputs move there, the
Grams come back as float64 for the classifier; the science is the same, the
n it allows is larger).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from kernelzoo.reproduce._common import (
    SEED,
    Context,
    Record,
    batched,
    load_splits,
    stratified_subset,
    timed,
)

GROUP_ALL = "all fit images"
GROUP_CONV = "conv n"
#: the conv nets' default pooling strides (with the default depth, 3)
DEFAULT_POOLING = "2,2,1"


def _median_lengthscale(x: torch.Tensor, n: int = 1000) -> float:
    """The median pairwise distance of (up to) ``n`` of the images."""
    f = x[:n].reshape(min(n, x.shape[0]), -1).double()
    d = torch.cdist(f, f)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def _fc_specs(lengthscale: float) -> list[str]:
    return [
        f"rbf(lengthscale={lengthscale:.4g})",
        "arccos(degree=1, depth=2)",
        "nngp(architecture='fc', depth=2)",
        "ntk(architecture='fc', depth=2)",
    ]


def _conv_architecture(ctx: Context) -> str:
    """The conv nets' spec: ``depth`` (``--option conv_depth=3``) and an average-pooling
    stride per hidden layer (``--option conv_pooling=2,2,1``). Default: depth 3 with
    pooling [2, 2, 1], the architecture a validation-only screen chose (fifth session;
    depth-2 nets see 5x5 patches and scored below rbf); ``conv_depth`` alone means no
    pooling."""
    if "conv_depth" not in ctx.options and "conv_pooling" not in ctx.options:
        ctx = dataclasses.replace(ctx, options={**ctx.options, "conv_depth": "3",
                                                "conv_pooling": DEFAULT_POOLING})
    raw = ctx.options.get("conv_depth", 3)
    try:
        depth = int(raw)
    except ValueError:
        raise ValueError(f"conv_depth must be an integer, got {raw!r}") from None
    if depth < 1:
        raise ValueError(f"conv_depth must be >= 1, got {depth}")
    arch = f"architecture='conv', depth={depth}, image_shape=[1, 28, 28]"
    if "conv_pooling" in ctx.options:
        try:
            strides = [int(v) for v in str(ctx.options["conv_pooling"]).split(",")]
        except ValueError:
            raise ValueError(f"conv_pooling must be comma-separated integers, got "
                             f"{ctx.options['conv_pooling']!r}") from None
        if len(strides) != depth:
            raise ValueError(f"conv_pooling needs one stride per hidden layer (conv_depth="
                             f"{depth}), got {len(strides)}")
        arch += f", pooling={strides}"
    return arch


def _conv_device(ctx: Context) -> torch.device:
    """Where the conv group's exact Grams are computed (``--option device=cpu|cuda``)."""
    raw = str(ctx.options.get("device", "cpu"))
    try:
        device = torch.device(raw)
    except RuntimeError:
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {raw!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={raw!r}: torch sees no CUDA device here")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda[:i]', got {raw!r}")
    return device


def _groups(ctx: Context) -> set[str]:
    """The groups to run (``--option groups=all,conv``; ``all``: every fit image)."""
    raw = str(ctx.options.get("groups", "all,conv"))
    names = {g.strip() for g in raw.split(",") if g.strip()}
    if not names or not names <= {"all", "conv"}:
        raise ValueError(f"groups must be 'all', 'conv' or 'all,conv', got {raw!r}")
    return names


def _conv_specs(lengthscale: float, conv: str) -> list[str]:
    return [
        f"rbf(lengthscale={lengthscale:.4g})",
        f"nngp({conv}, readout='gap')",
        f"ntk({conv}, readout='gap')",
        f"nngp({conv}, readout='flatten')",
        f"ntk({conv}, readout='flatten')",
    ]


def _int_option(ctx: Context, key: str, quick: int, full: int, smoke: int) -> int:
    default = smoke if ctx.smoke else quick if ctx.quick else full
    return int(ctx.options.get(key, default))


def _add(ctx: Context, model: str, method: str, n_fit: int, clf: Any, test_accuracy: float,
         seconds: float, where: dict) -> None:
    """Record one chosen model: its validation accuracy and lambda from ``clf``;
    ``where``: its ``group`` and ``n_test``."""
    ctx.add(Record(ctx.name, model, method, n_fit, clf.val_accuracy, test_accuracy, seconds,
                   chosen=True, details={**where, "lambda": f"{clf.lam:.3g}", "seed": SEED}))


def _layerwise(ckn_cfg: Any, x_fit: torch.Tensor) -> Any:
    """The layerwise CKN of ``ckn_cfg`` (its anchors, patches, k-means iterations), fitted."""
    return ckn_cfg.kernel().approximate(
        "layerwise", budget=list(ckn_cfg.anchors), seed=SEED, n_patches=ckn_cfg.n_patches,
        kmeans_iters=ckn_cfg.kmeans_iters,
    ).fit(x_fit)


def fashion_kernels(ctx: Context) -> None:
    from kernelzoo.reproduce._ckn import ckn_config

    groups = _groups(ctx)
    device = _conv_device(ctx)
    data = load_splits(ctx, "fashion-mnist")
    budget = _int_option(ctx, "nystrom_budget", 1000, 4000, 20)
    lengthscale = _median_lengthscale(data.x_fit)
    flat = {
        name: getattr(data, name).reshape(getattr(data, name).shape[0], -1)
        for name in ("x_fit", "x_val", "x_test")
    }
    ckn_cfg = (
        ckn_config(anchors=(8, 16), n_patches=5000, kmeans_iters=3)
        if ctx.smoke
        else ckn_config(
            anchors=(64, 128), subsampling=(2, 3), centering=True, n_patches=20000, kmeans_iters=10
        )
    )

    if "all" in groups:
        _group_all(ctx, data, flat, budget, lengthscale, ckn_cfg)
    if "conv" in groups:
        _group_conv(ctx, data, lengthscale, ckn_cfg, device)
    _compare(ctx)


def _group_all(ctx: Context, data: Any, flat: dict, budget: int, lengthscale: float,
               ckn_cfg: Any) -> None:
    """Every image of the fit split: Nystrom features (CKN: layerwise), ridge."""
    from kernelzoo.registry import kernel
    from kernelzoo.classify import fit_ridge_classifier

    n_fit = data.x_fit.shape[0]
    where_all = {"group": GROUP_ALL, "n_test": int(data.x_test.shape[0])}
    ctx.log(
        f"{GROUP_ALL}: n = {n_fit} fit, {data.x_val.shape[0]} validation, "
        f"{data.x_test.shape[0]} test"
    )
    for spec in _fc_specs(lengthscale):
        t = timed()
        approx = kernel(spec).approximate("nystrom", budget=min(budget, n_fit), seed=SEED)
        approx.fit(flat["x_fit"])
        feats = [
            batched(approx.features, flat[k], f"nystrom {k}", ctx.progress)
            for k in ("x_fit", "x_val", "x_test")
        ]
        clf = fit_ridge_classifier(feats[0], data.y_fit, feats[1], data.y_val, solver="cholesky")
        _add(ctx, spec, f"nystrom({min(budget, n_fit)})+ridge", n_fit, clf,
             clf.score(feats[2], data.y_test), t(), where_all)
    t = timed()
    approx = _layerwise(ckn_cfg, data.x_fit)
    feats = [
        batched(approx.features, getattr(data, k), f"ckn {k}", ctx.progress)
        for k in ("x_fit", "x_val", "x_test")
    ]
    clf = fit_ridge_classifier(feats[0], data.y_fit, feats[1], data.y_val, solver="cholesky")
    _add(ctx, ckn_cfg.label(), "layerwise+ridge", n_fit, clf,
         clf.score(feats[2], data.y_test), t(), where_all)
    del feats
    ctx.notes.append(
        f"group '{GROUP_ALL}': Nystrom features with {min(budget, n_fit)} uniform landmarks "
        f"(seed {SEED}) for rbf, arccos and the fc NNGP/NTK; layerwise CKN anchors "
        f"{list(ckn_cfg.anchors)}; every model fitted on the same {n_fit} images."
    )


def _group_conv(ctx: Context, data: Any, lengthscale: float, ckn_cfg: Any,
                device: torch.device) -> None:
    """conv n: exact Grams on stratified subsets, kernel ridge (CKN: layerwise, ridge)."""
    from kernelzoo.registry import kernel
    from kernelzoo.classify import fit_kernel_ridge_classifier, fit_ridge_classifier

    conv_n = _int_option(ctx, "conv_n", 30, 200, 8)
    conv_val = _int_option(ctx, "conv_val", 10, 200, 4)
    conv_test = _int_option(ctx, "conv_test", 50, 600, 8)
    i_fit = stratified_subset(data.y_fit, conv_n)
    i_val = stratified_subset(data.y_val, conv_val)
    i_test = stratified_subset(data.y_test, conv_test)
    x_fit, x_val, x_test = data.x_fit[i_fit], data.x_val[i_val], data.x_test[i_test]
    y_fit, y_val, y_test = data.y_fit[i_fit], data.y_val[i_val], data.y_test[i_test]
    where_conv = {"group": GROUP_CONV, "n_test": len(i_test)}
    ctx.log(
        f"{GROUP_CONV}: n = {len(i_fit)} fit, {len(i_val)} validation (stratified), "
        f"{len(i_test)} test (stratified subset of the test split, seed {SEED})"
    )
    ctx.notes.append(
        f"group '{GROUP_CONV}': {len(i_fit)} fit / {len(i_val)} validation images (stratified "
        f"subsets of the fit and validation splits) and a stratified subset of {len(i_test)} "
        f"test images (seed {SEED}); every model of the group sees exactly these images."
    )
    if device.type == "cuda":
        ctx.notes.append(
            f"group '{GROUP_CONV}': exact Grams computed on {torch.cuda.get_device_name(device)} "
            f"(--option device={ctx.options['device']}); every other step on the CPU."
        )
    for spec in _conv_specs(lengthscale, _conv_architecture(ctx)):
        t = timed()
        k = kernel(spec)
        images = "rbf" not in spec
        a, b, c = (
            (x_fit, x_val, x_test)
            if images
            else tuple(v.reshape(v.shape[0], -1) for v in (x_fit, x_val, x_test))
        )
        with torch.no_grad():
            a, b, c = (v.to(device) for v in (a, b, c))
            k_fit = k.gram(a).double().cpu()
            k_val = k.gram(b, a).double().cpu()
            k_test = k.gram(c, a).double().cpu()
        clf = fit_kernel_ridge_classifier(k_fit, y_fit, k_val, y_val)
        _add(ctx, spec, "exact+kernel ridge", len(i_fit), clf,
             clf.score(k_test, y_test), t(), where_conv)
    t = timed()
    approx = _layerwise(ckn_cfg, x_fit)
    with torch.no_grad():
        feats = [approx.features(v) for v in (x_fit, x_val, x_test)]
    clf = fit_ridge_classifier(feats[0], y_fit, feats[1], y_val)
    _add(ctx, ckn_cfg.label(), "layerwise+ridge", len(i_fit), clf,
         clf.score(feats[2], y_test), t(), where_conv)


def _compare(ctx: Context) -> None:
    """The target: every conv kernel above rbf at equal n (group 'conv n')."""
    conv = [r for r in ctx.records if r.details.get("group") == GROUP_CONV]
    rbf = [r for r in conv if r.model.startswith("rbf")]
    if not rbf:
        return
    base = rbf[0].test_accuracy or 0.0
    for r in conv:
        if r.model.startswith("rbf"):
            continue
        verdict = "above" if (r.test_accuracy or 0.0) > base else "NOT above"
        ctx.notes.append(
            f"{r.model}: test {100 * (r.test_accuracy or 0):.2f}% vs rbf "
            f"{100 * base:.2f}% at n={r.n_train}: {verdict}"
        )
