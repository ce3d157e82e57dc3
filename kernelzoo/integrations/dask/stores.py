"""The store side of a run: the lock, opening or creating a store, dropping corrupt chunks.

Only the client (the process that drives the run) calls these; workers only
write chunks.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

from kernelzoo._version import __version__
from kernelzoo.integrations.dask.layout import Layout, task_chunks
from kernelzoo.store import (
    MANIFEST_NAME,
    STORE_FORMAT,
    chunk_slices,
    corrupt_chunks,
    read_manifest,
    require_zarr,
    write_manifest,
)

__all__ = ["LOCK_NAME", "check_foreign", "drop_corrupt", "exclusive", "open_or_create"]

LOCK_NAME = ".kernelzoo.lock"


@contextlib.contextmanager
def exclusive(path: str) -> Iterator[None]:
    """Hold an advisory lock on the store for the run (released if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    fd = os.open(os.path.join(path, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(
                f"store {path!r} is being written by another kernelzoo run; wait for it or stop it"
            ) from None
        yield
    finally:
        os.close(fd)


def check_foreign(path: str) -> None:
    """Refuse a path that holds something other than a kernelzoo store (or nothing)."""
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise ValueError(f"store {path!r} exists and is a file, not a store directory")
    if set(os.listdir(path)) - {LOCK_NAME}:
        raise ValueError(
            f"store {path!r} exists and is not a kernelzoo store (no {MANIFEST_NAME}); "
            f"use another path or delete it"
        )


def open_or_create(path: str, layout: Layout) -> dict[str, Any]:
    """The manifest of an existing matching store, or of a new empty one."""
    zarr = require_zarr()
    manifest = read_manifest(path) if os.path.isdir(path) else None
    if manifest is None:
        check_foreign(path)
        os.makedirs(path, exist_ok=True)
        manifest = {
            "format": STORE_FORMAT,
            **layout.identity(),
            "store_id": uuid.uuid4().hex,
            "mirror": "written" if layout.symmetric else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "kernelzoo_version": __version__,
            "tiles": {},
        }
        write_manifest(path, manifest)  # manifest first: the directory is ours from now on
    elif not layout.matches(manifest):
        raise ValueError(layout.describe_difference(path, manifest))
    if not os.path.exists(os.path.join(path, "zarr.json")):
        if manifest["tiles"]:
            raise ValueError(
                f"store {path!r}: the manifest lists finished tiles but the zarr array is "
                f"missing; delete the store and start again"
            )
        zarr.create_array(
            store=path,
            shape=tuple(layout.shape),
            chunks=tuple(layout.tile),
            dtype=layout.dtype,
            fill_value=float("nan"),
            zarr_format=3,
            overwrite=False,
        )
    array = zarr.open_array(store=path, mode="r")
    if tuple(array.shape) != tuple(layout.shape) or tuple(array.chunks) != tuple(layout.tile):
        raise ValueError(
            f"store {path!r}: the zarr array has shape {array.shape} and chunks {array.chunks} "
            f"but the manifest says {tuple(layout.shape)} and {tuple(layout.tile)}"
        )
    return manifest


def drop_corrupt(path: str, manifest: dict[str, Any]) -> int:
    """Warn about and un-record chunks whose checksum fails; returns how many tasks."""
    bad = corrupt_chunks(path, manifest)
    if not bad:
        return 0
    tiles = dict(manifest["tiles"])
    tasks = set()
    for i, j in bad:
        task = (min(i, j), max(i, j)) if manifest["symmetric"] else (i, j)
        tasks.add(task)
        rows, cols = chunk_slices(manifest, i, j)
        warnings.warn(
            f"store {path!r}: chunk ({i}, {j}) (rows {rows.start}:{rows.stop}, columns "
            f"{cols.start}:{cols.stop}) does not match its checksum; recomputing it",
            RuntimeWarning,
            stacklevel=4,
        )
        for key in task_chunks(manifest["symmetric"], task):
            tiles.pop(key, None)
    manifest["tiles"] = tiles
    write_manifest(path, manifest)
    return len(tasks)
