"""Shared pieces of the harnesses: the row schema, run metadata, kernel resolution,
timing, peak memory, and the ridge solvers used to score kernels on labels.

Every harness returns a tidy :class:`pandas.DataFrame`, one row per
measurement, with the columns :data:`COLUMNS` (plus a few harness-specific
ones, listed in each harness's docstring). A kernel or approximation that
fails is a row whose ``error`` column holds the message (``value`` NaN): the
harness goes on with the next one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import pandas as pd
import torch

from kernelzoo._tidy import EXACT, TIMING_METRICS, budget_column
from kernelzoo._version import __version__

__all__ = [
    "COLUMNS",
    "EXACT",
    "TIMING_METRICS",
    "KernelCase",
    "PeakMemory",
    "Progress",
    "as_input",
    "error_row",
    "make_row",
    "methods_of",
    "resolve_kernels",
    "run_metadata",
    "timed",
    "to_frame",
]

#: Columns every harness row has, in this order. ``seed`` is the draw of an
#: approximation, ``split`` the random train/validation/test split (its index is its seed).
COLUMNS: tuple[str, ...] = (
    "harness", "family", "spec", "method", "budget", "n_features", "seed", "split", "dataset",
    "n", "metric", "value", "device", "dtype", "seconds", "error",
)  # fmt: skip
# ``EXACT`` (the method of exact kernels) and ``TIMING_METRICS`` (metrics whose values
# change from run to run) live in kernelzoo._tidy, shared with the reports.


# ---------------------------------------------------------------------------- kernels
@dataclass
class KernelCase:
    """A kernel as the harnesses see it: its label, and the kernel or why it failed.

    ``spec`` is the spec as requested (short, used as the row label);
    ``kernel`` is None when construction failed, and ``error`` says why.
    ``fixed`` are the parameters given explicitly in the spec: hyperparameter
    searches leave them alone.
    """

    spec: str
    family: str
    kernel: Any = None
    error: str = ""
    fixed: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.kernel is not None


def describe_error(exc: BaseException) -> str:
    """One line: the exception type and the first line of its message."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def resolve_kernels(kernels: Iterable[Any]) -> list[KernelCase]:
    """Spec strings or kernel objects -> :class:`KernelCase` (construction errors captured).

    A family whose module is not installed yet, or a bad parameter, gives a
    case with ``kernel=None`` and the error; nothing is raised here.
    """
    from kernelzoo.registry import kernel as make_kernel
    from kernelzoo.registry import parse_spec

    cases = []
    for item in kernels:
        if isinstance(item, KernelCase):
            cases.append(item)
            continue
        if not isinstance(item, str):
            spec = getattr(item, "spec", None)
            if spec is None:
                raise TypeError(f"kernels must hold spec strings or kernels, got {item!r}")
            family = getattr(item, "family", spec.split("(")[0])
            cases.append(KernelCase(spec, family, item, "", dict(item.get_params())))
            continue
        spec = item.strip()
        try:
            family, fixed = parse_spec(spec)
        except ValueError as exc:
            cases.append(KernelCase(spec, spec.split("(")[0], None, describe_error(exc)))
            continue
        try:
            cases.append(KernelCase(spec, family, make_kernel(spec), "", fixed))
        except Exception as exc:  # noqa: BLE001 - any failure is reported as a row
            cases.append(KernelCase(spec, family, None, describe_error(exc), fixed))
    return cases


def methods_of(case: KernelCase, methods: Sequence[str] | None = None) -> list[str]:
    """:data:`EXACT` then the kernel's approximation methods (filtered by ``methods``)."""
    found = [EXACT, *getattr(case.kernel, "approximations", ())]
    if methods is None:
        return found
    return [m for m in found if m in methods]


def make_approximation(kernel: Any, method: str, budget: Any, seed: int) -> Any:
    """``kernel.approximate(method, budget, seed)``, quiet: an approximation whose class
    declares a ``progress`` option (a training progress bar) gets ``progress=False``."""
    from kernelzoo.registry import approximation_class

    options = {}
    try:
        if "progress" in getattr(approximation_class(kernel.family, method), "options", {}):
            options["progress"] = False
    except (ValueError, ImportError, AttributeError):
        pass  # approximate() below raises the real error
    return kernel.approximate(method, budget=budget, seed=int(seed), **options)


# ---------------------------------------------------------------------------- rows
def _dtype_name(dtype: torch.dtype | str) -> str:
    return str(dtype).replace("torch.", "")


def make_row(
    harness: str, case: KernelCase, method: str, metric: str, value: Any, **fields: Any
) -> dict[str, Any]:
    """One tidy row of :data:`COLUMNS` (missing ones empty); other ``fields`` are the
    harness-specific columns.

    ``fields`` may set ``budget`` (an int, or a per-layer list written as ``[a, b]``),
    ``n_features``, ``seed``, ``split``, ``dataset``, ``n``, ``device``, ``dtype``
    (default ``cpu`` / ``float32``), ``seconds`` (default NaN) and ``error``.
    """
    budget = fields.pop("budget", None)
    if isinstance(budget, (list, tuple)):
        budget = "[" + ", ".join(str(b) for b in budget) + "]"
    row = {
        "harness": harness,
        "family": case.family,
        "spec": case.spec,
        "method": method,
        "budget": budget,
        "n_features": fields.pop("n_features", None),
        "seed": fields.pop("seed", None),
        "split": fields.pop("split", None),
        "dataset": fields.pop("dataset", ""),
        "n": fields.pop("n", None),
        "metric": metric,
        "value": float(value) if value is not None else float("nan"),
        "device": str(fields.pop("device", "cpu")),
        "dtype": _dtype_name(fields.pop("dtype", torch.float32)),
        "seconds": float(fields.pop("seconds", float("nan"))),
        "error": fields.pop("error", ""),
    }
    row.update(fields)
    return row


