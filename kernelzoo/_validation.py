"""Checks at the boundary: inputs, dtypes, devices and memory budgets.

Every public entry point converts its inputs here, so that a bad argument gets
an error that names it, whatever the family.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_int",
    "check_image_shape",
    "as_tensor",
    "check_pair",
    "parse_memory_budget",
    "get_memory_budget",
    "set_memory_budget",
    "as_vectors",
    "as_images",
]

_DEFAULT_BUDGET = 1 << 30  # 1 GiB
_global_budget: int | None = None

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def check_int(
    value: Any,
    name: str,
    minimum: int | None = None,
    choices: Sequence[int] | None = None,
    odd: bool = False,
    positive: bool = False,
) -> int:
    """``value`` as an int, or a ``TypeError``/``ValueError`` naming ``name``.

    The one integer check of the package (parameters, budgets, options, tile
    sizes): numpy integers and integral floats (``3.0``, as spec strings and
    JSON may give them) are accepted; booleans are not. ``positive`` means
    ``> 0`` (budgets and counts), ``minimum`` a bound of its own.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            kind = "a positive integer" if positive else "an integer"
            raise TypeError(f"{name} must be {kind}, got {value!r}")
    value = int(value)
    if choices is not None and value not in choices:
        raise ValueError(f"{name}={value} is not allowed; expected one of {list(choices)}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if odd and value % 2 == 0:
        raise ValueError(f"{name} must be odd, got {value}")
    return value


def check_image_shape(value: Any, name: str = "image_shape") -> tuple[int, int, int] | None:
    """``None`` or ``(C, H, W)`` of positive ints (a list or tuple), as a tuple."""
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{name} must be None or (C, H, W), got {value!r}")
    return tuple(check_int(v, name, minimum=1) for v in value)  # type: ignore[return-value]


def parse_memory_budget(value: int | float | str | None, name: str = "memory_budget") -> int:
    """Bytes from an int/float or a string such as ``"2GB"``, ``"512MiB"``.

    ``None`` gives the global default (:func:`set_memory_budget`, then the
    ``KERNELZOO_MEMORY_BUDGET`` environment variable, then 1 GiB).
    """
    if value is None:
        return get_memory_budget()
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number of bytes or a string like '2GB', got {value!r}")
    if isinstance(value, (int, float, np.integer, np.floating)):
        nbytes = float(value)
    elif isinstance(value, str):
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*", value)
        if match is None or match.group(2).lower() not in _UNITS:
            raise ValueError(
                f"{name}={value!r} is not a size; expected bytes or a string like "
                f"'2GB', '512MB', '1GiB'"
            )
        nbytes = float(match.group(1)) * _UNITS[match.group(2).lower()]
    else:
        raise TypeError(f"{name} must be a number of bytes or a string like '2GB', got {value!r}")
    if not np.isfinite(nbytes) or nbytes <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return int(nbytes)


def get_memory_budget() -> int:
    """The default working-memory budget of a Gram evaluation, in bytes."""
    if _global_budget is not None:
        return _global_budget
    env = os.environ.get("KERNELZOO_MEMORY_BUDGET")
    if env:
        return parse_memory_budget(env, "KERNELZOO_MEMORY_BUDGET")
    return _DEFAULT_BUDGET


def set_memory_budget(value: int | float | str | None) -> None:
    """Set the global default memory budget (``None`` restores 1 GiB / the env var)."""
    global _global_budget
    _global_budget = None if value is None else parse_memory_budget(value)


def as_tensor(x: Any, name: str = "X") -> torch.Tensor:
    """Numpy or torch in, a floating torch tensor out (integers become float32).

    Raises a ``TypeError`` for non-numeric data and a ``ValueError`` for empty
    input or NaN/Inf entries.
    """
    if isinstance(x, torch.Tensor):
        t = x
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise TypeError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
        arr = np.ascontiguousarray(arr)
        if not arr.flags.writeable:  # torch warns on read-only buffers; copy instead
            arr = arr.copy()
        t = torch.from_numpy(arr)
    if t.is_complex():
        raise TypeError(f"{name} must be real, got dtype {t.dtype}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    elif t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float32)
    if t.ndim == 0:
        raise ValueError(f"{name} must have a sample axis, got a scalar")
    if t.numel() == 0 or t.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); expected at least one sample")
    # a finite sum proves every entry finite (an inf or NaN entry makes it inf or NaN)
    # in one reduction; only a sum that overflows needs the entrywise check
    if not bool(torch.isfinite(t.sum())) and not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or Inf values")
    return t


def check_pair(x: torch.Tensor, y: torch.Tensor, x_name: str = "X", y_name: str = "Y") -> None:
    """X and Y must share dtype and device."""
    if x.dtype != y.dtype:
        raise TypeError(
            f"{x_name} and {y_name} have different dtypes ({x.dtype} and {y.dtype}); "
            f"cast one of them"
        )
    if x.device != y.device:
        raise ValueError(
            f"{x_name} and {y_name} are on different devices ({x.device} and {y.device}); "
            f"move one of them"
        )


def as_vectors(x: torch.Tensor, name: str = "X") -> torch.Tensor:
    """(n, d) from (n, d) or (n, ...) (images are flattened)."""
    if x.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) or an image batch, got shape "
            f"{tuple(x.shape)}; use X.reshape(-1, 1) for one feature or X.reshape(1, -1) "
            f"for one sample"
        )
    return x.reshape(x.shape[0], -1) if x.ndim > 2 else x


def as_images(
    x: torch.Tensor, image_shape: tuple[int, int, int] | None, name: str = "X"
) -> torch.Tensor:
    """(n, C, H, W) from (n, C, H, W), or from (n, d) with ``image_shape=(C, H, W)``."""
    if x.ndim == 4:
        if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
            raise ValueError(
                f"{name} has image shape {tuple(x.shape[1:])} but image_shape={tuple(image_shape)}"
            )
        return x
    if x.ndim == 3 and image_shape is None:
        # (n, H, W): one channel
        return x.unsqueeze(1)
    if x.ndim == 2:
        if image_shape is None:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)} (n, d) but this is a convolutional kernel: "
                f"pass images (n, C, H, W) or give image_shape=(C, H, W)"
            )
        c, h, w = image_shape
        if c * h * w != x.shape[1]:
            raise ValueError(
                f"{name} has {x.shape[1]} features but image_shape={tuple(image_shape)} "
                f"needs {c * h * w}"
            )
        return x.reshape(x.shape[0], c, h, w)
    raise ValueError(
        f"{name} must be images (n, C, H, W) or (n, d) with image_shape, got shape "
        f"{tuple(x.shape)}"
    )
