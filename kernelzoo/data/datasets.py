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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kernelzoo._validation import check_int
from kernelzoo.data import cifar
from kernelzoo.data.splits import split_indices, train_val_test_split
from kernelzoo.data.synthetic import make_blobs, make_images
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

    Parameters
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

    Parameters
    ----------
    root : str or Path, optional
        An explicit folder.

    Returns
    -------
    Path
        The folder.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("KERNELZOO_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser() / "kernelzoo"


def dataset_dir(name: str, root: str | Path | None = None) -> Path:
    """The folder where dataset ``name`` is installed: ``data_home(root) / name``.

    Parameters
    ----------
    name : str
        A dataset name.
    root : str or Path, optional
        An explicit data folder.

    Returns
    -------
    Path
        The folder.
    """
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
        Images ``X``, labels ``y``, the class names and the split.

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
    train, _, test = split_indices(y, 0, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED, True)
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
