"""Checks at the boundary: inputs, dtypes, devices and memory budgets.

Every public entry point converts its inputs here, so that a bad argument gets
an error that names it, whatever the family.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

__all__ = [
    "check_int",
    "check_float",
    "check_seed",
    "SEED_MAX",
    "check_image_shape",
    "format_bytes",
    "as_tensor",
    "check_pair",
    "check_finite_result",
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


#: the largest seed: the range every random source of the package accepts (torch
#: generators, numpy's ``default_rng``, scikit-learn's ``random_state``)
SEED_MAX = 2**32 - 1


def check_seed(value: Any, name: str = "seed") -> int:
    """A seed as an int in ``[0, 2**32 - 1]``, or an error naming ``name``.

    The one seed rule of the package, checked where a seed is given (an
    approximation's constructor), not where it is first used: scikit-learn's
    ``random_state`` and numpy take no larger or negative seeds, so
    ``seed=2**70`` is refused instead of failing inside ``fit``.
    """
    seed = check_int(value, name)
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"{name} must be in [0, 2**32 - 1], got {seed}")
    return seed


def check_float(
    value: Any,
    name: str,
    minimum: float | None = None,
    maximum: float | None = None,
    *,
    below_maximum: bool = False,
    allow_none: bool = False,
) -> float | None:
    """``value`` as a finite float within bounds, or a ``TypeError``/``ValueError`` naming it.

    Numbers only (Python, numpy, 0-d tensors); booleans and strings are
    refused with a ``TypeError``; NaN, infinities and values outside
    ``[minimum, maximum]`` (``[minimum, maximum)`` with ``below_maximum``)
    with a ``ValueError`` that states the range.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_complex():
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        kind = "a number or None" if allow_none else "a number"
        raise TypeError(f"{name} must be {kind}, got {value!r}")
    number = float(value)
    lo = "-inf" if minimum is None else f"{minimum:g}"
    hi = "inf)" if maximum is None else f"{maximum:g}" + (")" if below_maximum else "]")
    bounds = f"finite and in [{lo}, {hi}"
    if not math.isfinite(number):
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    if maximum is not None and (number > maximum or (below_maximum and number == maximum)):
        raise ValueError(f"{name} must be {bounds}, got {value!r}")
    return number


def format_bytes(nbytes: float) -> str:
    """A size in the largest binary unit that keeps it >= 1: ``"100 B"``, ``"19.5 KiB"``."""
    value = float(nbytes)
    if abs(value) < 1024:
        return f"{int(value)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")  # pragma: no cover


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
    """Set the global default memory budget (``None`` restores 1 GiB / the env var).

    Parameters
    ----------
    value : int, float, str or None
        Bytes, or a string such as ``"2GB"`` or ``"512MiB"``.
    """
    global _global_budget
    _global_budget = None if value is None else parse_memory_budget(value)


def as_tensor(x: Any, name: str = "X") -> torch.Tensor:
    """Numpy or torch in, a float32 or float64 torch tensor out (docs/INPUTS.md).

    float32 and float64 are kept; integers, booleans and half precision
    (float16, bfloat16) become float32 (the package computes in float32 or
    float64 only, and returns what it computed in). Raises a ``TypeError`` for
    non-numeric or complex data and a ``ValueError`` for a scalar, empty input
    or NaN/Inf entries.

    Shape: unchanged.
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


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry is finite: one sum (an inf or NaN entry makes it inf or NaN),
    and only when that overflows, the entrywise check in chunks of about 2**22 entries
    (no tensor of the output's size)."""
    if t.numel() == 0 or bool(torch.isfinite(t.sum())):
        return True
    flat = t.reshape(-1)
    step = 1 << 22
    return all(bool(torch.isfinite(flat[i:i + step]).all()) for i in range(0, flat.numel(), step))


def check_finite_result(
    out: torch.Tensor, what: str, inputs: dict[str, torch.Tensor | None]
) -> torch.Tensor:
    """``out``, or an ``OverflowError`` when it has NaN or Inf entries (never returned silently).

    Inputs are finite (:func:`as_tensor`), so a non-finite result means the
    values (or an intermediate that no scaling removes) exceed the output
    dtype's range at this input scale. The message names ``what`` (e.g.
    ``"arccos gram"``), the inputs, their largest entry and the dtype's limit.

    Shape: any.
    """
    if _all_finite(out.detach()):
        return out
    given = {name: t for name, t in inputs.items() if t is not None}
    names = " and ".join(given) or "the input"
    peak = max((float(t.detach().abs().max()) for t in given.values()), default=float("nan"))
    dtype = str(out.dtype).replace("torch.", "")
    raise OverflowError(
        f"{what}: the result for {names} (entries up to {peak:.3g}) has NaN or Inf values: "
        f"at this input scale it does not fit {dtype} (largest {torch.finfo(out.dtype).max:.3g}); "
        f"rescale {names}"
        + (", or use float64 input" if out.dtype != torch.float64 else "")
    )


def as_vectors(x: torch.Tensor, name: str = "X") -> torch.Tensor:
    """(n, d) from (n, d), or from an image batch (n, C, H, W) or (n, H, W), flattened.

    Any other rank is an error naming ``name`` (docs/INPUTS.md).

    Shape: ``(n, d)``, ``(n, H, W)`` or ``(n, C, H, W)`` -> ``(n, d)``.
    """
    if x.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D (n_samples, n_features) or an image batch, got shape "
            f"{tuple(x.shape)}; use X.reshape(-1, 1) for one feature or X.reshape(1, -1) "
            f"for one sample"
        )
    if x.ndim > 4:
        raise ValueError(
            f"{name} must be (n, d) vectors or an image batch (n, C, H, W), got {x.ndim}-D "
            f"shape {tuple(x.shape)}; reshape it to (n, d) yourself if flattening is meant"
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
