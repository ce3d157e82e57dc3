"""What a store holds, as a typed layout: the identity a rerun must agree on, and its tiles.

:class:`Layout` is exactly the identity fields of a store's manifest
(``kind``, ``kernel``, ``approximation``, ``x``, ``y``, ``symmetric``, ``shape``,
``dtype``, ``tile``); :func:`plan` derives it from a call's arguments.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from typing import Any

import torch

from kernelzoo import registry
from kernelzoo._io import fingerprint
from kernelzoo.approx.base import Approximation
from kernelzoo.kernels.base import Kernel
from kernelzoo.ops.tiling import choose_tile
from kernelzoo.store import chunk_slices, tile_key

__all__ = ["IDENTITY", "Layout", "plan", "task_chunks"]

#: identity fields of a store: a rerun must agree on all of them
IDENTITY = ("kind", "kernel", "approximation", "x", "y", "symmetric", "shape", "dtype", "tile")
_MAX_DEFAULT_TILE = 2048
_MIN_DEFAULT_TILE = 64
_NAMES = {
    "kind": "output kind",
    "kernel": "kernel spec",
    "approximation": "fitted approximation",
    "x": "input X (sha256/shape/dtype)",
    "y": "input Y (sha256/shape/dtype)",
    "symmetric": "symmetric flag (Y given or not)",
    "shape": "shape",
    "dtype": "dtype",
    "tile": "tile size",
}


def task_chunks(symmetric: bool, task: tuple[int, int]) -> list[str]:
    """The manifest keys a tile task writes: its chunk, and the mirror of a symmetric one."""
    i, j = task
    if symmetric and i != j:
        return [tile_key(i, j), tile_key(j, i)]
    return [tile_key(i, j)]


@dataclasses.dataclass(frozen=True)
class Layout:
    """The identity of a store's contents and its tiling (the manifest's identity fields).

    ``x``/``y`` are input fingerprints (:func:`kernelzoo._io.fingerprint`),
    ``approximation`` the identity of a fitted approximation (None for an
    exact kernel), ``shape`` ``[n, m]`` and ``tile`` ``[rows, columns]``.

    Parameters
    ----------
    kind : {'gram', 'features'}
        What the store holds.
    kernel : str
        The kernel's spec.
    approximation : dict or None
        The fitted approximation's identity.
    x, y : dict
        Input fingerprints (``y`` None for a symmetric Gram).
    symmetric : bool
        A Gram of x with itself.
    shape : list of int
        ``[n, m]``.
    dtype : str
        The store's dtype.
    tile : list of int
        ``[rows, columns]``.
    """

    kind: str
    kernel: str
    approximation: dict[str, Any] | None
    x: dict[str, Any] | None
    y: dict[str, Any] | None
    symmetric: bool
    shape: list[int]
    dtype: str
    tile: list[int]

    def identity(self) -> dict[str, Any]:
        """The manifest's identity fields, as JSON values."""
        return {name: getattr(self, name) for name in IDENTITY}

    def matches(self, manifest: dict[str, Any]) -> bool:
        """Whether a store's manifest was written for this very computation.

        Kernel specs are compared parsed, with defaults filled in
        (:func:`kernelzoo.registry.same_kernel`), so a parameter added later with
        a default does not invalidate a store; an approximation is compared by
        method, settings and fitted state, not by the module path of its class.

        Parameters
        ----------
        manifest : dict
            A store's manifest.

        Returns
        -------
        bool
            Whether it matches.
        """
        return all(_same(k, manifest.get(k), v) for k, v in self.identity().items())

    def describe_difference(self, path: str, manifest: dict[str, Any]) -> str:
        """The refusal message for a store written for another computation.

        Parameters
        ----------
        path : str
            The store.
        manifest : dict
            Its manifest.

        Returns
        -------
        str
            The message.
        """
        diffs = []
        for field, now in self.identity().items():
            was = manifest.get(field)
            if _same(field, was, now):
                continue
            if field in ("x", "y"):
                was = None if was is None else f"{was['shape']} {was['dtype']} {was['sha256'][:12]}"
                now = None if now is None else f"{now['shape']} {now['dtype']} {now['sha256'][:12]}"
            diffs.append(f"{_NAMES[field]}: store has {was!r}, this run has {now!r}")
        return (
            f"store {path!r} was written for a different computation ({'; '.join(diffs)}); "
            f"use another store path or delete this one"
        )

    def chunk_slices(self, i: int, j: int) -> tuple[slice, slice]:
        """Row and column slices of chunk ``(i, j)``.

        Parameters
        ----------
        i, j : int
            Row-tile and column-tile index.

        Returns
        -------
        tuple of slice
            ``(rows, columns)``.
        """
        return chunk_slices(self.identity(), i, j)

    def tasks(self) -> list[tuple[int, int]]:
        """Every tile task, row-major (on and above the diagonal for a symmetric Gram)."""
        (n, m), (tr, tc) = self.shape, self.tile
        n_rows, n_cols = -(-n // tr), -(-m // tc)
        if self.symmetric:
            return [(i, j) for i in range(n_rows) for j in range(i, n_rows)]
        return [(i, j) for i in range(n_rows) for j in range(n_cols)]

    def task_chunks(self, task: tuple[int, int]) -> list[str]:
        return task_chunks(self.symmetric, task)

    def task_entries(self, task: tuple[int, int]) -> int:
        """Kernel entries a task computes (a diagonal tile of a symmetric Gram: its upper
        triangle): its cost, for scheduling.

        Parameters
        ----------
        task : tuple of int
            The tile's (row, column) chunk index.

        Returns
        -------
        int
            The number of kernel entries.
        """
        rows, cols = self.chunk_slices(*task)
        r, c = rows.stop - rows.start, cols.stop - cols.start
        if self.symmetric and task[0] == task[1]:
            return r * (r + 1) // 2
        return r * c

    def schedule(self, tasks: list[tuple[int, int]]) -> list[tuple[int, int]]:
        """``tasks`` in the order to run them: the most entries first, then row-major.

        Longest first keeps the end of a run balanced over the workers: the
        diagonal tiles of a symmetric Gram (half the work) and the short edge
        tiles fill the tail instead of starting last (row-major put a full tile
        last, leaving all other workers idle for its duration).

        Parameters
        ----------
        tasks : list of tuple of int
            Tile (row, column) chunk indices.

        Returns
        -------
        list of tuple of int
            The same tasks, longest first.
        """
        return sorted(tasks, key=lambda t: (-self.task_entries(t), t))


def _same(field: str, was: Any, now: Any) -> bool:
    """One identity field of a stored manifest against this run's."""
    if field == "kernel" and isinstance(was, str) and isinstance(now, str):
        return registry.same_kernel(was, now)
    if field == "approximation" and isinstance(was, dict) and isinstance(now, dict):
        def strip(d: dict[str, Any]) -> dict[str, Any]:
            return {k: v for k, v in d.items() if k != "class"}  # code may move

        return strip(was) == strip(now)
    return was == now


def identify(model: Any) -> tuple[str, str, dict[str, Any] | None]:
    """``(kind of model, kernel spec, approximation identity or None)``."""
    if isinstance(model, Kernel):
        return "kernel", model.spec, None
    if isinstance(model, Approximation):
        state = model.fitted_state()
        h = hashlib.sha256()
        for name in sorted(state):
            value = state[name]
            h.update(name.encode())
            if isinstance(value, torch.Tensor):
                h.update(fingerprint(value)["sha256"].encode())
            else:
                h.update(repr(value).encode())
        approx = {
            "method": model.method,
            "budget": model.budget if not isinstance(model.budget, tuple) else list(model.budget),
            "seed": model.seed,
            "options": {k: repr(v) for k, v in sorted(model.opts.items())},
            "state_sha256": h.hexdigest(),
        }
        return "approximation", model.kernel.spec, approx
    raise TypeError(
        f"kernel must be a kernelzoo kernel (kz.kernel(...)) or a fitted approximation, "
        f"got {type(model).__name__}"
    )


def default_tile(model: Any, x_prepared: torch.Tensor, n: int, m: int, budget: int) -> int:
    """A square tile that fits the memory budget and gives several tasks per side.

    About eight tiles per side (tasks to balance over workers, and a fine grain
    for resuming), at least 64 and at most 2048 rows, and within the budget for
    kernels that say what a tile costs (:meth:`Kernel.tile_bytes`).
    """
    tile = min(_MAX_DEFAULT_TILE, max(_MIN_DEFAULT_TILE, math.ceil(max(n, m) / 8)))
    if isinstance(model, Kernel):
        tr, tc, _ = choose_tile(n, m, budget, lambda r, c: model.tile_bytes(r, c, x_prepared))
        tile = min(tile, max(tr, tc))
    return max(1, min(tile, max(n, m)))


def plan(model: Any, kind: str, x: torch.Tensor, y: torch.Tensor | None, tile: int | None,
         budget: int, existing: dict[str, Any] | None) -> Layout:
    """The layout of a run: validates the inputs against the model (on the client, rather
    than in the first task) and picks the tile (the store's when resuming).

    Shape: ``x`` ``(n, ...)``, ``y`` ``(m, ...)`` (CPU tensors) -> a store of ``(n, m)``
    (``(n, n_features)`` for features).
    """
    model_kind, spec, approx = identify(model)
    if kind == "gram" and not hasattr(model, "gram"):
        raise TypeError(f"{type(model).__name__} has no gram()")
    if model_kind == "kernel":
        x_prepared, _ = model.prepare_pair(x, y)
    else:
        x_prepared = model.prepare(x, "X")
        if y is not None:
            model.prepare(y, "Y")
    n = x.shape[0]
    if kind == "features":
        if not getattr(model, "has_features", False):
            raise ValueError(f"{model.method} has no explicit features; use gram_to_store")
        m = int(model.n_features)
    else:
        m = n if y is None else y.shape[0]
    if tile is None:
        if existing is not None and existing.get("shape") == [n, m]:
            tile_rc = list(existing["tile"])
        else:
            side = default_tile(model if kind == "gram" else None, x_prepared, n, m, budget)
            tile_rc = [side, m] if kind == "features" else [side, side]
    else:
        tile_rc = [min(tile, n), m] if kind == "features" else [min(tile, n), min(tile, m)]
    return Layout(
        kind=kind, kernel=spec, approximation=approx, x=fingerprint(x),
        y=None if y is None else fingerprint(y), symmetric=kind == "gram" and y is None,
        shape=[n, m], dtype=str(x.numpy().dtype), tile=tile_rc,
    )
