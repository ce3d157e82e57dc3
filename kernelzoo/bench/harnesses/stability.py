"""Stability of each kernel's representation to translations and smooth deformations,
checked against the form of Bietti and Mairal's bound.

For ``||grad tau||_inf <= 1/2`` the bound reads ``||Phi(L_tau x) - Phi(x)|| <=
(C1 (1 + n) ||grad tau||_inf + (C2 / sigma_n) ||tau||_inf) ||x||`` for a CKN
with kappa(1) = 1 and kappa'(1) <= 1 (sigma_n: the last pooling scale). The
constants are unknown, so the harness measures what the bound predicts without
them:

- ``relative_distance`` (mean over images; ``relative_distance_max``) of
  ``||Phi(x) - Phi(L_tau x)|| / ||Phi(x)||`` (through the kernel alone) for
  horizontal translations and for smooth random deformations of several sizes
  and smoothnesses; a ``pixels`` row gives ``||x - y|| / ||x||``;
- for small deformations (``||grad tau||_inf`` up to the plan's ``max_grad``), the
  bound's linear growth: ``deformation_slope`` (least squares through the origin
  of the mean d against the mean ``||grad tau||_inf`` of each deformation) with
  ``deformation_r2``, and
  ``growth_exponent`` p in ``d ~ ||grad tau||_inf^p`` (per image, over one field
  scaled to several sizes; 1: linear, as the bound's form);
- ``translation_slope``: d against the shift (through the origin), which the
  bound says falls as the last pooling grows (``last_pooling``);
- ``bound_assumptions_hold`` (1 or 0; absent where the family's class states no
  such bound) with the checked conditions in ``note``.

Besides the run's kernels (at their chosen hyperparameters) it measures each
family's ``stability_variants`` (for the CKN: non-expansive, sigma = 1, with
last poolings 1, 2 and 4), on ``sizes.stability`` test images of split 0.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from kernelzoo.bench._common import EXACT, KernelCase, resolve_kernels
from kernelzoo.bench.harness import Harness, RunContext
from kernelzoo.bench.metrics import (
    fit_through_origin,
    pixel_relative_distance,
    rkhs_relative_distance,
)
from kernelzoo.bench.plan import RunConfig

__all__ = ["Stability", "transformed_inputs"]

PIXELS = KernelCase("pixels", "pixels")


def _literal(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    return repr(value)


def variant_spec(family: str, overrides: dict[str, Any]) -> str:
    """``family(key=value, ...)`` for a parameter override (``family`` alone for none)."""
    if not overrides:
        return family
    return f"{family}(" + ", ".join(f"{k}={_literal(v)}" for k, v in overrides.items()) + ")"


def transformed_inputs(x: torch.Tensor, plan: Any, seed: int = 0) -> list[dict[str, Any]]:
    """The transformed copies of images ``x`` for a :class:`~kernelzoo.bench.plan.StabilityPlan`.

    Each is a dict: ``transform`` (``translation`` or ``deformation``),
    ``magnitude`` (pixels), ``smoothness`` (pixels; NaN for translations),
    ``tau_inf``, ``grad`` (per image ``||grad tau||_inf``, (n,)) and ``y`` (the
    images). Translations move the content right (zero fill): ``tau_inf = t``,
    ``grad tau = 0``.

    Shape: ``x`` (n, C, H, W); each ``y`` (n, C, H, W).
    """
    from kernelzoo.data.deform import smooth_deformation, translate

    out = []
    for t in plan.shifts:
        out.append({"transform": "translation", "magnitude": float(t), "smoothness": math.nan,
                    "tau_inf": float(t), "grad": np.zeros(len(x)), "y": translate(x, (0, t))})
    for magnitude in plan.displacements:
        for smoothness in plan.smoothness:
            y, info = smooth_deformation(x, float(magnitude), smoothness=float(smoothness),
                                         seed=seed)
            out.append({"transform": "deformation", "magnitude": float(magnitude),
                        "smoothness": float(smoothness), "tau_inf": float(info["tau_inf"]),
                        "grad": info["grad_tau_inf_per_image"].numpy(), "y": y})
    return out


def _growth_exponent(families: dict[Any, list[tuple[float, float]]]) -> float:
    """p in d ~ ||grad tau||_inf^p: the slope of log d against log ||grad tau||_inf with
    one intercept per family (one image and one field, scaled to several sizes), i.e. the
    pooled within-family slope; 1 is linear growth. NaN without two sizes in a family."""
    num = den = 0.0
    for points in families.values():
        pts = np.array([(math.log(g), math.log(d)) for g, d in points if g > 0 and d > 0])
        if len(pts) < 2:
            continue
        centred = pts - pts.mean(0)
        num += float((centred[:, 0] * centred[:, 1]).sum())
        den += float((centred[:, 0] ** 2).sum())
    return num / den if den > 0 else math.nan


class Stability(Harness):
    name = "stability"
    title = "Stability to translations and deformations"
    order = 50
    metric = "relative_distance"
    columns = ("transform", "magnitude", "smoothness", "tau_inf", "grad_tau_inf", "note")

    def __init__(self) -> None:
        self._inputs: tuple[torch.Tensor, list[dict[str, Any]]] | None = None

    def planned_n(self, config: RunConfig) -> int:
        return config.sizes.stability

    def kernels(self, ctx: RunContext) -> list[KernelCase]:
        cases = [ctx.tuned(case) for case in ctx.cases]
        seen = {case.spec for case in cases}
        variants = []
        for case in cases:
            for overrides in getattr(type(case.kernel), "stability_variants", ()):
                spec = variant_spec(case.family, overrides)
                if spec not in seen:
                    seen.add(spec)
                    variants.append(spec)
        return cases + resolve_kernels(variants)

    def _images(self, ctx: RunContext) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        if self._inputs is None:
            index = ctx.reference_split().test[: self.planned_n(ctx.config)]
            x = ctx.pool.x[torch.as_tensor(index, device=ctx.pool.x.device)]
            self._inputs = (x, transformed_inputs(x, ctx.config.stability))
        return self._inputs

    def run(self, ctx: RunContext, case: KernelCase, method: str) -> list[dict[str, Any]]:
        x, variants = self._images(ctx)
        kxx = case.kernel.diag(x)
        ratios = [rkhs_relative_distance(case.kernel, x, v["y"], kxx).numpy() for v in variants]
        rows = self._rows(ctx, case, variants, ratios)
        assumptions = case.kernel.stability_assumptions()
        if assumptions is not None:
            note = assumptions["conditions"]
            rows.append(ctx.row(self.name, case, EXACT, "bound_assumptions_hold",
                                float(bool(assumptions["holds"])), n=len(x), note=note))
            rows.append(ctx.row(self.name, case, EXACT, "last_pooling",
                                float(assumptions["last_pooling"]), n=len(x), note=note))
        return rows

    def _rows(self, ctx: RunContext, case: KernelCase, variants: list[dict[str, Any]],
              ratios: list[np.ndarray]) -> list[dict[str, Any]]:
        n = len(ratios[0])
        rows = []
        for variant, ratio in zip(variants, ratios, strict=True):
            extra = {key: variant[key] for key in ("transform", "magnitude", "smoothness",
                                                   "tau_inf")}
            extra["grad_tau_inf"] = float(np.mean(variant["grad"]))
            finite = ratio[np.isfinite(ratio)]
            mean = float(finite.mean()) if finite.size else math.nan
            top = float(finite.max()) if finite.size else math.nan
            rows.append(ctx.row(self.name, case, EXACT, "relative_distance", mean, n=n, **extra))
            rows.append(ctx.row(self.name, case, EXACT, "relative_distance_max", top, n=n,
                                **extra))
        for metric, value in self._fits(ctx, variants, ratios).items():
            rows.append(ctx.row(self.name, case, EXACT, metric, value, n=n))
        return rows

    @staticmethod
    def _fits(ctx: RunContext, variants: list[dict[str, Any]],
              ratios: list[np.ndarray]) -> dict[str, float]:
        """Slopes through the origin (d against ||grad tau||_inf and against the shift)
        with their R^2, and the growth exponent of d in ||grad tau||_inf."""
        limit = ctx.config.stability.max_grad
        means, shifts, shift_values = [], [], []
        families: dict[Any, list[tuple[float, float]]] = {}
        for variant, ratio in zip(variants, ratios, strict=True):
            if variant["transform"] == "translation":
                shifts += [variant["magnitude"]] * len(ratio)
                shift_values += list(ratio)
                continue
            if float(np.mean(variant["grad"])) <= limit and np.isfinite(ratio).any():
                means.append((float(np.mean(variant["grad"])), float(np.nanmean(ratio))))
            for image, (grad, value) in enumerate(zip(variant["grad"], ratio, strict=True)):
                if grad <= limit and np.isfinite(value):
                    families.setdefault((variant["smoothness"], image), []).append(
                        (float(grad), float(value)))
        out = {}
        if means:
            points = np.array(means)
            (slope,), r2 = fit_through_origin(points[:, :1], points[:, 1])
            out.update(deformation_slope=slope, deformation_r2=r2,
                       growth_exponent=_growth_exponent(families))
        if shifts:
            (slope,), r2 = fit_through_origin(np.array(shifts)[:, None], np.array(shift_values))
            out.update(translation_slope=slope, translation_r2=r2)
        return out

    def finish(self, ctx: RunContext, frame: pd.DataFrame) -> pd.DataFrame:
        """Put the raw-pixel rows first (the Euclidean distance, for comparison)."""
        from kernelzoo.bench._common import to_frame

        x, variants = self._images(ctx)
        ratios = [pixel_relative_distance(x, v["y"]).numpy() for v in variants]
        pixels = to_frame(self._rows(ctx, PIXELS, variants, ratios), self.columns,
                          ctx.metadata)
        return pd.concat([pixels, frame], ignore_index=True)

    def section(self, frames: dict[str, pd.DataFrame], out: Path) -> Any:
        from kernelzoo.report import Section, plots, summaries

        frame = frames.get(self.name)
        if frame is None or frame.empty:
            return None
        n = frame["n"].dropna().max()
        section = Section(self.title, (
            f"Mean over n = {n} test images (split 0) of ‖Φ(x) − Φ(L_τ x)‖ / ‖Φ(x)‖ = "
            "sqrt(K(x,x) + K(y,y) − 2K(x,y)) / sqrt(K(x,x)), for horizontal shifts of t pixels "
            "(zero fill) and smooth random deformations of ‖τ‖∞ = m pixels with fields smoothed "
            "over s pixels; the `pixels` row is ‖x − y‖ / ‖x‖."))
        section.table(summaries.stability_table(frame))
        section.figure(out, "stability.png", "stability",
                       lambda p: plots.plot_stability(frame, p))
        section.text(
            "Bietti and Mairal's bound, ‖Φ(L_τx) − Φ(x)‖ ≤ (C₁(1+n)‖∇τ‖∞ + (C₂/σ_n)‖τ‖∞)‖x‖ "
            "for ‖∇τ‖∞ ≤ 1/2, holds for a CKN with κ(1) = 1 and κ'(1) ≤ 1 (for κ = exp: "
            "σ ≥ 1). Its constants are not known, so the table checks what it predicts "
            "without them. For small deformations (‖∇τ‖∞ ≤ 1/2) the distance grows at most "
            "linearly in ‖∇τ‖∞: the slope of the mean distance against the mean ‖∇τ‖∞ of each "
            "deformation (least squares through the origin; R² says how well a line "
            "explains them) and the growth exponent p in d ∝ ‖∇τ‖∞^p, per image over one "
            "field scaled to several sizes (1: linear). For translations (∇τ = 0) only the "
            "‖τ‖∞/σ_n term is left: the slope of d against the shift should fall as the last "
            "pooling σ_n grows. 'assumptions hold' is asked of each kernel's class (the bound "
            "is stated for CKNs).")
        section.table(summaries.stability_bound_table(frame))
        verdict = summaries.translation_verdict(frame)
        if verdict:
            section.text(verdict)
        return section
