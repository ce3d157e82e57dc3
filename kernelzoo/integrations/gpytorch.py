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
- ``rbf`` (exact, ``rff``, ``orf``, ``nystrom``): the lengthscale, a gpytorch
  ``lengthscale`` with a positivity constraint (ARD with ``ard_num_dims``),
  initialised from the kernelzoo kernel's value.
- fully connected ``nngp``/``ntk`` (exact): ``weight_std`` and, where the
  kernel has a bias, ``bias_std`` (positivity constraints).
- the ``layerwise`` CKN: the anchors of every layer (and, for ``kappa='exp'``,
  ``sigma`` with a positivity constraint), registered as torch submodules.
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
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from typing import Any

import gpytorch
import numpy as np
import torch
from gpytorch.constraints import Positive
from gpytorch.models import exact_prediction_strategies
from linear_operator.operators import (
    DenseLinearOperator,
    LinearOperator,
    LowRankRootLinearOperator,
    MatmulLinearOperator,
    RootLinearOperator,
)

from kernelzoo.approx.base import Approximation
from kernelzoo.kernels.base import Kernel as ZooKernel
from kernelzoo.ops.linalg import inv_sqrt_psd

__all__ = [
    "ExactKernel",
    "FCInfiniteKernel",
    "FeatureKernel",
    "GramKernel",
    "LayerwiseCKNKernel",
    "RBFExactKernel",
    "RBFFeatureKernel",
    "TrainableNystromKernel",
    "ZooKernelBase",
    "fingerprint",
    "to_gpytorch",
]


# ---------------------------------------------------------------------------- helpers
def fingerprint(x: torch.Tensor) -> tuple:
    """A content key of a tensor: shape, dtype, device and a BLAKE2 hash of its bytes.

    Used to cache Grams of fixed kernels across the calls gpytorch makes with
    new tensor objects holding the same points (slices, concatenations).
    """
    data = x.detach()
    if data.device.type != "cpu":
        data = data.cpu()
    digest = hashlib.blake2b(
        np.ascontiguousarray(data.numpy()).view(np.uint8).tobytes(), digest_size=16
    ).hexdigest()
    return (tuple(x.shape), str(x.dtype), str(x.device), digest)


