"""The images of a run and their splits, and the exact Grams computed once over them.

A run draws one *pool* of images out of the dataset (stratified, seed
:data:`~kernelzoo.bench.plan.POOL_SEED`), of the size its plan needs: the
largest n_train plus the validation and test sizes. Every split re-draws
train/validation/test out of the pool (stratified, the split index is its
seed); smaller training sizes are prefixes of a seeded order of the training
part, so they are nested. Each exact Gram is computed once over the whole pool,
per kernel (i.e. per hyperparameter value), and every harness, split and n
slices it (:class:`GramCache`); the NNGP and the NTK of one architecture come
out of one pass (``gram_nngp_ntk``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import torch

from kernelzoo.bench.plan import POOL_SEED, RunConfig

__all__ = ["GramCache", "Pool", "Split", "load_pool"]


@dataclasses.dataclass(frozen=True)
class Split:
    """Indices into the pool: ``train`` (in a seeded order: n_train are its first n),
    ``val`` and ``test``. ``index`` is the split's number and its seed."""

    index: int
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclasses.dataclass
class Pool:
    """The run's images ``x`` (N, C, H, W) on the run's device and dtype, labels ``y``
    (N,), and the splits."""

    name: str
    x: torch.Tensor
    y: np.ndarray
    splits: list[Split]

    def __len__(self) -> int:
        return len(self.y)


def _draw_pool(config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    from kernelzoo.data import load_dataset, train_val_test_split

    data = load_dataset(config.dataset, "all", root=config.root)
    size = config.sizes.pool
    if size > len(data):
        raise ValueError(
            f"--dataset {config.dataset} has {len(data)} images, but the plan needs "
            f"{size} (largest --n-train {max(config.sizes.n_train)} + --n-val "
            f"{config.sizes.n_val} + --n-test {config.sizes.n_test}); lower them")
    if size == len(data):
        return data.X, data.y
    keep = train_val_test_split(np.arange(len(data)), data.y, val=0, test=size,
                                seed=POOL_SEED)[4]
    return data.X[keep], data.y[keep]


def load_pool(config: RunConfig) -> Pool:
    """The pool of images and its ``config.splits`` splits.

    Shape: ``pool.x`` (N, C, H, W) with N = ``config.sizes.pool``.
    """
    from kernelzoo.bench._common import as_input, parse_dtype
    from kernelzoo.data import train_val_test_split

    X, y = _draw_pool(config)
    y = np.asarray(y)
    index = np.arange(len(y))
    splits = []
    for s in range(config.splits):
        train, _, val, _, test, _ = train_val_test_split(
            index, y, val=config.sizes.n_val, test=config.sizes.n_test, seed=s)
        order = np.random.default_rng(s).permutation(len(train))
        splits.append(Split(s, train[order], val, test))
    x = as_input(X, config.device, parse_dtype(config.dtype))
    return Pool(config.dataset, x, y, splits)


def _pair_key(kernel: Any) -> tuple[str, str] | None:
    """A key shared by the two kernels whose Grams one ``gram_nngp_ntk`` pass gives."""
    if not hasattr(kernel, "gram_nngp_ntk"):
        return None
    return ("gram_nngp_ntk", kernel.spec.partition("(")[2])


class GramCache:
    """Exact Grams of the pool's images, computed once per kernel and kept until released.

    ``get(kernel)`` returns the ``(N, N)`` Gram (on the pool's device and dtype).
    Kernels with ``gram_nngp_ntk`` (the NNGP and NTK of one architecture) compute
    both Grams in one pass and keep the other until it is asked for or released.
    ``seconds[spec]`` is the time of the pass that gave a kernel's Gram.
    """

    def __init__(self, x: torch.Tensor, progress: Any = None) -> None:
        self.x = x
        self.progress = progress
        self.seconds: dict[str, float] = {}
        self._grams: dict[Any, Any] = {}
        self._released: dict[Any, set[int]] = {}

    @staticmethod
    def _key_and_half(kernel: Any) -> tuple[Any, int]:
        pair = _pair_key(kernel)
        if pair is None:
            return kernel.spec, 0
        return pair, int(bool(getattr(kernel, "tangent", False)))

    def get(self, kernel: Any) -> torch.Tensor:
        """The Gram of the pool with itself under ``kernel``. Shape: (N, N)."""
        from kernelzoo.bench._common import timed

        key, half = self._key_and_half(kernel)
        if key not in self._grams:
            if self.progress is not None:
                self.progress.note(f"Gram {kernel.spec[:50]}")
            if isinstance(key, tuple):
                value, seconds = timed(lambda: kernel.gram_nngp_ntk(self.x), self.x.device)
            else:
                value, seconds = timed(lambda: (kernel.gram(self.x),), self.x.device)
            self._grams[key] = value
            self._released[key] = set()
            self.seconds[str(key)] = seconds
        self._released[key].discard(half)
        return self._grams[key][half]

    def gram_seconds(self, kernel: Any) -> float:
        """Seconds of the pass that computed ``kernel``'s Gram (NaN if not computed)."""
        key, _ = self._key_and_half(kernel)
        return self.seconds.get(str(key), float("nan"))

    def release(self, kernel: Any) -> None:
        """Forget ``kernel``'s Gram (a pair is dropped once both halves are released)."""
        key, half = self._key_and_half(kernel)
        if key not in self._grams:
            return
        self._released[key].add(half)
        if not isinstance(key, tuple) or self._released[key] >= {0, 1}:
            del self._grams[key]
            del self._released[key]

    def __contains__(self, kernel: Any) -> bool:
        return self._key_and_half(kernel)[0] in self._grams
