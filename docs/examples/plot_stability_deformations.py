"""
Stability of a CKN to deformations, against raw pixels
======================================================

Bietti and Mairal (JMLR 2019) bound the distance between the CKN
representations of an image ``x`` and of a deformed copy ``L_tau x`` by
``(C1 (1 + n) ||grad tau||_inf + C2 / sigma_n ||tau||_inf) ||x||`` for
non-expansive CKNs (``kappa(1) = 1``, ``kappa'(1) <= 1``, so ``sigma = 1`` for
``kappa='exp'``): small smooth deformations move the representation little,
and a larger last pooling ``sigma_n`` makes it less sensitive to translations.
In pixel space (the linear kernel) the same deformations move the image much
more.

The RKHS distance needs only the kernel:
``||Phi(x) - Phi(y)||^2 = k(x, x) + k(y, y) - 2 k(x, y)``; we report it relative
to ``||Phi(x)||``. Deformations come from :func:`kernelzoo.data.smooth_deformation`
(a smoothed random displacement field scaled to a given maximum displacement).
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import kernelzoo as kz
from kernelzoo.data import load_dataset, smooth_deformation, translate

X = torch.as_tensor(load_dataset("digits", split="train", n=24).X, dtype=torch.float64)


def relative_distance(k, X, Y) -> float:
    """Mean over images of ||Phi(x) - Phi(y)|| / ||Phi(x)||."""
    kxx, kyy = k.diag(X), k.diag(Y)
    kxy = torch.stack([k.gram(X[i : i + 1], Y[i : i + 1])[0, 0] for i in range(len(X))])
    return float(((kxx + kyy - 2 * kxy).clamp_min(0).sqrt() / kxx.sqrt()).mean())


# ``sigma=1`` makes kappa'(1) = 1: the non-expansive CKNs the bound is stated for
kernels = {
    "CKN, last pooling 1": kz.kernel("ckn", subsampling=[2, 1], sigma=1.0),
    "CKN, last pooling 2": kz.kernel("ckn", subsampling=[2, 2], sigma=1.0),
    "CKN, last pooling 4": kz.kernel("ckn", subsampling=[2, 4], sigma=1.0),
}


def pixel_distance(X, Y) -> float:
    flat = X.flatten(1)
    return float(((Y.flatten(1) - flat).norm(dim=1) / flat.norm(dim=1)).mean())


# %%
# Smooth deformations of growing size (``smoothness`` = 2 pixels), and
# translations by whole pixels.
sizes = [0.25, 0.5, 1.0, 1.5]
shifts = [1, 2, 3]
deformed = {s: smooth_deformation(X, max_displacement=s, smoothness=2.0, seed=0)[0]
            for s in sizes}
shifted = {s: translate(X, (s, 0)) for s in shifts}

curves = {"pixels": ([pixel_distance(X, deformed[s]) for s in sizes],
                     [pixel_distance(X, shifted[s]) for s in shifts])}
for name, k in kernels.items():
    curves[name] = ([relative_distance(k, X, deformed[s]) for s in sizes],
                    [relative_distance(k, X, shifted[s]) for s in shifts])
for name, (d, t) in curves.items():
    print(f"{name:22s} deformations {np.round(d, 3)}  shifts {np.round(t, 3)}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
axes[0].imshow(torch.cat([X[0, 0], deformed[1.5][0, 0], shifted[2][0, 0]], 1), cmap="gray_r")
axes[0].set_title("an image, deformed (1.5 px), shifted (2 px)")
axes[0].axis("off")
for name, (d, t) in curves.items():
    axes[1].plot(sizes, d, "o-", label=name)
    axes[2].plot(shifts, t, "o-", label=name)
axes[1].set_xlabel(r"$\|\tau\|_\infty$ (pixels), smooth field")
axes[2].set_xlabel("vertical shift (pixels)")
for ax in axes[1:]:
    ax.set_ylabel("relative distance")
    ax.grid(alpha=0.3)
axes[2].legend(fontsize=8)
fig.tight_layout()
