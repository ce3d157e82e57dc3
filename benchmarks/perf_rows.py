"""Issue 16's CPU rows (all but the conv NNGP/NTK one), each measured against its floor or peer
in the same process, with interleaved repeats and medians.

    python benchmarks/perf.py --only gram,ckn,dask,memory [--repeats 5]

Rows (one function each, returning a :class:`Row`; :data:`SECTIONS` turns them
into the Markdown sections of ``benchmarks/perf.py``):

- :func:`gram_rows`: rbf and arc-cosine (degree 1, depth 1 to 3) Grams of
  n=4096, d=784, float32, against a bare ``X @ X.T``; scikit-learn's
  ``rbf_kernel`` and gpytorch's ``RBFKernel`` beside; at each thread count of
  ``--gram-threads`` (the goal is stated at 2 threads).
- :func:`ckn_rows`: the exact CKN (2 layers, ``exp``, subsampling [2, 5], one
  thread) per image pair, against the floor of one first-layer GEMM (P x 9 x P,
  P = 784; 1024 x 27 x 1024 for 32x32x3) and one ``exp`` pass over its output.
- :func:`dask_row`: the exact CKN Gram of 2000 digits through ``gram_to_store``
  on 2 workers x 1 thread vs 1 worker x 1 thread (torch 1 thread), and beside it
  the machine's own speed-up on two independent single-thread processes doing
  the same tile task (the ceiling any scheduler can reach), the CPU seconds per
  task and the workers' idle time at the end of the run.
- :func:`memory_rows`: peak RSS of a fresh subprocess beyond its inputs and
  output, for tiled Grams under a budget (rbf n=20000 d=784 and the exact CKN of
  2000 digits at 256 MB, and two cases where the budget binds).

Every row records the load average (1 min) at its start and end: on a shared
machine, read the ratios, and the thread-sensitive ones with the load.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


@dataclasses.dataclass
class Row:
    """One measured row: ``value`` (a ratio or a speed-up) against ``goal``."""

    name: str
    measure: str  # what value is
    value: float
    goal: str  # e.g. "<= 1.1"
    met: bool
    load_start: float
    load_end: float
    details: dict = dataclasses.field(default_factory=dict)

    def line(self) -> str:
        verdict = "met" if self.met else "**not met**"
        return (f"| {self.name} | {self.measure} | {self.value:.3f} | {self.goal} | {verdict} | "
                f"{self.load_start:.2f} / {self.load_end:.2f} |")


HEADER = ["| row | measure | value | goal | | load start / end |", "|---|---|---|---|---|---|"]


def _goal(value: float, goal: str) -> bool:
    op, bound = goal.split()
    return value <= float(bound) if op == "<=" else value >= float(bound)


def interleaved(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, dict]:
    """Median wall and process-CPU seconds of each function, repeats interleaved.

    One warm-up call each first; then ``repeats`` rounds calling every function
    once in turn, so that a change of load hits all of them alike.
    """
    for fn in fns.values():
        fn()
    walls = {k: [] for k in fns}
    cpus = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            walls[name].append(time.perf_counter() - w0)
            cpus[name].append(time.process_time() - c0)
    return {k: {"wall": statistics.median(walls[k]), "cpu": statistics.median(cpus[k]),
                "walls": walls[k]} for k in fns}


# ---------------------------------------------------------------------------- gram rows
GRAM_SPECS = {
    "rbf": ("rbf", {"lengthscale": float(np.sqrt(784 / 6))}, "<= 1.0"),
    "arccos depth 1": ("arccos", {"degree": 1, "depth": 1}, "<= 1.1"),
    "arccos depth 2": ("arccos", {"degree": 1, "depth": 2}, "<= 1.1"),
    "arccos depth 3": ("arccos", {"degree": 1, "depth": 3}, "<= 1.1"),
}


def gram_rows(threads: int, repeats: int, n: int = 4096, d: int = 784) -> tuple[list[Row], dict]:
    """rbf and arccos Grams vs a bare ``X @ X.T`` (and scikit-learn, gpytorch), float32."""
    import gpytorch
    from sklearn.metrics.pairwise import rbf_kernel

    import kernelzoo as kz

    torch.set_num_threads(threads)
    start = load()
    x = torch.rand(n, d, generator=torch.Generator().manual_seed(0))
    xn = x.numpy()
    ls = GRAM_SPECS["rbf"][1]["lengthscale"]
    gp = gpytorch.kernels.RBFKernel()
    gp.lengthscale = ls

    def gpytorch_rbf():
        with torch.no_grad():
            return gp(x).to_dense()

    fns: dict[str, Callable[[], object]] = {"bare X @ X.T": lambda: x @ x.T}
    for name, (family, params, _) in GRAM_SPECS.items():
        k = kz.kernel(family, **params)
        fns[name] = (lambda k: (lambda: k.gram(x)))(k)
    fns["scikit-learn rbf_kernel"] = lambda: rbf_kernel(xn, gamma=1 / (2 * ls**2))
    fns["gpytorch RBFKernel"] = gpytorch_rbf
    times = interleaved(fns, repeats)
    end = load()
    base = times["bare X @ X.T"]
    rows = []
    for name, (family, params, goal) in GRAM_SPECS.items():
        ratio = times[name]["wall"] / base["wall"]
        rows.append(Row(f"{name} Gram, n={n}, d={d}, float32, {threads} thread(s)",
                        "time / bare X @ X.T", ratio, goal, _goal(ratio, goal), start, end,
                        {"cpu_ratio": times[name]["cpu"] / base["cpu"]}))
    return rows, times


def gram_section(args: argparse.Namespace) -> list[str]:
    lines = ["## Vector Grams: rbf and arc-cosine vs a bare X @ X.T", ""]
    for threads in [int(t) for t in args.gram_threads.split(",")]:
        rows, times = gram_rows(threads, args.repeats)
        print(f"gram rows at {threads} threads done (load {load():.2f})", flush=True)
        base = times["bare X @ X.T"]
        lines += [f"### {threads} thread(s), n=4096, d=784, float32", "", *HEADER,
                  *[r.line() for r in rows], "",
                  "| what | median s (wall) | / bare (wall) | / bare (process CPU) |",
                  "|---|---:|---:|---:|"]
        for name, t in times.items():
            lines.append(f"| {name} | {t['wall']:.3f} | {t['wall'] / base['wall']:.2f} | "
                         f"{t['cpu'] / base['cpu']:.2f} |")
        lines.append("")
    lines.append("Medians of interleaved repeats after one warm-up call each; the process-CPU "
                 "ratio counts every thread (spinning OpenMP threads included).")
    return lines


# ---------------------------------------------------------------------------- CKN rows
CKN_CASES = {"28x28": (1, 28, 28, "<= 1.3"), "32x32x3": (3, 32, 32, "<= 1.5")}


def ckn_floor(shape: tuple[int, int, int], reps: int = 50) -> Callable[[], None]:
    """``reps`` times: the first layer's GEMM (P x C*9 x P) into a buffer, and one ``exp_``."""
    c, h, w = shape
    p = h * w
    g = torch.Generator().manual_seed(1)
    a = torch.rand(p, c * 9, generator=g)
    b = torch.rand(c * 9, p, generator=g) / (c * 9)
    out = torch.empty(p, p)

    def floor() -> None:
        for _ in range(reps):
            torch.mm(a, b, out=out).exp_()

    return floor