class _LRUCache:
    """A small least-recently-used cache of tensors."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.store: OrderedDict[tuple, torch.Tensor] = OrderedDict()

    def get(self, key: tuple) -> torch.Tensor | None:
        value = self.store.get(key)
        if value is not None:
            self.store.move_to_end(key)
        return value

    def put(self, key: tuple, value: torch.Tensor) -> None:
        if self.size <= 0:
            return
        self.store[key] = value
        self.store.move_to_end(key)
        while len(self.store) > self.size:
            self.store.popitem(last=False)

    def clear(self) -> None:
        self.store.clear()


def _image_shape_of(kernel: ZooKernel, image_shape: Any) -> tuple[int, int, int] | None:
    own = kernel.get_params().get("image_shape")
    if image_shape is None:
        image_shape = own
    if image_shape is None:
        if kernel.is_conv:
            raise ValueError(
                f"{kernel.family}: a convolutional kernel receives (n, d) from gpytorch; give "
                f"image_shape=(C, H, W) to to_gpytorch() (or to the kernel)"
            )
        return None
    if not kernel.is_conv:
        raise ValueError(
            f"image_shape is for convolutional kernels; {kernel.family} takes vectors (n, d)"
        )
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"image_shape must be (C, H, W) of positive ints, got {image_shape!r}")
    return shape


# ---------------------------------------------------------------------------- base
class ZooKernelBase(gpytorch.kernels.Kernel):
    """What every kernelzoo gpytorch kernel shares: input layout, batches, dtype, cache.

    Parameters
    ----------
    zoo_kernel : kernelzoo Kernel
        The exact kernel (of the approximation, for approximations).
    image_shape : (C, H, W), optional
        For convolutional kernels: how to read the ``d`` columns gpytorch hands over.
    cache_size : int, default 8
        Number of cached Gram blocks / feature maps (fixed kernels only; 0 disables).
    **kwargs
        ``batch_shape``, ``active_dims``... of :class:`gpytorch.kernels.Kernel`.
    """

    def __init__(
        self,
        zoo_kernel: ZooKernel,
        image_shape: Any = None,
        cache_size: int = 8,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.zoo_kernel = zoo_kernel
        self.image_shape = _image_shape_of(zoo_kernel, image_shape)
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 0:
            raise ValueError(f"cache_size must be an int >= 0, got {cache_size!r}")
        self._cache = _LRUCache(cache_size)
        self.n_evaluations = 0  # kernelzoo evaluations that missed the cache
        # kernel.dtype / .to(dtype) must work for kernels without parameters
        self.register_buffer("_dtype_anchor", torch.zeros(*self.batch_shape, 1))

    # -- dtype: gpytorch reads it from the parameters; ours may have none
    @property
    def dtype(self) -> torch.dtype:
        if self.has_lengthscale:
            return self.lengthscale.dtype
        dtypes = {p.dtype for p in self.parameters()} | {self._dtype_anchor.dtype}
        if len(dtypes) > 1:
            raise RuntimeError(f"The kernel's parameters have multiple dtypes: {dtypes}.")
        return dtypes.pop()

    @property
    def device(self) -> torch.device:
        devices = {p.device for p in self.parameters()} | {self._dtype_anchor.device}
        if len(devices) > 1:
            raise RuntimeError(f"The kernel's parameters are on multiple devices: {devices}.")
        return devices.pop()

    @property
    def is_stationary(self) -> bool:
        return False

    def clear_cache(self) -> None:
        """Forget cached Grams and features (after refitting an approximation yourself)."""
        self._cache.clear()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state = dict(state)
        state["_cache"] = _LRUCache(self._cache.size)
        return state

    # -- layout
    def _points(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` -> what the kernelzoo kernel takes (images for conv kernels)."""
        if self.image_shape is None:
            return x
        c, h, w = self.image_shape
        if x.shape[-1] != c * h * w:
            raise ValueError(
                f"{self.zoo_kernel.family}: inputs have {x.shape[-1]} columns but "
                f"image_shape={self.image_shape} needs {c * h * w}"
            )
        return x.reshape(x.shape[0], c, h, w)

    def _last_dim_as_batch(self, x1: torch.Tensor, x2: torch.Tensor):
        if self.image_shape is not None:
            raise ValueError(
                f"last_dim_is_batch is not supported for the convolutional kernel "
                f"{self.zoo_kernel.family}: its input columns are pixels of one image"
            )
        return x1.transpose(-1, -2).unsqueeze(-1), x2.transpose(-1, -2).unsqueeze(-1)

    def _expand_to_batch(self, out: torch.Tensor, n_trailing: int) -> torch.Tensor:
        """Broadcast the result over the kernel's own ``batch_shape``."""
        batch = torch.broadcast_shapes(self.batch_shape, out.shape[: out.ndim - n_trailing])
        return out.expand(*batch, *out.shape[out.ndim - n_trailing :])

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        if self._cache.size == 0 or any(p.requires_grad for p in self.parameters()):
            return False
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
        return not grad

    def _cached(self, key: tuple, compute, *tensors: torch.Tensor) -> torch.Tensor:
        """``compute()``, remembered under ``key`` + the inputs' content when nothing is trained."""
        if not self._cacheable(*tensors):
            return compute()
        full_key = key + tuple(fingerprint(t) for t in tensors)
        value = self._cache.get(full_key)
        if value is None:
            value = compute().detach()
            self._cache.put(full_key, value)
        return value.clone()


