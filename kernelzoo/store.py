"""Tiled on-disk Gram (or feature) matrices: a zarr array plus a JSON manifest.

A store is a zarr (format 3) array in a directory, chunked by tiles, with a
manifest file ``kernelzoo-manifest.json`` inside that directory. The manifest
is the only authority on what is finished: it records what was computed (the
kernel spec, fingerprints of the inputs, shapes, dtype, tile size, whether the
Gram is symmetric) and, for every finished chunk, the sha256 checksum of its
values. A chunk that the manifest does not list is *not done*, whatever the
zarr array holds (a missing chunk reads back as the fill value, NaN).

Symmetric Grams (X with itself) store the **full** matrix: the tile ``(i, j)``
with ``i < j`` is computed once and written twice, as chunk ``(i, j)`` and,
transposed, as chunk ``(j, i)`` (the mirror is *written*, not built on read),
so that any zarr or Dask reader sees the plain matrix and a solver can read
whole rows. Both chunks carry their own checksum.

The manifest is replaced atomically (:func:`kernelzoo._io.atomic_write`:
temporary file in the same directory, fsync, ``os.replace``, directory fsync)
and only by the process that drives the computation; zarr's local store writes
each chunk to a temporary file and renames it.

Beside it, an append-only **journal** (``kernelzoo-journal.jsonl``, one JSON
record per line, fsynced): a header with the store's identity, then one
record per batch of finished chunks with their checksums, appended before the
manifest is replaced. A lost or truncated manifest is rebuilt from it
(:func:`rebuild_manifest`; the writer then verifies every rebuilt chunk
against its checksum and recomputes those that fail); a line cut short by a
crash, or damaged, only costs its chunks a recomputation. Finished chunks are
never deleted.

This module sits in the lowest layer (it imports no other kernelzoo module but
``_io``): the Dask runner (:mod:`kernelzoo.integrations.dask`) writes stores
and the out-of-core solvers (:mod:`kernelzoo.ops.solvers`) read them. It needs
the ``dist`` extra (``zarr``; ``dask`` for :func:`open_store_dask`).
``kernelzoo.integrations.store`` is the same module under its former path.
"""

from __future__ import annotations

import datetime
import json
import os
import warnings
from typing import Any

import numpy as np
import torch

from kernelzoo._io import atomic_write, fingerprint, sha256_of

__all__ = [
    "JOURNAL_NAME",
    "MANIFEST_NAME",
    "STORE_FORMAT",
    "check_complete",
    "chunk_grid",
    "chunk_slices",
    "corrupt_chunks",
    "fingerprint",
    "append_journal",
    "is_chunk_key",
    "journal_path",
    "load_store",
    "manifest_path",
    "open_store",
    "open_store_dask",
    "read_journal",
    "read_manifest",
    "rebuild_manifest",
    "require_zarr",
    "store_status",
    "tile_checksum",
    "tile_key",
    "verify_store",
    "write_manifest",
]

MANIFEST_NAME = "kernelzoo-manifest.json"
JOURNAL_NAME = "kernelzoo-journal.jsonl"
STORE_FORMAT = "kernelzoo-store/1"


def require_zarr():
    """The zarr module, or an ``ImportError`` that says which extra installs it."""
    try:
        import zarr
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "kernelzoo stores need zarr >= 3.1.3: pip install 'kernelzoo[dist]'"
        ) from exc
    return zarr


def _store_path(store: str | os.PathLike) -> str:
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike), got {type(store).__name__}")
    return os.path.abspath(os.fspath(store))


# ---------------------------------------------------------------------- checksums
# inputs are identified by :func:`kernelzoo._io.fingerprint` (re-exported here)


def tile_checksum(tile: Any) -> str:
    """sha256 of a tile's values as stored (C order, the store's dtype).

    Shape: ``(r, c)`` -> hex string.
    """
    return sha256_of(tile)


def tile_key(i: int, j: int) -> str:
    """The manifest key of chunk ``(i, j)`` (row-tile index, column-tile index)."""
    return f"{int(i)},{int(j)}"


def _parse_key(key: str) -> tuple[int, int]:
    i, j = key.split(",")
    return int(i), int(j)


def is_chunk_key(manifest: dict[str, Any], key: str) -> bool:
    """Whether ``key`` names a chunk of this store's grid (a damaged journal line may not)."""
    try:
        i, j = _parse_key(key)
    except ValueError:
        return False
    rows, cols = chunk_grid(manifest)
    return 0 <= i < rows and 0 <= j < cols


# ---------------------------------------------------------------------- manifest
def manifest_path(store: str | os.PathLike) -> str:
    """The manifest file of a store."""
    return os.path.join(_store_path(store), MANIFEST_NAME)