def ckn_pipeline(shape: tuple[int, int, int], reps: int = 50) -> Callable[[], None]:
    """``reps`` times what the first layer of one pair costs at least in this implementation:
    its GEMM (augmented columns) into a buffer, one ``exp2_``, and the two pooling
    convolutions (:class:`~kernelzoo.kernels.functional.ckn_ops.PairPooling`, stride 2)."""
    from kernelzoo.kernels.functional.ckn_ops import PairPooling, channel_padding

    c, h, w = shape
    p = h * w
    pad = channel_padding(p, 4)
    g = torch.Generator().manual_seed(2)
    a = torch.rand(1, p, c * 9 + 2, generator=g) * 0.1
    b = torch.rand(1, c * 9 + 2, p + pad, generator=g) * 0.1
    out = torch.empty(1, p, p + pad)
    pool = PairPooling(2, torch.float32)

    def pipeline() -> None:
        for _ in range(reps):
            pool(torch.bmm(a, b, out=out).exp2_().view(1, h, w, p + pad))

    return pipeline


def ckn_rows(repeats: int, n: int = 16, reps: int = 50) -> list[Row]:
    """Exact CKN per pair vs the floor, one thread, float32 (random images in [0, 1])."""
    import kernelzoo as kz

    torch.set_num_threads(1)
    rows = []
    for label, (c, h, w, goal) in CKN_CASES.items():
        start = load()
        x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(0))
        k = kz.kernel("ckn", filter_size=3, subsampling=[2, 5], sigma=0.6, kappa="exp")
        pairs = n * (n + 1) // 2
        times = interleaved({"ckn": lambda: k.gram(x), "floor": ckn_floor((c, h, w), reps),
                             "pipeline": ckn_pipeline((c, h, w), reps)}, repeats)
        per_pair = times["ckn"]["wall"] / pairs
        floor = times["floor"]["wall"] / reps
        ratio = per_pair / floor
        rows.append(Row(f"exact CKN {label}, [2, 5], 1 thread", "time per pair / floor", ratio,
                        goal, _goal(ratio, goal), start, load(),
                        {"ms_per_pair": per_pair * 1e3, "floor_ms": floor * 1e3,
                         "pipeline_ratio": times["pipeline"]["wall"] / reps / floor,
                         "cpu_ratio": (times["ckn"]["cpu"] / pairs)
                         / (times["floor"]["cpu"] / reps)}))
        print(rows[-1].line(), flush=True)
    return rows


