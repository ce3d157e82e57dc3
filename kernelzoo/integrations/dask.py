"""Gram and feature matrices as tiles on Dask distributed, into a resumable zarr store.

Every tile of the output is one Dask task that calls the kernel's public
``gram(x_tile, y_tile)`` (``gram(x_tile)`` on the diagonal tiles of a
symmetric Gram, ``features(x_tile)`` for a fitted approximation), writes its
chunk(s) into the zarr array and returns their checksums. The calling process
is the only one that updates the manifest (see :mod:`kernelzoo.integrations.store`):
a tile is done only once the manifest, replaced atomically, lists it. A run
killed at any point therefore loses no recorded tile, and a rerun with the
same spec and inputs computes only the tiles not recorded; a rerun with a
different spec, inputs, dtype or tile size refuses with a ``ValueError``.

Symmetric Grams compute each off-diagonal tile once and **write the mirror**
(the transposed tile into chunk ``(j, i)``), so the store holds the full matrix.

Workers write chunks themselves, so with a remote cluster the store must be on
a file system that every worker and the client share. Inputs reach each worker
once (``client.scatter(..., broadcast=True)``), not once per task. Workers use
their GPU when they have one (``device="auto"``) and run torch on one thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import logging
import math
import os
import time
import uuid
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import as_tensor, check_pair, parse_memory_budget
from kernelzoo.integrations.store import (
    MANIFEST_NAME,
    STORE_FORMAT,
    _zarr,
    chunk_slices,
    corrupt_chunks,
    fingerprint,
    read_manifest,
    tile_checksum,
    tile_key,
    write_manifest,
)

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "kernelzoo.integrations.dask needs Dask distributed: pip install 'kernelzoo[dist]'"
    ) from exc

__all__ = ["StoreResult", "TorchThreadsPlugin", "features_to_store", "gram_to_store"]

logger = logging.getLogger("kernelzoo.dist")

#: identity fields of a store: a rerun must agree on all of them
_IDENTITY = ("kind", "kernel", "approximation", "x", "y", "symmetric", "shape", "dtype", "tile")
_MAX_DEFAULT_TILE = 2048
_MIN_DEFAULT_TILE = 64
_LOCK_NAME = ".kernelzoo.lock"


@dataclasses.dataclass(frozen=True)
class StoreResult:
    """What a :func:`gram_to_store` / :func:`features_to_store` run did.

    ``n_tasks`` counts tile tasks in the whole store (for a symmetric Gram the
    tiles on and above the diagonal); ``n_computed`` those computed by this
    run; ``n_reused`` those found done; ``n_corrupt`` those found recorded but
    not matching their checksum (recomputed); ``task_seconds`` and
    ``task_cpu_seconds`` add up the wall and CPU time of this run's tasks
    inside the workers. ``os.fspath(result)`` is the path.
    """

    path: str
    shape: tuple[int, int]
    dtype: str
    tile: tuple[int, int]
    symmetric: bool
    n_tasks: int
    n_computed: int
    n_reused: int
    n_corrupt: int
    seconds: float
    task_seconds: float = 0.0
    task_cpu_seconds: float = 0.0

    def __fspath__(self) -> str:
        return self.path


class TorchThreadsPlugin(WorkerPlugin):
    """Pin torch to ``n_threads`` intra-op threads in every worker (one per Dask thread)."""

    name = "kernelzoo-torch-threads"

    def __init__(self, n_threads: int = 1) -> None:
        self.n_threads = int(n_threads)

    def setup(self, worker) -> None:
        import torch as _torch

        _torch.set_num_threads(self.n_threads)


# ---------------------------------------------------------------------- worker side
@functools.lru_cache(maxsize=16)
def _open_array(path: str, store_id: str):
    """The store's zarr array, opened once per worker process and store (``store_id``)."""
    return _zarr().open_array(store=path, mode="r+")


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _compute_task(
    model: Any,
    x: torch.Tensor,
    y: torch.Tensor | None,
    path: str,
    layout: dict[str, Any],
    task: tuple[int, int],
    device: str,
    memory_budget: int,
) -> tuple[tuple[int, int], dict[str, str], float, float]:
    """One tile task: evaluate, write chunk (and mirror).

    Returns ``(task, {chunk key: sha256}, wall seconds, CPU seconds of the worker process)``.
    """
    start, cpu_start = time.perf_counter(), time.process_time()
    i, j = task
    rows, cols = chunk_slices(layout, i, j)
    dev = _resolve_device(device)
    with torch.no_grad():
        x_rows = x[rows].to(dev)
        if layout["kind"] == "features":
            values = model.features(x_rows)
        elif layout["symmetric"] and i == j:
            values = model.gram(x_rows, memory_budget=memory_budget)
        else:
            other = x if layout["symmetric"] else y
            values = model.gram(x_rows, other[cols].to(dev), memory_budget=memory_budget)
    block = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=layout["dtype"])
    array = _open_array(path, layout["store_id"])
    array[rows, cols] = block
    checksums = {tile_key(i, j): tile_checksum(block)}
    if layout["symmetric"] and i != j:
        mirror = np.ascontiguousarray(block.T)
        array[cols, rows] = mirror
        checksums[tile_key(j, i)] = tile_checksum(mirror)
    return task, checksums, time.perf_counter() - start, time.process_time() - cpu_start


