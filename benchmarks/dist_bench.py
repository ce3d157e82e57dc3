"""Distributed Gram store benchmark: 1 vs 2 Dask workers, and resuming after a kill.

Usage (from the repository root)::

    python benchmarks/dist_bench.py --spec ckn --n 2000 --tile 250 --workers 1 2 --repeats 2

Measures, on sklearn's digits (``(n, 1, 8, 8)``, values / 16, float32; there are
1797 of them, so with ``--n 2000`` the first 203 appear twice):

1. the wall time of ``gram_to_store`` for the exact Gram with a LocalCluster of
   1 and of 2 worker processes (one thread each), the cluster started and
   torch imported on every worker before the clock starts; runs alternate
   between worker counts so that a busy machine perturbs both alike;
2. a run killed (SIGKILL of the process driving it) once about half of the
   tile tasks are recorded, then resumed: how many tiles the resume reuses
   and recomputes, and that its result equals the uninterrupted one.

Prints a Markdown table; ``--json PATH`` also writes the raw figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

_RUNNER = """
import sys
import numpy as np
import kernelzoo as kz
from kernelzoo.integrations.dask import gram_to_store

if __name__ == "__main__":
    x = np.load(sys.argv[1])
    gram_to_store(kz.kernel(sys.argv[2]), x, store=sys.argv[3], tile=int(sys.argv[4]),
                  scheduler=sys.argv[5], progress=False)
"""


def digits(n: int) -> np.ndarray:
    from sklearn.datasets import load_digits

    data = load_digits().data  # 1797 images: beyond that they repeat (same cost per pair)
    data = data[np.arange(n) % len(data)]
    return (data / 16.0).reshape(n, 1, 8, 8).astype(np.float32)


def kernel_sources(spec: str) -> str:
    """sha256 (first 12 hex digits) of the kernel family's module, to date a timing."""
    import hashlib
    import inspect

    import kernelzoo as kz

    module = inspect.getmodule(type(kz.kernel(spec)))
    with open(module.__file__, "rb") as fh:
        return f"{os.path.basename(module.__file__)} {hashlib.sha256(fh.read()).hexdigest()[:12]}"


def start_cluster(n_workers: int):
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR,
    )
    client = distributed.Client(cluster)
    client.wait_for_workers(n_workers, timeout=300)
    client.run(lambda: __import__("kernelzoo.kernels.ckn"))  # imports outside the clock
    return cluster, client


def timed_run(spec: str, x: np.ndarray, tile: int, client, folder: str, label: str):
    import kernelzoo as kz
    from kernelzoo.integrations.dask import gram_to_store

    store = os.path.join(folder, f"{label}.zarr")
    start = time.perf_counter()
    result = gram_to_store(kz.kernel(spec), x, store=store, tile=tile, scheduler=client,
                           progress=False)
    return time.perf_counter() - start, result


def done_tasks(store: str) -> int:
    from kernelzoo.store import read_manifest

    try:
        manifest = read_manifest(store)
    except (OSError, ValueError):
        return 0
    if manifest is None:
        return 0
    return sum(1 for key in manifest["tiles"] if int(key.split(",")[0]) <= int(key.split(",")[1]))