def ckn_section(args: argparse.Namespace) -> list[str]:
    rows = ckn_rows(args.repeats)
    lines = ["## Exact CKN per image pair vs its first layer's GEMM + exp", "", *HEADER,
             *[r.line() for r in rows], "",
             "| case | ms per pair | floor ms (GEMM + exp) | ratio (process CPU) | "
             "first layer alone (GEMM + exp2 + pooling) / floor |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.name} | {r.details['ms_per_pair']:.3f} | {r.details['floor_ms']:.3f} | "
                     f"{r.details['cpu_ratio']:.2f} | {r.details['pipeline_ratio']:.2f} |")
    lines += ["", "2 layers, `exp`, sigma 0.6, filter 3, subsampling [2, 5]; a Gram of 16 random "
              "images (136 pairs, self pairs included); the floor is one `torch.mm` of the "
              "first layer's patch matrices into a buffer and one in-place `exp_`. The last "
              "column times, alone, the first layer as the kernel runs it per pair (its GEMM "
              "into a buffer, `exp2_`, the two depthwise pooling convolutions): what no "
              "reorganisation of the rest can remove."]
    return lines


# ---------------------------------------------------------------------------- Dask row
_TASK = """
import sys, time, torch
import numpy as np
import kernelzoo as kz
torch.set_num_threads(1)
x = torch.from_numpy(np.load(sys.argv[1]))
k = kz.kernel("ckn")
tile = int(sys.argv[2])
k.gram(x[:tile], x[tile:2 * tile])  # warm-up
go = float(sys.argv[3])
while time.time() < go:
    time.sleep(0.001)
t0, c0 = time.perf_counter(), time.thread_time()
for _ in range(int(sys.argv[4])):
    k.gram(x[:tile], x[tile:2 * tile])
print(time.perf_counter() - t0, time.thread_time() - c0)
"""


