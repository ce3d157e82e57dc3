"""The conv NNGP/NTK rows of ``benchmarks/perf.py`` (issue 12 item 3 and issue 16's conv row).

    python benchmarks/perf.py --only conv [--repeats 5] [--conv-n 256]

Both settings, on the default path (no ``KERNELZOO_COMPILE``), medians after one
warm-up call in the same process, neural-tangents 0.6.5 in its own virtual
environment (``/work/nt-venv``, or ``--nt-python``) through
``benchmarks/_nt_reference.py`` on the same inputs, in the same run:

- **digits**: depth 2, ReLU, GAP, 8x8 digits ``(n, 1, 8, 8)``: Gram pairs/s
  (``n^2`` / seconds of ``k.gram(X)``) in float32 at ``--conv-n`` images and
  at 64, and the speed-up over neural-tangents on the same 64 digits in
  float32 and float64; first-call seconds apart: ours in a fresh process with
  an empty inductor cache (cold: compiling) and again in a second process
  (warm: inductor's on-disk FX graph cache), neural-tangents' ``jit``.
- **32x32x3**: depth 5, ReLU, GAP, Gram of ``--conv-big-n`` (4) standard normal
  images, seconds per entry (``/ n^2``) against neural-tangents, float32 and float64.

Each row carries the 1-minute load average at its start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DIGITS_SPEC = {"architecture": "conv", "depth": 2, "activation": "relu", "readout": "gap",
               "weight_std": 2**0.5, "bias_std": 0.0, "filter_size": 3, "padding": "same"}
BIG_SPEC = dict(DIGITS_SPEC, depth=5)


def load() -> float:
    """The 1-minute load average."""
    return os.getloadavg()[0]


def digits(n: int) -> np.ndarray:
    """The first ``n`` scikit-learn digits as ``(n, 1, 8, 8)`` float64."""
    from sklearn.datasets import load_digits

    return load_digits().data[:n].reshape(-1, 1, 8, 8).astype(np.float64)


def time_ours(family: str, spec: dict, x: np.ndarray, dtype: str, repeats: int) -> dict:
    """First call, median wall and CPU seconds of ``k.gram(x)`` after it, and the Gram."""
    import kernelzoo as kz

    k = kz.kernel(family, **spec)
    xt = torch.from_numpy(x.astype(dtype))
    start = time.perf_counter()
    gram = k.gram(xt)
    first = time.perf_counter() - start
    walls, cpus = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        k.gram(xt)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return {"first": first, "wall": statistics.median(walls), "cpu": statistics.median(cpus),
            "gram": gram.double().numpy()}


def time_nt(nt_python: str, spec: dict, x: np.ndarray, dtype: str, repeats: int) -> dict | None:
    """neural-tangents' nngp and ntk: {family: {first, wall, cpu, gram}} and its
    ``versions``, or None."""
    if not Path(nt_python).exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        np.save(Path(tmp) / "x.npy", x)
        out = Path(tmp) / "out.npz"
        cmd = [nt_python, str(HERE / "_nt_reference.py"), "--spec", json.dumps(spec),
               "--x", str(Path(tmp) / "x.npy"), "--dtype", dtype, "--repeats", str(repeats),
               "--out", str(out)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            print(f"neural-tangents failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
            return None
        data = np.load(out)
        result = {f: {"first": float(data[f"{f}_first_s"]),
                      "wall": float(np.median(data[f"{f}_times_s"])),
                      "cpu": float(np.median(data[f"{f}_cpu_s"])), "gram": data[f]}
                  for f in ("nngp", "ntk")}
        result["versions"] = json.loads(str(data["versions"]))
        return result


def first_call(family: str, dtype: str, cache: str, threads: int) -> float:
    """Seconds of the first ``gram`` of 64 digits in a fresh process using ``cache`` as
    inductor's cache directory."""
    env = dict(os.environ, TORCHINDUCTOR_CACHE_DIR=cache, PYTHONPATH=str(ROOT))
    env.pop("KERNELZOO_COMPILE", None)
    code = (
        "import sys, time, torch; sys.path.insert(0, %r); import perf_conv as p; "
        "import kernelzoo as kz; torch.set_num_threads(%d); "
        "x = torch.from_numpy(p.digits(64).astype(%r)); k = kz.kernel(%r, **p.DIGITS_SPEC); "
        "t = time.perf_counter(); k.gram(x); print(time.perf_counter() - t)"
        % (str(HERE), threads, dtype, family)
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, check=False)
    if proc.returncode != 0:
        print(proc.stderr[-2000:], file=sys.stderr)
        return float("nan")
    return float(proc.stdout.strip().splitlines()[-1])


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def digits_lines(args: argparse.Namespace) -> list[str]:
    """The digits rows: pairs/s, neural-tangents ratios, first calls."""
    lines = ["### Digits: depth 2, ReLU, GAP, 8x8, default path, "
             f"{torch.get_num_threads()} threads", ""]
    lines += ["| kernel | dtype | n | ours s / Gram (CPU s) | pairs/s | goal | "
              "NT s / Gram (CPU s) | speed-up vs NT | goal | rel. diff to NT | load start/end |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    x64 = digits(64)
    nt = {dtype: time_nt(args.nt_python, DIGITS_SPEC, x64, dtype, args.repeats)
          for dtype in ("float32", "float64")}
    firsts = {}
    for dtype in ("float32", "float64"):
        for family in ("nngp", "ntk"):
            for n in sorted({64, args.conv_n}):
                l0 = load()
                ours = time_ours(family, DIGITS_SPEC, digits(n), dtype, args.repeats)
                if n == 64:
                    firsts[(family, dtype)] = ours["first"]
                pairs = n * n / ours["wall"]
                goal_pairs = ">= 5e4" if dtype == "float32" else ""
                peer = nt[dtype][family] if nt[dtype] and n == 64 else None
                ratio = "" if peer is None else f"{peer['wall'] / ours['wall']:.1f}x"
                goal_ratio = "" if peer is None else (">= 10x" if dtype == "float32" else ">= 4x")
                diff = "" if peer is None else f"{_rel(ours['gram'], peer['gram']):.1e}"
                nt_s = "" if peer is None else f"{peer['wall']:.3f} ({peer['cpu']:.3f})"
                lines.append(
                    f"| {family} | {dtype} | {n} | {ours['wall']:.4f} ({ours['cpu']:.4f}) | "
                    f"{pairs:.3g} | {goal_pairs} | {nt_s} | {ratio} | {goal_ratio} | {diff} | "
                    f"{l0:.2f} / {load():.2f} |"
                )
                print(lines[-1], flush=True)
    lines += ["", "First calls (s), 64 digits: ours in this process (inductor cache as found), "
              "ours in fresh processes with an empty inductor cache (cold: compiling) and "
              "again with that cache (warm: a second process), neural-tangents' jit "
              "(goal: ours < 30 s).", "",
              "| kernel | dtype | ours, this process | ours cold | ours warm | NT jit | load |",
              "|---|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as cache:
        for dtype in ("float32", "float64"):
            for family in ("nngp", "ntk"):
                l0 = load()
                cold = first_call(family, dtype, cache, torch.get_num_threads())
                warm = first_call(family, dtype, cache, torch.get_num_threads())
                peer = nt[dtype][family]["first"] if nt[dtype] else float("nan")
                lines.append(f"| {family} | {dtype} | {firsts[(family, dtype)]:.1f} | "
                             f"{cold:.1f} | {warm:.1f} | {peer:.1f} | {l0:.2f} / {load():.2f} |")
                print(lines[-1], flush=True)
    return lines


def big_lines(args: argparse.Namespace) -> list[str]:
    """The 32x32x3 depth-5 rows: seconds per entry against neural-tangents."""
    n = args.conv_big_n
    x = np.random.default_rng(0).standard_normal((n, 3, 32, 32))
    lines = ["", f"### 32x32x3: depth 5, ReLU, GAP, Gram of {n} images ({n * n} entries), "
             "default path", "",
             "| kernel | dtype | ours s / entry (CPU) | NT s / entry (CPU) | speed-up | goal | "
             "rel. diff to NT | ours first call | NT first call | load start/end |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    repeats = max(1, min(args.repeats, args.conv_big_repeats))
    for dtype in ("float64", "float32"):
        l0 = load()
        nt = time_nt(args.nt_python, BIG_SPEC, x, dtype, repeats)
        for family in ("nngp", "ntk"):
            ours = time_ours(family, BIG_SPEC, x, dtype, repeats)
            peer = nt[family] if nt else None
            entries = n * n
            goal = ">= 5x" if dtype == "float64" else ">= 30x"
            if peer is None:
                nt_s = ratio = diff = nt_first = ""
            else:
                nt_s = f"{peer['wall'] / entries:.4f} ({peer['cpu'] / entries:.4f})"
                ratio = f"{peer['wall'] / ours['wall']:.1f}x"
                diff = f"{_rel(ours['gram'], peer['gram']):.1e}"
                nt_first = f"{peer['first']:.1f}"
            lines.append(
                f"| {family} | {dtype} | {ours['wall'] / entries:.4f} "
                f"({ours['cpu'] / entries:.4f}) | {nt_s} | {ratio} | {goal} | {diff} | "
                f"{ours['first']:.1f} | {nt_first} | {l0:.2f} / {load():.2f} |"
            )
            print(lines[-1], flush=True)
    return lines


def conv_section(args: argparse.Namespace) -> list[str]:
    """Both conv settings (issue 12 item 3, issue 16's conv row)."""
    torch.set_num_threads(args.threads)
    lines = ["## Conv NNGP/NTK (issue 12 item 3, issue 16)", "",
             f"Load average (1 min) at the start: {load():.2f}; neural-tangents: "
             f"{args.nt_python}" + ("" if Path(args.nt_python).exists() else " (missing)"), ""]
    if args.conv_n > 0:
        lines += digits_lines(args)
    if args.conv_big_n > 0:
        lines += big_lines(args)
    lines += [""]
    return lines


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options this section reads."""
    parser.add_argument("--nt-python", default="/work/nt-venv/bin/python",
                        help="python of the neural-tangents 0.6.5 environment")
    parser.add_argument("--conv-n", type=int, default=256,
                        help="digits for the pairs/s row (0: skip the digits rows)")
    parser.add_argument("--conv-big-n", type=int, default=4,
                        help="32x32x3 images (0: skip those rows)")
    parser.add_argument("--conv-big-repeats", type=int, default=3,
                        help="at most this many repeats in the 32x32x3 rows")


SECTIONS = {"conv": conv_section}
