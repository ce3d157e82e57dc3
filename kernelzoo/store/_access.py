"""Opening, reading, checking and repairing stores (see :mod:`kernelzoo.store`)."""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from kernelzoo.store._manifest import (
    MANIFEST_NAME,
    _parse_key,
    _store_path,
    chunk_grid,
    chunk_slices,
    is_chunk_key,
    read_manifest,
    require_zarr,
    tile_checksum,
    tile_key,
    write_manifest,
)

def open_store(store: str | os.PathLike, mode: str = "r"):
    """The zarr array of a store (``mode`` "r" or "r+"); no completeness check.

    Parameters
    ----------
    store : str or path-like
        The store directory.
    mode : {'r', 'r+'}
        Read only, or read and write.

    Returns
    -------
    zarr.Array
        The Gram or feature array.
    """
    path = _store_path(store)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"store {os.fspath(store)!r} does not exist")
    return require_zarr().open_array(store=path, mode=mode)


def store_status(store: str | os.PathLike) -> dict[str, Any]:
    """What a store holds: ``{"shape", "dtype", "tile", "symmetric", "n_chunks", "n_done",
    "complete", "kernel", "kind"}`` (from the manifest; chunk files are not read).

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    dict
        As listed above.
    """
    manifest = read_manifest(store)
    if manifest is None:
        raise FileNotFoundError(f"store {os.fspath(store)!r} has no {MANIFEST_NAME}")
    rows, cols = chunk_grid(manifest)
    n_done = len(manifest["tiles"])
    return {
        "kind": manifest["kind"],
        "kernel": manifest["kernel"],
        "shape": tuple(manifest["shape"]),
        "dtype": manifest["dtype"],
        "tile": tuple(manifest["tile"]),
        "symmetric": manifest["symmetric"],
        "n_chunks": rows * cols,
        "n_done": n_done,
        "complete": n_done == rows * cols,
    }


def check_complete(store: str | os.PathLike) -> dict[str, Any]:
    """The manifest, after checking that every chunk is recorded as done (ValueError if not).

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    dict
        The manifest.
    """
    manifest = read_manifest(store)
    if manifest is None:
        raise ValueError(
            f"store {os.fspath(store)!r} has no {MANIFEST_NAME}: it was not written by kernelzoo "
            f"or its run never recorded a tile"
        )
    rows, cols = chunk_grid(manifest)
    missing = rows * cols - len(manifest["tiles"])
    if missing:
        raise ValueError(
            f"store {os.fspath(store)!r} is incomplete: {missing} of {rows * cols} chunks are "
            f"not done; rerun gram_to_store (or `kernelzoo gram ... --store`) to finish it"
        )
    return manifest


def load_store(
    store: str | os.PathLike,
    backend: str = "numpy",
    allow_incomplete: bool = False,
    device: str | torch.device | None = None,
):
    """Read a whole store into memory.

    Parameters
    ----------
    store : path
        A store written by :func:`kernelzoo.integrations.dask.gram_to_store`.
    backend : {"numpy", "torch"}
        Return a numpy array or a torch tensor.
    allow_incomplete : bool
        Read a store whose run has not finished; chunks not done read as NaN.
    device : str or torch.device, optional
        Device of the torch tensor (``backend="torch"`` only).

    Returns
    -------
    numpy.ndarray or torch.Tensor, ``(n, m)``
        The Gram (or features).
    """
    if backend not in ("numpy", "torch"):
        raise ValueError(f"backend={backend!r} is not allowed; expected 'numpy' or 'torch'")
    if device is not None and backend != "torch":
        raise ValueError("device is only used with backend='torch'")
    if allow_incomplete:
        if read_manifest(store) is None:
            raise ValueError(f"store {os.fspath(store)!r} has no {MANIFEST_NAME}")
    else:
        check_complete(store)
    values = open_store(store)[...]
    if backend == "numpy":
        return values
    out = torch.from_numpy(np.ascontiguousarray(values))
    return out if device is None else out.to(device)


def open_store_dask(store: str | os.PathLike, allow_incomplete: bool = False):
    """A Dask array over a store, one Dask chunk per tile (lazy; nothing is read yet).

    Shape: ``(n, m)``.

    Parameters
    ----------
    store : str or path-like
        The store directory.
    allow_incomplete : bool
        Allow a store whose run has not finished.

    Returns
    -------
    dask.array.Array
        Lazy.
    """
    import dask.array as da

    if allow_incomplete:
        if read_manifest(store) is None:
            raise ValueError(f"store {os.fspath(store)!r} has no {MANIFEST_NAME}")
    else:
        check_complete(store)
    array = open_store(store)
    return da.from_array(array, chunks=array.chunks, asarray=True, lock=False)


# ---------------------------------------------------------------------- verification
def _read_chunk(array, manifest: dict[str, Any], i: int, j: int) -> np.ndarray | None:
    rows, cols = chunk_slices(manifest, i, j)
    try:
        return np.asarray(array[rows, cols])
    except Exception:  # noqa: BLE001 - any undecodable chunk file is corrupt
        return None


def corrupt_chunks(
    store: str | os.PathLike, manifest: dict[str, Any] | None = None,
    keys: set[str] | None = None,
):
    """Chunks recorded as done whose values no longer match their checksum.

    Returns a sorted list of ``(i, j)``; every chunk recorded in the manifest is
    read (only those in ``keys``, when given).

    Parameters
    ----------
    store : str or path-like
        The store directory.
    manifest : dict, optional
        The store's manifest (read when not given).
    keys : set of str, optional
        Check only these chunks.

    Returns
    -------
    list of tuple of int
        ``(i, j)`` of the corrupt chunks.
    """
    manifest = read_manifest(store) if manifest is None else manifest
    if manifest is None:
        return []
    array = open_store(store)
    bad = []
    for key, checksum in manifest["tiles"].items():
        if not is_chunk_key(manifest, key) or (keys is not None and key not in keys):
            continue
        i, j = _parse_key(key)
        values = _read_chunk(array, manifest, i, j)
        if (
            values is None
            or tile_checksum(values.astype(manifest["dtype"], copy=False)) != checksum
        ):
            bad.append((i, j))
    return sorted(bad)


def verify_store(store: str | os.PathLike, repair: bool = False) -> list[tuple[int, int]]:
    """Check every finished chunk against its checksum; warn about each one that fails.

    Parameters
    ----------
    store : path
    repair : bool
        Also drop the failing chunks from the manifest (and, for a symmetric
        Gram, their mirrors), so that the next ``gram_to_store`` run recomputes them.

    Returns
    -------
    list of (int, int)
        The failing chunks ``(row tile, column tile)``.
    """
    manifest = read_manifest(store)
    if manifest is None:
        raise ValueError(f"store {os.fspath(store)!r} has no {MANIFEST_NAME}")
    bad = corrupt_chunks(store, manifest)
    for i, j in bad:
        rows, cols = chunk_slices(manifest, i, j)
        warnings.warn(
            f"store {os.fspath(store)!r}: chunk ({i}, {j}) (rows {rows.start}:{rows.stop}, "
            f"columns {cols.start}:{cols.stop}) does not match its checksum"
            + ("; it will be recomputed" if repair else ""),
            RuntimeWarning,
            stacklevel=2,
        )
    if repair and bad:
        tiles = dict(manifest["tiles"])
        for i, j in bad:
            tiles.pop(tile_key(i, j), None)
            if manifest["symmetric"]:
                tiles.pop(tile_key(j, i), None)
        manifest["tiles"] = tiles
        write_manifest(store, manifest)
    return bad