def machine_speedup(x: np.ndarray, tile: int, reps: int, folder: str) -> dict:
    """Two independent single-thread processes doing the same tile task vs one alone.

    The ceiling of any scheduler on this machine: wall of one process alone, and
    of each of two started together (their start synchronised on a clock time).
    """
    path = os.path.join(folder, "x.npy")
    np.save(path, x)
    script = os.path.join(folder, "task.py")
    Path(script).write_text(_TASK)
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")

    def run(count: int) -> list[tuple[float, float]]:
        go = time.time() + 8.0  # imports and warm-up before the common start
        procs = [subprocess.Popen([sys.executable, script, path, str(tile), str(go), str(reps)],
                                  stdout=subprocess.PIPE, text=True, env=env)
                 for _ in range(count)]
        out = [p.communicate()[0].split() for p in procs]
        return [(float(a), float(b)) for a, b in out]

    alone = run(1)[0]
    pair = run(2)
    return {"alone_s": alone[0], "pair_s": [p[0] for p in pair],
            "speedup": 2 * alone[0] / max(p[0] for p in pair),
            "cpu_alone_s": alone[1], "cpu_pair_s": [p[1] for p in pair]}


def dask_row(repeats: int, n: int = 2000, tile: int = 250, profiler: bool = True) -> Row:
    """``gram_to_store`` of the exact CKN on 2000 digits: 2 workers vs 1 (one thread each).

    ``profiler=False`` turns off the workers' statistical profiler
    (``distributed.worker.profile.enabled``; the nannies hand the config to the workers).
    """
    import logging

    import dask.config
    import distributed

    import kernelzoo as kz
    from kernelzoo.integrations.dask import gram_to_store

    sys.path.insert(0, str(HERE))
    from dist_bench import digits

    torch.set_num_threads(1)
    start = load()
    x = digits(n)
    runs: dict[int, list] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="kz-perf-dask-") as folder, \
            dask.config.set({"distributed.worker.profile.enabled": profiler}):
        clusters = {}
        try:
            for w in (1, 2):
                cluster = distributed.LocalCluster(
                    n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0",
                    silence_logs=logging.ERROR)
                client = distributed.Client(cluster)
                client.wait_for_workers(w, timeout=300)
                client.run(lambda: __import__("kernelzoo.kernels.ckn"))
                clusters[w] = (cluster, client)
            for r in range(repeats):
                for w in ((1, 2) if r % 2 == 0 else (2, 1)):
                    t0 = time.perf_counter()
                    store = os.path.join(folder, f"{w}-{r}.zarr")
                    res = gram_to_store(kz.kernel("ckn"), x, store=store, tile=tile,
                                        scheduler=clusters[w][1], progress=False)
                    runs[w].append((time.perf_counter() - t0, res))
                    print(f"dask: {w} worker(s), repeat {r}: {runs[w][-1][0]:.1f} s "
                          f"(load {load():.2f})", flush=True)
        finally:
            for cluster, client in clusters.values():
                client.close()
                cluster.close()
        ceiling = machine_speedup(x, tile, 3, folder)
    end = load()
    wall = {w: statistics.median(t for t, _ in runs[w]) for w in runs}
    speedup = wall[1] / wall[2]
    details = {"wall_s": wall, "machine": ceiling}
    for w in runs:
        results = [res for _, res in runs[w]]
        tasks = sum(res.n_computed for res in results)
        details[f"thread_cpu_per_task_{w}"] = (
            sum(r.task_thread_cpu_seconds for r in results) / tasks)
        details[f"process_cpu_per_task_{w}"] = sum(r.task_cpu_seconds for r in results) / tasks
        details[f"task_wall_per_task_{w}"] = sum(r.task_seconds for r in results) / tasks
        idle = []
        for res in results:
            spans = res.task_spans
            first = min(s for _, s, _ in spans)
            last = max(e for _, _, e in spans)
            by_worker: dict[int, list] = {}
            for pid, s, e in spans:
                by_worker.setdefault(pid, []).append((s, e))
            busy = sum(e - s for _, s, e in spans)
            tail = sum(last - max(e for _, e in v) for v in by_worker.values())
            idle.append({"span_s": last - first, "busy_fraction": busy / (w * (last - first)),
                         "tail_idle_s": tail, "run_s": res.seconds})
        details[f"runs_{w}"] = idle
    goal = ">= 1.8"
    prof = "" if profiler else ", worker profiler off"
    return Row(f"Dask exact CKN Gram, {n} digits, tile {tile}{prof}, 2 workers vs 1",
               "speed-up (wall)", speedup, goal, _goal(speedup, goal), start, end, details)


