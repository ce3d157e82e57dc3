"""The exact CKN's evaluation plan: layer sizes, parameter checks, per-run state and
block sizes under the memory budget (used by :mod:`kernelzoo.kernels.ckn`)."""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from kernelzoo._validation import format_bytes
from kernelzoo.kernels.functional.ckn_ops import (
    PairPooling,
    patch_matrix,
    patch_norms_from_diag,
    pooled_size,
)
from kernelzoo.kernels.functional.dot import safe_sqrt

__all__ = ["block_sizes", "first_patch_norms", "layer_sizes", "stability_conditions"]


#: on the CPU, a sub-block of pairs whose first-layer Gram exceeds this many bytes
#: falls out of cache; probes: 1-2 pairs of 28x28 per block ran 2x faster than 8
_CPU_BLOCK_BYTES = 4 << 20
#: on the CPU, the later (pooled) Grams of a block of pairs stay under this many bytes
_CPU_LATER_BYTES = 4 << 20
#: on a GPU, more pairs per block than this gains nothing
_MAX_PAIRS_PER_BLOCK = 4096


def layer_sizes(
    height: int, width: int, subsampling: Sequence[int]
) -> list[tuple[int, int]]:
    """Map sizes ``(H_k, W_k)`` at the input of every layer, then after the last pooling.

    Parameters
    ----------
    height, width : int
        The input image's size.
    subsampling : sequence of int
        The pooling stride of every layer.

    Returns
    -------
    list of tuple of int
        ``len(subsampling) + 1`` sizes.
    """
    sizes = [(height, width)]
    for s in subsampling:
        h, w = sizes[-1]
        sizes.append((pooled_size(h, s), pooled_size(w, s)))
    return sizes


