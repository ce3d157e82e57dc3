"""scikit-learn transformers over kernelzoo approximations.

:class:`KernelFeatures` turns any feature approximation (random features,
Nyström, finite-width networks, the layerwise CKN) into a scikit-learn
transformer. The public import is :mod:`kernelzoo.sklearn`.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from kernelzoo import registry
from kernelzoo._validation import check_image_shape
from kernelzoo.approx.nystrom import Nystrom
from kernelzoo.kernels.base import Kernel

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, X, reset=True, **kwargs):
        return estimator._validate_data(X, reset=reset, **kwargs)


__all__ = ["KernelFeatures"]

_DTYPES = {"float64": torch.float64, "float32": torch.float32}


class KernelFeatures(ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator):
    """Explicit features of a kernelzoo kernel approximation, as a scikit-learn transformer.

    ``transform(X) @ transform(Y).T`` approximates the kernel ``K(X, Y)``, so a
    linear model on these features is an approximate kernel machine.

    Parameters
    ----------
    kernel : str or kernelzoo Kernel, default "arccos(degree=1)"
        A spec string (``"rbf(lengthscale=2.0)"``) or a kernel object.
    method : str, default "random-features"
        An approximation of that kernel (``k.approximations``), one with
        features: ``rff``, ``orf``, ``random-features``, ``nystrom``,
        ``monte-carlo``, ``layerwise``, ``supervised`` (uses ``y``).
    budget : int or list of int, default 256
        What the method counts (features, landmarks, width, anchors per layer).
        For ``nystrom``, a budget above the number of samples is reduced to it
        with a warning (as scikit-learn's ``Nystroem``).
    random_state : int, RandomState or None, default None
        An int is the kernelzoo ``seed`` itself (``random_state=0`` gives the
        same features as ``k.approximate(method, budget, seed=0)``).
    dtype : {"float64", "float32"}, default "float64"
        Precision of the computation and of the output.
    image_shape : (C, H, W), optional
        For convolutional kernels (``ckn``, conv ``nngp``): how to read the
        ``C*H*W`` columns of ``X``.
    **options
        Options of the approximation (e.g. ``landmarks="kmeans"``, ``eps``).

    Attributes
    ----------
    approximation_ : kernelzoo Approximation
        The fitted approximation.
    n_features_in_ : int
    n_features_out_ : int
        The feature dimension.

    Shape
    -----
    ``fit(X)`` with ``X`` ``(n, d)``; ``transform(X)`` -> ``(n, n_features_out_)``.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import RidgeClassifier
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from kernelzoo.sklearn import KernelFeatures
    >>> X, y = load_digits(return_X_y=True)
    >>> model = make_pipeline(
    ...     StandardScaler(),
    ...     KernelFeatures(kernel="arccos(degree=1)", method="random-features",
    ...                    budget=256, random_state=0),
    ...     RidgeClassifier(alpha=1.0),
    ... )
    >>> model.fit(X[:1000], y[:1000]).score(X[1000:], y[1000:]) > 0.9
    True
    """

    def __init__(
        self,
        kernel: Any = "arccos(degree=1)",
        method: str = "random-features",
        budget: Any = 256,
        random_state: Any = None,
        dtype: str = "float64",
        image_shape: Any = None,
        **options: Any,
    ) -> None:
        self.kernel = kernel
        self.method = method
        self.budget = budget
        self.random_state = random_state
        self.dtype = dtype
        self.image_shape = image_shape
        # approximation options live in a private dict (scikit-learn's checks
        # allow no public attributes beyond the signature) and are parameters
        # through get_params/set_params, so clone() and grid searches see them
        self._approx_options = dict(options)

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        params = super().get_params(deep=deep)
        params.update(getattr(self, "_approx_options", {}))
        return params

    def set_params(self, **params: Any) -> KernelFeatures:
        own = set(super().get_params(deep=False))
        for name in [k for k in params if k not in own]:
            # new approximation options are allowed: the approximation checks them in fit
            self._approx_options[name] = params.pop(name)
        return super().set_params(**params)

    # ------------------------------------------------------------------ helpers
    def _torch_dtype(self) -> torch.dtype:
        if self.dtype not in _DTYPES:
            raise ValueError(
                f"dtype={self.dtype!r} is not allowed; expected 'float64' or 'float32'"
            )
        return _DTYPES[self.dtype]

    def _seed(self) -> int:
        if isinstance(self.random_state, numbers.Integral) and not isinstance(
            self.random_state, bool
        ):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _make_kernel(self) -> Kernel:
        if isinstance(self.kernel, Kernel):
            return self.kernel
        if not isinstance(self.kernel, str):
            raise TypeError(
                "kernel must be a spec string or a kernelzoo kernel, got "
                f"{type(self.kernel).__name__}"
            )
        return registry.kernel(self.kernel)

    def _layout(self, x: np.ndarray) -> torch.Tensor:
        x = np.ascontiguousarray(x)
        if not x.flags.writeable:  # torch wants writable memory
            x = x.copy()
        t = torch.from_numpy(x).to(self._torch_dtype())
        if self.image_shape is None:
            return t
        shape = check_image_shape(self.image_shape)
        if int(np.prod(shape)) != t.shape[1]:
            raise ValueError(
                f"image_shape={self.image_shape!r} does not match X's {t.shape[1]} columns; "
                f"expected (C, H, W) with C*H*W = {t.shape[1]}"
            )
        return t.reshape(t.shape[0], *shape)

    # ------------------------------------------------------------------ API
    def fit(self, X: Any, y: Any = None) -> KernelFeatures:
        """Fit the approximation on ``X`` ``(n, d)`` (and ``y`` for supervised methods).

        Parameters
        ----------
        X : array, ``(n, d)``
            Training rows.
        y : array, ``(n,)``, optional
            Labels (supervised methods).

        Returns
        -------
        KernelFeatures
            ``self``, fitted.
        """
        dtype = np.float32 if self._torch_dtype() == torch.float32 else np.float64
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=True).astype(
            dtype, copy=False
        )
        kernel = self._make_kernel()
        budget = self.budget
        landmarks = issubclass(kernel.approximation_class(self.method), Nystrom)
        if landmarks and isinstance(budget, numbers.Integral) and budget > X.shape[0]:
            warnings.warn(
                f"budget={budget} landmarks > n_samples={X.shape[0]}; using "
                f"{X.shape[0]} landmarks",
                RuntimeWarning,
                stacklevel=2,
            )
            budget = X.shape[0]
        approx = kernel.approximate(
            self.method, budget=budget, seed=self._seed(), **self._approx_options
        )
        if not approx.has_features:
            raise ValueError(
                f"method={self.method!r} has no explicit feature map; KernelFeatures needs one "
                f"(use e.g. 'nystrom')"
            )
        labels = None
        if approx.requires_labels:
            if y is None:
                raise ValueError(f"method={self.method!r} needs labels: call fit(X, y)")
            labels = np.asarray(y)
        approx.fit(self._layout(X), labels)
        self.approximation_ = approx
        self.n_features_out_ = int(approx.n_features)
        self._n_features_out = self.n_features_out_
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Features ``(n, d)`` -> ``(n, n_features_out_)`` (numpy, in ``dtype``).

        Parameters
        ----------
        X : array, ``(n, d)``
            Rows.

        Returns
        -------
        numpy.ndarray
            ``(n, n_features_out_)``.
        """
        check_is_fitted(self, "approximation_")
        X = _validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        with torch.no_grad():
            features = self.approximation_.features(self._layout(X))
        return features.detach().cpu().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
