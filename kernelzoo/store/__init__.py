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

from kernelzoo._io import fingerprint
from kernelzoo.store._access import (
    check_complete,
    corrupt_chunks,
    load_store,
    open_store,
    open_store_dask,
    store_status,
    verify_store,
)
from kernelzoo.store._manifest import (
    JOURNAL_NAME,
    MANIFEST_NAME,
    STORE_FORMAT,
    append_journal,
    chunk_grid,
    chunk_slices,
    is_chunk_key,
    journal_path,
    manifest_path,
    read_journal,
    read_manifest,
    rebuild_manifest,
    require_zarr,
    tile_checksum,
    tile_key,
    write_manifest,
)

__all__ = [
    "JOURNAL_NAME",
    "MANIFEST_NAME",
    "STORE_FORMAT",
    "append_journal",
    "check_complete",
    "chunk_grid",
    "chunk_slices",
    "corrupt_chunks",
    "fingerprint",
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
