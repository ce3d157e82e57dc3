"""``to_gpytorch``: the gpytorch kernel for a kernelzoo kernel or approximation.

The choice reads the object's declared capabilities, never its family or
method name: the kernel's :meth:`~kernelzoo.kernels.base.Kernel.trainable_params`
(``Param.train``) and the approximation's ``has_features``, ``gram_only``,
``trains_features`` and ``features_of_scaled_input``.
"""

from __future__ import annotations

from typing import Any

import gpytorch

from kernelzoo.approx.base import Approximation
from kernelzoo.approx.nystrom import Nystrom
from kernelzoo.integrations.gpytorch.exact import (
    ExactKernel,
    LengthscaleKernel,
    TrainableExactKernel,
)
from kernelzoo.integrations.gpytorch.features import (
    FeatureKernel,
    GramKernel,
    ScaledFeatureKernel,
    TrainableNystromKernel,
)
from kernelzoo.integrations.gpytorch.networks import LayerwiseCKNKernel
from kernelzoo.kernels.base import Kernel as ZooKernel

__all__ = ["to_gpytorch"]

_GP_KWARGS = ("batch_shape", "active_dims", "ard_num_dims", "eps", "lengthscale_prior",
              "lengthscale_constraint")
_LENGTHSCALE_KWARGS = ("ard_num_dims", "lengthscale_prior", "lengthscale_constraint")
_OWN_KWARGS = ("image_shape", "cache_size", "train_hyperparameters", "gram_dtype")


def _split_options(options: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
    unknown = [k for k in options if k not in _GP_KWARGS and k not in _OWN_KWARGS]
    if unknown:
        raise TypeError(
            f"to_gpytorch: unknown option {unknown[0]!r}; allowed: image_shape, cache_size, "
            f"train_hyperparameters, gram_dtype, and gpytorch Kernel arguments "
            f"({', '.join(_GP_KWARGS)})"
        )
    train = options.pop("train_hyperparameters", True)
    if not isinstance(train, bool):
        raise TypeError(f"train_hyperparameters must be True or False, got {train!r}")
    return train, options


def _no_lengthscale_kwargs(family: str, options: dict[str, Any]) -> dict[str, Any]:
    for key in _LENGTHSCALE_KWARGS:
        if options.get(key) is not None:
            raise ValueError(
                f"{key} is only for kernels with a trainable lengthscale (Param train="
                f"'lengthscale'); {family} has none here"
            )
        options.pop(key, None)
    return options


def _trained_kinds(kernel: ZooKernel, train: bool) -> set[str]:
    return set(kernel.trainable_params().values()) if train else set()


def _exact(kernel: ZooKernel, kinds: set[str], gram_dtype: Any,
           options: dict[str, Any]) -> ExactKernel:
    if kinds == {"lengthscale"}:
        return LengthscaleKernel(kernel, **options)
    options = _no_lengthscale_kwargs(kernel.family, options)
    if kinds == {"positive"}:
        return TrainableExactKernel(kernel, **options)
    if kinds:
        raise ValueError(
            f"{kernel.family}: parameters that train as {sorted(kinds)} at once are not "
            f"supported; use train_hyperparameters=False"
        )
    return ExactKernel(kernel, gram_dtype=gram_dtype, **options)


def _approximation(obj: Approximation, kinds: set[str], train: bool,
                   options: dict[str, Any]) -> gpytorch.kernels.Kernel:
    if kinds == {"lengthscale"} and obj.features_of_scaled_input:
        return ScaledFeatureKernel(obj, **options)
    if kinds and isinstance(obj, Nystrom):
        exact_opts = {k: v for k, v in options.items() if k in _LENGTHSCALE_KWARGS}
        rest = {k: v for k, v in options.items() if k not in _LENGTHSCALE_KWARGS}
        return TrainableNystromKernel(obj, _exact(obj.kernel, kinds, None, exact_opts), **rest)
    options = _no_lengthscale_kwargs(obj.kernel.family, options)
    if not obj.has_features or obj.gram_only:
        return GramKernel(obj, **options)
    if train and obj.trains_features:
        return LayerwiseCKNKernel(obj, **options)
    return FeatureKernel(obj, **options)


def to_gpytorch(obj: ZooKernel | Approximation, **options: Any) -> gpytorch.kernels.Kernel:
    """A :class:`gpytorch.kernels.Kernel` computing a kernelzoo kernel or approximation.

    Parameters
    ----------
    obj : kernelzoo Kernel or Approximation
        An approximation may be fitted already (recommended: on the training
        inputs) or is fitted on the first ``x1`` it is called with.
    **options
        kernelzoo's own:

        - ``image_shape`` ((C, H, W), optional): how convolutional kernels read
          the ``d`` input columns (default: the kernel's ``image_shape``
          parameter; required for conv kernels);
        - ``train_hyperparameters`` (bool, default True): make the kernel's
          trainable parameters (``Param.train``: the rbf and matern lengthscale,
          the fc nngp/ntk weight/bias std) and a trainable feature network (the
          layerwise CKN's anchors and sigma) gpytorch parameters; False fixes
          them (and enables the Gram cache);
        - ``cache_size`` (int, default 8): Gram blocks / feature maps remembered
          by fixed kernels (0: none);
        - ``gram_dtype`` (torch.dtype, optional): for exact kernels with fixed
          hyperparameters (conv kernels, arccos, and the others with
          ``train_hyperparameters=False``), the precision their Gram blocks are
          computed in, returned in the input's dtype;

        and gpytorch's: ``batch_shape``, ``active_dims`` and, for a trainable
        lengthscale, ``ard_num_dims``, ``lengthscale_prior``,
        ``lengthscale_constraint``.

    Returns
    -------
    gpytorch.kernels.Kernel
        Without output scale: wrap it in ``gpytorch.kernels.ScaleKernel``.

    Shape
    -----
    the kernel maps ``(..., n, d)``, ``(..., m, d)`` to ``(..., n, m)``.
    """
    options = dict(options)
    train, options = _split_options(options)
    gram_dtype = options.pop("gram_dtype", None)
    if isinstance(obj, ZooKernel):
        kinds = _trained_kinds(obj, train)
        if gram_dtype is not None and kinds:
            raise ValueError(
                "gram_dtype is for exact kernels with fixed hyperparameters (conv kernels, "
                "arccos, or train_hyperparameters=False); this one trains them"
            )
        return _exact(obj, kinds, gram_dtype, options)
    if not isinstance(obj, Approximation):
        raise TypeError(
            f"to_gpytorch expects a kernelzoo kernel or approximation, got {type(obj).__name__}"
        )
    if gram_dtype is not None:
        raise ValueError(
            "gram_dtype is for exact kernels with fixed hyperparameters (conv kernels, arccos, "
            "or train_hyperparameters=False); this is an approximation"
        )
    return _approximation(obj, _trained_kinds(obj.kernel, train), train, options)
