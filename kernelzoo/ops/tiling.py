"""Tiled Gram evaluation under a memory budget.

The output ``(n, m)`` is allocated once on the input's device; tiles of rows
and columns are evaluated by the kernel's ``block`` function so that the
working memory beyond the output stays under the budget. For a Gram of X with
itself only tiles on or above the diagonal are computed and mirrored.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from kernelzoo._validation import format_bytes

__all__ = ["tiled_gram", "choose_tile", "tile_ranges"]

BlockFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
BytesFn = Callable[[int, int, torch.Tensor], int]

# Symmetric Grams gain from skipping the lower triangle only when there are
# several tiles per side; below this many rows a tile is never split further.
_MIN_SYMMETRIC_TILE = 512


def choose_tile(n_rows: int, n_cols: int, budget: int, block_bytes: Callable[[int, int], int]):
    """The largest square-ish tile ``(tr, tc)`` whose working memory fits the budget.

    Returns ``(tr, tc, fits)``; ``fits`` is False when even a 1x1 tile exceeds
    the budget (it then runs anyway, with a warning from the caller).

    Parameters
    ----------
    n_rows, n_cols : int
        The output's size.
    budget : int
        Bytes.
    block_bytes : callable
        ``block_bytes(tr, tc)``: bytes of one tile.

    Returns
    -------
    tuple
        ``(tr, tc, fits)``.
    """
    if block_bytes(1, 1) > budget:
        return 1, 1, False
    lo, hi = 1, max(n_rows, n_cols)
    while lo < hi:  # largest t with block_bytes(min(t, n), min(t, m)) <= budget
        mid = (lo + hi + 1) // 2
        if block_bytes(min(mid, n_rows), min(mid, n_cols)) <= budget:
            lo = mid
        else:
            hi = mid - 1
    tr, tc = min(lo, n_rows), min(lo, n_cols)
    # a thin side leaves room to widen the other one
    if tc == n_cols and tr < n_rows:
        lo2, hi2 = tr, n_rows
        while lo2 < hi2:
            mid = (lo2 + hi2 + 1) // 2
            if block_bytes(mid, tc) <= budget:
                lo2 = mid
            else:
                hi2 = mid - 1
        tr = lo2
    return tr, tc, True


def tile_ranges(n: int, tile: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in steps of ``tile``.

    Parameters
    ----------
    n : int
        Length.
    tile : int
        Step.

    Returns
    -------
    list of tuple of int
        The ranges.
    """
    return [(s, min(s + tile, n)) for s in range(0, n, tile)]


def tiled_gram(
    block: BlockFn,
    x: torch.Tensor,
    y: torch.Tensor | None,
    budget: int,
    block_bytes: BytesFn,
    progress: bool | None = None,
    desc: str = "gram",
) -> torch.Tensor:
    """Evaluate ``block(x[rows], y[cols], same)`` over tiles into one ``(n, m)`` tensor.

    Parameters
    ----------
    block : callable
        ``block(x_tile, y_tile, same) -> (len(x_tile), len(y_tile))``; ``same``
        is True on diagonal tiles of a symmetric Gram (x_tile is y_tile).
    x, y : torch.Tensor
        Prepared inputs ``(n, ...)``, ``(m, ...)``; ``y=None`` for x with itself.
    budget : int
        Bytes of working memory allowed beyond the output.
    block_bytes : callable
        ``block_bytes(n_rows, n_cols, x) -> bytes`` for one tile.
    progress : bool, optional
        Show a progress bar (default: when there are many tiles and stderr is a terminal).
    desc : str
        The progress bar's label.

    Returns
    -------
    torch.Tensor
        ``(n, m)``, on x's device.
    """
    symmetric = y is None
    n = x.shape[0]
    m = n if symmetric else y.shape[0]

    def cost(r: int, c: int) -> int:
        return block_bytes(r, c, x)

    tr, tc, fits = choose_tile(n, m, budget, cost)
    if not fits:
        warnings.warn(
            f"{desc}: one indivisible block needs {format_bytes(cost(1, 1))}, more than the "
            f"memory budget of {format_bytes(budget)}; running it anyway",
            RuntimeWarning,
            stacklevel=3,
        )
    out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    if symmetric:
        tile = min(tr, tc)
        if n > _MIN_SYMMETRIC_TILE:
            tile = min(tile, max(_MIN_SYMMETRIC_TILE, math.ceil(n / 4)))
        ranges = tile_ranges(n, tile)
        jobs = [(a, b) for i, a in enumerate(ranges) for b in ranges[i:]]
    else:
        jobs = [(a, b) for a in tile_ranges(n, tr) for b in tile_ranges(m, tc)]
    show = progress if progress is not None else (len(jobs) >= 64)
    for (r0, r1), (c0, c1) in tqdm(jobs, desc=desc, disable=(not show) or None, leave=False):
        if symmetric:
            same = r0 == c0
            tile_k = block(x[r0:r1], x[c0:c1], same)
            # a transposed copy into a strided slice is slow; transpose into a
            # contiguous buffer first (blocked kernel), then copy rows
            if tile_k.requires_grad:
                mirror = tile_k.T
            else:
                mirror = tile_k.T.contiguous()
            if same:  # GEMMs are not exactly symmetric: make the diagonal tile so
                tile_k = 0.5 * (tile_k + mirror)
                out[r0:r1, c0:c1] = tile_k
            else:
                out[r0:r1, c0:c1] = tile_k
                out[c0:c1, r0:r1] = mirror
        else:
            out[r0:r1, c0:c1] = block(x[r0:r1], y[c0:c1], False)
    return out
