"""Indices: the few entries of a tile that need fixing (without a host round trip on GPUs),
and the blocks of image pairs of the conv paths (:func:`pair_chunks`).

``mask.nonzero()`` returns a tensor whose length the host must know, so on a
GPU it waits for the device (a synchronisation) once per call; inside a tiled
Gram that is once per tile. :func:`masked_indices` gives the host path on the
CPU (where nothing waits) and, on accelerators, a fixed number of candidate
slots (``torch.nonzero_static``), so that the refinement that follows is
queued like any other operation.
"""

from __future__ import annotations

import torch

__all__ = ["DEVICE_PATH_ON_CPU", "masked_indices", "pair_chunks", "write_masked"]

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

    def build():
        rows = torch.cat([torch.full((j1 - j0,), i, dtype=torch.long) for i, j0, j1 in pending])
        cols = torch.cat([torch.arange(j0, j1) for _, j0, j1 in pending])
        return rows.to(device), cols.to(device)

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
