"""
A CKN's Nyström approximations converge to the exact kernel
===========================================================

The exact CKN kernel (Mairal 2016; Bietti & Mairal 2019) sums, over the last
layer's positions, a kernel on patches built layer by layer. kernelzoo computes
it exactly, pair of images by pair of images, and approximates it two ways:

- ``layerwise``: Mairal's Nyström CKN network: at each layer the patch kernel
  is projected onto the span of ``budget`` anchors (spherical k-means of the
  training patches), ``psi(z) = |z| kappa(Z^T Z)^(-1/2) kappa(Z^T z / |z|)``;
  the budget counts anchors per layer.
- ``nystrom``: the generic Nyström approximation of the whole kernel on
  ``budget`` landmark images (a prefix of one seeded permutation, so the sets
  are nested).

Both Grams converge to the exact Gram as the budget grows; the layerwise
network does it without ever computing the exact kernel, and its features
are an ordinary network's output.
"""

# %%
import matplotlib.pyplot as plt
import torch

import kernelzoo as kz
from kernelzoo.data import load_dataset

X = torch.as_tensor(load_dataset("digits", split="train", n=120).X, dtype=torch.float64)
k = kz.kernel("ckn(filter_size=3, subsampling=2, sigma=0.6)")
K = k.gram(X)  # (120, 120), exact
print(k.spec, tuple(K.shape))


def relative_error(K_approx: torch.Tensor) -> float:
    return float(torch.linalg.norm(K_approx - K) / torch.linalg.norm(K))


# %%
# Anchors per layer for ``layerwise`` (the same at both layers here), landmark
# images for ``nystrom``.
budgets = [4, 8, 16, 32, 64]
errors = {"layerwise": [], "nystrom": []}
for budget in budgets:
    for method in errors:
        a = k.approximate(method, budget=budget, seed=0).fit(X)
        errors[method].append(relative_error(a.gram(X)))
        print(f"{method:9s} budget={budget:3d}  n_features={a.n_features:5d}  "
              f"relative Frobenius error={errors[method][-1]:.4f}")

# %%
fig, ax = plt.subplots(figsize=(5.5, 4))
for method, values in errors.items():
    ax.loglog(budgets, values, "o-", label=method)
ax.set_xlabel("budget (anchors per layer / landmark images)")
ax.set_ylabel(r"$\|K_{approx} - K\|_F \,/\, \|K\|_F$")
ax.set_title("CKN on 120 digits: approximation error")
ax.legend()
ax.grid(True, which="both", alpha=0.3)
fig.tight_layout()

# %%
# With as many landmarks as images the Nyström Gram is the exact Gram on those
# images (up to the eigenvalue clipping); the layerwise network is exact on the
# training images once every distinct patch is an anchor.
