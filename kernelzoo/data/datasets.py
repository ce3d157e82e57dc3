"""Datasets as numpy arrays: digits, MNIST, Fashion-MNIST, CIFAR-10, synthetic.

Every loader returns a :class:`Dataset` whose images are float32
``(n, C, H, W)`` scaled to [0, 1] and whose labels are int64 ``(n,)``.

Where the files live
--------------------
``digits`` is embedded in scikit-learn and ``synthetic`` is generated; the
others are read from files. The data folder is, in order: the ``root``
argument, else the environment variable ``KERNELZOO_DATA``, else
``$XDG_CACHE_HOME/kernelzoo`` (``~/.cache/kernelzoo`` when that variable is
unset). Each dataset has its subfolder there: ``mnist/``,
``fashion-mnist/``, ``cifar10/``. Without an explicit ``root``,
Fashion-MNIST is also looked for in ``/usr/share/datasets/fashion-mnist/``
(Debian's ``dataset-fashion-mnist`` package). ``kernelzoo data fetch
mnist|fashion-mnist`` installs the IDX files into the data folder.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import check_int
from kernelzoo.data import cifar
from kernelzoo.data.idx import IDX_ROLES, check_idx_pair, find_idx_files, idx_file_name, read_idx

__all__ = [
    "DIGITS_SPLIT_SEED",
    "DIGITS_TEST_FRACTION",
    "SYSTEM_DATA_DIRS",
    "Dataset",
    "available_datasets",
    "data_home",
    "dataset_dir",
    "load_dataset",
    "make_blobs",
    "make_images",
    "train_val_test_split",
]

#: Fraction of the 1797 digits held out as "test" (stratified, seeded): 449 test, 1348 train.
DIGITS_TEST_FRACTION = 0.25
#: Seed of the fixed digits split.
DIGITS_SPLIT_SEED = 0

#: Folders searched (after the data folder, and only when no ``root`` is given)
#: for datasets that system packages install.
SYSTEM_DATA_DIRS: dict[str, tuple[Path, ...]] = {
    "fashion-mnist": (Path("/usr/share/datasets/fashion-mnist"),),
}

_DIGIT_CLASSES = tuple(str(i) for i in range(10))
_FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
_IDX_DATASETS = {"mnist": _DIGIT_CLASSES, "fashion-mnist": _FASHION_CLASSES}
_DATASETS = ("cifar10", "digits", "fashion-mnist", "mnist", "synthetic")
_ALIASES = {
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
}
_SPLITS = ("train", "test", "all")
_SYNTHETIC_N = 256
_SYNTHETIC_SEEDS = {"train": 0, "test": 1}


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images and labels of one split of a dataset.

    Attributes
    ----------
    X : numpy.ndarray
        float32 images scaled to [0, 1].
    y : numpy.ndarray
        int64 class indices into ``classes``.
    name : str
        Dataset name, as :func:`available_datasets` spells it.
    classes : tuple of str
        Class names; ``classes[y[i]]`` names example ``i``.
    split : str
        "train", "test" or "all".

    Shape
    -----
    ``X``: (n, C, H, W); ``y``: (n,).
    """

    X: np.ndarray
    y: np.ndarray
    name: str
    classes: tuple[str, ...]
    split: str = "train"

    def __post_init__(self) -> None:
        if not isinstance(self.X, np.ndarray) or self.X.dtype != np.float32 or self.X.ndim != 4:
            raise ValueError(
                f"X must be a float32 numpy array (n, C, H, W), got {type(self.X).__name__} "
                f"{getattr(self.X, 'dtype', '')} of shape {getattr(self.X, 'shape', None)}"
            )
        if not isinstance(self.y, np.ndarray) or self.y.dtype != np.int64 or self.y.ndim != 1:
            raise ValueError(f"y must be an int64 numpy array (n,), got {self.y!r:.80}")
        if len(self.y) != len(self.X):
            raise ValueError(f"X has {len(self.X)} images but y has {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, split={self.split!r}, n={len(self)}, "
            f"image_shape={self.image_shape}, n_classes={len(self.classes)})"
        )

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return tuple(self.X.shape[1:])  # type: ignore[return-value]