# ---------------------------------------------------------------------- planning
def _identity(model: Any) -> tuple[str, str, dict[str, Any] | None]:
    """``(kind of model, kernel spec, approximation identity or None)``."""
    from kernelzoo.approx.base import Approximation
    from kernelzoo.kernels.base import Kernel

    if isinstance(model, Kernel):
        return "kernel", model.spec, None
    if isinstance(model, Approximation):
        model._require_fit()
        state = model._get_state()
        h = hashlib.sha256()
        for name in sorted(state):
            value = state[name]
            h.update(name.encode())
            if isinstance(value, torch.Tensor):
                h.update(fingerprint(value)["sha256"].encode())
            else:
                h.update(repr(value).encode())
        digest = h.hexdigest()
        approx = {
            "class": f"{type(model).__module__}:{type(model).__qualname__}",
            "method": model.method,
            "budget": model.budget if not isinstance(model.budget, tuple) else list(model.budget),
            "seed": model.seed,
            "options": {k: repr(v) for k, v in sorted(model.opts.items())},
            "state_sha256": digest,
        }
        return "approximation", model.kernel.spec, approx
    raise TypeError(
        f"kernel must be a kernelzoo kernel (kz.kernel(...)) or a fitted approximation, "
        f"got {type(model).__name__}"
    )


def _check_tile(tile: Any) -> int | None:
    if tile is None:
        return None
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)):
        raise TypeError(f"tile must be a positive integer, got {tile!r}")
    if tile < 1:
        raise ValueError(f"tile must be >= 1, got {tile}")
    return int(tile)


def _default_tile(model: Any, x_prepared: torch.Tensor, n: int, m: int, budget: int) -> int:
    """A square tile that fits the memory budget and gives several tasks per side.

    About eight tiles per side (tasks to balance over workers, and a fine grain
    for resuming), at least 64 and at most 2048 rows, and within the budget for
    kernels that say what a tile costs.
    """
    from kernelzoo.kernels.base import Kernel
    from kernelzoo.ops.tiling import choose_tile

    tile = min(_MAX_DEFAULT_TILE, max(_MIN_DEFAULT_TILE, math.ceil(max(n, m) / 8)))
    if isinstance(model, Kernel):
        tr, tc, _ = choose_tile(
            n, m, budget, lambda r, c: model._block_bytes(r, c, x_prepared)
        )
        tile = min(tile, max(tr, tc))
    return max(1, min(tile, max(n, m)))


