"""An ensemble of layerwise CKNs with independent anchors (``--option seeds=0,1``).

Each member is one layerwise CKN of the same configuration, its anchors drawn
with its own seed (k-means seeding and patch sampling), its classifier and
lambda chosen on the validation split as in :func:`run_layerwise`. The
ensemble's scores are the mean of the members' decision functions. Validation
chooses between every member alone and the ensemble; the test split is
scored for the chosen model only (the members' test scores are computed as
they go, to free their features, and are not reported). Averaging members with
independent anchors reduces the variance of the Nystrom approximation without
the quadratic cost of one larger anchor set in the classifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import torch

from kernelzoo.reproduce._common import Context, Record, Splits, batched, timed


@dataclasses.dataclass
class _Member:
    seed: int
    record: Record
    classes: torch.Tensor
    val_scores: torch.Tensor
    test_scores: torch.Tensor
    test_scores_fit_only: torch.Tensor | None


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]`` (distinct integers, at least one)."""
    try:
        seeds = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"seeds takes comma-separated integers, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds takes distinct comma-separated integers, got {text!r}")
    return seeds


def _accuracy(scores: torch.Tensor, classes: torch.Tensor, y: torch.Tensor) -> float:
    return float((classes[scores.argmax(1)] == y).double().mean())


def run_ensemble(ctx: Context, data: Splits, cfg, seeds: list[int], group: str,
                 classifiers: Callable[..., Iterator], refit: bool) -> Record:
    """Fit one member per seed, choose (a member or the ensemble) on validation, test once.

    ``data``: the splits, preprocessed; ``classifiers(ctx, f_fit, y_fit, f_val, y_val,
    svm=False)``: the variants of one set of features (``_ckn._classifiers``, passed in so
    that this module does not import the experiments); ``refit``: refit the chosen
    members on fit + validation.
    """
    n_fit = data.x_fit.shape[0]
    n_anchor = int(ctx.options.get("anchor_images", n_fit))
    ctx.log(f"{ctx.name}: fit {n_fit}, validation {data.x_val.shape[0]}, test "
            f"{data.x_test.shape[0]}; ensemble of {len(seeds)} members, seeds {seeds}")
    members: list[_Member] = []
    for seed in seeds:
        t = timed()
        approx = cfg.kernel().approximate(
            "layerwise", budget=list(cfg.anchors), seed=seed, n_patches=cfg.n_patches,
            kmeans_iters=cfg.kmeans_iters,
        ).fit(data.x_fit[:n_anchor])
        t_anchors = t()
        f_fit = batched(approx.features, data.x_fit, f"features (fit, seed {seed})", ctx.progress)
        f_val = batched(approx.features, data.x_val, f"features (val, seed {seed})", ctx.progress)
        t_feat = t() - t_anchors
        best = None
        for var in classifiers(ctx, f_fit, data.y_fit, f_val, data.y_val, svm=False):
            if best is None or var.val_accuracy > best.val_accuracy:
                best = var
            else:
                var.refit = None
        assert best is not None
        del f_fit
        val_scores = best.model.scores(f_val)
        f_test = batched(approx.features, data.x_test, f"features (test, seed {seed})",
                         ctx.progress)
        test_scores, fit_only = best.model.scores(f_test), None
        if refit and best.refit is not None:
            fit_only, test_scores = test_scores, best.refit(f_val, data.y_val).scores(f_test)
        best.refit = None
        del f_val, f_test
        rec = ctx.add(Record(
            ctx.name, f"{cfg.label()} seed {seed}", f"layerwise+{best.name}", n_fit,
            best.val_accuracy, None, t(),
            details={"lambda": f"{best.lam:.3g}", "seed": seed, "anchors_s": round(t_anchors, 1),
                     "features_s": round(t_feat, 1), "anchor_images": n_anchor,
                     "input": str(ctx.options.get("input", "pixels")), **best.details},
        ))
        members.append(_Member(seed, rec, best.model.classes, val_scores, test_scores, fit_only))
        ctx.log(f"member seed {seed}: val {100 * best.val_accuracy:.2f}% ({rec.seconds:.0f} s)")
    classes = members[0].classes
    mean_val = torch.stack([m.val_scores for m in members]).mean(0)
    ens_val = _accuracy(mean_val, classes, data.y_val)
    ens = ctx.add(Record(
        ctx.name, f"{cfg.label()} ensemble of seeds {seeds}",
        f"layerwise ensemble ({len(seeds)} members, mean decision function)", n_fit, ens_val,
        None, sum(m.record.seconds for m in members), details={"seeds": list(seeds)},
    ))
    ctx.log(f"ensemble of {len(seeds)}: val {100 * ens_val:.2f}%")
    # the choice on validation: the ensemble, or one member alone (ties: the ensemble)
    best_member = max(members, key=lambda m: m.record.val_accuracy)
    if best_member.record.val_accuracy > ens_val:
        chosen, test, fit_only = best_member.record, best_member.test_scores, \
            best_member.test_scores_fit_only
    else:
        chosen = ens
        test = torch.stack([m.test_scores for m in members]).mean(0)
        fit_only = (torch.stack([m.test_scores_fit_only for m in members]).mean(0)
                    if refit and members[0].test_scores_fit_only is not None else None)
    chosen.test_accuracy = _accuracy(test, classes, data.y_test)
    chosen.details.update(group=group, n_test=int(data.x_test.shape[0]))
    if fit_only is not None:
        chosen.details.update(test_fit_only=round(_accuracy(fit_only, classes, data.y_test), 4),
                              n_refit=n_fit + int(data.y_val.shape[0]))
        chosen.method += "+refit(fit+val)"
    chosen.chosen = True
    ctx.log(f"chosen on validation: {chosen.model} [{chosen.method}]: test "
            f"{100 * chosen.test_accuracy:.2f}%")
    return chosen
