"""Accuracy helpers: one-vs-all linear classifiers on features, and kernel ridge on Grams.

Every helper chooses its regularisation ``lambda`` on a validation split that
the caller passes (taken out of the training data); none ever sees a test
split (the two public CKN codebases choose it on the test set; we do not).

- :func:`fit_ridge_classifier`: one-vs-all ridge regression on +-1 targets,
  closed form for every lambda from one eigendecomposition of the smaller of
  ``F^T F`` and ``F F^T``;
- :func:`fit_squared_hinge_classifier`: one-vs-all squared-hinge linear SVM
  (scikit-learn's ``LinearSVC(loss='squared_hinge')``);
- :func:`fit_kernel_ridge_classifier`: one-vs-all kernel ridge from a
  precomputed ``K_train`` and ``K_val_train`` (exact kernels).

Objective of the ridge helpers: ``(1/n) ||F W + b - Y||^2 + lambda ||W||^2``.
By default lambda runs over ``top * 10^[-10..0]``, ``top`` the largest
eigenvalue of the centred ``F^T F / n`` (or ``K / n``), so the grid follows the
scale of the features.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "KernelRidgeClassifier",
    "LinearClassifier",
    "accuracy",
    "center_normalize",
    "default_lambdas",
    "fit_kernel_ridge_classifier",
    "fit_ridge_classifier",
    "fit_squared_hinge_classifier",
]


def _tensor(a: Any, name: str) -> torch.Tensor:
    t = a if isinstance(a, torch.Tensor) else torch.from_numpy(np.array(a, dtype=np.float64))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n, d), got shape {tuple(t.shape)}")
    return t.detach().to(torch.float64)


def _labels(y: Any, n: int, name: str) -> torch.Tensor:
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.array(y))
    t = t.detach().reshape(-1)
    if t.numel() != n:
        raise ValueError(f"{name} has {t.numel()} labels but there are {n} samples")
    if t.is_floating_point() and not torch.equal(t, t.round()):
        raise ValueError(f"{name} must hold integer class labels")
    return t.to(torch.int64).cpu()


def _targets(y: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """One-vs-all +-1 targets, shape (n, n_classes)."""
    return torch.where(y[:, None] == classes[None, :], 1.0, -1.0).to(torch.float64)


def accuracy(predicted: Any, y: Any) -> float:
    """Fraction of equal labels.

    Parameters
    ----------
    predicted, y : array or tensor, ``(n,)``
        Labels.

    Returns
    -------
    float
        The fraction of equal labels.
    """
    p, t = torch.as_tensor(np.asarray(predicted)).reshape(-1), torch.as_tensor(np.asarray(y))
    return float((p == t.reshape(-1)).double().mean())


def center_normalize(features: Any) -> torch.Tensor:
    """Per-sample centring and L2 normalisation of feature rows.

    Each row ``f`` becomes ``(f - mean(f)) / |f - mean(f)|`` (a zero row stays
    zero), CKN-Pytorch's last step before its linear SVM. Per sample, so it
    needs no statistics of a training split.

    Parameters
    ----------
    features : array or tensor, ``(n, d)``
        Feature rows.

    Returns
    -------
    torch.Tensor
        ``(n, d)``, in the input's dtype (float64 for numpy input).
    """
    f = features if isinstance(features, torch.Tensor) else torch.as_tensor(np.asarray(features))
    if f.ndim != 2:
        raise ValueError(f"features must be 2-D (n, d), got shape {tuple(f.shape)}")
    f = f - f.mean(1, keepdim=True)
    norms = f.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, f / norms.clamp_min(torch.finfo(f.dtype).tiny), 0.0)


def default_lambdas(top_eigenvalue: float, n: int = 21) -> np.ndarray:
    """``top * 10^linspace(-10, 0, n)``: the default lambda grid.

    Parameters
    ----------
    top_eigenvalue : float
        The scale of the grid.
    n : int
        Number of lambdas.

    Returns
    -------
    numpy.ndarray
        ``(n,)``, increasing.
    """
    return max(top_eigenvalue, 1e-300) * np.logspace(-10, 0, n)


@dataclasses.dataclass
class LinearClassifier:
    """A fitted one-vs-all linear classifier ``argmax(F W + b)``.

    Attributes: ``weight (d, c)``, ``intercept (c,)``, ``classes (c,)``, ``lam``
    (the chosen lambda) and ``val_accuracy`` (the accuracy that chose it).

    Parameters
    ----------
    weight : torch.Tensor
        ``(d, c)``.
    intercept : torch.Tensor
        ``(c,)``.
    classes : numpy.ndarray
        ``(c,)`` labels.
    lam : float
        The chosen lambda.
    val_accuracy : float
        The validation accuracy that chose it.
    """

    weight: torch.Tensor
    intercept: torch.Tensor
    classes: torch.Tensor
    lam: float
    val_accuracy: float

    def decision_function(self, features: Any) -> torch.Tensor:
        """Scores, shape ``(n, c)``.

        Parameters
        ----------
        features : array or tensor, ``(n, d)``
            Features.

        Returns
        -------
        torch.Tensor
            ``(n, c)`` scores.
        """
        f = features
        if not isinstance(f, torch.Tensor):
            f = torch.as_tensor(np.array(f))
        w = self.weight.to(device=f.device, dtype=f.dtype)
        return f @ w + self.intercept.to(device=f.device, dtype=f.dtype)

    def predict(self, features: Any) -> torch.Tensor:
        scores = self.decision_function(features)
        return self.classes.to(scores.device)[scores.argmax(1)]

    def score(self, features: Any, y: Any) -> float:
        """Accuracy on ``(features, y)``.

        Parameters
        ----------
        features : array or tensor, ``(n, d)``
            Features.
        y : array, ``(n,)``
            Labels.

        Returns
        -------
        float
            Accuracy.
        """
        return accuracy(self.predict(features).cpu(), y)

    def state(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _best_lambda(evals, rhs, proj_val, mean_t, lambdas, yv, classes) -> tuple[float, float]:
    """The lambda of the grid whose eigenbasis solution ``rhs / (evals + lambda)``
    scores best on the validation split (``proj_val`` maps it to validation
    scores), and that validation accuracy."""
    grid = default_lambdas(float(evals.max())) if lambdas is None else np.asarray(lambdas, float)
    if grid.size == 0 or np.any(grid <= 0):
        raise ValueError(f"lambdas must be positive numbers, got {lambdas!r}")
    scores = [proj_val @ (rhs / (evals + lam)[:, None]) + mean_t for lam in grid]
    best = _select([s.cpu() for s in scores], yv, classes, _targets(yv, classes))
    val_acc = float((classes[scores[best].argmax(1).cpu()] == yv).double().mean())
    return float(grid[best]), val_acc


def _select(val_scores: list[torch.Tensor], y_val: torch.Tensor, classes: torch.Tensor,
            targets_val: torch.Tensor) -> int:
    """Index of the best lambda: highest validation accuracy, then lowest squared loss."""
    best, best_key = 0, None
    for i, s in enumerate(val_scores):
        acc = float((classes[s.argmax(1)] == y_val).double().mean())
        loss = float((s - targets_val).square().mean())
        key = (acc, -loss)
        if best_key is None or key > best_key:
            best, best_key = i, key
    return best


def fit_ridge_classifier(
    F_train: Any, y_train: Any, F_val: Any, y_val: Any, lambdas: Sequence[float] | None = None,
    solver: str = "eigh",
) -> LinearClassifier:
    """One-vs-all ridge regression on +-1 targets, lambda chosen on validation accuracy.

    Closed form for every lambda from one symmetric eigendecomposition of the
    centred ``F^T F / n`` (d <= n) or ``F F^T / n`` (n < d), in float64.

    Shape: ``F_train (n, d)``, ``F_val (m, d)`` -> a classifier with ``weight (d, c)``.

    Parameters
    ----------
    F_train, y_train : array or tensor
        Training features ``(n, d)`` and labels ``(n,)``.
    F_val, y_val : array or tensor
        Validation features ``(m, d)`` and labels ``(m,)``.
    lambdas : sequence of float, optional
        The grid (default :func:`default_lambdas`; with ``solver='cholesky'``,
        ``top * 10^[-8..0]``, 9 values).
    solver : {'eigh', 'cholesky'}
        ``eigh``: one eigendecomposition, every lambda for free (best for a fine
        grid or a small ``d``); ``cholesky``: one Cholesky solve of the ``d x d``
        system per lambda (``d <= n`` only), ``top`` by power iteration; an
        eigendecomposition of 6400 x 6400 took 140 s on a busy 2-core CPU where
        one Cholesky took 7 s.

    Returns
    -------
    LinearClassifier
        At the lambda with the best validation accuracy.
    """
    if solver not in ("eigh", "cholesky"):
        raise ValueError(f"solver must be 'eigh' or 'cholesky', got {solver!r}")
    f = _tensor(F_train, "F_train")
    fv = _tensor(F_val, "F_val").to(f.device)
    n, d = f.shape
    if fv.shape[1] != d:
        raise ValueError(f"F_val has {fv.shape[1]} features but F_train has {d}")
    y = _labels(y_train, n, "y_train")
    yv = _labels(y_val, fv.shape[0], "y_val")
    classes = torch.unique(y)
    targets = _targets(y, classes).to(f.device)
    mean_f, mean_t = f.mean(0), targets.mean(0)
    fc, tc = f - mean_f, targets - mean_t
    fvc = fv - mean_f
    if solver == "cholesky" and d <= n:
        return _ridge_cholesky(fc, tc, fvc, mean_f, mean_t, yv, classes, lambdas)
    if d <= n:
        evals, evecs = torch.linalg.eigh(fc.T @ fc / n)
        proj_val = fvc @ evecs  # (m, d)
        rhs = evecs.T @ (fc.T @ tc) / n  # (d, c)
    else:
        evals, evecs = torch.linalg.eigh(fc @ fc.T / n)
        proj_val = fvc @ (fc.T @ evecs) / n  # (m, n)
        rhs = evecs.T @ tc  # (n, c)
    evals = evals.clamp_min(0.0)
    lam, val_acc = _best_lambda(evals, rhs, proj_val, mean_t, lambdas, yv, classes)
    coef = rhs / (evals + lam)[:, None]
    weight = evecs @ coef if d <= n else fc.T @ (evecs @ coef) / n
    intercept = mean_t - mean_f @ weight
    return LinearClassifier(weight.cpu(), intercept.cpu(), classes, lam, val_acc)


def _top_eigenvalue(gram: torch.Tensor, iters: int = 50) -> float:
    vec = torch.ones(gram.shape[0], dtype=gram.dtype, device=gram.device)
    for _ in range(iters):
        vec = gram @ vec
        vec = vec / vec.norm().clamp_min(1e-300)
    return float(vec @ (gram @ vec))


def _ridge_cholesky(fc, tc, fvc, mean_f, mean_t, yv, classes, lambdas) -> LinearClassifier:
    """Ridge by one Cholesky solve per lambda of the centred ``(F^T F / n + lambda I)``."""
    n, d = fc.shape
    gram = fc.T @ fc / n
    rhs = fc.T @ tc / n
    top = _top_eigenvalue(gram)
    grid = (max(top, 1e-300) * np.logspace(-8, 0, 9) if lambdas is None
            else np.asarray(lambdas, float))
    if grid.size == 0 or np.any(grid <= 0):
        raise ValueError(f"lambdas must be positive numbers, got {lambdas!r}")
    eye = torch.eye(d, dtype=gram.dtype, device=gram.device)
    weights, scores = [], []
    for lam in grid:
        factor, info = torch.linalg.cholesky_ex(gram + lam * eye)
        if int(info) != 0:  # not positive definite at this lambda (rounding): skip it
            weights.append(None)
            scores.append(torch.full((fvc.shape[0], tc.shape[1]), -math.inf, dtype=gram.dtype))
            continue
        w = torch.cholesky_solve(rhs, factor)
        weights.append(w)
        scores.append((fvc @ w + mean_t).cpu())
    best = _select(scores, yv, classes, _targets(yv, classes))
    if weights[best] is None:
        raise ValueError("ridge: no lambda of the grid gave a positive definite system")
    weight = weights[best]
    val_acc = float((classes[scores[best].argmax(1)] == yv).double().mean())
    intercept = mean_t - mean_f @ weight
    return LinearClassifier(weight.cpu(), intercept.cpu(), classes, float(grid[best]), val_acc)


def fit_squared_hinge_classifier(
    F_train: Any, y_train: Any, F_val: Any, y_val: Any, lambdas: Sequence[float] | None = None,
    max_iter: int = 2000,
) -> LinearClassifier:
    """One-vs-all squared-hinge linear SVM (scikit-learn ``LinearSVC``), lambda on validation.

    ``lambda`` enters as ``C = 1 / (n lambda)`` (``LinearSVC`` minimises
    ``||w||^2 / 2 + C sum_i max(0, 1 - y_i f_i)^2``).

    Parameters
    ----------
    F_train, y_train : array or tensor
        Training features ``(n, d)`` and labels ``(n,)``.
    F_val, y_val : array or tensor
        Validation features ``(m, d)`` and labels ``(m,)``.
    lambdas : sequence of float, optional
        The grid (default :func:`default_lambdas`).
    max_iter : int
        Iterations of the solver.

    Returns
    -------
    LinearClassifier
        At the lambda with the best validation accuracy.
    """
    from sklearn.svm import LinearSVC

    f = _tensor(F_train, "F_train").cpu().numpy()
    fv = _tensor(F_val, "F_val").cpu().numpy()
    n = f.shape[0]
    y = _labels(y_train, n, "y_train")
    yv = _labels(y_val, fv.shape[0], "y_val")
    classes = torch.unique(y)
    if lambdas is None:
        fc = f - f.mean(0)
        top = float(np.linalg.norm(fc, 2) ** 2 / n) if min(fc.shape) > 0 else 1.0
        lambdas = top * np.logspace(-8, 0, 9)
    best = None
    for lam in np.asarray(lambdas, float):
        if lam <= 0:
            raise ValueError(f"lambdas must be positive numbers, got {lam!r}")
        svm = LinearSVC(loss="squared_hinge", C=1.0 / (n * lam), dual="auto", max_iter=max_iter)
        svm.fit(f, y.numpy())
        acc = float(np.mean(svm.predict(fv) == yv.numpy()))
        if best is None or acc > best[0]:
            best = (acc, lam, svm)
    acc, lam, svm = best
    coef = torch.as_tensor(svm.coef_, dtype=torch.float64)
    icpt = torch.as_tensor(np.atleast_1d(svm.intercept_), dtype=torch.float64)
    if len(classes) == 2:  # LinearSVC keeps one column for two classes
        coef = torch.cat([-coef, coef])
        icpt = torch.cat([-icpt, icpt])
    return LinearClassifier(coef.T.contiguous(), icpt, classes, float(lam), acc)


@dataclasses.dataclass
class KernelRidgeClassifier:
    """A fitted one-vs-all kernel ridge classifier: scores ``K(X, X_train) alpha + b``.

    Parameters
    ----------
    alpha : torch.Tensor
        ``(n_train, c)`` coefficients.
    intercept : torch.Tensor
        ``(c,)``.
    classes : numpy.ndarray
        ``(c,)`` labels.
    lam : float
        The chosen lambda.
    val_accuracy : float
        The validation accuracy that chose it.
    """

    alpha: torch.Tensor  # (n_train, c)
    intercept: torch.Tensor  # (c,)
    classes: torch.Tensor
    lam: float
    val_accuracy: float

    def decision_function(self, K_test_train: Any) -> torch.Tensor:
        k = _tensor(K_test_train, "K_test_train")
        return k @ self.alpha.to(k.device) + self.intercept.to(k.device)

    def predict(self, K_test_train: Any) -> torch.Tensor:
        scores = self.decision_function(K_test_train)
        return self.classes.to(scores.device)[scores.argmax(1)]

    def score(self, K_test_train: Any, y: Any) -> float:
        return accuracy(self.predict(K_test_train).cpu(), y)


def fit_kernel_ridge_classifier(
    K_train: Any, y_train: Any, K_val_train: Any, y_val: Any,
    lambdas: Sequence[float] | None = None,
) -> KernelRidgeClassifier:
    """One-vs-all kernel ridge on +-1 targets from precomputed Grams, lambda on validation.

    ``alpha = (K + n lambda I)^{-1} (Y - mean Y)``, for every lambda from one
    eigendecomposition of ``K_train``.

    Shape: ``K_train (n, n)``, ``K_val_train (m, n)``.

    Parameters
    ----------
    K_train : array or tensor
        ``(n, n)`` train Gram.
    y_train : array
        ``(n,)`` labels.
    K_val_train : array or tensor
        ``(m, n)`` validation-train Gram.
    y_val : array
        ``(m,)`` labels.
    lambdas : sequence of float, optional
        The grid (default :func:`default_lambdas`).

    Returns
    -------
    KernelRidgeClassifier
        At the lambda with the best validation accuracy.
    """
    k = _tensor(K_train, "K_train")
    kv = _tensor(K_val_train, "K_val_train").to(k.device)
    n = k.shape[0]
    if k.shape[1] != n or kv.shape[1] != n:
        raise ValueError(
            f"K_train must be (n, n) and K_val_train (m, n); got {tuple(k.shape)} and "
            f"{tuple(kv.shape)}"
        )
    y = _labels(y_train, n, "y_train")
    yv = _labels(y_val, kv.shape[0], "y_val")
    classes = torch.unique(y)
    targets = _targets(y, classes).to(k.device)
    mean_t = targets.mean(0)
    evals, evecs = torch.linalg.eigh(0.5 * (k + k.T) / n)
    evals = evals.clamp_min(0.0)
    rhs = evecs.T @ (targets - mean_t) / n
    proj_val = kv @ evecs
    lam, val_acc = _best_lambda(evals, rhs, proj_val, mean_t, lambdas, yv, classes)
    alpha = evecs @ (rhs / (evals + lam)[:, None])
    return KernelRidgeClassifier(alpha.cpu(), mean_t.cpu(), classes, lam, val_acc)