def _tasks(layout: dict[str, Any]) -> list[tuple[int, int]]:
    (n, m), (tr, tc) = layout["shape"], layout["tile"]
    n_rows, n_cols = -(-n // tr), -(-m // tc)
    if layout["symmetric"]:
        return [(i, j) for i in range(n_rows) for j in range(i, n_rows)]
    return [(i, j) for i in range(n_rows) for j in range(n_cols)]


def _task_chunks(layout: dict[str, Any], task: tuple[int, int]) -> list[str]:
    i, j = task
    if layout["symmetric"] and i != j:
        return [tile_key(i, j), tile_key(j, i)]
    return [tile_key(i, j)]


def _describe_difference(path: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    names = {
        "kind": "output kind",
        "kernel": "kernel spec",
        "approximation": "fitted approximation",
        "x": "input X (sha256/shape/dtype)",
        "y": "input Y (sha256/shape/dtype)",
        "symmetric": "symmetric flag (Y given or not)",
        "shape": "shape",
        "dtype": "dtype",
        "tile": "tile size",
    }
    diffs = []
    for field in _IDENTITY:
        if old.get(field) != new.get(field):
            was, now = old.get(field), new.get(field)
            if field in ("x", "y"):
                was = None if was is None else f"{was['shape']} {was['dtype']} {was['sha256'][:12]}"
                now = None if now is None else f"{now['shape']} {now['dtype']} {now['sha256'][:12]}"
            diffs.append(f"{names[field]}: store has {was!r}, this run has {now!r}")
    return (
        f"store {path!r} was written for a different computation ({'; '.join(diffs)}); "
        f"use another store path or delete this one"
    )


# ---------------------------------------------------------------------- the store
@contextlib.contextmanager
def _exclusive(path: str) -> Iterator[None]:
    """Hold an advisory lock on the store for the run (released if the process dies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - no flock on this platform
        yield
        return
    fd = os.open(os.path.join(path, _LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
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


def _open_or_create(path: str, layout: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an existing matching store, or of a new empty one."""
    zarr = _zarr()
    manifest = read_manifest(path) if os.path.isdir(path) else None
    if manifest is None:
        _check_foreign(path)
        os.makedirs(path, exist_ok=True)
        manifest = {
            "format": STORE_FORMAT,
            **{k: layout[k] for k in _IDENTITY},
            "store_id": uuid.uuid4().hex,
            "mirror": "written" if layout["symmetric"] else None,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "kernelzoo_version": _version(),
            "tiles": {},
        }
        write_manifest(path, manifest)  # manifest first: the directory is ours from now on
    else:
        if any(manifest.get(k) != layout[k] for k in _IDENTITY):
            raise ValueError(_describe_difference(path, manifest, layout))
    if not os.path.exists(os.path.join(path, "zarr.json")):
        if manifest["tiles"]:
            raise ValueError(
                f"store {path!r}: the manifest lists finished tiles but the zarr array is "
                f"missing; delete the store and start again"
            )
        zarr.create_array(
            store=path,
            shape=tuple(layout["shape"]),
            chunks=tuple(layout["tile"]),
            dtype=layout["dtype"],
            fill_value=float("nan"),
            zarr_format=3,
            overwrite=False,
        )
    array = zarr.open_array(store=path, mode="r")
    if tuple(array.shape) != tuple(layout["shape"]) or tuple(array.chunks) != tuple(
        layout["tile"]
    ):
        raise ValueError(
            f"store {path!r}: the zarr array has shape {array.shape} and chunks {array.chunks} "
            f"but the manifest says {tuple(layout['shape'])} and {tuple(layout['tile'])}"
        )
    return manifest


def _check_foreign(path: str) -> None:
    """Refuse a path that holds something other than a kernelzoo store (or nothing)."""
    if not os.path.exists(path):
        return
    if not os.path.isdir(path):
        raise ValueError(f"store {path!r} exists and is a file, not a store directory")
    if set(os.listdir(path)) - {_LOCK_NAME}:
        raise ValueError(
            f"store {path!r} exists and is not a kernelzoo store (no {MANIFEST_NAME}); "
            f"use another path or delete it"
        )


def _version() -> str:
    from kernelzoo import __version__

    return __version__


def _drop_corrupt(path: str, manifest: dict[str, Any]) -> int:
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
        for key in _task_chunks(manifest, task):
            tiles.pop(key, None)
    manifest["tiles"] = tiles
    write_manifest(path, manifest)
    return len(tasks)


# ---------------------------------------------------------------------- the cluster
def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def _client(scheduler: Any, n_workers: int | None, n_tasks: int, timeout: float | None):
    """A Dask client: on a new LocalCluster, an existing cluster's address, or as given."""
    if scheduler is None:
        workers = n_workers if n_workers is not None else min(_default_workers(), n_tasks)
        cluster = distributed.LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # None would still try port 8787 for the health routes
            silence_logs=logging.ERROR,
        )
        with cluster, distributed.Client(cluster) as client:
            yield client
        return
    if n_workers is not None:
        raise ValueError(
            "n_workers only sizes the default LocalCluster; with scheduler= the cluster "
            "decides its workers"
        )
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    if isinstance(scheduler, str):
        connect = "30s" if timeout is None else min(30.0, float(timeout))
        with distributed.Client(scheduler, timeout=connect) as client:
            yield client
        return
    raise TypeError(
        f"scheduler must be None (a new LocalCluster), a scheduler address such as "
        f"'tcp://host:8786', or a distributed.Client; got {type(scheduler).__name__}"
    )


# ---------------------------------------------------------------------- the run
def _run(
    model: Any,
    x: Any,
    y: Any,
    store: Any,
    kind: str,
    tile: int | None,
    scheduler: Any,
    memory_budget: Any,
    progress: bool,
    n_workers: int | None,
    device: str | None,
    verify: bool,
    timeout: float | None,
) -> StoreResult:
    started = time.perf_counter()
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike), got {type(store).__name__}")
    path = os.path.abspath(os.fspath(store))
    budget = parse_memory_budget(memory_budget)
    tile = _check_tile(tile)
    if n_workers is not None and (isinstance(n_workers, bool) or int(n_workers) < 1):
        raise ValueError(f"n_workers must be a positive integer, got {n_workers!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {timeout!r}")
    model_kind, spec, approx = _identity(model)
    if kind == "gram" and not hasattr(model, "gram"):
        raise TypeError(f"{type(model).__name__} has no gram()")

    xt = as_tensor(x, "X")
    yt = None if y is None else as_tensor(y, "Y")
    if yt is not None:
        check_pair(xt, yt)
    on_gpu = xt.device.type == "cuda"
    if device is None:
        device = "cuda" if on_gpu else "auto"
    if not isinstance(device, str) or not (
        device in ("auto", "cpu") or device.startswith("cuda")
    ):
        raise ValueError(f"device={device!r} is not allowed; expected 'auto', 'cpu' or 'cuda[:N]'")
    x_cpu = xt.detach().cpu().contiguous()
    y_cpu = None if yt is None else yt.detach().cpu().contiguous()

    # validate shapes now, on the client, rather than in the first task
    if model_kind == "kernel":
        x_prepared = model.prepare(x_cpu, "X")
        if y_cpu is not None:
            model._check_compatible(x_prepared, model.prepare(y_cpu, "Y"))
    else:
        x_prepared = model._input(x_cpu, "X")
        if y_cpu is not None:
            model._input(y_cpu, "Y")
    n = x_cpu.shape[0]
    if kind == "features":
        if not getattr(model, "has_features", False):
            raise ValueError(f"{model.method} has no explicit features; use gram_to_store")
        m = int(model.n_features)
    else:
        m = n if y_cpu is None else y_cpu.shape[0]
    symmetric = kind == "gram" and y_cpu is None

    existing = read_manifest(path) if os.path.isdir(path) else None
    if tile is None:
        if existing is not None and existing.get("shape") == [n, m]:
            tile_rc = list(existing["tile"])
        else:
            t = _default_tile(model if kind == "gram" else None, x_prepared, n, m, budget)
            tile_rc = [t, m] if kind == "features" else [t, t]
    else:
        tile_rc = [min(tile, n), m] if kind == "features" else [min(tile, n), min(tile, m)]
    layout = {
        "kind": kind,
        "kernel": spec,
        "approximation": approx,
        "x": fingerprint(x_cpu),
        "y": None if y_cpu is None else fingerprint(y_cpu),
        "symmetric": symmetric,
        "shape": [n, m],
        "dtype": str(x_cpu.numpy().dtype),
        "tile": tile_rc,
    }

    # refuse before touching anything; then decide again under the store's lock
    if existing is None:
        _check_foreign(path)
    elif any(existing.get(k) != layout[k] for k in _IDENTITY):
        raise ValueError(_describe_difference(path, existing, layout))
    os.makedirs(path, exist_ok=True)

    with _exclusive(path):
        manifest = _open_or_create(path, layout)
        layout["store_id"] = manifest["store_id"]
        n_corrupt = _drop_corrupt(path, manifest) if verify and manifest["tiles"] else 0
        all_tasks = _tasks(layout)
        done = manifest["tiles"]
        pending = [t for t in all_tasks if any(k not in done for k in _task_chunks(layout, t))]
        n_reused = len(all_tasks) - len(pending)
        logger.info(
            "store %s: %d of %d tile tasks to compute (%d already done)",
            path, len(pending), len(all_tasks), n_reused,
        )
        n_computed, task_seconds, task_cpu_seconds = 0, 0.0, 0.0
        if pending:
            n_computed, task_seconds, task_cpu_seconds = _compute_pending(
                model, x_cpu, y_cpu, path, layout, manifest, pending, len(all_tasks), n_reused,
                device, budget, scheduler, n_workers, progress, timeout,
            )
    return StoreResult(
        path=path,
        shape=(n, m),
        dtype=layout["dtype"],
        tile=tuple(tile_rc),
        symmetric=symmetric,
        n_tasks=len(all_tasks),
        n_computed=n_computed,
        n_reused=n_reused,
        n_corrupt=n_corrupt,
        seconds=time.perf_counter() - started,
        task_seconds=task_seconds,
        task_cpu_seconds=task_cpu_seconds,
    )


