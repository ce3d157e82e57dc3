"""``torch.compile`` plumbing for the conv NNGP/NTK stages, apart from the recursion.

One compiled copy per (stage function, architecture); a compilation failure
disables compiling for the rest of the process with one warning, and the eager
function runs instead. ``KERNELZOO_COMPILE=0`` never compiles, ``=1`` always
does (without gradients), the default only for work large enough to amortise it:
:data:`MIN_COMPILE_WORK` for the pairs-outermost stages (hyperparameters baked
in), :data:`MIN_FUSED_WORK` for the fused small-image graph
(:mod:`~kernelzoo.kernels.functional.conv_fused`: hyperparameters at runtime,
compiled once per structure and dtype, cached on disk by inductor).
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

__all__ = [
    "BACKEND",
    "MIN_COMPILE_WORK",
    "MIN_FUSED_WORK",
    "STATE",
    "compile_wanted",
    "compiled",
    "disable",
    "run_stage",
]

# a failure disables compiling for the rest of the process
STATE = {"failed": False}
# compiling costs tens of seconds per (architecture, block shape): worth it from about
# this many (position pair x layer x image pair) updates, a minute or more of eager work
MIN_COMPILE_WORK = 2e8
# the fused graph compiles once per (structure, dtype) and is reused for every grid value
# and block size, and from inductor's on-disk cache by later processes: from about 1e6
# units (a Gram of 8 digits at depth 2), a few seconds of eager work
MIN_FUSED_WORK = 1e6
#: the ``torch.compile`` backend (tests swap in a counting backend)
BACKEND = "inductor"


def compile_wanted(
    work: float, *tensors: torch.Tensor | None, threshold: float = MIN_COMPILE_WORK
) -> bool:
    """Whether to compile a stage of ``work`` units for these tensors.

    Parameters
    ----------
    work : float
        Units of work (position pair x layer x image pair).
    *tensors : torch.Tensor or None
        The inputs (no compiling with gradients).
    threshold : float
        The least work compiled by default (without ``KERNELZOO_COMPILE``).

    Returns
    -------
    bool
        True to compile.
    """
    flag = os.environ.get("KERNELZOO_COMPILE", "auto").strip().lower()
    if flag in ("0", "false", "no", "off") or STATE["failed"]:
        return False
    if needs_grad(*tensors) or not hasattr(torch, "compile"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return work >= threshold


@functools.lru_cache(maxsize=64)
def compiled(fn: Callable, net: Net, dynamic: bool | None = False):
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
    return torch.compile(fresh, dynamic=dynamic, backend=BACKEND)


def disable(exc: BaseException) -> None:
    """Stop compiling for the rest of the process after ``exc``, with one warning.

    Parameters
    ----------
    exc : BaseException
        The compilation error.
    """
    STATE["failed"] = True
    warnings.warn(
        f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); using eager "
        f"torch from now on (set KERNELZOO_COMPILE=0 to skip the attempt)",
        RuntimeWarning,
        stacklevel=4,
    )


def run_stage(eager: Callable, use_compile: bool, net: Net, *args):
    """``eager(*args, net=net)``, through its compiled copy when ``use_compile``."""
    if use_compile and not STATE["failed"]:
        try:
            return compiled(eager, net)(*args)
        # a missing or broken compiler raises many kinds of errors: fall back, once, loudly
        except Exception as exc:  # noqa: BLE001
            disable(exc)
    return eager(*args, net=net)
