"""gpytorch kernels for every kernelzoo family and approximation.

``k.to_gpytorch()`` (an exact kernel) and ``a.to_gpytorch()`` (an
approximation) return a :class:`gpytorch.kernels.Kernel`; wrap it in
``gpytorch.kernels.ScaleKernel`` for an output scale (kernelzoo kernels have
none):

>>> import gpytorch, kernelzoo as kz
>>> covar = gpytorch.kernels.ScaleKernel(kz.kernel("rbf").to_gpytorch())
>>> conv = kz.kernel("ckn").to_gpytorch(image_shape=(1, 8, 8))           # doctest: +SKIP
>>> feats = kz.kernel("arccos").approximate("random-features", budget=256).to_gpytorch()

What is learned through the marginal likelihood
-----------------------------------------------
Each family declares it (``Param.train``, ``Kernel.trainable_params``; the
approximation's ``trains_features``); this package reads the declarations:

- a lengthscale (``rbf``, ``matern``: exact, ``rff``, ``orf``, ``nystrom``): a
  gpytorch ``lengthscale`` with a positivity constraint (ARD with
  ``ard_num_dims``), initialised from the kernelzoo kernel's value.
- positive parameters (fully connected ``nngp``/``ntk``: ``weight_std`` and,
  where the kernel has a bias, ``bias_std``), exact or through Nyström.
- a trainable feature network (the ``layerwise`` CKN): the anchors of every
  layer (and, for ``kappa='exp'``, ``sigma`` with a positivity constraint),
  registered as torch submodules.
- everything else (``arccos`` has no hyperparameter; conv NNGP/NTK and the
  exact CKN are too expensive to differentiate): hyperparameters are *fixed*;
  choose them on a validation split and build the kernel with them. Their
  Gram blocks (and feature maps) are computed once and cached, keyed on the
  content of the input tensors, so that an ``ExactGP`` training loop that only
  learns the output scale (``ScaleKernel``) and the noise pays for the Gram
  once. ``train_hyperparameters=False`` fixes the rbf lengthscale and the CKN
  anchors too (and turns the cache on for them).

Outputs
-------
Exact kernels return dense tensors. Feature approximations return, for x1 is
x2, ``LowRankRootLinearOperator(Z)`` when the feature dimension is below n and
``RootLinearOperator(Z)`` otherwise, and ``MatmulLinearOperator(Z1, Z2^T)``
for x1 != x2, with a ``diag`` path, as gpytorch's ``RFFKernel``; their
predictions use gpytorch's ``LinearPredictionStrategy``.

Inputs
------
gpytorch hands kernels ``(..., n, d)``: batch dimensions are looped over for
exact kernels (feature maps are applied to all points at once). Convolutional
kernels (``ckn``, conv ``nngp``/``ntk``) need ``image_shape=(C, H, W)`` (an
option of ``to_gpytorch``, or the kernel's own ``image_shape`` parameter);
``last_dim_is_batch`` (deprecated in gpytorch) is supported for vector kernels
only. Unfitted approximations are fitted on the first ``x1`` they see (all
batch entries together); fit them yourself on the training inputs to control
this.

Modules: ``base`` (layout, batches, dtype, the content-keyed cache),
``exact`` (exact kernels, fixed or trained), ``features`` (feature and
Gram approximations), ``networks`` (trained feature networks) and
``factory`` (:func:`to_gpytorch`).
"""

from kernelzoo.integrations.gpytorch.base import ZooKernelBase, cache_key
from kernelzoo.integrations.gpytorch.exact import (
    DeferredGram,
    ExactKernel,
    LengthscaleKernel,
    TrainableExactKernel,
)
from kernelzoo.integrations.gpytorch.factory import to_gpytorch
from kernelzoo.integrations.gpytorch.features import (
    FeatureKernel,
    GramKernel,
    ScaledFeatureKernel,
    TrainableNystromKernel,
)
from kernelzoo.integrations.gpytorch.networks import LayerwiseCKNKernel

#: former names (before the adapters were chosen by capability rather than family)
RBFExactKernel = LengthscaleKernel
RBFFeatureKernel = ScaledFeatureKernel
FCInfiniteKernel = TrainableExactKernel

__all__ = [
    "DeferredGram",
    "ExactKernel",
    "FCInfiniteKernel",
    "FeatureKernel",
    "GramKernel",
    "LayerwiseCKNKernel",
    "LengthscaleKernel",
    "RBFExactKernel",
    "RBFFeatureKernel",
    "ScaledFeatureKernel",
    "TrainableExactKernel",
    "TrainableNystromKernel",
    "ZooKernelBase",
    "cache_key",
    "to_gpytorch",
]
