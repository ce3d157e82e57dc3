"""Performance rows of kernelzoo, each measured side by side with its peer or floor in one run.

    python benchmarks/perf.py [--only gram,ckn,dask,memory,conv] [--repeats 5] [--threads 2] \\
        [--out benchmarks/results/perf.md]

Each row family is one function in :data:`SECTIONS` (name -> function taking the
parsed arguments and returning Markdown lines); ``--only`` selects some of them
(comma-separated). Every figure is a median of ``--repeats`` calls after a
warm-up call in the same process; load averages (1 min) are printed at the
start and end of the run and of each row. On a shared machine, compare the
ratios, not the absolute times.

Sections (``benchmarks/perf_rows.py``, issue 16's CPU rows): ``gram`` (rbf and
arc-cosine vs a bare ``X @ X.T``), ``ckn`` (exact CKN per pair vs its first
layer's GEMM + exp), ``dask`` (2 workers vs 1, and the machine's own ceiling),
``memory`` (peak RSS beyond inputs and output); ``benchmarks/perf_conv.py``: ``conv``
(the conv NNGP/NTK on digits and on 32x32x3 against neural-tangents). Add a section by writing
``def section(args) -> list[str]`` and listing it in :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import perf_conv  # noqa: E402  (benchmarks/ on the path)
import perf_rows  # noqa: E402


def load() -> float:
    return os.getloadavg()[0]


#: section name -> function(args) -> Markdown lines; other rows are added here
SECTIONS = {**perf_rows.SECTIONS, **perf_conv.SECTIONS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections of {list(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", help="write the Markdown report here")
    perf_rows.add_arguments(parser)
    perf_conv.add_arguments(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    unknown = [s for s in args.only.split(",") if s not in SECTIONS]
    if unknown:
        parser.error(f"--only: unknown sections {unknown}; choose from {list(SECTIONS)}")
    lines = [
        "# kernelzoo performance rows",
        "",
        f"Command: `python benchmarks/{Path(__file__).name} {' '.join(sys.argv[1:])}`",
        "",
        (f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; "
         f"torch {torch.__version__}, torch threads {torch.get_num_threads()} (rows set their "
         f"own where the issue says); medians of {args.repeats} repeats after a warm-up call. "
         f"Load average (1 min) at the start: {load():.2f}."),
        "",
    ]
    print("\n".join(lines), flush=True)
    for name in args.only.split(","):
        lines += SECTIONS[name](args) + [""]
    lines.append(f"Load average (1 min) at the end: {load():.2f}.")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)


if __name__ == "__main__":
    main()
