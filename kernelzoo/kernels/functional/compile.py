"""``torch.compile`` plumbing for the conv NNGP/NTK stages, apart from the recursion.

One compiled copy per (stage function, architecture); a compilation failure
disables compiling for the rest of the process with one warning, and the eager
function runs instead. ``KERNELZOO_COMPILE=0`` never compiles, ``=1`` always
does (without gradients), the default only for work large enough to amortise it.
"""

from __future__ import annotations

import functools
import os
import types
import warnings
from collections.abc import Callable

import torch

from kernelzoo.kernels.functional.activations import needs_grad
from kernelzoo.kernels.functional.architecture import Net

__all__ = ["MIN_COMPILE_WORK", "STATE", "compile_wanted", "compiled", "run_stage"]

# a failure disables compiling for the rest of the process
STATE = {"failed": False}
# compiling costs tens of seconds per (architecture, block shape): worth it from about
# this many (position pair x layer x image pair) updates, a minute or more of eager work
MIN_COMPILE_WORK = 2e8


def compile_wanted(work: float, *tensors: torch.Tensor) -> bool:
    flag = os.environ.get("KERNELZOO_COMPILE", "auto").strip().lower()
    if flag in ("0", "false", "no", "off") or STATE["failed"]:
        return False
    if needs_grad(*tensors) or not hasattr(torch, "compile"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return work >= MIN_COMPILE_WORK


@functools.lru_cache(maxsize=64)
def compiled(fn: Callable, net: Net):
    """``torch.compile`` of one stage function ``fn(*args, net)`` for one architecture.

    torch.compile caches graphs (and caps recompilations, at 8 by default) per
    *code object*: sharing one function (or a ``functools.partial``, which it
    wraps in one shared helper) between architectures, stages and dtypes would
    hit that cap and silently fall back to eager. So each (net, stage) gets a
    copy of the stage function with its own code object, ``net`` bound as the
    default of its last argument. Static shapes: a block size compiles once
    (the last block of a Gram is padded to it).
    """
    fresh = types.FunctionType(
        fn.__code__.replace(), fn.__globals__, fn.__name__, (net,), fn.__closure__
    )
    return torch.compile(fresh, dynamic=False)


def run_stage(eager: Callable, use_compile: bool, net: Net, *args):
    """``eager(*args, net=net)``, through its compiled copy when ``use_compile``."""
    if use_compile and not STATE["failed"]:
        try:
            return compiled(eager, net)(*args)
        # a missing or broken compiler raises many kinds of errors: fall back, once, loudly
        except Exception as exc:  # noqa: BLE001
            STATE["failed"] = True
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); using eager "
                f"torch from now on (set KERNELZOO_COMPILE=0 to skip the attempt)",
                RuntimeWarning,
                stacklevel=4,
            )
    return eager(*args, net=net)
