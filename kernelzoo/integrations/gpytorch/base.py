"""What every kernelzoo gpytorch kernel shares: input layout, batches, dtype and the cache."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import gpytorch
import torch

from kernelzoo._io import fingerprint
from kernelzoo._validation import check_image_shape, check_int
from kernelzoo.kernels.base import Kernel as ZooKernel

__all__ = ["ZooKernelBase", "cache_key", "same_inputs", "broadcast_batches"]


def cache_key(x: torch.Tensor) -> tuple:
    """A content key of a tensor: its device and :func:`kernelzoo._io.fingerprint`.

    Used to cache Grams of fixed kernels across the calls gpytorch makes with
    new tensor objects holding the same points (slices, concatenations).
    """
    print_ = fingerprint(x)
    return (str(x.device), print_["sha256"], tuple(print_["shape"]), print_["dtype"])


def same_inputs(x1: torch.Tensor, x2: torch.Tensor) -> bool:
    """x1 and x2 are the same points (the same object, or equal entries)."""
    return x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))


def broadcast_batches(x1: torch.Tensor, x2: torch.Tensor):
    """``(batch shape, x1 as (B, n, d), x2 as (B, m, d))`` over the broadcast batch."""
    batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2])
    x1 = x1.expand(*batch, *x1.shape[-2:]).reshape(-1, *x1.shape[-2:])
    x2 = x2.expand(*batch, *x2.shape[-2:]).reshape(-1, *x2.shape[-2:])
    return batch, x1, x2


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
    if image_shape is None:
        image_shape = kernel.get_params().get("image_shape")
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
    return check_image_shape(image_shape, "image_shape")


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
        self._cache = _LRUCache(check_int(cache_size, "cache_size", minimum=0))
        self.n_evaluations = 0  # kernelzoo evaluations that missed the cache
        # kernel.dtype / .to(dtype) must work for kernels without parameters
        self.register_buffer("_dtype_anchor", torch.zeros(*self.batch_shape, 1))
        # hyperparameter -> its exact initial value (float64), see _init_hyper
        self._exact_hyper: dict[str, torch.Tensor] = {}

    # -- hyperparameters: initial values exact in any dtype the model is cast to
    def _init_hyper(self, name: str, value: Any) -> None:
        """Set gpytorch's ``raw_<name>`` so that ``<name>`` is ``value`` (a float or a list).

        The exact value is remembered: gpytorch creates parameters in the default
        dtype (float32), so after ``model.double()`` an untrained hyperparameter
        would keep its float32 rounding (about 1e-7 relative off the kernelzoo
        kernel); :meth:`_apply` restores the exact value instead.
        """
        raw = getattr(self, f"raw_{name}")
        constraint = getattr(self, f"raw_{name}_constraint")
        exact = torch.as_tensor(value, dtype=torch.float64)
        with torch.no_grad():
            raw.copy_(constraint.inverse_transform(exact.to(raw.dtype)).expand_as(raw))
        self._exact_hyper[name] = exact

    def _apply(self, fn, *args: Any, **kwargs: Any):
        out = super()._apply(fn, *args, **kwargs)
        for name, exact in getattr(self, "_exact_hyper", {}).items():
            raw = getattr(self, f"raw_{name}")
            if raw.dtype != torch.float64:
                continue
            constraint = getattr(self, f"raw_{name}_constraint")
            rounded = constraint.inverse_transform(exact.to(torch.float32)).to(raw)
            if torch.equal(raw.detach(), rounded.expand_as(raw)):  # untrained since then
                with torch.no_grad():
                    raw.copy_(constraint.inverse_transform(exact.to(raw)).expand_as(raw))
        return out

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

    def _check_dtypes(self, x: torch.Tensor) -> None:
        """Warn when the hyperparameters' dtype differs from the input's.

        gpytorch's convention: the model's ``.double()`` casts every
        hyperparameter. Left in float32 under float64 inputs they enter the Gram
        rounded to float32 (about 1e-7 relative), silently; this says so instead.
        """
        if not x.is_floating_point():
            return
        dtypes = {p.dtype for p in self.parameters() if p.is_floating_point()}
        other = sorted(str(d).replace("torch.", "") for d in dtypes if d != x.dtype)
        if other:
            warnings.warn(
                f"{type(self).__name__} ({self.zoo_kernel.family}): the inputs are "
                f"{str(x.dtype).replace('torch.', '')} but the hyperparameters are "
                f"{', '.join(other)}, so they enter the kernel at that precision; cast the "
                f"model or kernel to the inputs' dtype (gpytorch's convention: model.double() "
                f"for float64 inputs)",
                UserWarning,
                stacklevel=3,
            )

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

    def _cached(
        self, key: tuple, compute: Callable[[], torch.Tensor], *tensors: torch.Tensor
    ) -> torch.Tensor:
        """``compute()``, remembered under ``key`` + the inputs' content when nothing is trained."""
        if not self._cacheable(*tensors):
            return compute()
        full_key = key + tuple(cache_key(t) for t in tensors)
        value = self._cache.get(full_key)
        if value is None:
            value = compute().detach()
            self._cache.put(full_key, value)
        return value.clone()
