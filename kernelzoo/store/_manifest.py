"""Store format: chunk keys and checksums, the manifest and the journal (see
:mod:`kernelzoo.store`)."""

from __future__ import annotations

import datetime
import json
import os
from typing import Any


from kernelzoo._io import atomic_write, sha256_of


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

    Parameters
    ----------
    tile : array or tensor
        One chunk's values.

    Returns
    -------
    str
        Hex sha256.
    """
    return sha256_of(tile)


def tile_key(i: int, j: int) -> str:
    """The manifest key of chunk ``(i, j)`` (row-tile index, column-tile index).

    Parameters
    ----------
    i, j : int
        Row-tile and column-tile index.

    Returns
    -------
    str
        The key.
    """
    return f"{int(i)},{int(j)}"


def _parse_key(key: str) -> tuple[int, int]:
    i, j = key.split(",")
    return int(i), int(j)


def is_chunk_key(manifest: dict[str, Any], key: str) -> bool:
    """Whether ``key`` names a chunk of this store's grid (a damaged journal line may not).

    Parameters
    ----------
    manifest : dict
        The store's manifest.
    key : str
        A chunk key.

    Returns
    -------
    bool
        Whether it is one of the grid's.
    """
    try:
        i, j = _parse_key(key)
    except ValueError:
        return False
    rows, cols = chunk_grid(manifest)
    return 0 <= i < rows and 0 <= j < cols


# ---------------------------------------------------------------------- manifest
def manifest_path(store: str | os.PathLike) -> str:
    """The manifest file of a store.

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    str
        Its path.
    """
    return os.path.join(_store_path(store), MANIFEST_NAME)


def read_manifest(store: str | os.PathLike) -> dict[str, Any] | None:
    """The store's manifest, or ``None`` when there is none yet.

    An unreadable manifest (truncated, damaged, not a kernelzoo manifest) is a
    ``ValueError`` naming the file; a run of ``gram_to_store`` with the same
    arguments rebuilds it from the store's journal.

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    dict or None
        The manifest.
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
    """Replace the manifest atomically (temp file + fsync + ``os.replace`` + directory fsync).

    Parameters
    ----------
    store : str or path-like
        The store directory.
    manifest : dict
        The new manifest.
    """
    directory = _store_path(store)
    manifest = dict(manifest)
    manifest["updated"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    target = os.path.join(directory, MANIFEST_NAME)
    with atomic_write(target, "w", sync_dir=True, encoding="utf-8") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)


# ---------------------------------------------------------------------- journal
def journal_path(store: str | os.PathLike) -> str:
    """The journal file of a store.

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    str
        Its path.
    """
    return os.path.join(_store_path(store), JOURNAL_NAME)


def append_journal(store: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one record (a line of JSON) to the store's journal and fsync it.

    ``{"header": {...}}`` (the manifest without its tiles: the store's identity)
    starts a journal; ``{"tiles": {key: sha256}}`` records finished chunks.

    Parameters
    ----------
    store : str or path-like
        The store directory.
    record : dict
        One journal record.
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

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    tuple
        ``(header, tiles)``.
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
    the chunks (:func:`corrupt_chunks`) before trusting them.

    Parameters
    ----------
    store : str or path-like
        The store directory.

    Returns
    -------
    dict or None
        The rebuilt manifest.
    """
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
    """Number of chunks along rows and columns.

    Parameters
    ----------
    manifest : dict
        The store's manifest.

    Returns
    -------
    tuple of int
        ``(rows, columns)``.
    """
    (n, m), (tr, tc) = manifest["shape"], manifest["tile"]
    return -(-n // tr), -(-m // tc)


def chunk_slices(manifest: dict[str, Any], i: int, j: int) -> tuple[slice, slice]:
    """Row and column slices of chunk ``(i, j)``.

    Parameters
    ----------
    manifest : dict
        The store's manifest.
    i, j : int
        Row-tile and column-tile index.

    Returns
    -------
    tuple of slice
        ``(rows, columns)``.
    """
    (n, m), (tr, tc) = manifest["shape"], manifest["tile"]
    return slice(i * tr, min((i + 1) * tr, n)), slice(j * tc, min((j + 1) * tc, m))


# ---------------------------------------------------------------------- reading
