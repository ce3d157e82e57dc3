"""Full float32 precision on CUDA while kernelzoo computes.

On Ampere and later GPUs PyTorch lets cuDNN convolutions (and, when asked,
cuBLAS products) run in TF32, which keeps 10 mantissa bits: relative errors
near 1e-3 in float32 Grams, a thousand times the round-off that the CPU path
and the references agree to. kernelzoo's Grams, diagonals and features turn
TF32 off while they run on a CUDA device and restore the caller's flags after;
``set_allow_tf32(True)`` lets them use it (faster, ~1e-3 relative error).

The flags are process-wide, so entries from several threads are counted: the
first to enter saves the caller's flags and the last to leave restores them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import torch

__all__ = ["full_precision", "get_allow_tf32", "set_allow_tf32"]

_lock = threading.Lock()
_depth = 0
_saved: tuple[bool, bool] | None = None
_allow_tf32 = False


def set_allow_tf32(allow: bool) -> None:
    """Let kernelzoo's CUDA computations use TF32 (default False: full float32).

    Parameters
    ----------
    allow : bool
        True leaves PyTorch's own TF32 flags as the caller set them.
    """
    global _allow_tf32
    if not isinstance(allow, bool):
        raise TypeError(f"allow must be a bool, got {type(allow).__name__}")
    _allow_tf32 = allow


def get_allow_tf32() -> bool:
    """Whether kernelzoo's CUDA computations may use TF32 (:func:`set_allow_tf32`)."""
    return _allow_tf32


@contextlib.contextmanager
def full_precision(device: torch.device | str | None) -> Iterator[None]:
    """TF32 off (cuBLAS and cuDNN) inside, when ``device`` is a CUDA device.

    A no-op on the CPU, or when :func:`set_allow_tf32` allowed TF32.

    Parameters
    ----------
    device : torch.device or str or None
        Where the computation runs.

    Yields
    ------
    None
        Inside, cuBLAS and cuDNN compute in full float32 on CUDA.
    """
    if _allow_tf32 or device is None or torch.device(device).type != "cuda":
        yield
        return
    global _depth, _saved
    with _lock:
        if _depth == 0:
            _saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = _saved
                _saved = None
