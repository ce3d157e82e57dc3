"""
Which activation? NNGP and NTK kernels of eight activations
============================================================

The infinite-width kernel of a network depends on its activation through the
activation's *dual map* (``E[f(u) f(v)]`` for jointly Gaussian ``u, v``):
kernelzoo has them in closed form for ``relu``, ``abs``, ``erf``, ``gelu``,
``sin``, ``cos``, ``sign`` and ``leaky_relu`` (equal to neural-tangents).
Left: the NNGP of a one-hidden-layer net between two unit vectors at angle
``theta`` (normalised by its value at 0), which is what a deeper net composes;
right: kernel-regression test accuracy of a depth-3 fully connected NTK of each
activation on the digits.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import kernelzoo as kz
from kernelzoo import predict
from kernelzoo.data import load_dataset

activations = ["relu", "abs", "erf", "gelu", "sin", "cos", "sign", "leaky_relu"]
angles = np.linspace(0, np.pi, 91)
pairs = torch.tensor(np.stack([np.cos(angles), np.sin(angles)], 1))
base = torch.tensor([[1.0, 0.0]], dtype=torch.float64)

train, test = load_dataset("digits", "train", n=300), load_dataset("digits", "test", n=200)
x_train = torch.as_tensor(train.X, dtype=torch.float64)
x_test = torch.as_tensor(test.X, dtype=torch.float64)

fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
accuracies = []
for act in activations:
    params = {"activation": act, "negative_slope": 0.2} if act == "leaky_relu" else {
        "activation": act}
    nngp = kz.kernel("nngp", depth=1, readout_dense=False, **params)
    curve = nngp.gram(base, pairs)[0].numpy()
    left.plot(np.degrees(angles), curve / curve[0], label=act)
    ntk = kz.kernel("ntk", depth=3, bias_std=0.1, **params)
    acc = predict.accuracy_over_time(ntk.gram(x_train), train.y, ntk.gram(x_test, x_train),
                                     test.y, times=[None], diag_reg=1e-4)
    accuracies.append(float(acc[0]))
    print(f"{act:>10}: NTK kernel-regression test accuracy {acc[0]:.3f}")
left.set_xlabel("angle between the inputs (degrees)")
left.set_ylabel("k(x, y) / k(x, x), one hidden layer")
left.legend(fontsize=8)
left.grid(alpha=0.3)
right.barh(activations, accuracies, color="tab:blue")
right.set_xlim(min(accuracies) - 0.05, 1.0)
right.set_xlabel("test accuracy (depth-3 fc NTK, 300 digits, t = infinity)")
fig.tight_layout()
plt.show()
