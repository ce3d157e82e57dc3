"""Tiled Gram evaluation under a memory budget.

The output ``(n, m)`` is allocated once on the input's device; tiles of rows
and columns are evaluated by the kernel's ``block`` function so that the
working memory beyond the output stays under the budget. For a Gram of X with
itself only tiles on or above the diagonal are computed and mirrored.
"""

from __future__ import annotations

import concurrent.futures
import threading
import warnings
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from kernelzoo._validation import format_bytes

__all__ = ["SYMMETRIC_TILE", "choose_tile", "symmetric_tile", "tile_ranges", "tiled_gram"]

BlockFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]
BytesFn = Callable[[int, int, torch.Tensor], int]

#: side of the square tiles of a symmetric Gram (when the budget allows): small
#: enough to skip most of the lower triangle and to keep a tile in cache while
#: its elementwise map runs, large enough for an efficient GEMM
SYMMETRIC_TILE = 512


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


def symmetric_tile(n: int, fit: int, device: torch.device | None = None) -> int:
    """Side of the square tiles of a Gram of ``n`` inputs with themselves.

    At most ``fit`` (what the budget allows). On the CPU at most
    :data:`SYMMETRIC_TILE`, so that most of the lower triangle is skipped and a
    tile's elementwise map runs while its GEMM output is still in cache; on an
    accelerator (where every tile costs kernel launches) a quarter of ``n``,
    at least :data:`SYMMETRIC_TILE`.

    Parameters
    ----------
    n : int
        Inputs on each side.
    fit : int
        The largest side the memory budget allows.
    device : torch.device, optional
        Where the Gram is computed (None: the CPU).

    Returns
    -------
    int
        The tile side.
    """
    if device is None or device.type == "cpu":
        return max(1, min(fit, n, SYMMETRIC_TILE))
    return max(1, min(fit, n, max(SYMMETRIC_TILE, -(-n // 4))))


def tiled_gram(
    block: BlockFn,
    x: torch.Tensor,
    y: torch.Tensor | None,
    budget: int,
    block_bytes: BytesFn,
    progress: bool | None = None,
    desc: str = "gram",
    into: bool = False,
) -> torch.Tensor:
    """Evaluate ``block(x[rows], y[cols], same)`` over tiles into one ``(n, m)`` tensor.

    Parameters
    ----------
    block : callable
        ``block(x_tile, y_tile, same) -> (len(x_tile), len(y_tile))``; ``same``
        is True on diagonal tiles of a symmetric Gram (x_tile is y_tile). With
        ``into=True``: ``block(x_tile, y_tile, same, out)``, where ``out`` is a
        contiguous ``(len(x_tile), len(y_tile))`` buffer the tile may be written
        into (and returned), or None when gradients are needed.
    x, y : torch.Tensor
        Prepared inputs ``(n, ...)``, ``(m, ...)``; ``y=None`` for x with itself.
    budget : int
        Bytes of working memory allowed beyond the output.
    block_bytes : callable
        ``block_bytes(n_rows, n_cols, x) -> bytes`` for one tile: everything it
        holds at once, the tiler's buffers included (one tile-sized buffer for
        the tile, and for a symmetric Gram one for its transpose).
    progress : bool, optional
        Show a progress bar (default: when there are many tiles and stderr is a terminal).
    desc : str
        The progress bar's label.
    into : bool
        Whether ``block`` takes the ``out`` buffer (see above).

    Returns
    -------
    torch.Tensor
        ``(n, m)``, on x's device.

    Notes
    -----
    Without gradients the tile and its transpose live in two buffers allocated
    once, so that no tile-sized memory is allocated per tile.
    """
    symmetric = y is None
    n = x.shape[0]
    m = n if symmetric else y.shape[0]
    grad = torch.is_grad_enabled() and (
        x.requires_grad or (y is not None and y.requires_grad)
    )

    workers = _tile_workers(x, into and not grad)

    def cost(r: int, c: int) -> int:
        return workers * block_bytes(r, c, x)  # every worker holds a tile at once

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
        tr = tc = symmetric_tile(n, min(tr, tc), x.device)
        ranges = tile_ranges(n, tr)
        # off-diagonal tiles (twice the work of a diagonal one) first: a balanced end
        jobs = [(a, b) for i, a in enumerate(ranges) for b in ranges[i + 1:]]
        jobs += [(a, a) for a in ranges]
    else:
        jobs = [(a, b) for a in tile_ranges(n, tr) for b in tile_ranges(m, tc)]
    fill = _Fill(block, x, y, out, into, grad, (tr, tc))
    show = progress if progress is not None else (len(jobs) >= 64)
    bar = tqdm(total=len(jobs), desc=desc, disable=(not show) or None, leave=False)
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                fill(job)
                bar.update()
        else:
            _fill_in_threads(fill, jobs, workers, bar)
    finally:
        bar.close()
    return out


def _tile_workers(x: torch.Tensor, eligible: bool) -> int:
    """Threads that evaluate tiles side by side: torch's thread count on the CPU for blocks
    that write into buffers without gradients, else 1 (tiles in turn, each op threaded).

    Each tile then runs on one thread in its own core's cache, with no barrier between
    the many elementwise operations of a tile (on a loaded machine every barrier of a
    threaded operation can cost a scheduler time slice).
    """
    if not eligible or x.device.type != "cpu":
        return 1
    return max(1, torch.get_num_threads())


class _Fill:
    """Evaluates one tile job into the output (and its mirror), with per-thread buffers."""

    def __init__(self, block: Callable, x: torch.Tensor, y: torch.Tensor | None,
                 out: torch.Tensor, into: bool, grad: bool, tile: tuple[int, int]) -> None:
        self.block, self.x, self.y, self.out = block, x, y, out
        self.into, self.grad, self.tile = into, grad, tile
        self._local = threading.local()

    def _buffers(self) -> _Buffers | None:
        if self.grad:
            return None
        buffers = getattr(self._local, "buffers", None)
        if buffers is None:
            buffers = self._local.buffers = _Buffers(*self.tile, self.out)
        return buffers

    def __call__(self, job: tuple[tuple[int, int], tuple[int, int]]) -> None:
        (r0, r1), (c0, c1) = job
        block, x, out = self.block, self.x, self.out
        symmetric = self.y is None
        same = symmetric and r0 == c0
        yt = x[c0:c1] if symmetric else self.y[c0:c1]
        buffers = self._buffers()
        if not self.into:
            tile_k = block(x[r0:r1], yt, same)
        elif buffers is None:
            tile_k = block(x[r0:r1], yt, same, None)
        elif not symmetric and c1 - c0 == out.shape[1]:  # whole rows: a contiguous slice
            target = out[r0:r1]
            tile_k = block(x[r0:r1], yt, same, target)
            if tile_k is not target:
                target.copy_(tile_k)
            return
        else:
            tile_k = block(x[r0:r1], yt, same, buffers.tile(r1 - r0, c1 - c0))
        if not symmetric:
            out[r0:r1, c0:c1] = tile_k
        elif buffers is None or tile_k.requires_grad:  # autograd: out of place
            mirror = tile_k.T
            if same:  # GEMMs are not exactly symmetric: make the diagonal tile so
                out[r0:r1, c0:c1] = 0.5 * (tile_k + mirror)
            else:
                out[r0:r1, c0:c1] = tile_k
                out[c0:c1, r0:r1] = mirror
        else:
            # a transposed copy into a strided slice is slow; transpose into a
            # contiguous buffer first (blocked kernel), then copy rows
            mirror = buffers.mirror(tile_k)
            target = out[r0:r1, c0:c1]
            if same:  # (a + b) / 2 is exactly symmetric
                torch.add(tile_k, mirror, out=target).mul_(0.5)
            else:
                target.copy_(tile_k)
                out[c0:c1, r0:r1] = mirror


def _fill_in_threads(fill: _Fill, jobs: list, workers: int, bar) -> None:
    """``fill`` every job on ``workers`` threads, each running torch on one thread.

    ``torch.set_num_threads`` is process-wide: the calling thread's count is put
    back when the tiles are done (the caller waits meanwhile).
    """
    threads = torch.get_num_threads()
    try:
        with concurrent.futures.ThreadPoolExecutor(
            max_workers=workers, initializer=torch.set_num_threads, initargs=(1,),
        ) as pool:
            for future in concurrent.futures.as_completed([pool.submit(fill, j) for j in jobs]):
                future.result()
                bar.update()
    finally:
        torch.set_num_threads(threads)


class _Buffers:
    """The tile buffer and the transposed-tile buffer of a Gram, each allocated once, on
    first use."""

    def __init__(self, tr: int, tc: int, like: torch.Tensor) -> None:
        self._size = tr * tc
        self._opts = {"dtype": like.dtype, "device": like.device}
        self._tile: torch.Tensor | None = None
        self._mirror: torch.Tensor | None = None

    def tile(self, r: int, c: int) -> torch.Tensor:
        """A contiguous ``(r, c)`` view of the tile buffer."""
        if self._tile is None:
            self._tile = torch.empty(self._size, **self._opts)
        return self._tile[: r * c].view(r, c)

    def mirror(self, tile: torch.Tensor) -> torch.Tensor:
        """``tile.T`` copied into the contiguous transposed-tile buffer."""
        r, c = tile.shape
        if self._mirror is None:
            self._mirror = torch.empty(self._size, **self._opts)
        return self._mirror[: r * c].view(c, r).copy_(tile.T)
