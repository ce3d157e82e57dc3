"""
A Gram in a Dask/zarr store: interrupted, resumed, verified
===========================================================

:func:`kernelzoo.integrations.dask.gram_to_store` (``kernelzoo gram SPEC --x
X.npy --store K.zarr`` on the command line) computes a Gram as tiles, each a
Dask task, into a zarr store. A manifest records every finished tile with a
checksum (and an append-only journal backs it up), so that:

- a run that stops half-way resumes with only the missing tiles;
- a rerun with another spec, input or dtype is refused;
- a damaged chunk is detected and recomputed.

Here the cluster is a ``LocalCluster`` inside this process (``processes=False``,
one worker, one thread); on a real cluster pass the scheduler's address
instead (the store must then be on a shared file system). Needs the ``dist``
extra (``pip install "kernelzoo[dist]"``).
"""

# %%
import logging
import os
import tempfile
import warnings

import distributed
import matplotlib.pyplot as plt
import numpy as np
import torch

import kernelzoo as kz
from kernelzoo.data import load_dataset
from kernelzoo.integrations.dask import gram_to_store
from kernelzoo.kernels.arccos import ArcCosine
from kernelzoo.store import load_store, store_status

X = torch.as_tensor(load_dataset("digits", split="train", n=240).X, dtype=torch.float64)
spec = "arccos(degree=1, depth=2)"
folder = tempfile.TemporaryDirectory()
store = os.path.join(folder.name, "K.zarr")
cluster = distributed.LocalCluster(processes=False, n_workers=1, threads_per_worker=1,
                                   dashboard_address=None)
client = distributed.Client(cluster)


# %%
# A first run that fails half-way: this kernel (the same spec) raises on its
# sixth tile, like a job killed by its scheduler. The tiles finished before are
# recorded in the store.
class FailingArcCosine(ArcCosine):
    calls = 0

    def gram(self, X, Y=None, memory_budget=None):
        type(self).calls += 1
        if type(self).calls > 5:
            raise RuntimeError("simulated failure")
        return super().gram(X, Y, memory_budget=memory_budget)


# the worker also logs the failing task, asynchronously: keep its log quiet
logging.getLogger("distributed.worker").setLevel(logging.CRITICAL)
try:
    gram_to_store(FailingArcCosine(degree=1, depth=2), X, store=store, tile=40,
                  scheduler=client, progress=False)
except RuntimeError as error:
    print("first run stopped:", error)
status = store_status(store)
print(f"chunks recorded: {status['n_done']} of {status['n_chunks']} "
      f"(a symmetric Gram records a tile and its mirror); complete: {status['complete']}")

# %%
# The rerun computes only the missing tiles; a third run finds nothing to do.
second = gram_to_store(kz.kernel(spec), X, store=store, scheduler=client, progress=False)
third = gram_to_store(kz.kernel(spec), X, store=store, scheduler=client, progress=False)
for name, result in [("second", second), ("third", third)]:
    print(f"{name} run: {result.n_computed} tiles computed, {result.n_reused} reused")

# %%
# Damage one chunk on disk: the next run warns, recomputes that tile only, and
# the store again equals the Gram computed in memory.
array = kz.store.open_store(store, mode="r+")
array[40:80, 0:40] = np.zeros((40, 40))
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    fourth = gram_to_store(kz.kernel(spec), X, store=store, scheduler=client, progress=False)
print(f"fourth run: {fourth.n_corrupt} corrupt, {fourth.n_computed} recomputed; "
      + "; ".join(str(w.message)[:80] for w in caught))
K_store = load_store(store)
K_memory = kz.kernel(spec).gram(X).numpy()
print("max |store - memory| =", float(np.abs(K_store - K_memory).max()),
      "(tiles and the one-piece Gram round differently)")

# %%
fig, ax = plt.subplots(figsize=(5, 4.5))
image = ax.imshow(K_store, cmap="viridis")
for edge in range(40, 240, 40):
    ax.axhline(edge - 0.5, color="w", lw=0.5)
    ax.axvline(edge - 0.5, color="w", lw=0.5)
ax.set_title(f"{spec}\n240 digits, 6 x 6 tiles of 40 (21 computed)")
fig.colorbar(image, ax=ax)
fig.tight_layout()

client.close()
cluster.close()
folder.cleanup()