def _per_layer(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    """A ``Param`` check for a per-layer value: a scalar (every layer) or a non-empty list."""

    def per_layer(value: Any, name: str) -> Any:
        if isinstance(value, (list, tuple)):
            if len(value) == 0:
                raise ValueError(f"{name} must be a scalar or a non-empty list, got {value!r}")
            return [check(v, name) for v in value]
        return check(value, name)

    if hasattr(check, "choices"):  # a per-layer choice exposes its values, as check_choice
        per_layer.choices = check.choices  # type: ignore[attr-defined]
    return per_layer


def _optional(check: Callable[[Any, str], Any]) -> Callable[[Any, str], Any]:
    return lambda value, name: None if value is None else check(value, name)


def _check_number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    return float(value)


@dataclasses.dataclass
class _Plan:
    """Per-layer sizes and poolings, on the device and in the dtype of a computation."""

    sizes: list[tuple[int, int]]
    pools: list[PairPooling | None]  # pooling after layer k (None: s = 1), last one unused
    trace_weights: torch.Tensor  # (P_n, P_n): the last pooling folded into the final trace
    first_block: int = 1  # pairs per first-layer sub-block (set with the block size)


@dataclasses.dataclass
class _Stats:
    """Per-image quantities computed once: patch norms of every layer and the diagonal."""

    norms: list[torch.Tensor]  # layer k: (n, H_k, W_k)
    diag: torch.Tensor  # (n,)


class _Workspace:
    """Buffers reused by every block of one evaluation without gradients (no allocation
    per block: a fresh block-sized tensor costs page faults once freed memory has gone
    back to the system), one per name, grown to the largest size asked."""

    def __init__(self) -> None:
        self._buffers: dict[str, torch.Tensor] = {}

    def get(self, name: str, shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
        """A contiguous tensor of ``shape`` (contents undefined) on ``like``'s device/dtype."""
        size = math.prod(shape)
        buf = self._buffers.get(name)
        if buf is None or buf.numel() < size:
            buf = self._buffers[name] = like.new_empty(size)
        return buf[:size].view(shape)


@dataclasses.dataclass
class _Run:
    """What every block of one Gram evaluation shares."""

    plan: _Plan
    block: int  # pairs per block
    grad: bool
    symmetric: bool
    stats_x: _Stats
    stats_y: _Stats
    work: _Workspace | None  # None with gradients


@dataclasses.dataclass
class _TilePairs:
    """The pairs of one tile: first-layer data of its rows and columns, and the pairs'
    indices within the tile (``ix``, ``iy``) and offsets in the Gram (``r0``, ``c0``)."""

    left: tuple
    right: tuple
    ix: torch.Tensor
    iy: torch.Tensor
    r0: int
    c0: int


#: kappa'(1) of each dot-product function (given sigma, used by ``exp`` only)
_KAPPA_SLOPE_AT_ONE = {
    "exp": lambda sigma: 1.0 / (sigma * sigma),
    "arccos0": lambda sigma: math.inf,
    "arccos1": lambda sigma: 1.0,
    "poly2": lambda sigma: 2.0,
}



def block_sizes(
    plan: _Plan, gram_bytes: tuple[int, int], gathered: int, budget: int, cpu: bool
) -> int:
    """Pairs per block; sets ``plan.first_block``, the pairs per first-layer sub-block.

    The budget is split: a quarter for the first-layer sub-block (its Gram,
    about three copies with the pooling's outputs), half for the block (per
    pair: the gathered first-layer rows of both images and about three copies
    of the largest later Gram), a quarter for the tiles' first-layer data. On
    the CPU, a first-layer sub-block also stays under ``_CPU_BLOCK_BYTES`` and a
    block's later Grams under ``_CPU_LATER_BYTES`` (cache); on a GPU only the
    budget bounds them.

    Parameters
    ----------
    plan : _Plan
        The evaluation plan (its ``first_block`` is set).
    gram_bytes : tuple of int
        Bytes of one pair's first-layer Gram and of its largest later Gram.
    gathered : int
        Bytes of one pair's gathered first-layer rows (both images).
    budget : int
        The memory budget in bytes.
    cpu : bool
        Whether the computation runs on the CPU.

    Returns
    -------
    int
        Pairs per block.
    """
    first, later = gram_bytes
    per_pair = 3 * first + gathered + 3 * later
    if per_pair > budget:
        warnings.warn(
            f"ckn: one indivisible image pair needs {format_bytes(per_pair)}, more than "
            f"the memory budget of {format_bytes(budget)}; running it anyway",
            RuntimeWarning, stacklevel=5,
        )
    first_block = max(1, budget // (4 * 3 * first))
    block = max(1, budget // (2 * (gathered + 3 * later)))
    if cpu:
        first_block = min(first_block, max(1, _CPU_BLOCK_BYTES // first))
        block = min(block, max(1, _CPU_LATER_BYTES // max(later, 1)))
    first_block = int(min(first_block, _MAX_PAIRS_PER_BLOCK))
    block = int(min(block, _MAX_PAIRS_PER_BLOCK))
    plan.first_block = min(first_block, block)
    return block


def stability_conditions(
    kappa: Sequence[str], sigma: Sequence[float], subsampling: Sequence[int]
) -> dict[str, Any]:
    """Whether Bietti and Mairal's bound's assumptions hold: kappa(1) = 1 (every kappa
    here) and kappa'(1) <= 1 at every layer.

    Parameters
    ----------
    kappa, sigma : sequence
        The dot-product function and sigma of every layer.
    subsampling : sequence of int
        The pooling of every layer (the last one is reported).

    Returns
    -------
    dict
        ``holds``, ``conditions`` (text) and ``last_pooling``.
    """
    slopes = [_KAPPA_SLOPE_AT_ONE[k](s) for k, s in zip(kappa, sigma, strict=True)]
    text = ", ".join(f"{s:.3g}" for s in slopes)
    return {
        "holds": all(s <= 1.0 + 1e-12 for s in slopes),
        "conditions": f"kappa(1) = 1; kappa'(1) per layer = [{text}] (needs <= 1)",
        "last_pooling": int(subsampling[-1]),
    }


def first_patch_norms(x: torch.Tensor, f: int, centering: bool) -> torch.Tensor:
    """Norms of the first layer's ``f x f`` patches.

    Centred (``centering``): the norms of the centred patch matrices themselves (in
    chunks of images), so that the normalised patches have norm 1 to rounding.

    Shape: ``(n, C, H, W)`` -> ``(n, H, W)``.

    Parameters
    ----------
    x : torch.Tensor
        Images.
    f : int
        The first layer's filter size.
    centering : bool
        Centre each patch first.

    Returns
    -------
    torch.Tensor
        The norms.
    """
    if not centering:
        return safe_sqrt(patch_norms_from_diag(x.square().sum(1), f))
    h, w = x.shape[2:]
    chunk = max(1, (64 << 20) // (h * w * x.shape[1] * f * f * x.element_size()))
    parts = []
    for s0 in range(0, x.shape[0], chunk):
        patches = patch_matrix(x[s0:s0 + chunk], f)
        centred = patches - patches.mean(2, keepdim=True)
        parts.append(safe_sqrt(centred.square().sum(2)).reshape(-1, h, w))
    return torch.cat(parts)
