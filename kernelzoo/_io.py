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
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

__all__ = [
    "atomic_files",
    "atomic_write",
    "canonical_digest",
    "fingerprint",
    "host_array",
    "sha256_of",
]


@contextlib.contextmanager
def atomic_files(
    paths: Sequence[str | os.PathLike], *, suffix: str = ".tmp", sync_dir: bool = False
) -> Iterator[list[Path]]:
    """Temporary files next to ``paths``; on success each replaces its path, in order.

    The body writes the temporary files (``[Path, ...]``, one per path, named
    ``.<name>.<random><suffix>`` in the destination's folder, created if
    needed); they are fsynced and renamed only once the body has finished
    without raising, so a failure (or a validation that raises) leaves every
    destination untouched and no temporary file behind.

    ``sync_dir`` also fsyncs the folders after the renames, so that the
    renames themselves survive a crash (for files that record progress).
    """
    temps: list[Path] = []
    try:
        for path in paths:
            final = Path(path)
            final.parent.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix)
            os.close(fd)
            temps.append(Path(name))
        yield temps
        for temp in temps:
            with open(temp, "rb+") as fh:
                os.fsync(fh.fileno())
        for temp, path in zip(temps, paths):
            os.replace(temp, path)
    finally:
        for temp in temps:
            temp.unlink(missing_ok=True)
    if sync_dir:
        for directory in {os.path.dirname(os.path.abspath(p)) for p in paths}:
            _fsync_dir(directory)


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike, mode: str = "wb", *, sync_dir: bool = False,
    encoding: str | None = None,
) -> Iterator[IO[Any]]:
    """An open temporary file next to ``path``; on success it replaces ``path`` atomically.

    ``mode`` is ``"wb"`` or ``"w"`` (text, with ``encoding``); see
    :func:`atomic_files` for the guarantees and ``sync_dir``.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    with atomic_files([path], sync_dir=sync_dir) as (temp,):
        with open(temp, mode, encoding=encoding) as fh:
            yield fh


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


def _encode(value: Any, out: Any) -> None:
    """Feed one value's canonical, typed encoding to the hash ``out``."""
    if value is None:
        out.update(b"N")
    elif isinstance(value, bool):
        out.update(b"B1" if value else b"B0")
    elif isinstance(value, (int, np.integer)):
        out.update(b"I%d;" % int(value))
    elif isinstance(value, (float, np.floating)):
        out.update(b"F" + float(value).hex().encode() + b";")
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.update(b"S%d:" % len(raw) + raw)
    elif isinstance(value, (list, tuple)):
        out.update(b"L%d:" % len(value))
        for entry in value:
            _encode(entry, out)
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("canonical_digest: dict keys must be strings")
        out.update(b"D%d:" % len(value))
        for key in sorted(value):
            _encode(key, out)
            _encode(value[key], out)
    elif isinstance(value, (torch.Tensor, np.ndarray)):
        t = torch.from_numpy(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) \
            else value
        t = t.detach().cpu().contiguous()
        header = f"T{str(t.dtype).replace('torch.', '')}{list(t.shape)}:".encode()
        out.update(header)
        out.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    else:
        raise TypeError(f"canonical_digest: cannot encode a {type(value).__name__}")


def canonical_digest(value: Any) -> str:
    """``"sha256:<hex>"`` of a canonical serialisation of nested data.

    Covers None, bools, ints, floats (exactly, as ``float.hex``), strings,
    lists/tuples (alike), dicts with string keys (in sorted key order) and
    tensors or arrays (dtype, shape and the bytes in C order): equal content
    gives an equal digest whatever the object identities, file layout or dict
    order, and any change of a value, a type, a dtype, a shape or a key changes
    it. Saved approximations carry it over their whole content.

    Shape: any nesting -> a string.
    """
    h = hashlib.sha256()
    _encode(value, h)
    return "sha256:" + h.hexdigest()