def available_datasets() -> tuple[str, ...]:
    """Sorted names accepted by :func:`load_dataset`."""
    return _DATASETS


def _canonical_name(name: str) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _DATASETS:
        raise ValueError(f"unknown dataset name {name!r}; available: {', '.join(_DATASETS)}")
    return key


def data_home(root: str | Path | None = None) -> Path:
    """The data folder: ``root``, else ``$KERNELZOO_DATA``, else the user cache folder.

    The cache folder is ``$XDG_CACHE_HOME/kernelzoo``, or ``~/.cache/kernelzoo``
    when ``XDG_CACHE_HOME`` is unset. Nothing is created.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("KERNELZOO_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "kernelzoo"


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder where dataset ``name`` is installed: ``data_home(root) / name``."""
    return data_home(root) / _canonical_name(name)


def _check_n(n: Any) -> None:
    if n is not None:
        check_int(n, "n", positive=True)


def load_dataset(
    name: str,
    split: str = "train",
    root: str | Path | None = None,
    n: int | None = None,
) -> Dataset:
    """Load one split of a dataset as float32 images in [0, 1] and int64 labels.

    Parameters
    ----------
    name : str
        One of :func:`available_datasets` ("digits", "mnist", "fashion-mnist",
        "cifar10", "synthetic"); case-insensitive, "fashion_mnist" and
        "cifar-10" are accepted.
    split : {"train", "test", "all"}
        "all" is the training split followed by the test split. ``digits``
        has no official split: "train"/"test" are a fixed stratified split
        (:data:`DIGITS_TEST_FRACTION` of each class held out, seed
        :data:`DIGITS_SPLIT_SEED`; 1348 train, 449 test), each kept in the
        original order. ``synthetic`` draws :func:`make_images` with seed 0
        for "train" and 1 for "test" (256 each unless ``n`` says otherwise).
    root : str or Path, optional
        Data folder (see the module docstring); for ``cifar10``, the folder
        that contains ``cifar-10-batches-py`` or that folder itself.
    n : int, optional
        Keep the first ``n`` examples of the split (for ``synthetic``: draw
        ``n``). An ``n`` larger than the split is an error.

    Returns
    -------
    Dataset

    Shape
    -----
    ``X``: (n, C, H, W): (1, 8, 8) digits and synthetic, (1, 28, 28) MNIST and
    Fashion-MNIST, (3, 32, 32) CIFAR-10; ``y``: (n,).

    Raises
    ------
    FileNotFoundError
        If the files of a file-based dataset are missing; the message says
        how to get them.
    ValueError
        For an unknown ``name`` or ``split``, a bad ``n``, or corrupt files
        (the message names the file).
    """
    key = _canonical_name(name)
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
    _check_n(n)
    if key == "synthetic":
        return _load_synthetic(split, n)
    if key == "cifar10":
        images, labels, classes = _read_cifar(root, split, n)
        X, y = images.astype(np.float32), labels
        X /= np.float32(255.0)
    elif key == "digits":
        X, y = _load_digits(split)
        classes = _DIGIT_CLASSES
    else:
        X, y = _load_idx_dataset(key, split, root)
        classes = _IDX_DATASETS[key]
    if n is not None:
        if n > len(y):
            raise ValueError(f"n={n} exceeds the {len(y)} examples of {key} split {split!r}")
        X, y = X[:n], y[:n]
    return Dataset(np.ascontiguousarray(X), y.astype(np.int64), key, tuple(classes), split)


# --- digits -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    X = (bunch.images[:, None, :, :] / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    X, y = _digits_arrays()  # cached read-only; every split below is a fresh copy
    if split == "all":
        return X.copy(), y.copy()
    train, _, test = _split_indices(y, 0, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED, True)
    idx = train if split == "train" else test
    return X[idx], y[idx]


# --- MNIST and Fashion-MNIST ---------------------------------------------------------------


def _idx_search_dirs(key: str, root: str | Path | None) -> list[Path]:
    if root is not None:
        base = Path(root).expanduser()
        return [base / key, base]
    return [dataset_dir(key), *SYSTEM_DATA_DIRS.get(key, ())]


