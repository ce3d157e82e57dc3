"""The scheduling loop: the cluster, the worker's tile task, and recording finished tiles.

Workers evaluate a tile with the model's public ``gram``/``features``, write
its chunk(s) and return their checksums; the loop records each finished batch
in the manifest (atomically) before it counts as done.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import time
import uuid
from typing import Any

import numpy as np
import torch

from kernelzoo.integrations.dask.layout import Layout
from kernelzoo.store import append_journal, require_zarr, tile_checksum, tile_key, write_manifest

try:
    import distributed
    from distributed.diagnostics.plugin import WorkerPlugin
except ImportError as exc:  # pragma: no cover - depends on the install
    raise ImportError(
        "kernelzoo.integrations.dask needs Dask distributed: pip install 'kernelzoo[dist]'"
    ) from exc

__all__ = [
    "Cluster", "Job", "Tally", "TaskTimes", "TorchThreadsPlugin", "compute_pending", "compute_task",
]


class TorchThreadsPlugin(WorkerPlugin):
    """Pin torch to ``n_threads`` intra-op threads in every worker (one per Dask thread).

    Parameters
    ----------
    n_threads : int
        Threads per worker.
    """

    name = "kernelzoo-torch-threads"

    def __init__(self, n_threads: int = 1) -> None:
        self.n_threads = int(n_threads)

    def setup(self, worker) -> None:
        import torch as _torch

        _torch.set_num_threads(self.n_threads)


@dataclasses.dataclass(frozen=True)
class Job:
    """What every tile task of a run shares: the store, its layout, where and how to compute."""

    path: str
    layout: Layout
    store_id: str  # the store's identity in the manifest (workers cache the opened array by it)
    device: str  # "auto", "cpu" or "cuda[:N]"
    memory_budget: int | None  # bytes per task beyond its tile (gram only)


@dataclasses.dataclass(frozen=True)
class Cluster:
    """How to reach the workers: a new LocalCluster (``scheduler=None``) or an existing one."""

    scheduler: Any = None  # None, an address, or a distributed.Client
    n_workers: int | None = None  # of the default LocalCluster
    timeout: float | None = None  # seconds to wait for the tasks
    progress: bool = True  # a tqdm bar of finished tiles


@dataclasses.dataclass
class Tally:
    """What the tasks of this run did.

    ``task_cpu_seconds`` is the CPU time of the worker processes during the
    tasks (every thread: the Dask worker's own included), ``task_thread_cpu_seconds``
    that of the threads that ran the tasks (the computation itself when torch
    runs on one thread); ``spans`` holds ``(worker pid, start, end)`` of every
    task, in the workers' ``time.time()`` seconds.
    """

    n_computed: int = 0
    task_seconds: float = 0.0
    task_cpu_seconds: float = 0.0
    task_thread_cpu_seconds: float = 0.0
    spans: list[tuple[int, float, float]] = dataclasses.field(default_factory=list)


# ---------------------------------------------------------------------- worker side
@functools.lru_cache(maxsize=16)
def _open_array(path: str, store_id: str):
    """The store's zarr array, opened once per worker process and store (``store_id``)."""
    return require_zarr().open_array(store=path, mode="r+")


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclasses.dataclass(frozen=True)
class TaskTimes:
    """Where a tile task's time went: wall and CPU seconds, and when it ran."""

    wall: float  # seconds
    cpu: float  # CPU seconds of the worker process (all its threads)
    thread_cpu: float  # CPU seconds of the thread that ran the task
    pid: int  # the worker process
    start: float  # time.time() at the start and the end
    end: float


def compute_task(
    model: Any, x: torch.Tensor, y: torch.Tensor | None, job: Job, task: tuple[int, int]
) -> tuple[tuple[int, int], dict[str, str], TaskTimes]:
    """One tile task: evaluate, write chunk (and mirror).

    Returns ``(task, {chunk key: sha256}, times)``.
    """
    stamp = time.time()
    start, cpu_start, thread_start = time.perf_counter(), time.process_time(), time.thread_time()
    layout = job.layout
    i, j = task
    rows, cols = layout.chunk_slices(i, j)
    dev = _resolve_device(job.device)
    with torch.no_grad():
        x_rows = x[rows].to(dev)
        if layout.kind == "features":
            values = model.features(x_rows)
        elif layout.symmetric and i == j:
            values = model.gram(x_rows, memory_budget=job.memory_budget)
        else:
            other = x if layout.symmetric else y
            values = model.gram(x_rows, other[cols].to(dev), memory_budget=job.memory_budget)
    block = np.ascontiguousarray(values.detach().cpu().numpy(), dtype=layout.dtype)
    array = _open_array(job.path, job.store_id)
    array[rows, cols] = block
    checksums = {tile_key(i, j): tile_checksum(block)}
    if layout.symmetric and i != j:
        mirror = np.ascontiguousarray(block.T)
        array[cols, rows] = mirror
        checksums[tile_key(j, i)] = tile_checksum(mirror)
    times = TaskTimes(
        wall=time.perf_counter() - start, cpu=time.process_time() - cpu_start,
        thread_cpu=time.thread_time() - thread_start, pid=os.getpid(), start=stamp,
        end=time.time(),
    )
    return task, checksums, times


# ---------------------------------------------------------------------- the cluster
def _default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


@contextlib.contextmanager
def _client(cluster: Cluster, n_tasks: int):
    """A Dask client: on a new LocalCluster, an existing cluster's address, or as given."""
    scheduler, n_workers, timeout = cluster.scheduler, cluster.n_workers, cluster.timeout
    if scheduler is None:
        workers = n_workers if n_workers is not None else min(_default_workers(), n_tasks)
        local = distributed.LocalCluster(
            n_workers=max(1, workers),
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # None would still try port 8787 for the health routes
            silence_logs=logging.ERROR,
        )
        with local, distributed.Client(local) as client:
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


# ---------------------------------------------------------------------- the loop
def compute_pending(
    job: Job,
    inputs: tuple[Any, torch.Tensor, torch.Tensor | None],
    manifest: dict[str, Any],
    pending: list[tuple[int, int]],
    cluster: Cluster,
) -> Tally:
    """Submit the pending tile tasks and record each finished batch in the manifest.

    ``inputs`` is ``(model, x, y)`` on the CPU (scattered to every worker once).
    A failed task stops the run with a ``RuntimeError`` after recording what
    finished; a timeout leaves the finished tiles recorded.
    """
    from tqdm.auto import tqdm

    model, x_cpu, y_cpu = inputs
    deadline = None if cluster.timeout is None else time.monotonic() + cluster.timeout
    tiles = dict(manifest["tiles"])
    tally = Tally()
    n_total = len(job.layout.tasks())
    with _client(cluster, len(pending)) as client:
        client.register_plugin(TorchThreadsPlugin(1), name=TorchThreadsPlugin.name)
        client.wait_for_workers(1, timeout=cluster.timeout)
        model_f = client.scatter(model, broadcast=True, hash=False)
        x_f = client.scatter(x_cpu, broadcast=True, hash=False)
        y_f = None if y_cpu is None else client.scatter(y_cpu, broadcast=True, hash=False)
        run_id = uuid.uuid4().hex[:8]
        futures = [
            client.submit(
                compute_task, model_f, x_f, y_f, job, task,
                key=f"kernelzoo-tile-{run_id}-{task[0]}-{task[1]}",
                pure=False,
                priority=-index,
            )
            for index, task in enumerate(job.layout.schedule(pending))
        ]
        remaining = None if deadline is None else max(1e-3, deadline - time.monotonic())
        bar = tqdm(
            total=n_total, initial=n_total - len(pending),
            desc="gram tiles" if job.layout.kind == "gram" else "feature tiles", unit="tile",
            disable=not cluster.progress, leave=True,
        )
        try:
            for batch in distributed.as_completed(futures, timeout=remaining).batches():
                failed, n_finished, finished = None, 0, {}
                for future in batch:
                    if future.status != "finished":
                        failed = failed or future
                        continue
                    _, checksums, times = future.result()
                    finished.update(checksums)
                    tiles.update(checksums)
                    tally.task_seconds += times.wall
                    tally.task_cpu_seconds += times.cpu
                    tally.task_thread_cpu_seconds += times.thread_cpu
                    tally.spans.append((times.pid, times.start, times.end))
                    n_finished += 1
                    future.release()
                if finished:  # the journal first: a lost manifest is rebuilt from it
                    append_journal(job.path, {"tiles": finished})
                manifest["tiles"] = tiles
                write_manifest(job.path, manifest)
                tally.n_computed += n_finished
                bar.update(n_finished)
                if failed is not None:
                    raise RuntimeError(
                        f"a tile task of store {job.path!r} failed ({tally.n_computed} tiles "
                        f"recorded; rerun to resume): {failed.exception()!r}"
                    ) from failed.exception()
        finally:
            bar.close()
            client.cancel([f for f in futures if not f.done()])
    return tally
