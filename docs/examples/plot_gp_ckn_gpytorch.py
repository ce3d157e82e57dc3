"""
GP regression with a CKN kernel in gpytorch
===========================================

``k.to_gpytorch()`` turns any kernelzoo kernel into a ``gpytorch.kernels.Kernel``.
Here an exact CKN kernel, wrapped in gpytorch's ``ScaleKernel``, is the
covariance of an ``ExactGP`` that regresses the rotation angle of rotated
digits (the task of Salakhutdinov & Hinton 2007, on the 8x8 digits padded to
12x12 so that rotations stay inside the image). The CKN's own
hyperparameters are fixed; the output scale and the noise train through the
marginal likelihood. A fixed exact kernel caches its Gram blocks by input
content, so the training loop computes the CKN Gram once, and prediction
computes the test-train block and only the diagonal of the test-test block.
"""

# %%
import gpytorch
import matplotlib.pyplot as plt
import torch

import kernelzoo as kz
from kernelzoo.bench.gp import gp_metrics, rotated_digits

data = rotated_digits(160, 80, seed=0, source="digits")
x_train, y_train, x_test, y_test, image_shape, name = data
x_train, y_train, x_test, y_test = (torch.as_tensor(a) for a in (x_train, y_train, x_test, y_test))
print(name, tuple(x_train.shape), image_shape)  # flattened images (n, C*H*W), as gpytorch wants
y_mean, y_std = y_train.mean(), y_train.std()
target = (y_train - y_mean) / y_std


class GP(gpytorch.models.ExactGP):
    def __init__(self, x, y, covar, likelihood):
        super().__init__(x, y, likelihood)
        self.mean = gpytorch.means.ZeroMean()
        self.covar = covar

    def forward(self, x):
        return gpytorch.distributions.MultivariateNormal(self.mean(x), self.covar(x))


def fit_predict(spec: str, **options):
    covar = gpytorch.kernels.ScaleKernel(kz.kernel(spec).to_gpytorch(**options))
    likelihood = gpytorch.likelihoods.GaussianLikelihood()
    model = GP(x_train, target, covar, likelihood).double()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    model.train()
    for _ in range(60):
        optimizer.zero_grad()
        loss = -mll(model(x_train), target)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        pred = likelihood(model(x_test))
    return pred.mean * y_std + y_mean, pred.variance * y_std**2


# %%
# The CKN against an RBF kernel on the same pixels (its lengthscale trains too).
results = {}
# ``gram_dtype=torch.float32`` computes the fixed CKN Gram in float32 for this float64 GP
# (about 3x faster, relative error about 1e-7).
ckn_options = {"image_shape": image_shape, "gram_dtype": torch.float32}
for label, spec, options in [("ckn", "ckn(sigma=0.6)", ckn_options),
                             ("rbf", "rbf(lengthscale=4.0)", {})]:
    mean, var = fit_predict(spec, **options)
    results[label] = (mean, var)
    metrics = gp_metrics(mean, var, y_test)
    print(f"{label}: RMSE {metrics['rmse']:.1f} degrees, NLPD {metrics['nlpd']:.2f}, "
          f"95% coverage {metrics['coverage95']:.2f}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
for ax, (label, (mean, var)) in zip(axes, results.items()):
    ax.errorbar(y_test, mean, yerr=1.96 * var.sqrt(), fmt="o", ms=3, alpha=0.6, capsize=0)
    ax.plot([-45, 45], [-45, 45], "k--", lw=1)
    ax.set_title(f"{label}: RMSE {gp_metrics(mean, var, y_test)['rmse']:.1f} degrees")
    ax.set_xlabel("true angle (degrees)")
axes[0].set_ylabel("predicted angle, 95% interval")
fig.tight_layout()
