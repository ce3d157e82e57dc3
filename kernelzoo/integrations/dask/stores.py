"""The store side of a run: the lock, opening, recovering or creating a store, corrupt chunks.

Only the client (the process that drives the run) calls these; workers only
write chunks. A store whose manifest is lost or unreadable is recovered from
its journal (:func:`recover`); chunks that cannot be verified are recomputed,
and no chunk file is ever deleted.
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
    JOURNAL_NAME,
    MANIFEST_NAME,
    STORE_FORMAT,
    append_journal,
    chunk_slices,
    corrupt_chunks,
    is_chunk_key,
    journal_path,
    manifest_path,
    read_journal,
    read_manifest,
    rebuild_manifest,
    require_zarr,
    write_manifest,
)

__all__ = [
    "LOCK_NAME",
    "check_foreign",
    "current_manifest",
    "drop_corrupt",
    "exclusive",
    "open_or_create",
    "recover",
]

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
    """Refuse a path that holds something other than a kernelzoo store (or nothing).

    A store that lost its manifest (a journal, or a zarr array, left) is not foreign:
    :func:`open_or_create` recovers or adopts it.
    """
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise ValueError(f"store {path!r} exists and is a file, not a store directory")
    entries = set(os.listdir(path)) - {LOCK_NAME}
    if entries and not entries & {MANIFEST_NAME, JOURNAL_NAME, "zarr.json"}:
        raise ValueError(
            f"store {path!r} exists and is not a kernelzoo store (no {MANIFEST_NAME}); "
            f"use another path or delete it"
        )


def _header(manifest: dict[str, Any]) -> dict[str, Any]:
    """The journal's header: the manifest's identity, without its tiles."""
    return {k: v for k, v in manifest.items() if k not in ("tiles", "updated")}


def recover(path: str) -> tuple[dict[str, Any] | None, set[str], str | None]:
    """``(manifest, keys to verify, what happened)`` of a store, recovering what it can.

    - a readable manifest: it, plus any chunk the journal records and the
      manifest lacks (a crash between the two writes), those to be verified
      (``"merged"``; None when nothing was added);
    - a lost or unreadable one: rebuilt from the journal, every chunk to be
      verified (``"rebuilt"``);
    - neither: ``(None, set(), reason)``.
    """
    problem = None
    try:
        manifest = read_manifest(path)
    except ValueError as exc:
        manifest, problem = None, str(exc)
    if manifest is not None:
        header, tiles = read_journal(path)
        if header is None or header.get("store_id") != manifest.get("store_id"):
            return manifest, set(), None
        extra = {k: v for k, v in tiles.items()
                 if k not in manifest["tiles"] and is_chunk_key(manifest, k)}
        if not extra:
            return manifest, set(), None
        manifest["tiles"] = {**manifest["tiles"], **extra}
        return manifest, set(extra), "merged"
    rebuilt = rebuild_manifest(path)
    if rebuilt is not None:
        return rebuilt, set(rebuilt["tiles"]), "rebuilt"
    if problem is None:
        problem = f"its manifest {manifest_path(path)} is missing"
    return None, set(), problem


def current_manifest(path: str) -> dict[str, Any] | None:
    """The store's manifest as :func:`recover` finds it (nothing written, no warning)."""
    return recover(path)[0] if os.path.isdir(path) else None


def _check_array(path: str, layout: Layout) -> None:
    array = require_zarr().open_array(store=path, mode="r")
    if (tuple(array.shape) != tuple(layout.shape) or tuple(array.chunks) != tuple(layout.tile)
            or str(array.dtype) != layout.dtype):
        raise ValueError(
            f"store {path!r}: the zarr array ({os.path.join(path, 'zarr.json')}: shape "
            f"{tuple(array.shape)}, chunks {tuple(array.chunks)}, {array.dtype}) does not "
            f"match this run (shape {tuple(layout.shape)}, chunks {tuple(layout.tile)}, "
            f"{layout.dtype}); use another store path"
        )


def open_or_create(path: str, layout: Layout) -> tuple[dict[str, Any], set[str]]:
    """The manifest of an existing matching store (recovered if need be), or of a new one.

    Returns ``(manifest, keys)``: the chunk keys that must be verified before
    they count as done (recovered from the journal).
    """
    zarr = require_zarr()
    has_array = os.path.exists(os.path.join(path, "zarr.json"))
    manifest, unverified, what = recover(path) if os.path.isdir(path) else (None, set(), None)
    if manifest is None:
        check_foreign(path)
        os.makedirs(path, exist_ok=True)
        if has_array:  # a store that lost its manifest and journal: nothing can be verified
            _check_array(path, layout)
            warnings.warn(
                f"store {path!r}: {what}, and there is no {JOURNAL_NAME} to rebuild it from; "
                f"no finished chunk can be verified, so every one is recomputed in place "
                f"(no file is deleted)",
                RuntimeWarning,
                stacklevel=4,
            )
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
        with open(journal_path(path), "w", encoding="utf-8"):
            pass  # a new journal (an old one had no usable header)
        append_journal(path, {"header": _header(manifest)})
    elif not layout.matches(manifest):
        raise ValueError(layout.describe_difference(path, manifest))
    else:
        if what == "rebuilt":
            warnings.warn(
                f"store {path!r}: {manifest_path(path)} was missing or unreadable; rebuilt "
                f"from {JOURNAL_NAME} ({len(manifest['tiles'])} finished chunks, each "
                f"verified against its checksum before it counts as done)",
                RuntimeWarning,
                stacklevel=4,
            )
        if what is not None:
            write_manifest(path, manifest)
        if read_journal(path)[0] is None:  # a store from before journals: start one
            append_journal(path, {"header": _header(manifest)})
            if manifest["tiles"]:
                append_journal(path, {"tiles": manifest["tiles"]})
    if not has_array:
        if manifest["tiles"]:
            raise ValueError(
                f"store {path!r}: the manifest lists finished tiles but the zarr array "
                f"({os.path.join(path, 'zarr.json')}) is missing; use another store path"
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
    _check_array(path, layout)
    return manifest, unverified


def drop_corrupt(path: str, manifest: dict[str, Any], keys: set[str] | None = None) -> int:
    """Warn about and un-record chunks whose checksum fails; returns how many tasks.

    Every recorded chunk is read, or only those in ``keys``.
    """
    bad = corrupt_chunks(path, manifest, keys)
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
