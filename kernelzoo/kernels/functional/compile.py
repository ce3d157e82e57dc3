"""``torch.compile`` plumbing for the conv NNGP/NTK stages, apart from the recursion.

One compiled copy per (stage function, architecture structure); a compilation
failure disables compiling for the rest of the process with one warning, and
the eager function runs instead. ``KERNELZOO_COMPILE=0`` never compiles, ``=1``
always does (without gradients), the default from :data:`MIN_COMPILE_WORK`
units of work. Both the pairs-outermost stages
(:mod:`~kernelzoo.kernels.functional.conv_pairs`) and the fused small-image
graph (:mod:`~kernelzoo.kernels.functional.conv_fused`) take the
hyperparameters as a runtime tensor and the number of pairs as a dynamic axis:
one compilation per (structure, dtype) serves every grid value and every
Gram size, and inductor's on-disk FX graph cache (``$TORCHINDUCTOR_CACHE_DIR``,
default ``/tmp/torchinductor_$USER``) serves later processes.
"""

from __future__ import annotations

import dataclasses
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
    "call_dynamic",
    "MIN_COMPILE_WORK",
    "STATE",
    "compile_wanted",
    "compiled",
    "disable",
    "run_stage",
    "structure",
]

# a failure disables compiling for the rest of the process
STATE = {"failed": False}
# one compilation per (structure, dtype), a few seconds (tens cold), reused for every grid
# value and block size: worth it from about 1e6 units (position pair x layer x image
# pair; a Gram of 8 digits at depth 2), a few seconds of eager work
MIN_COMPILE_WORK = 1e6
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
    default of its last argument. ``dynamic=None`` with axes marked dynamic
    (:func:`call_dynamic`): one compilation for every block size.
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


def call_dynamic(fn: Callable, net: Net, args: tuple, axis: int):
    """``fn(*args, net=net)`` compiled with the pair axis ``axis`` of every tensor
    argument of two or more dimensions dynamic: one compilation for every block
    size (a block of one pair would be specialised: callers pad it to two)."""
    for t in args:
        if isinstance(t, torch.Tensor) and t.ndim > 1:
            torch._dynamo.mark_dynamic(t, axis % t.ndim)
    return compiled(fn, net, dynamic=None)(*args)


def run_stage(eager: Callable, use_compile: bool, net: Net, *args):
    """``eager(*args, net=net)``, through its compiled copy (pair axis 0 dynamic)
    when ``use_compile``."""
    if use_compile and not STATE["failed"]:
        try:
            return call_dynamic(eager, net, args, 0)
        # a missing or broken compiler raises many kinds of errors: fall back, once, loudly
        except Exception as exc:  # noqa: BLE001
            disable(exc)
    return eager(*args, net=net)


def structure(net: Net) -> Net:
    """``net`` with its hyperparameter values blanked: the key of one compilation.

    Parameters
    ----------
    net : Net
        The architecture.

    Returns
    -------
    Net
        The same structure with ``weight_var=1`` and ``bias_var=0``.
    """
    return dataclasses.replace(net, weight_var=1.0, bias_var=0.0)