def read_manifest(store: str | os.PathLike) -> dict[str, Any] | None:
    """The store's manifest, or ``None`` when there is none yet.

    An unreadable manifest (truncated, damaged, not a kernelzoo manifest) is a
    ``ValueError`` naming the file; a run of ``gram_to_store`` with the same
    arguments rebuilds it from the store's journal.
    """
    path = manifest_path(store)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as fh:
            manifest = json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(
            f"store {os.fspath(store)!r}: its manifest {path} cannot be read ({exc}); rerun "
            f"gram_to_store (or `kernelzoo gram ... --store`) with the same arguments to "
            f"rebuild it from {JOURNAL_NAME}"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != STORE_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else manifest
        raise ValueError(
            f"store {os.fspath(store)!r}: manifest {path} has format {found!r}, not "
            f"{STORE_FORMAT!r}"
        )
    missing = [k for k in ("kind", "kernel", "shape", "dtype", "tile", "symmetric", "tiles")
               if k not in manifest]
    if missing:
        raise ValueError(f"store {os.fspath(store)!r}: manifest {path} lacks {missing[0]!r}")
    return manifest


def write_manifest(store: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Replace the manifest atomically (temp file + fsync + ``os.replace`` + directory fsync)."""
    directory = _store_path(store)
    manifest = dict(manifest)
    manifest["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    target = os.path.join(directory, MANIFEST_NAME)
    with atomic_write(target, "w", sync_dir=True, encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)


# ---------------------------------------------------------------------- journal
def journal_path(store: str | os.PathLike) -> str:
    """The journal file of a store."""
    return os.path.join(_store_path(store), JOURNAL_NAME)


def append_journal(store: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record (a line of JSON) to the store's journal and fsync it.

    ``{"header": {...}}`` (the manifest without its tiles: the store's identity)
    starts a journal; ``{"tiles": {key: sha256}}`` records finished chunks.
    """
    line = json.dumps(record, sort_keys=True) + "\n"
    with open(journal_path(store), "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def read_journal(store: str | os.PathLike) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """``(header, tiles)`` from a store's journal: its identity and every recorded checksum.

    Lines that do not parse (a crash mid-append, damage) are skipped: their
    chunks count as not done. ``(None, {})`` without a journal or a header.
    """
    path = journal_path(store)
    header: dict[str, Any] | None = None
    tiles: dict[str, str] = {}
    if not os.path.exists(path):
        return None, tiles
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(record, dict):
                continue
            if header is None and isinstance(record.get("header"), dict):
                header = record["header"]
            elif isinstance(record.get("tiles"), dict):
                tiles.update({str(k): str(v) for k, v in record["tiles"].items()})
    return header, tiles


def rebuild_manifest(store: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest as the journal records it (identity from its header, every chunk it
    lists), or None without a usable journal. The checksums are the journal's: verify
    the chunks (:func:`corrupt_chunks`) before trusting them."""
    header, tiles = read_journal(store)
    if header is None or header.get("format") != STORE_FORMAT:
        return None
    manifest = dict(header)
    try:
        manifest["tiles"] = {k: v for k, v in tiles.items() if is_chunk_key(manifest, k)}
    except (KeyError, TypeError, ValueError):  # a header without a usable shape or tile
        return None
    return manifest


# ---------------------------------------------------------------------- geometry
def chunk_grid(manifest: dict[str, Any]) -> tuple[int, int]:
    """Number of chunks along rows and columns."""
    (n, m), (tr, tc) = manifest["shape"], manifest["tile"]
    return -(-n // tr), -(-m // tc)


def chunk_slices(manifest: dict[str, Any], i: int, j: int) -> tuple[slice, slice]:
    """Row and column slices of chunk ``(i, j)``."""
    (n, m), (tr, tc) = manifest["shape"], manifest["tile"]
    return slice(i * tr, min((i + 1) * tr, n)), slice(j * tc, min((j + 1) * tc, m))


# ---------------------------------------------------------------------- reading
def open_store(store: str | os.PathLike, mode: str = "r"):
    """The zarr array of a store (``mode`` "r" or "r+"); no completeness check."""
    path = _store_path(store)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"store {os.fspath(store)!r} does not exist")
    return require_zarr().open_array(store=path, mode=mode)


def store_status(store: str | os.PathLike) -> dict[str, Any]:
    """What a store holds: ``{"shape", "dtype", "tile", "symmetric", "n_chunks", "n_done",
    "complete", "kernel", "kind"}`` (from the manifest; chunk files are not read)."""
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
    """The manifest, after checking that every chunk is recorded as done (ValueError if not)."""
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