def error_row(
    harness: str, case: KernelCase, method: str, metric: str, error: str, **fields: Any
) -> dict[str, Any]:
    """A row that records a failure: ``value`` NaN and the error message."""
    return make_row(harness, case, method, metric, float("nan"), error=error, **fields)


def to_frame(
    rows: list[dict[str, Any]],
    extra_columns: Sequence[str] = (),
    metadata: dict[str, Any] | None = None,
) -> pd.DataFrame:
    """Rows -> DataFrame with :data:`COLUMNS` first, then ``extra_columns``."""
    columns = list(COLUMNS) + [c for c in extra_columns if c not in COLUMNS]
    frame = pd.DataFrame(rows, columns=columns)
    # budgets are ints for most methods and per-layer lists for some: keep them as objects
    for col in ("n", "seed", "split", "n_features"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("Int64")
    frame["budget"] = budget_column(frame["budget"])
    frame["error"] = frame["error"].fillna("")
    frame.attrs["metadata"] = metadata if metadata is not None else run_metadata()
    return frame


# ---------------------------------------------------------------------------- metadata
def _git_commit() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            check=False,
            cwd=here,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    if out.returncode != 0:
        return ""
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        check=False,
        cwd=here,
        capture_output=True,
        text=True,
        timeout=5,
    )
    suffix = "-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else ""
    return out.stdout.strip() + suffix


def device_name(device: Any = "cpu") -> str:
    """A human name for ``device``: the GPU's name, or the CPU model."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def run_metadata(device: Any = "cpu", **more: Any) -> dict[str, Any]:
    """Versions, git commit and machine of this run (goes in ``df.attrs["metadata"]``)."""
    return {
        "kernelzoo": __version__,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": sys.version.split()[0],
        "git_commit": _git_commit(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": device_name(device),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **more,
    }


# ---------------------------------------------------------------------------- timing, memory
def _sync(device: Any) -> None:
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: Any = "cpu") -> tuple[Any, float]:
    """``(fn(), seconds)``, synchronising the GPU around the call."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def _status_kib(key: str) -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMemory:
    """Peak memory growth of a block, in bytes.

    On CUDA: ``torch.cuda.max_memory_allocated`` after a reset, minus the
    memory allocated at entry. On the CPU (Linux): the process's peak
    resident set (VmHWM) is reset through ``/proc/self/clear_refs`` at entry
    and read at exit, minus the resident set at entry; where that reset is
    not allowed, the growth of the resident set is measured instead (a lower
    bound). ``bytes`` is NaN where neither is available.

    >>> with PeakMemory("cpu") as mem:            # doctest: +SKIP
    ...     k.gram(X)
    >>> mem.bytes
    """

    def __init__(self, device: Any = "cpu") -> None:
        self.device = torch.device(device)
        self.bytes = float("nan")
        self._start = 0
        self._hwm_reset = False

    def __enter__(self) -> Self:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._start = torch.cuda.memory_allocated(self.device)
            return self
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # reset VmHWM to the current RSS
            self._hwm_reset = True
        except OSError:
            self._hwm_reset = False
        self._start = _status_kib("VmRSS") or 0
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.bytes = float(torch.cuda.max_memory_allocated(self.device) - self._start)
            return
        end = _status_kib("VmHWM" if self._hwm_reset else "VmRSS")
        if end is not None and self._start:
            self.bytes = float(max(end - self._start, 0) * 1024)


@contextlib.contextmanager
def linalg_threads(device: Any = "cpu", threads: int = 1) -> Iterator[None]:
    """Run small dense factorisations (eigh, Cholesky) with ``threads`` CPU threads
    (torch's, and numpy/scipy's BLAS through threadpoolctl).

    On a shared CPU, torch's multi-threaded ``eigh`` of a few hundred rows can
    be 100x slower than single-threaded (threads wait on each other when a
    core is busy elsewhere); these sizes gain nothing from threads anyway.
    No effect for CUDA devices.
    """
    if torch.device(device).type != "cpu":
        yield
        return
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    before = torch.get_num_threads()
    torch.set_num_threads(min(threads, before))
    try:
        with threadpool_limits(limits=threads):  # numpy / scipy BLAS and LAPACK
            yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------- inputs
def as_input(X: Any, device: Any, dtype: torch.dtype) -> torch.Tensor:
    """Numpy or torch -> a tensor on ``device`` with ``dtype`` (images stay images)."""
    if isinstance(X, torch.Tensor):
        tensor = X
    else:
        array = np.asarray(X)
        tensor = torch.from_numpy(array if array.flags.writeable else array.copy())
    return tensor.to(device=device, dtype=dtype)


def parse_dtype(dtype: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    names = {"float32": torch.float32, "float64": torch.float64}
    if dtype not in names:
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    return names[dtype]


# ---------------------------------------------------------------------------- progress
class Progress:
    """A thin wrapper over an optional tqdm bar: ``step(label)`` advances it."""

    def __init__(self, bar: Any = None) -> None:
        self.bar = bar

    def step(self, label: str = "", n: int = 1) -> None:
        if self.bar is not None:
            if label:
                self.bar.set_postfix_str(label[:60], refresh=False)
            self.bar.update(n)

    def note(self, label: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(label[:60])


# ---------------------------------------------------------------------------- small helpers
def iter_grid(grid: dict[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of a ``{name: values}`` grid (one empty dict for an empty grid)."""
    import itertools

    names = list(grid)
    for values in itertools.product(*(grid[name] for name in names)):
        yield dict(zip(names, values, strict=True))
