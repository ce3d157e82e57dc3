"""CIFAR-10 from its "python version" batch files (``cifar-10-batches-py``).

The folder holds ``data_batch_1`` ... ``data_batch_5`` (training, 10000 images
each), ``test_batch`` (10000 images) and ``batches.meta``. Each batch is a
pickled dict with ``b"data"``, uint8 of shape (N, 3072) whose rows are an
image in (3, 32, 32) row-major order (1024 red, then green, then blue), and
``b"labels"``, a list of N ints in 0..9; ``batches.meta`` has
``b"label_names"``.

kernelzoo cannot download CIFAR-10: the files must be put in place by the
user. They are unpickled, so only read files you trust.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from kernelzoo._validation import check_int

__all__ = ["CIFAR10_CLASSES", "CIFAR10_FOLDER", "find_cifar10_dir", "read_cifar10"]

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_TEST_BATCHES = ("test_batch",)
_IMAGE_SHAPE = (3, 32, 32)


def _missing_message(looked_in: list[Path], missing: list[str]) -> str:
    where = " and ".join(repr(str(p)) for p in looked_in)
    return (
        f"CIFAR-10 batch files not found (missing {', '.join(missing)}; looked in {where}). "
        "kernelzoo cannot download CIFAR-10: get the CIFAR-10 'python version' archive "
        "(cifar-10-python.tar.gz), extract it (tar xzf cifar-10-python.tar.gz), and pass "
        f"root=<the folder that contains {CIFAR10_FOLDER}> (or that folder itself)."
    )


def find_cifar10_dir(root: str | Path, splits: tuple[str, ...] = ("train", "test")) -> Path:
    """The ``cifar-10-batches-py`` folder: ``root`` itself or ``root/cifar-10-batches-py``.

    Parameters
    ----------
    root : str or Path
        The folder that contains ``cifar-10-batches-py``, or that folder.
    splits : tuple of str
        Which splits must be present ("train": the five data batches,
        "test": ``test_batch``).

    Raises
    ------
    FileNotFoundError
        If no candidate folder holds the needed batches; the message says
        which files are missing and where to put them.
    """
    root = Path(root).expanduser()
    needed = [b for s in splits for b in (_TRAIN_BATCHES if s == "train" else _TEST_BATCHES)]
    candidates = [root / CIFAR10_FOLDER, root]
    best_missing = needed
    for folder in candidates:
        missing = [b for b in needed if not (folder / b).is_file()]
        if not missing:
            return folder
        if len(missing) < len(best_missing):
            best_missing = missing
    message = _missing_message(candidates, best_missing)
    if (root / "cifar-10-python.tar.gz").is_file():
        message += f" The archive is at {str(root / 'cifar-10-python.tar.gz')!r}: extract it there."
    raise FileNotFoundError(message)


def _unpickle(path: Path) -> dict[Any, Any]:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as err:
        raise ValueError(f"CIFAR-10 file {str(path)!r} is not a readable pickle: {err}") from err
    if not isinstance(obj, dict):
        raise TypeError(f"CIFAR-10 file {str(path)!r} should hold a dict, holds {type(obj)}")
    return obj


def _get(batch: dict[Any, Any], key: str, path: Path) -> Any:
    for k in (key.encode(), key):
        if k in batch:
            return batch[k]
    raise ValueError(f"CIFAR-10 file {str(path)!r} has no {key!r} entry (keys: {list(batch)})")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    data = np.asarray(_get(batch, "data", path))
    labels = np.asarray(_get(batch, "labels", path), dtype=np.int64)
    n_values = int(np.prod(_IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != n_values:
        raise ValueError(
            f"CIFAR-10 file {str(path)!r}: 'data' should be uint8 of shape (N, {n_values}), "
            f"is {data.dtype} of shape {data.shape}"
        )
    if labels.shape != (data.shape[0],):
        raise ValueError(
            f"CIFAR-10 file {str(path)!r}: {data.shape[0]} images but labels of shape "
            f"{labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(CIFAR10_CLASSES)):
        raise ValueError(f"CIFAR-10 file {str(path)!r}: labels outside 0..9")
    return data.reshape((-1, *_IMAGE_SHAPE)), labels


def _read_label_names(folder: Path) -> tuple[str, ...]:
    path = folder / "batches.meta"
    if not path.is_file():
        return CIFAR10_CLASSES
    names = _get(_unpickle(path), "label_names", path)
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def read_cifar10(
    root: str | Path, split: str = "train", n: int | None = None
) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Read CIFAR-10 images (uint8), labels and class names.

    Parameters
    ----------
    root : str or Path
        The folder that contains ``cifar-10-batches-py``, or that folder.
    split : {"train", "test", "all"}
        "all" is the training batches followed by the test batch.
    n : int, optional
        Keep only the first ``n`` images (batches beyond them are not read).

    Returns
    -------
    images : numpy.ndarray
        uint8, values 0..255.
    labels : numpy.ndarray
        int64 in 0..9.
    classes : tuple of str
        From ``batches.meta`` when present, else the standard names.

    Shape
    -----
    ``images``: (n, 3, 32, 32); ``labels``: (n,).
    """
    splits = {"train": ("train",), "test": ("test",), "all": ("train", "test")}
    if split not in splits:
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
    if n is not None:
        n = check_int(n, "n", positive=True)
    folder = find_cifar10_dir(root, splits[split])
    names = [b for s in splits[split] for b in (_TRAIN_BATCHES if s == "train" else _TEST_BATCHES)]
    images, labels, count = [], [], 0
    for name in names:
        if n is not None and count >= n:
            break
        data, lab = _read_batch(folder / name)
        images.append(data)
        labels.append(lab)
        count += len(lab)
    X = np.concatenate(images)[:n]
    y = np.concatenate(labels)[:n]
    return X, y, _read_label_names(folder)