def _compute_pending(
    model, x_cpu, y_cpu, path, layout, manifest, pending, n_total, n_reused,
    device, budget, scheduler, n_workers, progress, timeout,
) -> tuple[int, float, float]:
    """Submit the pending tile tasks and record each finished one in the manifest.

    Returns ``(tiles computed, their summed wall seconds, their summed CPU seconds)``.
    """
    from tqdm.auto import tqdm

    deadline = None if timeout is None else time.monotonic() + timeout
    tiles = dict(manifest["tiles"])
    n_computed, task_seconds, task_cpu_seconds = 0, 0.0, 0.0
    with _client(scheduler, n_workers, len(pending), timeout) as client:
        client.register_plugin(TorchThreadsPlugin(1), name=TorchThreadsPlugin.name)
        client.wait_for_workers(1, timeout=None if timeout is None else timeout)
        model_f = client.scatter(model, broadcast=True, hash=False)
        x_f = client.scatter(x_cpu, broadcast=True, hash=False)
        y_f = None if y_cpu is None else client.scatter(y_cpu, broadcast=True, hash=False)
        run_id = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                _compute_task, model_f, x_f, y_f, path, layout, task, device, budget,
                key=f"kernelzoo-tile-{run_id}-{task[0]}-{task[1]}",
                pure=False,
                priority=-index,  # roughly row-major, so partial stores fill from the top
            )
            for index, task in enumerate(pending)
        ]
        remaining = None if deadline is None else max(1e-3, deadline - time.monotonic())
        bar = tqdm(
            total=n_total, initial=n_reused, desc="gram tiles" if layout["kind"] == "gram"
            else "feature tiles", unit="tile", disable=not progress, leave=True,
        )
        try:
            for batch in distributed.as_completed(futures, timeout=remaining).batches():
                failed, n_finished = None, 0
                for future in batch:
                    if future.status != "finished":
                        failed = failed or future
                        continue
                    _, checksums, wall, cpu = future.result()
                    tiles.update(checksums)
                    task_seconds += wall
                    task_cpu_seconds += cpu
                    n_finished += 1
                    future.release()
                manifest["tiles"] = tiles
                write_manifest(path, manifest)
                n_computed += n_finished
                bar.update(n_finished)
                if failed is not None:
                    raise RuntimeError(
                        f"a tile task of store {path!r} failed ({n_computed} tiles recorded; "
                        f"rerun to resume): {failed.exception()!r}"
                    ) from failed.exception()
        finally:
            bar.close()
            client.cancel([f for f in futures if not f.done()])
    return n_computed, task_seconds, task_cpu_seconds


