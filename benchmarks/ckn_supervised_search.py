"""Validation-only search of the supervised CKN's training, on the quick Fashion-MNIST split.

One ``SupervisedCKN.fit_split`` run per call, on the split of ``kernelzoo reproduce
fashion-ckn-supervised --quick`` (8000 fit / 2000 validation images; the test split is
never loaded), printing the training loss, the median gradient norm and the validation
accuracy of every refit. The fourth session's search (benchmarks/results/reproduce.md)
ran, e.g.::

    python benchmarks/ckn_supervised_search.py '{"epochs": 20, "lr": 0.03, "min_lambda": 1e-6}'
    python benchmarks/ckn_supervised_search.py '{"anchors": [8, 16], "epochs": 10, "lr": 0.3}'

The JSON object holds ``SupervisedCKN`` options, plus ``anchors`` (default [16, 32]),
``seed`` (0) and ``dtype`` (``float32``).
"""

from __future__ import annotations

import json
import sys
import time

import torch

from kernelzoo.reproduce._ckn import ckn_config
from kernelzoo.reproduce._common import Context, default_loader, load_splits


def main(argv: list[str]) -> None:
    opts = json.loads(argv[0]) if argv else {}
    anchors = tuple(opts.pop("anchors", (16, 32)))
    seed = int(opts.pop("seed", 0))
    dtype = getattr(torch, opts.pop("dtype", "float32"))
    data = load_splits(Context("search", quick=True, loader=default_loader), "fashion-mnist")
    cfg = ckn_config(anchors=anchors, subsampling=(2, 3), centering=True, n_patches=10000,
                     kmeans_iters=10)
    start = time.perf_counter()
    sup = cfg.kernel().approximate("supervised", budget=list(anchors), seed=seed,
                                   n_patches=10000, kmeans_iters=10, progress=False, **opts)
    sup.fit_split(data.x_fit.to(dtype), data.y_fit, data.x_val.to(dtype), data.y_val)
    print(json.dumps(opts), f"anchors {list(anchors)} seed {seed} {dtype}",
          f"{time.perf_counter() - start:.0f} s")
    print("  loss     ", [round(v, 4) for v in sup.loss_history_])
    print("  grad norm", [round(v, 3) for v in sup.grad_norm_history_])
    print("  val      ", [round(100 * v, 2) for v in sup.val_accuracy_history_],
          "kept", sup.best_epoch_)


if __name__ == "__main__":
    main(sys.argv[1:])
