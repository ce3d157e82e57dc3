"""
The conv NTK and its finite-width (empirical) approximation
===========================================================

The neural tangent kernel of an infinitely wide convolutional net (Jacot et
al. 2018; Arora et al. 2019) is computed in closed form by kernelzoo, equal to
neural-tangents' ``stax`` in the "ntk" parameterization. The ``empirical``
approximation draws one random network of a given width (the budget) and
computes ``J(x) J(y)^T``, the inner products of its parameter gradients. As the
width grows the empirical NTK concentrates around the infinite-width kernel.
The dashed line shows ``1 / sqrt(width)`` (the size of the random
fluctuations) for reference; the scatter at the largest width also shows a
systematic offset, a finite-width correction that shrinks with the width.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import kernelzoo as kz
from kernelzoo.data import load_dataset

X = torch.as_tensor(load_dataset("digits", split="train", n=24).X)  # float32 (24, 1, 8, 8)
k = kz.kernel("ntk", architecture="conv", depth=2, readout="gap")
K = k.gram(X)
print(k.spec)

# %%
# A few random networks per width; the error of each against the exact NTK.
widths = [8, 32, 128, 512]
seeds = range(3)
errors = np.array([
    [float(torch.linalg.norm(k.approximate("empirical", budget=w, seed=s).fit(X).gram(X) - K)
           / torch.linalg.norm(K)) for s in seeds]
    for w in widths
])
for w, e in zip(widths, errors):
    print(f"width {w:4d}: relative error {e.mean():.3f} +- {e.std():.3f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
ax1.errorbar(widths, errors.mean(1), yerr=errors.std(1), fmt="o-", capsize=3,
             label="empirical NTK")
ax1.loglog(widths, errors.mean(1)[0] * np.sqrt(widths[0] / np.array(widths)), "k--",
           label=r"$\propto 1/\sqrt{width}$")
ax1.set_xscale("log")
ax1.set_yscale("log")
ax1.set_xlabel("width (budget)")
ax1.set_ylabel("relative Frobenius error")
ax1.legend()
ax1.set_title("conv NTK, depth 2, GAP readout")

K_wide = k.approximate("empirical", budget=widths[-1], seed=0).fit(X).gram(X)
ax2.scatter(K.flatten(), K_wide.flatten(), s=6)
lims = [float(K.min()), float(K.max())]
ax2.plot(lims, lims, "k--", lw=1)
ax2.set_xlabel("exact NTK entry")
ax2.set_ylabel(f"empirical NTK entry (width {widths[-1]})")
fig.tight_layout()
