"""Stratified train/validation/test splits of arrays (numpy or torch), seeded."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch


__all__ = ["split_indices", "train_val_test_split"]


def _split_size(value: Any, n: int, name: str) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a fraction in [0, 1) or a count, got {value!r}")
    if isinstance(value, (int, np.integer)):
        if not 0 <= value <= n:
            raise ValueError(f"{name} as a count must be in [0, {n}], got {value}")
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not 0.0 <= value < 1.0:
            raise ValueError(f"{name} as a fraction must be in [0, 1), got {value}")
        return round(float(value) * n)
    raise TypeError(f"{name} must be a fraction in [0, 1) or a count, got {value!r}")


def _allocate(sizes: np.ndarray, total: int) -> np.ndarray:
    """Split ``total`` over groups proportionally to ``sizes`` (largest remainder, exact ints)."""
    n = int(sizes.sum())
    if n == 0:
        return np.zeros_like(sizes)
    base, remainder = np.divmod(sizes * total, n)
    order = np.argsort(-remainder, kind="stable")
    base[order[: total - int(base.sum())]] += 1
    return base


def split_indices(
    y: np.ndarray, n_val: float, n_test: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, val, test)`` indices: sizes as counts or fractions, per class when stratified.

    Shape: ``y`` ``(n,)`` -> three disjoint index arrays covering ``range(n)``.
    """
    n = len(y)
    n_test = _split_size(n_test, n, "test")
    n_val = _split_size(n_val, n, "val")
    if n_val + n_test >= n:
        raise ValueError(f"val ({n_val}) and test ({n_test}) leave no training example out of {n}")
    members = [np.flatnonzero(y == g) for g in np.unique(y)] if stratify else [np.arange(n)]
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(m) for m in members]
    sizes = np.array([len(m) for m in members], dtype=np.int64)
    test_counts = _allocate(sizes, n_test)
    val_counts = _allocate(sizes - test_counts, n_val)
    train, val, test = [], [], []
    for perm, t, v in zip(perms, test_counts, val_counts, strict=True):
        test.append(perm[:t])
        val.append(perm[t : t + v])
        train.append(perm[t + v :])
    return tuple(np.sort(np.concatenate(part)) for part in (train, val, test))  # type: ignore


def _take(X: Any, idx: np.ndarray) -> Any:
    if isinstance(X, torch.Tensor):
        return X[torch.as_tensor(idx, device=X.device)]
    return X[idx]


def train_val_test_split(
    X: np.ndarray | torch.Tensor,
    y: np.ndarray | torch.Tensor,
    *,
    val: float = 0.1,
    test: float = 0.2,
    seed: int = 0,
    stratify: bool = True,
) -> tuple[Any, Any, Any, Any, Any, Any]:
    """Seeded, disjoint train / validation / test split, stratified by class.

    Within each class (when ``stratify``) the examples are permuted with
    ``numpy.random.default_rng(seed)``; the first ones go to test, the next
    to validation, the rest to train. Per-class counts are proportional to
    the class sizes (largest-remainder rounding, so the totals are exact); a
    class too small for its share may be missing from a small split. The
    test set depends only on ``y``, ``test`` and ``seed``, not on ``val``.
    Each split keeps the original order of its examples.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Examples along the first axis.
    y : array-like
        Labels (any hashable values numpy can sort).
    val, test : float or int
        A fraction in [0, 1) of the examples (rounded), or a count.
    seed : int
        Seed of the permutation.
    stratify : bool
        Split each class separately (default) or all examples together.

    Returns
    -------
    X_train, y_train, X_val, y_val, X_test, y_test
        Of the same type as ``X`` and ``y`` (numpy ``y`` for array-likes).

    Shape
    -----
    ``X``: (n, ...); ``y``: (n,). Outputs: (n_train, ...), (n_train,), ...
    with ``n_train + n_val + n_test == n``.
    """
    y_np = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if y_np.ndim != 1:
        raise ValueError(f"y must be 1-D (n,), got shape {y_np.shape}")
    if len(X) != len(y_np):
        raise ValueError(f"X has {len(X)} examples but y has {len(y_np)}")
    train, val_idx, test_idx = split_indices(y_np, val, test, seed, stratify)
    y_out = y if isinstance(y, torch.Tensor) else y_np
    return (
        _take(X, train), _take(y_out, train),
        _take(X, val_idx), _take(y_out, val_idx),
        _take(X, test_idx), _take(y_out, test_idx),
    )  # fmt: skip