# ---------------------------------------------------------------------------- exact
def _broadcast_batches(x1: torch.Tensor, x2: torch.Tensor):
    batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    x1 = x1.expand(*batch, *x1.shape[-2:]).reshape(-1, *x1.shape[-2:])
    x2 = x2.expand(*batch, *x2.shape[-2:]).reshape(-1, *x2.shape[-2:])
    return batch, x1, x2


class ExactKernel(ZooKernelBase):
    """An exact kernelzoo kernel with fixed hyperparameters: dense, cached Gram blocks.

    Parameters
    ----------
    zoo_kernel : kernelzoo Kernel
    gram_dtype : torch.dtype, optional
        Compute Gram blocks in this precision and return them in the input's
        (``torch.float32`` for an exact CKN or conv kernel feeding a float64
        GP: about 3x faster on CPU, relative error about 1e-7). Default: the
        input's dtype.
    **kwargs
        Of :class:`ZooKernelBase`.

    Shape:
        - ``forward(x1, x2)``: ``(..., n, d)``, ``(..., m, d)`` -> ``(..., n, m)``
        - ``forward(x1, x2, diag=True)``: -> ``(..., n)``
    """

    #: return ``K(x, x)`` outside autograd as a deferred operator (expensive fixed kernels)
    _defer_square_blocks = True

    def __init__(self, zoo_kernel: ZooKernel, gram_dtype: torch.dtype | None = None,
                 **kwargs: Any) -> None:
        if gram_dtype is not None and not (
            isinstance(gram_dtype, torch.dtype) and gram_dtype.is_floating_point
        ):
            raise ValueError(
                f"gram_dtype must be a floating torch.dtype or None, got {gram_dtype!r}"
            )
        super().__init__(zoo_kernel, **kwargs)
        self.gram_dtype = gram_dtype

    def _kernel_input(self, x: torch.Tensor) -> torch.Tensor:
        """Points as the kernelzoo kernel takes them, in ``gram_dtype`` if set."""
        points = self._points(x)
        return points if self.gram_dtype is None else points.to(self.gram_dtype)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        """The input as the kernelzoo kernel sees it (hook for input scalings)."""
        return x

    def _block(self, kind: str, a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        """``K(a, b)`` (``kind='gram'``) or its diagonal (``'diag'``), cached, in ``a``'s dtype."""

        def compute() -> torch.Tensor:
            self.n_evaluations += 1
            pa = self._kernel_input(a)
            if same:
                out = self.zoo_kernel.gram(pa) if kind == "gram" else self.zoo_kernel.diag(pa)
            else:
                out = self.zoo_kernel.gram(pa, self._kernel_input(b))
                if kind == "diag":
                    # k(a_i, b_i) for distinct sets: one row at a time would loop in
                    # Python; the (n, n) block is what gpytorch would build anyway
                    out = torch.diagonal(out)
            return out.to(a.dtype)

        tensors = (a,) if same else (a, b)
        return self._cached((kind, same), compute, *tensors)

    def _gram_pair(self, a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        return self._block("gram", a, b, same)

    def _diag_pair(self, a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        return self._block("diag", a, b, same)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ) -> torch.Tensor:
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        x1, x2 = self._scaled(x1), (None if same else self._scaled(x2))
        if same:
            x2 = x1
        if (self._defer_square_blocks and same and not diag and x1.ndim == 2
                and self.batch_shape == torch.Size() and not torch.is_grad_enabled()):
            # gpytorch's exact prediction builds the test-test block but reads
            # only its diagonal: defer the (expensive, fixed) Gram until asked
            return _DeferredGram(x1, kernel=self)
        batch, b1, b2 = _broadcast_batches(x1, x2)
        pair = self._diag_pair if diag else self._gram_pair
        blocks = [pair(a, b, same) for a, b in zip(b1, b2)]
        out = torch.stack(blocks).reshape(*batch, *blocks[0].shape)
        return self._expand_to_batch(out, 1 if diag else 2)


class _DeferredGram(LinearOperator):
    """A fixed exact kernel's square Gram block ``K(x, x)``, computed when its
    entries are needed; its diagonal alone costs ``n`` kernel evaluations.

    Shape: ``(n, d)`` -> an ``(n, n)`` operator.
    """

    def __init__(self, x: torch.Tensor, kernel: ExactKernel) -> None:
        super().__init__(x, kernel=kernel)
        self.x = x
        self.kernel = kernel
        self._gram: torch.Tensor | None = None

    def _size(self) -> torch.Size:
        return torch.Size((self.x.shape[0], self.x.shape[0]))

    def _transpose_nonbatch(self) -> _DeferredGram:
        return self

    def _dense(self) -> torch.Tensor:
        if self._gram is None:
            self._gram = self.kernel._gram_pair(self.x, self.x, True)
        return self._gram

    def to_dense(self) -> torch.Tensor:
        return self._dense()

    def _matmul(self, rhs: torch.Tensor) -> torch.Tensor:
        return self._dense() @ rhs

    def _diagonal(self) -> torch.Tensor:
        if self._gram is not None:
            return torch.diagonal(self._gram)
        return self.kernel._diag_pair(self.x, self.x, True)

    def _get_indices(self, row_index, col_index, *batch_indices):
        return self._dense()[row_index, col_index]

    def _expand_batch(self, batch_shape):
        return DenseLinearOperator(self._dense()).expand(*batch_shape, *self.shape)


class RBFExactKernel(ExactKernel):
    """The exact rbf kernel with a trainable (optionally ARD) lengthscale.

    The Gram is kernelzoo's ``rbf(lengthscale=1)`` on ``x / lengthscale``
    (same numerics, differentiable in the lengthscale).
    """

    has_lengthscale = True
    _defer_square_blocks = False  # cheap; TrainableNystromKernel needs tensors

    def __init__(self, zoo_kernel: ZooKernel, **kwargs: Any) -> None:
        kwargs.setdefault("lengthscale_constraint", Positive())
        super().__init__(zoo_kernel.__class__(lengthscale=1.0), **kwargs)
        self.lengthscale = float(zoo_kernel.lengthscale)

    @property
    def is_stationary(self) -> bool:
        return True

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.lengthscale.to(x.dtype)

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        return False  # the inputs are already scaled by a (trainable) lengthscale


class FCInfiniteKernel(ExactKernel):
    """Fully connected NNGP/NTK with trainable ``weight_std`` (and ``bias_std``).

    gpytorch parameters ``raw_weight_std`` and, when the kernel has a bias
    (``bias_std > 0``), ``raw_bias_std``, with positivity constraints,
    initialised from the kernelzoo kernel; the Gram is kernelzoo's fc
    recursion evaluated with those tensors (differentiable). A kernel without
    bias keeps none (0 is not a positive value to start from).
    """

    def __init__(self, zoo_kernel: ZooKernel, **kwargs: Any) -> None:
        super().__init__(zoo_kernel, **kwargs)
        self._positive("weight_std", float(zoo_kernel.weight_std))
        bias = zoo_kernel.bias_std
        self.has_bias = bias is not None and float(bias) > 0
        if self.has_bias:
            self._positive("bias_std", float(bias))

    def _positive(self, name: str, value: float) -> None:
        raw = f"raw_{name}"
        self.register_parameter(raw, torch.nn.Parameter(torch.zeros(*self.batch_shape, 1)))
        self.register_constraint(raw, Positive())
        constraint = getattr(self, f"{raw}_constraint")
        self.initialize(**{raw: constraint.inverse_transform(torch.tensor(value))})

    @property
    def weight_std(self) -> torch.Tensor:
        return self.raw_weight_std_constraint.transform(self.raw_weight_std)

    @property
    def bias_std(self) -> torch.Tensor | None:
        if not self.has_bias:
            return None
        return self.raw_bias_std_constraint.transform(self.raw_bias_std)

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        return False

    def _one(self, a, b, weight_std, bias_std, same: bool, diag: bool) -> torch.Tensor:
        from kernelzoo.kernels.functional.fc import fc_block, fc_diag

        bias_var = 0.0 if bias_std is None else bias_std.to(a.dtype).square()
        net = dataclasses.replace(
            self.zoo_kernel.net, weight_var=weight_std.to(a.dtype).square(), bias_var=bias_var
        )
        va = a.square().mean(1)
        if diag and same:
            return self.zoo_kernel._pick(*fc_diag(va, net))
        vb = va if same else b.square().mean(1)
        gram = self.zoo_kernel._pick(*fc_block(a, a if same else b, va, vb, net))
        if same:
            gram = 0.5 * (gram + gram.mT)
        return torch.diagonal(gram) if diag else gram

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        batch = torch.broadcast_shapes(self.batch_shape, x1.shape[:-2], x2.shape[:-2])
        b1 = x1.expand(*batch, *x1.shape[-2:]).reshape(-1, *x1.shape[-2:])
        b2 = x2.expand(*batch, *x2.shape[-2:]).reshape(-1, *x2.shape[-2:])
        ws = self.weight_std.expand(*batch, 1).reshape(-1)
        bs = self.bias_std
        bs = [None] * len(ws) if bs is None else bs.expand(*batch, 1).reshape(-1)
        blocks = [self._one(a, b, w, s, same, diag) for a, b, w, s in zip(b1, b2, ws, bs)]
        return torch.stack(blocks).reshape(*batch, *blocks[0].shape)


# ---------------------------------------------------------------------------- features
class FeatureKernel(ZooKernelBase):
    """A feature approximation: low-rank linear operators ``Z1 Z2^T``.

    Shape:
        - ``forward(x1, x1)``: ``(..., n, d)`` -> ``(Low)RankRootLinearOperator`` of ``(..., n, D)``
        - ``forward(x1, x2)``: -> ``MatmulLinearOperator`` ``(..., n, m)``
        - ``forward(x1, x2, diag=True)``: -> ``(..., n)``
    """

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        super().__init__(approximation.kernel, **kwargs)
        self.approximation = approximation

    def _ensure_fitted(self, x: torch.Tensor) -> None:
        if self.approximation.is_fitted:
            return
        if getattr(self.approximation, "requires_labels", False) or self.approximation.method == (
            "supervised"
        ):
            raise RuntimeError(
                f"the {self.approximation.method} approximation needs labels: fit it with "
                f".fit(X, y) before to_gpytorch()"
            )
        flat = x.detach().reshape(-1, x.shape[-1])
        self.approximation.fit(self._points(flat))
        self.clear_cache()

    def _feature_map(self, flat: torch.Tensor) -> torch.Tensor:
        """``(N, d)`` -> ``(N, D)`` (override for trainable maps)."""
        return self._cached(
            ("features",), lambda: self._count(self.approximation.features(self._points(flat))),
            flat,
        )

    def _count(self, value: torch.Tensor) -> torch.Tensor:
        self.n_evaluations += 1
        return value

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        """Features of ``(..., n, d)`` -> ``(..., n, D)`` (all batch entries at once)."""
        self._ensure_fitted(x)
        flat = x.reshape(-1, x.shape[-1])
        z = self._feature_map(flat)
        return z.reshape(*x.shape[:-1], z.shape[-1])

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ):
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        z1 = self.featurize(x1)
        z2 = z1 if same else self.featurize(x2)
        if diag:
            return self._expand_to_batch((z1 * z2).sum(-1), 1)
        batch = torch.broadcast_shapes(self.batch_shape, z1.shape[:-2], z2.shape[:-2])
        z1 = z1.expand(*batch, *z1.shape[-2:])
        if same:
            if z1.shape[-1] < z1.shape[-2]:
                return LowRankRootLinearOperator(z1)
            return RootLinearOperator(z1)
        z2 = z2.expand(*batch, *z2.shape[-2:])
        return MatmulLinearOperator(z1, z2.mT)

    def prediction_strategy(self, train_inputs, train_prior_dist, train_labels, likelihood):
        return exact_prediction_strategies.LinearPredictionStrategy(
            train_inputs, train_prior_dist, train_labels, likelihood
        )


class RBFFeatureKernel(FeatureKernel):
    """Random Fourier / orthogonal features of rbf with a trainable lengthscale.

    The features were drawn for lengthscale l0; ``z(x * l0 / l)`` are the
    features for lengthscale ``l`` with the same draws (differentiable in l).
    """

    has_lengthscale = True

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        kwargs.setdefault("lengthscale_constraint", Positive())
        super().__init__(approximation, **kwargs)
        self.fitted_lengthscale = float(approximation.kernel.lengthscale)
        self.lengthscale = self.fitted_lengthscale

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_fitted(x)
        ratio = self.fitted_lengthscale / self.lengthscale.to(x.dtype)
        scaled = x * ratio  # (*batch, n, d): lengthscale batches broadcast here
        z = self.approximation.features(scaled.reshape(-1, scaled.shape[-1]))
        return z.reshape(*scaled.shape[:-1], z.shape[-1])


class TrainableNystromKernel(FeatureKernel):
    """Nyström features ``k(x, Z) (k(Z, Z) + eps)^(-1/2)`` through a trainable exact kernel.

    The landmarks Z come from the fitted approximation; the exact kernel (e.g.
    rbf with its lengthscale) is a submodule, and the normalisation is
    recomputed at every call, differentiably (Daleckii–Krein backward).
    """

    def __init__(self, approximation: Approximation, exact: ExactKernel, **kwargs: Any) -> None:
        super().__init__(approximation, **kwargs)
        self.exact = exact

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_fitted(x)
        z = self.approximation.landmarks_.to(device=x.device, dtype=x.dtype)
        z = z.reshape(z.shape[0], -1)
        opts = self.approximation.opts
        rel_clip = opts["rel_clip"]
        if rel_clip is None:
            rel_clip = 1e-6 if x.dtype == torch.float32 else 1e-12
        kzz = self.exact.forward(z, z).to(torch.float64)  # (*kernel_batch, m, m)
        flat = kzz.reshape(-1, *kzz.shape[-2:])
        norm = torch.stack(
            [inv_sqrt_psd(k, eps=float(opts["eps"]), rel_clip=rel_clip) for k in flat]
        ).reshape(kzz.shape)
        return self.exact.forward(x, z) @ norm.to(x.dtype)


class LayerwiseCKNKernel(FeatureKernel):
    """The layerwise (Nyström) CKN with anchors and sigma trained through the likelihood.

    The fitted approximation's network (:meth:`LayerwiseCKN.network`: one
    ``CKNLayer`` torch module per layer, anchors as parameters) is registered
    as the submodule ``network``; layers with ``kappa='exp'`` get a trainable
    ``sigma`` (gpytorch parameter ``raw_sigma`` with a positivity constraint).
    Anchors are projected back onto the unit sphere before each evaluation
    (a projected-gradient step, as the CKN papers do). Deep kernel learning in
    the RKHS: features are recomputed at every call, so nothing is cached.

    Shape: as :class:`FeatureKernel`; features ``(..., n, p_L h_L w_L)``.
    """

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        super().__init__(approximation, **kwargs)
        kernel = approximation.kernel
        self._exp_layers = [i for i, kappa in enumerate(kernel.kappa) if kappa == "exp"]
        if self._exp_layers:
            sigma = torch.tensor([kernel.sigma[i] for i in self._exp_layers])
            sigma = sigma.expand(*self.batch_shape, len(self._exp_layers))
            self.register_parameter("raw_sigma", torch.nn.Parameter(torch.zeros_like(sigma)))
            self.register_constraint("raw_sigma", Positive())
            self.initialize(raw_sigma=self.raw_sigma_constraint.inverse_transform(sigma))
        if approximation.is_fitted:
            self._bind(torch.get_default_dtype(), torch.device("cpu"))

    @property
    def sigma(self) -> torch.Tensor | None:
        """The trainable sigma of the ``kappa='exp'`` layers, in layer order."""
        if not self._exp_layers:
            return None
        return self.raw_sigma_constraint.transform(self.raw_sigma)

    def _bind(self, dtype: torch.dtype, device: torch.device) -> None:
        if "network" in self._modules:
            return
        self.network = self.approximation.network(device=device, dtype=dtype)
        self.network.requires_grad_(True)

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        return False

    def _features_with(self, flat: torch.Tensor, sigma: torch.Tensor | None) -> torch.Tensor:
        """Features of ``(N, d)`` with one sigma per exp layer ``(n_exp,)``."""
        layers = list(self.network.layers)
        fixed = [layer.sigma for layer in layers]
        try:
            for j, i in enumerate(self._exp_layers):
                layers[i].sigma = sigma[j].to(flat.dtype)
                layers[i]._cache = {}
            images = self._points(flat).to(layers[0].weight.dtype)
            return self.network(images).to(flat.dtype)
        finally:  # floats again, so that the module deep-copies and pickles
            for layer, value in zip(layers, fixed):
                layer.sigma = float(value)
                layer._cache = {}

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_fitted(x)
        self._bind(x.dtype, x.device)
        for layer in self.network.layers:
            layer.normalise_()
        sigma = self.sigma
        if sigma is None or sigma.ndim == 1:
            z = self._features_with(x.reshape(-1, x.shape[-1]), sigma)
            return z.reshape(*x.shape[:-1], z.shape[-1])
        # a kernel batch_shape: one sigma per batch entry, one pass each
        batch = torch.broadcast_shapes(sigma.shape[:-1], x.shape[:-2])
        xs = x.expand(*batch, *x.shape[-2:]).reshape(-1, *x.shape[-2:])
        sigmas = sigma.expand(*batch, sigma.shape[-1]).reshape(-1, sigma.shape[-1])
        z = torch.stack([self._features_with(a, s) for a, s in zip(xs, sigmas)])
        return z.reshape(*batch, x.shape[-2], z.shape[-1])


# ---------------------------------------------------------------------------- gram only
class GramKernel(ZooKernelBase):
    """An approximation without explicit features (dense approximate Gram, cached)."""

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        super().__init__(approximation.kernel, **kwargs)
        self.approximation = approximation

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        if not self.approximation.is_fitted:
            self.approximation.fit(self._points(x1.detach().reshape(-1, x1.shape[-1])))
        batch, b1, b2 = _broadcast_batches(x1, x2)

        def one(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            def compute() -> torch.Tensor:
                self.n_evaluations += 1
                if diag:
                    return self.approximation.diag(self._points(a)) if same else torch.diagonal(
                        self.approximation.gram(self._points(a), self._points(b))
                    )
                if same:
                    return self.approximation.gram(self._points(a))
                return self.approximation.gram(self._points(a), self._points(b))

            return self._cached(("approx", diag, same), compute, a, b)

        blocks = [one(a, b) for a, b in zip(b1, b2)]
        out = torch.stack(blocks).reshape(*batch, *blocks[0].shape)
        return self._expand_to_batch(out, 1 if diag else 2)


# ---------------------------------------------------------------------------- factory
_GP_KWARGS = ("batch_shape", "active_dims", "ard_num_dims", "eps", "lengthscale_prior",
              "lengthscale_constraint")


def _split_options(options: dict[str, Any]):
    unknown = [
        k for k in options
        if k not in _GP_KWARGS
        and k not in ("image_shape", "cache_size", "train_hyperparameters", "gram_dtype")
    ]
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
    for key in ("ard_num_dims", "lengthscale_prior", "lengthscale_constraint"):
        if options.get(key) is not None:
            raise ValueError(
                f"{key} is only for kernels with a trainable lengthscale (rbf); "
                f"{family} has none here"
            )
        options.pop(key, None)
    return options


def to_gpytorch(obj: ZooKernel | Approximation, **options: Any) -> gpytorch.kernels.Kernel:
    """A :class:`gpytorch.kernels.Kernel` computing a kernelzoo kernel or approximation.

    Parameters
    ----------
    obj : kernelzoo Kernel or Approximation
        An approximation may be fitted already (recommended: on the training
        inputs) or is fitted on the first ``x1`` it is called with.
    image_shape : (C, H, W), optional
        How convolutional kernels read the ``d`` input columns (default: the
        kernel's ``image_shape`` parameter; required for conv kernels).
    train_hyperparameters : bool, default True
        Make the rbf lengthscale, the fc nngp/ntk weight/bias std and the
        layerwise CKN anchors/sigma gpytorch parameters; False fixes them (and
        enables the Gram cache).
    cache_size : int, default 8
        Gram blocks / feature maps remembered by fixed kernels (0: none).
    gram_dtype : torch.dtype, optional
        Exact kernels with fixed hyperparameters (conv kernels, arccos, and the
        others with ``train_hyperparameters=False``): the precision their Gram
        blocks are computed in, returned in the input's dtype.
    **options
        ``batch_shape``, ``active_dims`` and, for rbf, ``ard_num_dims``,
        ``lengthscale_prior``, ``lengthscale_constraint``.

    Returns
    -------
    gpytorch.kernels.Kernel
        Without output scale: wrap it in ``gpytorch.kernels.ScaleKernel``.

    Shape: the kernel maps ``(..., n, d)``, ``(..., m, d)`` to ``(..., n, m)``.
    """
    options = dict(options)
    train, options = _split_options(options)
    gram_dtype = options.pop("gram_dtype", None)
    fixed_exact = isinstance(obj, ZooKernel) and not (
        train and (obj.family == "rbf" or (obj.family in ("nngp", "ntk") and not obj.is_conv))
    )
    if gram_dtype is not None and not fixed_exact:
        raise ValueError(
            "gram_dtype is for exact kernels with fixed hyperparameters (conv kernels, arccos, "
            "or train_hyperparameters=False); this one trains them or is an approximation"
        )
    if isinstance(obj, ZooKernel):
        if obj.family == "rbf" and train:
            return RBFExactKernel(obj, **options)
        if obj.family in ("nngp", "ntk") and not obj.is_conv and train:
            return FCInfiniteKernel(obj, **_no_lengthscale_kwargs(obj.family, options))
        return ExactKernel(obj, gram_dtype=gram_dtype,
                           **_no_lengthscale_kwargs(obj.family, options))
    if not isinstance(obj, Approximation):
        raise TypeError(
            f"to_gpytorch expects a kernelzoo kernel or approximation, got {type(obj).__name__}"
        )
    family, method = obj.kernel.family, obj.method
    if family == "rbf" and train and method in ("rff", "orf"):
        return RBFFeatureKernel(obj, **options)
    if family == "rbf" and train and method == "nystrom":
        gp_opts = {k: v for k, v in options.items() if k in ("ard_num_dims", "lengthscale_prior",
                                                           "lengthscale_constraint")}
        exact = RBFExactKernel(obj.kernel, **gp_opts)
        rest = {k: v for k, v in options.items() if k not in gp_opts}
        return TrainableNystromKernel(obj, exact, **rest)
    options = _no_lengthscale_kwargs(family, options)
    # the empirical NTK's "features" are Jacobians as wide as the network has
    # parameters: its tiled Gram is the affordable path
    if not obj.has_features or method == "empirical":
        return GramKernel(obj, **options)
    if family == "ckn" and method == "layerwise" and train:
        return LayerwiseCKNKernel(obj, **options)
    return FeatureKernel(obj, **options)