def _idx_missing_message(key: str, looked_in: list[Path], missing: list[str], root: Any) -> str:
    where = ", ".join(repr(str(p)) for p in looked_in)
    target = dataset_dir(key, root)
    names = ", ".join(idx_file_name(role) for role in IDX_ROLES)
    message = f"{key} IDX files not found (missing {', '.join(missing)}; looked in {where}). "
    if key == "mnist":
        message += f"Run `kernelzoo data fetch mnist` to install them into {str(target)!r}"
    else:
        message += (
            "Run `apt-get install dataset-fashion-mnist` (as root; it installs them in "
            "/usr/share/datasets/fashion-mnist), or `kernelzoo data fetch fashion-mnist` once "
            f"they are there to copy them into {str(target)!r}"
        )
    if root is not None:
        message += f" (from Python: kernelzoo.data.fetch({key!r}, root={str(root)!r}))"
    return (
        message + f"; or put the four files ({names}; plain or .gz; the names "
        f"'train-images.idx3-ubyte' etc. work too) in {str(target)!r}."
    )


def _load_idx_dataset(key: str, split: str, root: str | Path | None) -> tuple[np.ndarray, ...]:
    splits = ("train", "test") if split == "all" else (split,)
    needed = [f"{s}-{kind}" for s in splits for kind in ("images", "labels")]
    folders = _idx_search_dirs(key, root)
    best_missing = needed
    for folder in folders:
        files = find_idx_files(folder)
        missing = [role for role in needed if role not in files]
        if not missing:
            break
        best_missing = min(best_missing, missing, key=len)
    else:
        raise FileNotFoundError(_idx_missing_message(key, folders, best_missing, root))
    images, labels = [], []
    for s in splits:
        img_path, lab_path = files[f"{s}-images"], files[f"{s}-labels"]
        img, lab = read_idx(img_path), read_idx(lab_path)
        check_idx_pair(img_path, lab_path, img, lab)
        if img.dtype != np.uint8:
            raise ValueError(
                f"IDX file {str(img_path)!r} should hold uint8 pixels, has {img.dtype}"
            )
        n_classes = len(_IDX_DATASETS[key])
        if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
            raise ValueError(f"IDX file {str(lab_path)!r} has labels outside 0..{n_classes - 1}")
        images.append(img)
        labels.append(lab.astype(np.int64))
    X = np.concatenate(images)[:, None, :, :].astype(np.float32)
    X /= np.float32(255.0)
    return X, np.concatenate(labels)


# --- CIFAR-10 ----------------------------------------------------------------------------


def _read_cifar(root: str | Path | None, split: str, n: int | None) -> tuple[Any, Any, Any]:
    if root is not None:
        return cifar.read_cifar10(root, split, n)
    try:
        return cifar.read_cifar10(dataset_dir("cifar10"), split, n)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} Without root, kernelzoo looks in {str(dataset_dir('cifar10'))!r}: put "
            f"{cifar.CIFAR10_FOLDER} there (set KERNELZOO_DATA to change the data folder)."
        ) from None


# --- synthetic ---------------------------------------------------------------------------


def _load_synthetic(split: str, n: int | None) -> Dataset:
    parts = ("train", "test") if split == "all" else (split,)
    draws = [make_images(n or _SYNTHETIC_N, seed=_SYNTHETIC_SEEDS[p]) for p in parts]
    X = np.concatenate([d[0] for d in draws])[:n]
    y = np.concatenate([d[1] for d in draws])[:n]
    classes = tuple(str(c) for c in range(3))
    return Dataset(X, y, "synthetic", classes, split)


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n, dtype=np.int64) % n_classes)


def _check_positive_int(value: Any, name: str) -> int:
    return check_int(value, name, positive=True)