def dask_section(args: argparse.Namespace) -> list[str]:
    row = dask_row(args.dask_repeats, args.dask_n, args.dask_tile, args.dask_profiler == "on")
    d = row.details
    m = d["machine"]
    lines = [f"## Dask: exact CKN Gram of {args.dask_n} digits, 2 workers x 1 thread vs 1 worker",
             "",
             *HEADER, row.line(), "",
             "| | 1 worker | 2 workers |", "|---|---:|---:|",
             f"| wall s (median) | {d['wall_s'][1]:.1f} | {d['wall_s'][2]:.1f} |",
             f"| task thread CPU s / task | {d['thread_cpu_per_task_1']:.3f} | "
             f"{d['thread_cpu_per_task_2']:.3f} |",
             f"| worker process CPU s / task | {d['process_cpu_per_task_1']:.3f} | "
             f"{d['process_cpu_per_task_2']:.3f} |",
             f"| task wall s / task | {d['task_wall_per_task_1']:.3f} | "
             f"{d['task_wall_per_task_2']:.3f} |"]
    for key in ("span_s", "busy_fraction", "tail_idle_s", "run_s"):
        one = ", ".join(f"{r[key]:.2f}" for r in d["runs_1"])
        two = ", ".join(f"{r[key]:.2f}" for r in d["runs_2"])
        lines.append(f"| {key} (each run) | {one} | {two} |")
    lines += ["", (f"Machine ceiling (no Dask): one single-thread process doing the same "
                   f"{args.dask_tile} x {args.dask_tile} tile task 3 times took "
                   f"{m['alone_s']:.2f} s alone and "
                   f"{', '.join(f'{t:.2f}' for t in m['pair_s'])} s when two ran at once: "
                   f"**{m['speedup']:.2f}x** (thread CPU {m['cpu_alone_s']:.2f} s alone, "
                   f"{', '.join(f'{t:.2f}' for t in m['cpu_pair_s'])} s in the pair)."), "",
              ("busy_fraction: the tasks' wall time over (workers x the span from the first "
               "task's start to the last one's end); tail_idle_s: summed over workers, the "
               "time between a worker's last task and the run's last task; run_s: the whole "
               "gram_to_store call (store, scheduling, manifest).")]
    return lines


# ---------------------------------------------------------------------------- memory rows
_MEMORY = """
import json, os, sys
import numpy as np
import torch
import kernelzoo as kz
torch.set_num_threads(1)
case = json.loads(sys.argv[1])
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
def hwm():  # peak resident set of this process image (not inherited, unlike ru_maxrss)
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
if case["family"] == "rbf":
    x = torch.rand(case["n"], case["d"], generator=torch.Generator().manual_seed(0))
    k = kz.kernel("rbf", lengthscale=11.4)
else:
    from sklearn.datasets import load_digits
    data = load_digits().data
    n = case["n"]
    x = torch.tensor((data[np.arange(n) % len(data)] / 16.0).reshape(n, 1, 8, 8),
                     dtype=torch.float32)
    k = kz.kernel(case["family"])
y = x.flip(0).contiguous() if case["cross"] else None
small = min(len(x), 64)
k.gram(x[:small], None if y is None else y[:small], memory_budget=case["budget"])  # warm-up
with open("/proc/self/clear_refs", "w") as f:  # the peak (VmHWM) restarts from here
    f.write("5")
base = rss()
out = k.gram(x, y, memory_budget=case["budget"])
peak = hwm()
print(json.dumps({"base": base, "peak": peak, "out": out.numel() * out.element_size()}))
"""

