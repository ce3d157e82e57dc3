"""One-vs-all linear classifiers on large feature matrices, from float64 normal equations.

For features too large to copy into float64 (50000 x 12800 is 5 GB), the
centred scatter ``S = sum_i (x_i - mu)(x_i - mu)^T`` is accumulated in float64
from row blocks of the float32 features (only the upper triangle of column
blocks is multiplied), and every classifier is solved from it:

- ridge on +-1 targets, ``(1/n) ||F W + b - Y||^2 + lambda ||W||^2``: one
  Cholesky of ``S / n + lambda I`` per lambda (the objective and the ``top *
  10^k`` grid of :func:`kernelzoo.classify.fit_ridge_classifier`);
- the squared-hinge linear SVM (one-vs-all), ``(1/n) sum max(0, 1 - y f)^2 +
  lambda ||W||^2``, from the ridge solution by nonlinear conjugate gradients
  preconditioned with the same factor (its first step is the
  majorisation-minimisation step: a ridge solve on the targets ``y`` where the
  margin is below 1 and the current scores elsewhere, since ``max(0, 1 - y f)^2
  <= (f - t)^2`` for these ``t``) and an exact line search; no new
  factorisation is needed;
- refitting a chosen model on more rows (``add``): the scatter is shifted to
  the new mean and the new rows' scatter added, without recomputing the old.

The features stay float32 in memory; a ``transform`` (e.g. per-sample centring
and L2 normalisation) is applied block by block.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

Transform = Callable[[torch.Tensor], torch.Tensor]


def _blocks(f: torch.Tensor, tf: Transform, rows: int) -> Iterator[tuple[int, torch.Tensor]]:
    for s in range(0, f.shape[0], rows):
        yield s, tf(f[s : s + rows]).to(torch.float64)


def _scatter_add(out: torch.Tensor, b: torch.Tensor, cols: int) -> None:
    """``out += b^T b`` (symmetric), multiplying only the upper column blocks."""
    d = b.shape[1]
    edges = list(range(0, d, cols)) + [d]
    for i in range(len(edges) - 1):
        bi = b[:, edges[i] : edges[i + 1]]
        for j in range(i, len(edges) - 1):
            prod = bi.T @ b[:, edges[j] : edges[j + 1]]
            out[edges[i] : edges[i + 1], edges[j] : edges[j + 1]] += prod
            if j > i:
                out[edges[j] : edges[j + 1], edges[i] : edges[i + 1]] += prod.T


def _solve(rhs: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``(L L^T)^{-1} rhs`` by two triangular solves (3x faster here than cholesky_solve)."""
    half = torch.linalg.solve_triangular(factor, rhs, upper=False)
    return torch.linalg.solve_triangular(factor.T, half, upper=True)


