#!/usr/bin/env bash
# Every GPU path of kernelzoo, measured and checked: the tests marked `gpu`, Gram
# throughput per family on GPU and CPU, GPU/CPU agreement, peak device memory,
# tiling beyond free memory, the issue's GPU goals; writes benchmarks/results/gpu.md.
#
#   scripts/gpu_check.sh             # on a machine with one CUDA GPU (a few minutes)
#   scripts/gpu_check.sh --dry-run   # the same code on the CPU at toy sizes (CI)
#
# Extra arguments go to benchmarks/gpu_check.py (--out PATH, --target SECONDS, --skip-tests).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python}"
if [ -x .venv/bin/python ] && [ -z "${VIRTUAL_ENV:-}" ] && [ "$PYTHON" = python ]; then
  PYTHON=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" benchmarks/gpu_check.py "$@"
