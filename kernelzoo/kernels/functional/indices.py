"""Indices: the few entries of a tile that need fixing (without a host round trip on GPUs),
and the blocks of image pairs of the conv paths (:func:`pair_chunks`).

``mask.nonzero()`` returns a tensor whose length the host must know, so on a
GPU it waits for the device (a synchronisation) once per call; inside a tiled
Gram that is once per tile. :func:`masked_indices` gives the host path on the
CPU (where nothing waits) and, on accelerators, a fixed number of candidate
slots (``torch.nonzero_static``), so that the refinement that follows is
queued like any other operation.

A tensor built on the host and copied to a GPU (``torch.tensor(values,
device="cuda")``, ``cpu_tensor.to("cuda")``) is a blocking copy: the host
waits for the device's queue too. Per-call constants therefore come from
:func:`device_constant` (built once per values, dtype and device), and the
pair blocks are built on the device itself.
"""

from __future__ import annotations

import functools

import torch

__all__ = ["DEVICE_PATH_ON_CPU", "REFINE_ELEMENTS", "device_constant", "masked_indices",
           "pair_chunks", "refine_bytes", "refine_chunk", "write_masked"]

#: take the accelerator path on CPU tensors as well (tests use it to check, on a CPU
#: machine, that the GPU path makes no host round trip)
DEVICE_PATH_ON_CPU = False


def masked_indices(
    mask: torch.Tensor, capacity: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``(rows, cols, found)``: the True entries of a 2-D ``mask``.

    On the CPU: exactly the True entries, ``found`` None. On other devices (or
    with :data:`DEVICE_PATH_ON_CPU`): ``capacity`` slots and no host round
    trip; slots past the True entries repeat the first True entry (so that a
    value computed for a slot is that entry's value), or are all ``(0, 0)``
    when there is none, which the 0-dim bool ``found`` then says. True entries
    beyond ``capacity`` are left out (the caller keeps their unrefined value).

    Shape: ``mask (n, m)`` -> ``rows``, ``cols`` ``(k,)``; ``found`` ``()`` or None.
    """
    if mask.device.type == "cpu" and not DEVICE_PATH_ON_CPU:
        idx = mask.nonzero()
        return idx[:, 0], idx[:, 1], None
    size = max(1, min(int(capacity), mask.numel()))
    flat = torch.nonzero_static(mask.reshape(-1), size=size, fill_value=-1)[:, 0]
    found = flat[0] >= 0
    flat = torch.where(flat >= 0, flat, torch.where(found, flat[0], 0))
    m = mask.shape[1]
    return flat // m, flat % m, found


def write_masked(target: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                 values: torch.Tensor, found: torch.Tensor | None) -> None:
    """``target[rows, cols] = values`` for the output of :func:`masked_indices`, in place.

    Repeated slots carry the same value; with nothing ``found`` every slot is
    ``(0, 0)`` and gets its own value back.

    Shape: ``target (n, m)``; ``rows``, ``cols``, ``values`` ``(k,)``.
    """
    if found is not None:
        values = torch.where(found, values, target[rows, cols])
    target[rows, cols] = values


def pair_chunks(n: int, m: int, symmetric: bool, chunk: int, device: torch.device):
    """Blocks of at most ``chunk`` image pairs ``(rows, cols)``, row by row: all of
    ``[0, n) x [0, m)``, or only ``j >= i`` when ``symmetric`` (a Gram of X with
    itself needs each unordered pair once)."""
    pending: list[tuple[int, int, int]] = []
    count = 0

    def build():  # on the device: no host-to-device copy (a wait on GPUs) per block
        rows = torch.cat([torch.full((j1 - j0,), i, dtype=torch.long, device=device)
                          for i, j0, j1 in pending])
        cols = torch.cat([torch.arange(j0, j1, device=device) for _, j0, j1 in pending])
        return rows, cols

    for i in range(n):
        j = i if symmetric else 0
        while j < m:
            take = min(m - j, chunk - count)
            pending.append((i, j, j + take))
            count += take
            j += take
            if count == chunk:
                yield build()
                pending, count = [], 0
    if pending:
        yield build()


@functools.lru_cache(maxsize=256)
def device_constant(values: tuple[float, ...], dtype: torch.dtype,
                    device: torch.device) -> torch.Tensor:
    """``torch.tensor(values)`` on ``device``, built once per (values, dtype, device).

    On a GPU each build is a blocking host-to-device copy; inside a tiled Gram
    it would be one per tile. The tensor is shared: never write into it.

    Shape: ``(len(values),)``.
    """
    return torch.tensor(values, dtype=dtype, device=device)



#: elements of one gathered ``(slots, d)`` buffer of the near-duplicate refinements
#: (``distance.refine_near_duplicates``, ``dot.refine_at``)
REFINE_ELEMENTS = 1 << 20


def refine_chunk(d: int) -> int:
    """Candidate entries a refinement redoes at once, for inputs of ``d`` features."""
    return max(1, REFINE_ELEMENTS // max(1, d))


def refine_bytes(n_rows: int, n_cols: int, d: int, item: int) -> int:
    """Working memory of a near-duplicate refinement on an ``(n_rows, n_cols)`` tile of
    inputs of ``d`` features: the candidate slots (GPU: ``4 (n + m)``; their indices) and
    the gathered ``(chunk, d)`` buffers (two for distances; the angles' refinement holds
    a few more, within the tile's own temporaries); what a ``_block_bytes`` adds."""
    slots = 4 * (n_rows + n_cols)
    return 3 * 8 * slots + 2 * item * min(slots, refine_chunk(d)) * d