def one_vs_all(y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """+-1 targets, ``(n, c)`` float64."""
    return torch.where(y[:, None] == classes[None, :], 1.0, -1.0).to(torch.float64)


@dataclasses.dataclass
class Linear:
    """``scores = (transform(F) - mean) @ weight + intercept``, scored in float64 blocks."""

    weight: torch.Tensor  # (d, c)
    intercept: torch.Tensor  # (c,)
    mean: torch.Tensor  # (d,)
    classes: torch.Tensor
    transform: Transform
    lam: float

    def scores(self, f: torch.Tensor, rows: int = 4096) -> torch.Tensor:
        out = [(b - self.mean) @ self.weight + self.intercept for _, b in
               _blocks(f, self.transform, rows)]
        return torch.cat(out)

    def score(self, f: torch.Tensor, y: torch.Tensor) -> float:
        pred = self.classes[self.scores(f).argmax(1)]
        return float((pred == y).double().mean())


class NormalEquations:
    """The centred scatter of (transformed) float32 features, in float64; ridge and SVM solves.

    Parameters
    ----------
    f, y : torch.Tensor
        Features ``(n, d)`` (kept by reference, any float dtype) and labels ``(n,)``.
    transform : callable
        Applied to every row block before use (identity: ``lambda b: b``).
    rows, cols : int
        Row block of the passes; column block of the scatter products.
    """

    def __init__(self, f: torch.Tensor, y: torch.Tensor, transform: Transform,
                 rows: int = 2048, cols: int = 2048) -> None:
        self.tf, self.rows, self.cols = transform, int(rows), int(cols)
        self.classes = torch.unique(y)
        d = f.shape[1]
        self.parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        self.n = 0
        self.mean = torch.zeros(d, dtype=torch.float64)
        self.scatter = torch.zeros(d, d, dtype=torch.float64)
        self.target_sum = torch.zeros(len(self.classes), dtype=torch.float64)
        self.add(f, y)

    def add(self, f: torch.Tensor, y: torch.Tensor) -> NormalEquations:
        """Append rows: shift the scatter to the new mean, add theirs (in place)."""
        m = f.shape[0]
        part_sum = torch.zeros_like(self.mean)
        for _, b in _blocks(f, self.tf, self.rows):
            part_sum += b.sum(0)
        total = self.n + m
        new_mean = (self.n * self.mean + part_sum) / total
        delta = self.mean - new_mean
        self.scatter += self.n * torch.outer(delta, delta)
        for _, b in _blocks(f, self.tf, self.rows):
            _scatter_add(self.scatter, b - new_mean, self.cols)
        self.mean, self.n = new_mean, total
        self.target_sum += one_vs_all(y, self.classes).sum(0)
        self.parts.append((f, y))
        self._top: float | None = None
        self._rhs: torch.Tensor | None = None
        self._cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None
        return self

    def top(self) -> float:
        """Largest eigenvalue of ``S / n`` (power iteration)."""
        if self._top is None:
            gram = self.scatter / self.n
            vec = torch.ones(gram.shape[0], dtype=gram.dtype)
            for _ in range(50):
                vec = gram @ vec
                vec = vec / vec.norm().clamp_min(1e-300)
            self._top = float(vec @ (gram @ vec))
        return self._top

    def factor(self, lam: float) -> torch.Tensor | None:
        """Cholesky factor of ``S / n + lam I`` (None when not positive definite)."""
        gram = self.scatter / self.n
        gram.diagonal().add_(lam)
        factor, info = torch.linalg.cholesky_ex(gram)
        return None if int(info) else factor

    def _rows(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every row block of every part: ``(centred transformed block, +-1 targets)``;
        from memory after :meth:`keep_rows`."""
        if self._cache is not None:
            yield from self._cache
            return
        for f, y in self.parts:
            for s, b in _blocks(f, self.tf, self.rows):
                yield b - self.mean, one_vs_all(y[s : s + self.rows], self.classes)

    def keep_rows(self, max_bytes: float) -> bool:
        """Keep the centred, transformed rows in float64 in memory (the SVM passes then
        skip the conversions), if they take at most ``max_bytes``; until :meth:`add`."""
        if self.n * self.mean.shape[0] * 8 > max_bytes:
            return False
        self._cache = None
        self._cache = list(self._rows())
        return True

    def ridge(self, lam: float, factor: torch.Tensor | None = None) -> Linear | None:
        """The ridge classifier at ``lam`` (None when the system is not positive definite)."""
        factor = self.factor(lam) if factor is None else factor
        if factor is None:
            return None
        if self._rhs is None:
            self._rhs = sum(bc.T @ t for bc, t in self._rows()) / self.n
        weight = _solve(self._rhs, factor)
        return Linear(weight, self.target_sum / self.n, self.mean, self.classes, self.tf, lam)

    def sqhinge(self, lam: float, iters: int, factor: torch.Tensor | None = None,
                start: Linear | None = None) -> tuple[Linear | None, list[float]]:
        """The squared-hinge SVM at ``lam`` after ``iters`` iterations from ``start`` (default
        the ridge solution), and the objective before each iteration.

        Preconditioned nonlinear conjugate gradients (Polak-Ribiere+, per class: the
        one-vs-all problems are independent) with an exact line search on the
        piecewise-quadratic objective; the preconditioner is the ridge matrix
        ``S / n + lam I`` (its factor), so the first step from any point is the
        majorisation-minimisation step (the ridge solve on the targets ``y`` where the
        margin is below 1 and the current scores elsewhere). Two passes over the rows
        per iteration (the gradient, then the scores' change along the direction).
        """
        factor = self.factor(lam) if factor is None else factor
        if factor is None:
            return None, []
        model = start if start is not None else self.ridge(lam, factor)
        assert model is not None
        w, b = model.weight.clone(), model.intercept.clone()
        scores = [bc @ w + b for bc, _ in self._rows()]
        objective: list[float] = []
        direction = z_prev = g_prev = None
        for _ in range(iters):
            # gradient / 2 of (1/n) sum max(0, 1 - t s)^2 + lam |W|^2, per class column
            g_w, g_b, loss = lam * w, torch.zeros_like(b), 0.0
            for (bc, t), sc in zip(self._rows(), scores):
                slack = (1 - t * sc).clamp_min(0)
                r = -t * slack
                g_w += bc.T @ r / self.n
                g_b += r.sum(0) / self.n
                loss += float(slack.square().sum())
            objective.append(loss / self.n + lam * float(w.square().sum()))
            z_w, z_b = _solve(g_w, factor), g_b
            dot = (z_w * g_w).sum(0) + z_b * g_b
            if direction is None:
                d_w, d_b = -z_w, -z_b
            else:
                num = (z_w * (g_w - g_prev[0])).sum(0) + z_b * (g_b - g_prev[1])
                beta = (num / (z_prev.clamp_min(1e-300))).clamp_min(0)
                d_w, d_b = -z_w + beta * direction[0], -z_b + beta * direction[1]
            direction, z_prev, g_prev = (d_w, d_b), dot, (g_w, g_b)
            deltas = [bc @ d_w + d_b for bc, _ in self._rows()]
            alpha = self._line_search(lam, w, d_w, scores, deltas)
            w, b = w + alpha * d_w, b + alpha * d_b
            scores = [sc + alpha * ds for sc, ds in zip(scores, deltas)]
        return Linear(w, b, self.mean, self.classes, self.tf, lam), objective

    def _line_search(self, lam, w, d_w, scores, deltas, steps: int = 30) -> torch.Tensor:
        """Per class, the step minimising the (convex, piecewise-quadratic) objective along
        the direction: Newton iterations from 1."""
        targets = [t for f, y in self.parts
                   for t in (one_vs_all(y[s : s + self.rows], self.classes)
                             for s in range(0, f.shape[0], self.rows))]
        wd, dd = (w * d_w).sum(0), d_w.square().sum(0)
        alpha = torch.ones_like(wd)
        for _ in range(steps):
            d1, d2 = lam * (wd + alpha * dd), lam * dd
            for t, sc, ds in zip(targets, scores, deltas):
                slack = (1 - t * (sc + alpha * ds)).clamp_min(0)
                d1 = d1 - (t * ds * slack).sum(0) / self.n
                d2 = d2 + ((slack > 0) * ds.square()).sum(0) / self.n
            step = d1 / d2.clamp_min(1e-300)
            alpha = alpha - step
            if float(step.abs().max()) < 1e-10:
                break
        return alpha


def lambda_grid(top: float, exponents: tuple[int, int] = (-8, 0)) -> np.ndarray:
    """``top * 10^k`` for the integers ``k`` from ``exponents[0]`` to ``exponents[1]``."""
    lo, hi = exponents
    return max(top, 1e-300) * np.logspace(lo, hi, hi - lo + 1)


def parse_exponents(text: str) -> tuple[int, int]:
    """``"-11:-2"`` -> ``(-11, -2)``."""
    lo, sep, hi = str(text).partition(":")
    if not sep or int(lo) > int(hi):
        raise ValueError(f"lambdas takes LO:HI (decimal exponents, LO <= HI), got {text!r}")
    return int(lo), int(hi)


def select(models: list[tuple[float, float, object]]):
    """The entry of ``[(val accuracy, val squared loss, model), ...]`` with the highest
    accuracy, then the lowest loss (as :func:`kernelzoo.classify.fit_ridge_classifier`)."""
    return max(models, key=lambda e: (e[0], -e[1]))


def evaluate(model: Linear, f_val: torch.Tensor, y_val: torch.Tensor) -> tuple[float, float]:
    """Validation accuracy and mean squared loss against the +-1 targets."""
    s = model.scores(f_val)
    acc = float((model.classes[s.argmax(1)] == y_val).double().mean())
    loss = float((s - one_vs_all(y_val, model.classes)).square().mean())
    return acc, loss if math.isfinite(loss) else math.inf