def gram_to_store(
    kernel: Any,
    x: Any,
    y: Any = None,
    store: str | os.PathLike | None = None,
    tile: int | None = None,
    scheduler: Any = None,
    memory_budget: float | str | None = None,
    progress: bool = True,
    n_workers: int | None = None,
    *,
    device: str | None = None,
    verify: bool = True,
    timeout: float | None = None,
) -> StoreResult:
    """Compute the Gram ``K[i, j] = k(x[i], y[j])`` as Dask tasks into a resumable zarr store.

    Parameters
    ----------
    kernel : Kernel or fitted Approximation
        Anything with the public ``gram(X, Y)``; its spec (and, for an
        approximation, its fitted state) is recorded in the manifest.
    x, y : array or tensor, ``(n, ...)`` and ``(m, ...)``
        ``y=None`` computes the symmetric Gram of ``x`` (off-diagonal tiles
        computed once; the mirror is written). The store's dtype is x's.
    store : path
        The store directory (``K.zarr``); created if absent, resumed if it
        holds a matching manifest, refused (ValueError naming what differs)
        if it was written for another spec, input, dtype or tile size.
    tile : int, optional
        Tile (= zarr chunk) side. Default: the store's tile when resuming,
        otherwise about ``n / 8`` within the memory budget, in [64, 2048].
    scheduler : None, str or distributed.Client
        None starts a ``LocalCluster`` (``n_workers`` processes, default one
        per core, one thread each) for this call; a string connects to an
        existing scheduler (the store must then be on a shared file system).
    memory_budget : int or str, optional
        Working memory of each task beyond its tile (passed to ``gram``).
    progress : bool
        Show a tqdm bar of tile tasks completed.
    n_workers : int, optional
        Workers of the default LocalCluster (ValueError with ``scheduler``).
    device : {"auto", "cpu", "cuda", "cuda:N"}, optional
        Where workers compute; "auto" (default for CPU inputs) uses the
        worker's GPU if it has one; CUDA inputs default to "cuda".
    verify : bool
        When resuming, read every recorded chunk and recompute those whose
        checksum fails (each one is reported with a ``RuntimeWarning``).
    timeout : float, optional
        Seconds to wait for the tasks before giving up (``TimeoutError``;
        finished tiles stay recorded).

    Returns
    -------
    StoreResult
        The path and what was done (``n_computed`` tiles this run).

    Shape:
        ``x`` ``(n, ...)``, ``y`` ``(m, ...)`` -> a store of shape ``(n, m)``
        (``(n, n)`` without ``y``), chunks ``(tile, tile)``.
    """
    if store is None:
        raise TypeError("gram_to_store() needs a store path (store='K.zarr')")
    return _run(
        kernel, x, y, store, "gram", tile, scheduler, memory_budget, progress, n_workers,
        device, verify, timeout,
    )


def features_to_store(
    approximation: Any,
    x: Any,
    store: str | os.PathLike,
    tile: int | None = None,
    scheduler: Any = None,
    progress: bool = True,
    n_workers: int | None = None,
    *,
    device: str | None = None,
    verify: bool = True,
    timeout: float | None = None,
) -> StoreResult:
    """The feature matrix ``approximation.features(x)`` as row tiles into a resumable store.

    Same store, manifest and resume rules as :func:`gram_to_store`; tiles are
    ``(tile, n_features)`` row blocks; the manifest records the fitted state's
    checksum, so a refitted approximation is refused.

    Shape:
        ``x`` ``(n, ...)`` -> a store of shape ``(n, n_features)``.
    """
    return _run(
        approximation, x, None, store, "features", tile, scheduler, None, progress, n_workers,
        device, verify, timeout,
    )