def kill_and_resume(spec: str, x: np.ndarray, tile: int, client, folder: str, reference: str):
    """Kill a run at about half way; resume it; compare with the reference store."""
    import kernelzoo as kz
    from kernelzoo.integrations.dask import gram_to_store
    from kernelzoo.store import load_store

    x_path = os.path.join(folder, "x.npy")
    np.save(x_path, x)
    runner = os.path.join(folder, "runner.py")
    with open(runner, "w") as fh:
        fh.write(_RUNNER)
    store = os.path.join(folder, "killed.zarr")
    n_rows = -(-len(x) // tile)
    n_tasks = n_rows * (n_rows + 1) // 2
    proc = subprocess.Popen(
        [sys.executable, runner, x_path, spec, store, str(tile), client.scheduler.address],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 3600
    while done_tasks(store) < n_tasks // 2 and proc.poll() is None:
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("the run to be killed did not reach half way in an hour")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    recorded = done_tasks(store)
    start = time.perf_counter()
    result = gram_to_store(kz.kernel(spec), x, store=store, scheduler=client, progress=False)
    seconds = time.perf_counter() - start
    diff = float(np.abs(load_store(store) - load_store(reference)).max())
    return {
        "n_tasks": n_tasks,
        "recorded_at_kill": recorded,
        "reused": result.n_reused,
        "recomputed": result.n_computed,
        "resume_seconds": seconds,
        "max_abs_diff_vs_uninterrupted": diff,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="ckn")
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--tile", type=int, default=250)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-kill", action="store_true", help="skip the kill/resume part")
    parser.add_argument("--json", default=None, help="also write the raw figures here")
    args = parser.parse_args(argv)

    x = digits(args.n)
    sources = kernel_sources(args.spec)
    times: dict[int, list[float]] = {w: [] for w in args.workers}
    cpu: dict[int, list[float]] = {w: [] for w in args.workers}
    checksums = {}
    clusters = {}
    kill = None
    with tempfile.TemporaryDirectory(prefix="kz-dist-bench-") as folder:
        try:
            for w in args.workers:
                clusters[w] = start_cluster(w)
            for r in range(args.repeats):
                order = args.workers if r % 2 == 0 else list(reversed(args.workers))
                for w in order:
                    seconds, result = timed_run(
                        args.spec, x, args.tile, clusters[w][1], folder, f"w{w}-r{r}"
                    )
                    times[w].append(seconds)
                    cpu[w].append(result.task_cpu_seconds)
                    from kernelzoo.store import read_manifest

                    checksums[(w, r)] = read_manifest(result.path)["tiles"]
                    print(f"workers={w} repeat={r}: {seconds:.1f} s wall, "
                          f"{result.task_cpu_seconds:.1f} s CPU in tasks "
                          f"({result.n_computed} tiles)", flush=True)
            if not args.no_kill:
                w = max(args.workers)
                kill = kill_and_resume(args.spec, x, args.tile, clusters[w][1], folder,
                                       os.path.join(folder, f"w{w}-r0.zarr"))
        finally:
            for cluster, client in clusters.values():
                client.close()
                cluster.close()
    if kernel_sources(args.spec) != sources:
        print("WARNING: the kernel's source files changed during the run; timings may mix "
              "two versions")
    identical = len({json.dumps(v, sort_keys=True) for v in checksums.values()}) == 1

    base = statistics.median(times[min(args.workers)])
    print()
    print(f"`{args.spec}` exact Gram, {args.n} digits (n, 1, 8, 8) float32, tile {args.tile}, "
          f"{platform.node()} ({os.cpu_count()} CPUs, shared); kernel source {sources}")
    print()
    print("| workers | wall time (s), each run | median (s) | speedup | CPU s in tasks "
          "(median) | CPU / wall |")
    print("|---|---|---|---|---|---|")
    for w in args.workers:
        med = statistics.median(times[w])
        each = ", ".join(f"{t:.1f}" for t in times[w])
        cpu_med = statistics.median(cpu[w])
        print(f"| {w} | {each} | {med:.1f} | {base / med:.2f}x | {cpu_med:.1f} | "
              f"{cpu_med / med:.2f} |")
    print()
    print("CPU / wall is the number of cores the run actually got (ideal: the worker count).")
    print()
    print(f"every run wrote the same tile checksums: {identical}")
    if kill is not None:
        print(f"killed at {kill['recorded_at_kill']} of {kill['n_tasks']} tile tasks recorded; "
              f"resume reused {kill['reused']} and recomputed {kill['recomputed']} tiles in "
              f"{kill['resume_seconds']:.1f} s; max |resumed - uninterrupted| = "
              f"{kill['max_abs_diff_vs_uninterrupted']:.3g}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"args": vars(args), "times": times, "task_cpu_seconds": cpu,
                       "identical": identical,
                       "kill": kill}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
