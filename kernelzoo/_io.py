"""Files: atomic writes and content fingerprints, the package's one way of doing each.

An atomic write goes to a temporary file in the destination's folder, is
flushed and fsynced, and replaces the destination with ``os.replace``; a
reader sees the old file or the new one, never a partial one, and a failure
leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import numpy as np
import torch

__all__ = ["atomic_write", "fingerprint", "host_array", "sha256_of"]


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", *, prefix: str = ".", suffix: str = ".tmp",
    sync_dir: bool = False, encoding: str | None = None,
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on success it replaces ``path`` atomically.

    Parameters
    ----------
    path : path
        The destination; its folder is created if needed.
    mode : {"wb", "w"}
        Binary or text.
    prefix, suffix : str
        Of the temporary file's name (hidden by default).
    sync_dir : bool
        Also fsync the folder after the rename, so that the rename itself
        survives a crash (for files that record progress, such as a manifest).
    encoding : str, optional
        For text mode.

    The file is flushed and fsynced before the rename; if the body raises,
    the temporary file is removed and ``path`` is untouched.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=prefix, suffix=suffix)
    try:
        with os.fdopen(fd, mode, encoding=encoding) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    if sync_dir:
        _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


def host_array(a: Any) -> np.ndarray:
    """A C-contiguous numpy array of ``a`` (numpy, or torch on any device; detached).

    Shape: unchanged.
    """
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().contiguous().numpy()
    return np.ascontiguousarray(a)


def sha256_of(a: Any) -> str:
    """sha256 (hex) of an array's bytes in C order.

    Shape: any.
    """
    return hashlib.sha256(host_array(a).view(np.uint8).reshape(-1)).hexdigest()


def fingerprint(a: Any) -> dict[str, Any]:
    """Identity of an array by content: sha256 of its bytes, its shape and dtype.

    The one content key of the package: a store's manifest records its inputs
    with it, and the gpytorch adapters key their Gram caches on it.

    Shape:
        ``a``: any shape (numpy or torch, any device) -> a JSON-able dict.
    """
    arr = host_array(a)
    return {"sha256": sha256_of(arr), "shape": list(arr.shape), "dtype": str(arr.dtype)}