def make_images(
    n: int = 256,
    shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 3,
    *,
    noise: float = 0.1,
    seed: int = 0,
    pattern_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Small labelled images: a smooth pattern per class, jittered, plus noise.

    Each class has a prototype per channel, ``0.5 + 0.25 (cos(2 pi <f1, u> +
    phi1) + cos(2 pi <f2, u> + phi2))`` with frequencies of 0.5 to 2 cycles
    per image, drawn from ``pattern_seed`` (so different ``seed`` values give
    new samples of the *same* classes). Each image shifts the phases by up to
    +-0.5 rad, scales the contrast by 0.8..1.2, adds Gaussian noise of
    standard deviation ``noise`` and is clipped to [0, 1]. Classes are
    balanced (``n % n_classes`` classes get one image more).

    Parameters
    ----------
    n : int
        Number of images.
    shape : (C, H, W)
        Image shape.
    n_classes : int
        Number of classes.
    noise : float
        Standard deviation of the pixel noise (>= 0).
    seed : int
        Seed of the labels, jitter and noise.
    pattern_seed : int
        Seed of the class prototypes.

    Returns
    -------
    X : numpy.ndarray
        float32 in [0, 1].
    y : numpy.ndarray
        int64 in ``0..n_classes-1``.

    Shape
    -----
    ``X``: (n, C, H, W); ``y``: (n,).
    """
    n = _check_positive_int(n, "n")
    n_classes = _check_positive_int(n_classes, "n_classes")
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
    n_channels, height, width = (_check_positive_int(s, "shape") for s in shape)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    proto_rng = np.random.default_rng(pattern_seed)
    # (n_classes, C, 2 waves, 2 axes) frequencies in cycles per image, and phases
    freq = proto_rng.uniform(0.5, 2.0, (n_classes, n_channels, 2, 2))
    freq *= proto_rng.choice([-1.0, 1.0], freq.shape)
    phase = proto_rng.uniform(0.0, 2 * np.pi, (n_classes, n_channels, 2))

    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, n_classes, rng)
    jitter = rng.uniform(-0.5, 0.5, (n, n_channels, 2))
    contrast = rng.uniform(0.8, 1.2, (n, 1, 1, 1))
    rows = np.arange(height)[:, None] / height
    cols = np.arange(width)[None, :] / width
    f = freq[y]  # (n, C, 2, 2)
    angle = (
        2 * np.pi * (f[..., 0, None, None] * rows + f[..., 1, None, None] * cols)
        + (phase[y] + jitter)[..., None, None]
    )  # (n, C, 2, H, W)
    X = 0.5 + 0.25 * contrast * np.cos(angle).sum(axis=2)
    X += noise * rng.standard_normal(X.shape)
    return np.clip(X, 0.0, 1.0).astype(np.float32), y


def make_blobs(
    n: int = 256,
    n_features: int = 2,
    n_classes: int = 3,
    *,
    spread: float = 1.0,
    separation: float = 4.0,
    seed: int = 0,
    pattern_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: one isotropic Gaussian per class around a random centre.

    Centres are drawn from ``pattern_seed`` with standard deviation
    ``separation`` per coordinate; samples add ``spread`` times standard
    normal noise. Classes are balanced.

    Returns
    -------
    X : numpy.ndarray
        float32.
    y : numpy.ndarray
        int64.

    Shape
    -----
    ``X``: (n, n_features); ``y``: (n,).
    """
    n = _check_positive_int(n, "n")
    n_features = _check_positive_int(n_features, "n_features")
    n_classes = _check_positive_int(n_classes, "n_classes")
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0, got {spread!r}")
    centres = separation * np.random.default_rng(pattern_seed).standard_normal(
        (n_classes, n_features)
    )
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, n_classes, rng)
    X = centres[y] + spread * rng.standard_normal((n, n_features))
    return X.astype(np.float32), y


# --- splits ------------------------------------------------------------------------------


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


def _split_indices(
    y: np.ndarray, n_val: float, n_test: float, seed: int, stratify: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
    train, val_idx, test_idx = _split_indices(y_np, val, test, seed, stratify)
    y_out = y if isinstance(y, torch.Tensor) else y_np
    return (
        _take(X, train), _take(y_out, train),
        _take(X, val_idx), _take(y_out, val_idx),
        _take(X, test_idx), _take(y_out, test_idx),
    )  # fmt: skip
