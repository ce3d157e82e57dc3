"""Gram and feature matrices as tiles on Dask distributed, into a resumable zarr store.

Every tile of the output is one Dask task that calls the kernel's public
``gram(x_tile, y_tile)`` (``gram(x_tile)`` on the diagonal tiles of a
symmetric Gram, ``features(x_tile)`` for a fitted approximation), writes its
chunk(s) into the zarr array and returns their checksums. The calling process
is the only one that updates the manifest (see :mod:`kernelzoo.store`):
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

Modules: :mod:`.layout` (the typed identity and tiling of a store, planned
from the arguments), :mod:`.stores` (the client's side of the store: lock,
open or create, corrupt chunks) and :mod:`.loop` (the cluster, the worker's
tile task and the loop that records finished tiles); this module checks the
arguments and runs the three in order.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from typing import Any

from kernelzoo._validation import as_tensor, check_int, check_pair, parse_memory_budget
from kernelzoo.integrations.dask.layout import Layout, plan
from kernelzoo.integrations.dask.loop import (
    Cluster,
    Job,
    Tally,
    TorchThreadsPlugin,
    compute_pending,
)
from kernelzoo.integrations.dask.stores import (
    check_foreign,
    current_manifest,
    drop_corrupt,
    exclusive,
    open_or_create,
)

__all__ = ["Layout", "StoreResult", "TorchThreadsPlugin", "features_to_store", "gram_to_store"]

logger = logging.getLogger("kernelzoo.dist")


@dataclasses.dataclass(frozen=True)
class StoreResult:
    """What a :func:`gram_to_store` / :func:`features_to_store` run did.

    ``n_tasks`` counts tile tasks in the whole store (for a symmetric Gram the
    tiles on and above the diagonal); ``n_computed`` those computed by this
    run; ``n_reused`` those found done; ``n_corrupt`` those found recorded but
    not matching their checksum (recomputed); ``task_seconds`` and
    ``task_cpu_seconds`` add up the wall and CPU time of this run's tasks
    inside the workers (the worker processes' CPU, all threads), and
    ``task_thread_cpu_seconds`` the CPU time of the threads that ran them;
    ``task_spans`` lists ``(worker pid, start, end)`` per task (the workers'
    ``time.time()``), to see how busy each worker was. ``os.fspath(result)``
    is the path.

    Parameters
    ----------
    path : str
        The store.
    shape : tuple of int
        The array's shape.
    dtype : str
        Its dtype.
    tile : tuple of int
        The chunk shape.
    symmetric : bool
        A Gram of x with itself (mirrored tiles).
    n_tasks : int
        Tile tasks in the whole store.
    n_computed : int
        Computed by this run.
    n_reused : int
        Found done.
    n_corrupt : int
        Found recorded but damaged (recomputed).
    seconds : float
        Wall time of the run.
    task_seconds : float
        Wall time of this run's tasks, added up.
    task_cpu_seconds : float
        Their CPU time, added up.
    task_thread_cpu_seconds : float
        CPU time of the threads that ran the tasks, added up.
    task_spans : tuple of (int, float, float)
        ``(worker pid, start, end)`` per task.
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
    task_thread_cpu_seconds: float = 0.0
    task_spans: tuple[tuple[int, float, float], ...] = ()

    def __fspath__(self) -> str:
        return self.path


@dataclasses.dataclass(frozen=True)
class _Request:
    """The arguments of one run, checked."""

    path: str
    kind: str  # "gram" or "features"
    tile: int | None
    memory_budget: int
    device: str | None
    verify: bool
    cluster: Cluster


def _request(store: Any, kind: str, tile: Any, memory_budget: Any, device: Any, verify: bool,
             cluster: Cluster) -> _Request:
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path (str or os.PathLike), got {type(store).__name__}")
    if tile is not None:
        tile = check_int(tile, "tile", minimum=1)
    if cluster.n_workers is not None:
        check_int(cluster.n_workers, "n_workers", positive=True)
    if cluster.timeout is not None and not cluster.timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds, got {cluster.timeout!r}")
    if device is not None and not (
        isinstance(device, str) and (device in ("auto", "cpu") or device.startswith("cuda"))
    ):
        raise ValueError(f"device={device!r} is not allowed; expected 'auto', 'cpu' or 'cuda[:N]'")
    return _Request(os.path.abspath(os.fspath(store)), kind, tile,
                    parse_memory_budget(memory_budget), device, verify, cluster)


def _run(model: Any, x: Any, y: Any, request: _Request) -> StoreResult:
    """Plan the layout, refuse a mismatching store, then compute the missing tiles under
    the store's lock."""
    started = time.perf_counter()
    path = request.path
    xt = as_tensor(x, "X")
    yt = None if y is None else as_tensor(y, "Y")
    if yt is not None:
        check_pair(xt, yt)
    device = request.device or ("cuda" if xt.device.type == "cuda" else "auto")
    x_cpu = xt.detach().cpu().contiguous()
    y_cpu = None if yt is None else yt.detach().cpu().contiguous()
    existing = current_manifest(path)  # recovered from the journal where need be
    layout = plan(model, request.kind, x_cpu, y_cpu, request.tile, request.memory_budget,
                  existing)
    # refuse before touching anything; then decide again under the store's lock
    if existing is None:
        check_foreign(path)
    elif not layout.matches(existing):
        raise ValueError(layout.describe_difference(path, existing))
    os.makedirs(path, exist_ok=True)
    with exclusive(path):
        manifest, unverified = open_or_create(path, layout)
        # recovered chunks are verified whatever ``verify`` says
        check = None if request.verify else unverified
        n_corrupt = drop_corrupt(path, manifest, check) if manifest["tiles"] and (
            check is None or check) else 0
        all_tasks = layout.tasks()
        done = manifest["tiles"]
        pending = [t for t in all_tasks if any(k not in done for k in layout.task_chunks(t))]
        logger.info(
            "store %s: %d of %d tile tasks to compute (%d already done)",
            path, len(pending), len(all_tasks), len(all_tasks) - len(pending),
        )
        tally = Tally()
        if pending:
            budget = request.memory_budget if request.kind == "gram" else None
            job = Job(path, layout, manifest["store_id"], device, budget)
            tally = compute_pending(job, (model, x_cpu, y_cpu), manifest, pending,
                                    request.cluster)
    return StoreResult(
        path=path,
        shape=tuple(layout.shape),
        dtype=layout.dtype,
        tile=tuple(layout.tile),
        symmetric=layout.symmetric,
        n_tasks=len(all_tasks),
        n_computed=tally.n_computed,
        n_reused=len(all_tasks) - len(pending),
        n_corrupt=n_corrupt,
        seconds=time.perf_counter() - started,
        task_seconds=tally.task_seconds,
        task_cpu_seconds=tally.task_cpu_seconds,
        task_thread_cpu_seconds=tally.task_thread_cpu_seconds,
        task_spans=tuple(tally.spans),
    )


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

    More than eight parameters because it is a public entry point that states a whole
    distributed computation in one call (inputs, store, tiling, scheduler, resources); every
    one past the inputs is a keyword with a default.

    Twelve parameters, on purpose: the inputs and the store, then the options
    of ``kernelzoo gram --store`` one for one (tile, scheduler, budget,
    progress, workers, device, verify, timeout), all defaulted; inside, they
    travel as a checked request, a :class:`~kernelzoo.integrations.dask.layout.Layout`
    and a cluster description.

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

    Shape
    -----
    ``x`` ``(n, ...)``, ``y`` ``(m, ...)`` -> a store of shape ``(n, m)``
    (``(n, n)`` without ``y``), chunks ``(tile, tile)``.
    """
    if store is None:
        raise TypeError("gram_to_store() needs a store path (store='K.zarr')")
    cluster = Cluster(scheduler, n_workers, timeout, progress)
    return _run(kernel, x, y,
                _request(store, "gram", tile, memory_budget, device, verify, cluster))


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

    More than eight parameters because, like :func:`gram_to_store`, it states a whole
    distributed computation in one call; every one past the inputs has a default.

    Its parameters are :func:`gram_to_store`'s (there, why that many) without ``y``
    and ``memory_budget``.

    Same store, manifest and resume rules as :func:`gram_to_store`; tiles are
    ``(tile, n_features)`` row blocks; the manifest records the fitted state's
    checksum, so a refitted approximation is refused.

    Shape:
        ``x`` ``(n, ...)`` -> a store of shape ``(n, n_features)``.

    Parameters
    ----------
    approximation : Approximation
        Fitted, with features.
    x : array or tensor
        Inputs ``(n, ...)``.
    store : str or path-like
        The store directory.
    tile : int, optional
        Rows per tile.
    scheduler : None, str or distributed.Client
        As :func:`gram_to_store`.
    progress : bool
        Show a progress bar.
    n_workers : int, optional
        Workers of the default LocalCluster.
    device : str, optional
        Where workers compute.
    verify : bool
        Check recorded chunks when resuming.
    timeout : float, optional
        Seconds to wait for the tasks.

    Returns
    -------
    StoreResult
        What the run did.
    """
    cluster = Cluster(scheduler, n_workers, timeout, progress)
    return _run(approximation, x, None,
                _request(store, "features", tile, None, device, verify, cluster))
