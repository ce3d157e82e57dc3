"""
Training a wide network without training it: ``kernelzoo.predict``
===================================================================

An infinitely wide network trained by gradient descent on the squared loss
evolves as a linear model in its parameters (Lee et al. 2019): its outputs at
any training time ``t`` are a closed-form function of the NTK, and their
distribution over random initialisations is Gaussian.
:func:`kernelzoo.predict.gradient_descent_mse_ensemble` computes that mean and
covariance (neural-tangents' function of the same name, in torch, equal to it
to 1e-8 in float64); :func:`kernelzoo.predict.accuracy_over_time` gives the
test accuracy along training from the Grams. Here a fully connected ReLU
network of depth 3 and a conv net on the digits.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

import kernelzoo as kz
from kernelzoo import predict
from kernelzoo.data import load_dataset

train, test = load_dataset("digits", "train", n=200), load_dataset("digits", "test", n=100)
x_train = torch.as_tensor(train.X, dtype=torch.float64)
x_test = torch.as_tensor(test.X, dtype=torch.float64)
times = np.logspace(-1, 4, 16)

nets = {"fc, depth 3": "ntk(depth=3)",
        "conv, depth 2, flatten": "ntk(architecture='conv', depth=2, readout='flatten')"}
curves = {}
for label, spec in nets.items():
    k = kz.kernel(spec)
    K_train, K_test_train = k.gram(x_train), k.gram(x_test, x_train)
    acc = predict.accuracy_over_time(K_train, train.y, K_test_train, test.y,
                                     times=[*times, None], diag_reg=1e-4)
    curves[label] = acc.numpy()
    print(f"{label}: test accuracy {acc[0]:.2f} at t={times[0]:g}, "
          f"{acc[-2]:.2f} at t={times[-1]:g}, {acc[-1]:.2f} at t = infinity")

# %%
# The ensemble's mean and standard deviation for one test image, along training:
# the outputs start at 0 with the NNGP's spread and move towards the one-hot
# targets.
y_train = torch.nn.functional.one_hot(torch.as_tensor(train.y), 10).double()
predict_fn = predict.gradient_descent_mse_ensemble("ntk(depth=3)", x_train, y_train,
                                                   diag_reg=1e-4)
out = predict_fn(t=times, x_test=x_test[:1], get="ntk", compute_cov=True)
mean = out.mean[:, 0, :]                                     # (len(times), 10)
std = out.covariance[:, 0, 0].clamp_min(0).sqrt()            # (len(times),)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
for label, acc in curves.items():
    ax1.semilogx(times, acc[:-1], "o-", ms=3, label=label)
    ax1.axhline(acc[-1], ls=":", color=ax1.lines[-1].get_color())
ax1.set_xlabel("training time t")
ax1.set_ylabel("test accuracy (100 digits)")
ax1.set_title("infinitely wide nets, gradient descent on MSE\n(dotted: t = infinity)")
ax1.legend()
truth = int(test.y[0])
for c in range(10):
    style = {"lw": 2.5} if c == truth else {"lw": 0.8, "alpha": 0.6}
    ax2.semilogx(times, mean[:, c], **style, label=f"class {truth} (true)" if c == truth else None)
ax2.fill_between(times, mean[:, truth] - std, mean[:, truth] + std, alpha=0.2)
ax2.set_xlabel("training time t")
ax2.set_ylabel("ensemble mean output (± 1 std for the true class)")
ax2.set_title("one test digit, fc depth 3")
ax2.legend()
fig.tight_layout()
