"""
A scikit-learn pipeline with ``KernelFeatures``
===============================================

:class:`kernelzoo.sklearn.KernelFeatures` wraps any kernelzoo approximation that
has explicit features (random features, Nyström, the layerwise CKN, Monte
Carlo NNGP...) as a scikit-learn transformer: ``fit`` fits the approximation,
``transform`` returns ``features(X)`` as a numpy array, and the usual
machinery (pipelines, cross-validation, grid search over ``budget`` or the
kernel spec) applies. Here: arc-cosine random features and a layerwise CKN,
each followed by a linear classifier, on the digits.
"""

# %%
import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeClassifierCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from kernelzoo.data import load_dataset
from kernelzoo.sklearn import KernelFeatures

train = load_dataset("digits", split="train", n=600)
test = load_dataset("digits", split="test", n=300)
X_train, X_test = train.X.reshape(len(train.X), -1), test.X.reshape(len(test.X), -1)


def pipeline(kernel: str, method: str, budget):
    return make_pipeline(
        KernelFeatures(kernel=kernel, method=method, budget=budget, random_state=0),
        StandardScaler(),
        RidgeClassifierCV(alphas=np.logspace(-3, 3, 7)),
    )


# %%
# Accuracy against the budget. The CKN takes ``(n, d)`` rows with its
# ``image_shape``, which is how scikit-learn hands it images.
budgets = [16, 32, 64, 128, 256]
curves = {
    "arccos(degree=1), random-features": [
        pipeline("arccos(degree=1)", "random-features", b).fit(X_train, train.y)
        .score(X_test, test.y) for b in budgets],
    "ckn, layerwise (anchors per layer)": [
        pipeline("ckn(image_shape=[1, 8, 8])", "layerwise", max(b // 8, 2)).fit(X_train, train.y)
        .score(X_test, test.y) for b in budgets],
}
for name, scores in curves.items():
    print(name, np.round(scores, 3))

# %%
# The CKN's budget counts anchors per layer: with ``b // 8`` anchors at each of
# its two layers its features have ``(b // 8) * 4`` dimensions (a 2x2 map after
# two subsamplings by 2), so its points sit at fewer features than their x
# position says; the x axis is the budget asked of each pipeline.
fig, ax = plt.subplots(figsize=(6, 4))
for name, scores in curves.items():
    ax.semilogx(budgets, scores, "o-", label=name)
ax.set_xlabel("budget of the arc-cosine features (CKN: 8 x anchors per layer)")
ax.set_ylabel("test accuracy (300 digits)")
ax.set_xticks(budgets, [str(b) for b in budgets])
ax.legend()
ax.grid(alpha=0.3)
fig.tight_layout()
