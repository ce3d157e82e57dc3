"""kernelzoo's conv NNGP/NTK beside neural-tangents, on the same inputs, in the same run.

The network is issue 3's benchmark: ``depth=5`` conv layers (3x3, 'same'),
ReLU, global average pooling, a final Dense, W_std = sqrt(2), b_std = 0, on
32x32x3 inputs; float64 and float32. kernelzoo runs in this process (eager
torch and under ``torch.compile``); neural-tangents 0.6.5 runs in its own
virtual environment (it needs jax 0.4.23 and numpy 1.26) through
``benchmarks/_nt_reference.py`` in a subprocess, inputs passed as .npy files.
Without that environment the script says so and times kernelzoo alone.

Also reproduces the empirical-NTK error against the exact NTK for an fc ReLU
net (depth 2, W_std sqrt 2, b_std 0.1, 50 points) at widths 256/1024/2048.

Times are medians of ``--repeats`` Gram evaluations after one warm-up
(compilation excluded and reported apart); "per entry" divides by n^2. Both
wall-clock and process CPU time (all threads) are reported: on a shared,
oversubscribed machine the CPU time is the steadier measure of the work done.
kernelzoo evaluates each unordered pair of a Gram of X with itself once.

    python benchmarks/nt_compare.py --n 3 --repeats 3 --out benchmarks/results/nt_compare.md

Create the neural-tangents environment with::

    python3 -m venv /work/nt-venv && /work/nt-venv/bin/pip install neural-tangents==0.6.5 \\
        jax==0.4.23 jaxlib==0.4.23 numpy==1.26.4 scipy==1.12.0 tensorflow==2.15.1 tf2jax==0.3.5
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

import kernelzoo as kz

HERE = Path(__file__).resolve().parent
SPEC = {"architecture": "conv", "depth": 5, "activation": "relu", "readout": "gap",
        "weight_std": 2**0.5, "bias_std": 0.0, "filter_size": 3, "padding": "same"}


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1e}"


def time_kernelzoo(family: str, x: np.ndarray, dtype: str, compile_mode: str, repeats: int):
    """(median wall s, median CPU s per Gram, first-call s, Gram) for kernelzoo."""
    from perf_conv import time_ours  # benchmarks/ is this script's directory

    os.environ["KERNELZOO_COMPILE"] = compile_mode
    ours = time_ours(family, SPEC, x, dtype, repeats)
    return ours["wall"], ours["cpu"], ours["first"], ours["gram"]


def time_neural_tangents(nt_python: str, x: np.ndarray, dtype: str, repeats: int):
    """{family: (median wall s, median CPU s, first-call s, Gram)} from the
    neural-tangents venv (and its ``versions``), or None."""
    from perf_conv import time_nt  # benchmarks/ is this script's directory

    nt = time_nt(nt_python, SPEC, x, dtype, repeats)
    if nt is None:
        return None
    result = {f: (nt[f]["wall"], nt[f]["cpu"], nt[f]["first"], nt[f]["gram"])
              for f in ("nngp", "ntk")}
    result["versions"] = nt["versions"]
    return result


def empirical_width_errors(widths, n_points=50, seed=0, budget="4GB"):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_points, 16, generator=g, dtype=torch.float64)
    k = kz.kernel("ntk", depth=2, bias_std=0.1)
    exact = k.gram(x)
    rows = []
    for width in widths:
        start = time.perf_counter()
        approx = k.approximate("empirical", budget=width, seed=seed).fit(x)
        gram = approx.gram(x, memory_budget=budget)
        rows.append((width, float((gram - exact).norm() / exact.norm()),
                     time.perf_counter() - start, approx.n_features))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=3, help="images: an n x n Gram")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="float64,float32")
    parser.add_argument("--families", default="nngp,ntk")
    parser.add_argument("--modes", default="1,0",
                        help="KERNELZOO_COMPILE values: 1 compiled, 0 eager")
    parser.add_argument("--nt-python", default="/work/nt-venv/bin/python")
    parser.add_argument("--widths", default="256,1024,2048", help="empirical NTK widths ('' skips)")
    parser.add_argument("--out", help="write the Markdown report here")
    args = parser.parse_args()

    x = np.random.default_rng(0).standard_normal((args.n, 3, 32, 32))
    n_entries = args.n**2
    lines = [
        "# kernelzoo vs neural-tangents: conv NNGP/NTK, depth 5, GAP, ReLU, 32x32x3",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        "",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs "
        f"(shared with other jobs: figures are medians of {args.repeats} repeats after a "
        f"warm-up), torch {torch.__version__}, torch threads {torch.get_num_threads()}; "
        f"load average at the start {os.getloadavg()[0]:.1f}."),
        (f"Inputs: {args.n} standard normal images (seed 0); a {args.n}x{args.n} Gram "
        f"({n_entries} entries, {args.n * (args.n + 1) // 2} unordered pairs)."),
        "",
    ]
    rows = []
    agreement = []
    reference: dict[str, np.ndarray] = {}  # float64 Grams (neural-tangents' where available)
    versions = None
    for dtype in args.dtypes.split(","):
        nt = time_neural_tangents(args.nt_python, x, dtype, args.repeats)
        if nt is None:
            print(f"neural-tangents is unavailable ({args.nt_python}): kernelzoo only")
        for family in args.families.split(","):
            grams = {}
            for mode in args.modes.split(","):
                label = "kernelzoo compiled" if mode == "1" else "kernelzoo eager"
                med, cpu, first, gram = time_kernelzoo(family, x, dtype, mode, args.repeats)
                grams[label] = gram
                rows.append((family, dtype, label, med / n_entries, cpu / n_entries, first))
                print(rows[-1], flush=True)
            if nt is not None:
                med, cpu, first, gram = nt[family]
                grams["neural-tangents"] = gram
                rows.append((family, dtype, "neural-tangents", med / n_entries,
                             cpu / n_entries, first))
                print(rows[-1], flush=True)
            if dtype == "float64":
                reference[family] = grams.get("neural-tangents",
                                              grams[next(iter(grams))])
            for label, gram in grams.items():
                nt_diff = (rel_err(gram, grams["neural-tangents"])
                           if "neural-tangents" in grams and label != "neural-tangents"
                           else None)
                f64_diff = rel_err(gram, reference[family]) if family in reference else None
                agreement.append((family, dtype, label, nt_diff, f64_diff))
        versions = nt["versions"] if nt else versions
    wall = {(f, d, lab): t for f, d, lab, t, _, _ in rows}
    cpu = {(f, d, lab): c for f, d, lab, _, c, _ in rows}
    lines += [("| kernel | dtype | implementation | wall s per entry | CPU s per entry | "
               "first call (s) | speed-up, wall | speed-up, CPU |"),
              "|---|---|---|---|---|---|---|---|"]
    for family, dtype, label, per_entry, cpu_entry, first in rows:
        key = (family, dtype, "neural-tangents")
        ref = label != "neural-tangents" and key in wall
        speed = f"{wall[key] / per_entry:.1f}x" if ref else ""
        speed_cpu = f"{cpu[key] / cpu_entry:.1f}x" if ref else ""
        lines.append(f"| {family} | {dtype} | {label} | {per_entry:.4f} | {cpu_entry:.4f} | "
                     f"{first:.1f} | {speed} | {speed_cpu} |")
    if agreement:
        lines += ["", ("Agreement on the same inputs (relative Frobenius): with neural-tangents "
                       "in the same dtype, and with the float64 Gram (neural-tangents' where "
                       "available):"),
                  "", "| kernel | dtype | implementation | vs neural-tangents | vs float64 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {f} | {d} | {lab} | {_fmt(e)} | {_fmt(e64)} |"
                  for f, d, lab, e, e64 in agreement]
    lines += ["", f"neural-tangents versions: {versions}" if versions else
              "neural-tangents was unavailable: no comparison."]
    widths = [int(w) for w in args.widths.split(",") if w]
    if widths:
        lines += ["", ("## Empirical NTK vs exact NTK (fc ReLU, depth 2, W_std sqrt 2, b_std 0.1, "
                  "50 standard normal points in 16-d, one draw, seed 0)"), "",
                  "| width | rel. Frobenius error | parameters | seconds |", "|---|---|---|---|"]
        for width, err, seconds, n_params in empirical_width_errors(widths):
            lines.append(f"| {width} | {err:.3f} | {n_params} | {seconds:.1f} |")
            print(lines[-1], flush=True)
        lines += ["", ("neural-tangents' figures for this setting: 0.18 (256), 0.088 (1024), "
                  "0.058 (2048).")]
    lines += ["", f"Load average at the end: {os.getloadavg()[0]:.1f} (2 CPUs)."]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