MEMORY_CASES = [
    {"name": "rbf, n=20000, d=784, 256 MB", "family": "rbf", "n": 20000, "d": 784,
     "budget": 256 << 20, "cross": False, "goal": True},
    {"name": "exact CKN, 2000 digits, 256 MB", "family": "ckn", "n": 2000, "budget": 256 << 20,
     "cross": False, "goal": True},
    {"name": "rbf X vs Y, n=m=8000, d=784, 64 MB (budget binds)", "family": "rbf", "n": 8000,
     "d": 784, "budget": 64 << 20, "cross": True, "goal": False},
    {"name": "exact CKN X vs Y, 600 digits, 16 MB (budget binds)", "family": "ckn", "n": 600,
     "budget": 16 << 20, "cross": True, "goal": False},
]


def memory_rows(cases=MEMORY_CASES) -> list[Row]:
    """Peak RSS of a fresh subprocess beyond its inputs and output, per case.

    The child builds its inputs, runs a small warm-up Gram (libraries loaded),
    restarts its peak-RSS counter (``/proc/self/clear_refs``), reads its
    resident set, runs the Gram, and reads its peak RSS (``VmHWM``); extra =
    peak - resident set before the Gram - output bytes.
    """
    rows = []
    for case in cases:
        start = load()
        env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
        proc = subprocess.run([sys.executable, "-c", _MEMORY, json.dumps(case)], env=env,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"memory case {case['name']!r} failed:\n{proc.stderr[-3000:]}")
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        extra = got["peak"] - got["base"] - got["out"]
        ratio = extra / case["budget"]
        goal = "<= 1.1"
        rows.append(Row(f"peak memory: {case['name']}", "extra RSS / budget", ratio, goal,
                        _goal(ratio, goal), start, load(),
                        {**got, "extra": extra, "goal_row": case["goal"]}))
        print(rows[-1].line(), flush=True)
    return rows


def memory_section(args: argparse.Namespace) -> list[str]:
    rows = memory_rows()
    lines = ["## Tiled Gram peak memory beyond inputs and output (fresh subprocess)", "",
             *HEADER, *[r.line() for r in rows], "",
             "| case | RSS before the Gram MiB | peak MiB | output MiB | extra MiB |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        d = r.details
        lines.append(f"| {r.name} | {d['base'] / 2**20:.0f} | {d['peak'] / 2**20:.0f} | "
                     f"{d['out'] / 2**20:.0f} | {d['extra'] / 2**20:.1f} |")
    lines += ["", "The first two are the issue's goal rows; the last two use budgets small "
              "enough that the tiling, not the symmetric tile cap, sets the tile size."]
    return lines


# ---------------------------------------------------------------------------- registry
def _keeps_threads(section: Callable[[argparse.Namespace], list[str]]):
    """The section, putting torch's thread count back afterwards (rows set their own)."""

    def run(args: argparse.Namespace) -> list[str]:
        threads = torch.get_num_threads()
        try:
            return section(args)
        finally:
            torch.set_num_threads(threads)

    run.__doc__ = section.__doc__
    return run


SECTIONS = {
    "gram": _keeps_threads(gram_section),
    "ckn": _keeps_threads(ckn_section),
    "dask": _keeps_threads(dask_section),
    "memory": _keeps_threads(memory_section),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options these sections read."""
    parser.add_argument("--gram-threads", default="2,1",
                        help="thread counts of the vector Gram rows (goal at 2)")
    parser.add_argument("--dask-repeats", type=int, default=2,
                        help="runs per worker count in the Dask row (alternating)")
    parser.add_argument("--dask-n", type=int, default=2000, help="digits in the Dask row")
    parser.add_argument("--dask-tile", type=int, default=250, help="tile of the Dask row")
    parser.add_argument("--dask-profiler", choices=("on", "off"), default="on",
                        help="the Dask workers' statistical profiler (dask's default: on)")


def main(argv: list[str] | None = None) -> None:
    """Run some of these sections alone (``benchmarks/perf.py`` runs them with the rest)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--repeats", type=int, default=5)
    add_arguments(parser)
    args = parser.parse_args(argv)
    lines = [f"Load average (1 min) at the start: {load():.2f}.", ""]
    for name in args.only.split(","):
        lines += SECTIONS[name](args) + [""]
    lines.append(f"Load average (1 min) at the end: {load():.2f}.")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
