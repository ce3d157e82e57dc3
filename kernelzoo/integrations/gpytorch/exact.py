"""gpytorch kernels computing an exact kernelzoo kernel: fixed (cached) or trained.

- :class:`ExactKernel`: fixed hyperparameters; dense Gram blocks cached by input
  content; outside autograd ``K(x, x)`` is a deferred operator
  (:class:`DeferredGram`), since gpytorch's exact prediction builds the
  test-test block but reads only its diagonal.
- :class:`LengthscaleKernel`: a parameter with ``Param.train="lengthscale"``
  becomes gpytorch's own ``lengthscale`` (ARD, priors, constraints); the kernel
  is evaluated at lengthscale 1 on ``x / lengthscale``.
- :class:`TrainableExactKernel`: parameters with ``Param.train="positive"``
  become positive gpytorch parameters ``raw_<name>``, evaluated through the
  kernel's :meth:`~kernelzoo.kernels.base.Kernel.gram_with`.
"""

from __future__ import annotations

from typing import Any

import torch
from gpytorch.constraints import Positive
from linear_operator.operators import DenseLinearOperator, LinearOperator

from kernelzoo.integrations.gpytorch.base import ZooKernelBase, broadcast_batches, same_inputs
from kernelzoo.kernels.base import Kernel as ZooKernel

__all__ = ["DeferredGram", "ExactKernel", "LengthscaleKernel", "TrainableExactKernel"]


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

    def gram_block(self, a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        """The Gram of one batch entry, ``(n, d)``, ``(m, d)`` -> ``(n, m)`` (cached)."""
        return self._block("gram", a, b, same)

    def diag_block(self, a: torch.Tensor, b: torch.Tensor, same: bool) -> torch.Tensor:
        """``k(a_i, b_i)`` of one batch entry, ``(n, d)`` -> ``(n,)`` (cached)."""
        return self._block("diag", a, b, same)

    def forward(
        self,
        x1: torch.Tensor,
        x2: torch.Tensor,
        diag: bool = False,
        last_dim_is_batch: bool = False,
        **params: Any,
    ) -> torch.Tensor:
        self._check_dtypes(x1)
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = same_inputs(x1, x2)
        x1, x2 = self._scaled(x1), (None if same else self._scaled(x2))
        if same:
            x2 = x1
        if (self._defer_square_blocks and same and not diag and x1.ndim == 2
                and self.batch_shape == torch.Size() and not torch.is_grad_enabled()):
            # gpytorch's exact prediction builds the test-test block but reads
            # only its diagonal: defer the (expensive, fixed) Gram until asked
            return DeferredGram(x1, kernel=self)
        batch, b1, b2 = broadcast_batches(x1, x2)
        pair = self.diag_block if diag else self.gram_block
        blocks = [pair(a, b, same) for a, b in zip(b1, b2)]
        out = torch.stack(blocks).reshape(*batch, *blocks[0].shape)
        return self._expand_to_batch(out, 1 if diag else 2)


class DeferredGram(LinearOperator):
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

    def _transpose_nonbatch(self) -> DeferredGram:
        return self

    def _dense(self) -> torch.Tensor:
        if self._gram is None:
            self._gram = self.kernel.gram_block(self.x, self.x, True)
        return self._gram

    def to_dense(self) -> torch.Tensor:
        return self._dense()

    def _matmul(self, rhs: torch.Tensor) -> torch.Tensor:
        return self._dense() @ rhs

    def _diagonal(self) -> torch.Tensor:
        if self._gram is not None:
            return torch.diagonal(self._gram)
        return self.kernel.diag_block(self.x, self.x, True)

    def _get_indices(self, row_index, col_index, *batch_indices):
        return self._dense()[row_index, col_index]

    def _expand_batch(self, batch_shape):
        return DenseLinearOperator(self._dense()).expand(*batch_shape, *self.shape)


def _only_trainable(zoo_kernel: ZooKernel, kind: str) -> list[str]:
    names = [n for n, k in zoo_kernel.trainable_params().items() if k == kind]
    if not names:
        raise ValueError(f"{zoo_kernel.family} has no parameter that trains as a {kind}")
    return names


class LengthscaleKernel(ExactKernel):
    """An exact kernel whose lengthscale is gpytorch's trainable (optionally ARD) ``lengthscale``.

    For a parameter declared ``Param.train="lengthscale"`` (rbf, matern): the
    Gram is the kernelzoo kernel with that parameter at 1 on ``x / lengthscale``
    (same numerics, differentiable in the lengthscale), initialised from the
    kernel's value.
    """

    has_lengthscale = True
    _defer_square_blocks = False  # cheap; TrainableNystromKernel needs tensors

    def __init__(self, zoo_kernel: ZooKernel, **kwargs: Any) -> None:
        (name,) = _only_trainable(zoo_kernel, "lengthscale")
        kwargs.setdefault("lengthscale_constraint", Positive())
        super().__init__(zoo_kernel.replace(**{name: 1.0}), **kwargs)
        self._init_hyper("lengthscale", float(zoo_kernel.get_params()[name]))

    @property
    def is_stationary(self) -> bool:
        return bool(self.zoo_kernel.is_stationary)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.lengthscale.to(x.dtype)

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        return False  # the inputs are already scaled by a (trainable) lengthscale


class TrainableExactKernel(ExactKernel):
    """An exact kernel whose ``Param.train="positive"`` parameters are gpytorch parameters.

    Each such parameter ``p`` (fc nngp/ntk: ``weight_std`` and, with a bias,
    ``bias_std``) gets ``raw_p`` with a positivity constraint, initialised from
    the kernelzoo kernel and readable as the attribute ``p``; the Gram is the
    kernel's :meth:`~kernelzoo.kernels.base.Kernel.gram_with` with those tensors
    (differentiable).
    """

    def __init__(self, zoo_kernel: ZooKernel, **kwargs: Any) -> None:
        super().__init__(zoo_kernel, **kwargs)
        self._trained = tuple(_only_trainable(zoo_kernel, "positive"))
        for name in self._trained:
            self._positive(name, float(zoo_kernel.get_params()[name]))

    def _positive(self, name: str, value: float) -> None:
        raw = f"raw_{name}"
        self.register_parameter(raw, torch.nn.Parameter(torch.zeros(*self.batch_shape, 1)))
        self.register_constraint(raw, Positive())
        self._init_hyper(name, value)

    def trained_value(self, name: str) -> torch.Tensor:
        """The constrained value of the trained parameter ``name``, ``(*batch_shape, 1)``."""
        return getattr(self, f"raw_{name}_constraint").transform(getattr(self, f"raw_{name}"))

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name in self.__dict__.get("_trained", ()):
                return self.trained_value(name)
            raise

    def _cacheable(self, *tensors: torch.Tensor) -> bool:
        return False

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        self._check_dtypes(x1)
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = same_inputs(x1, x2)
        batch = torch.broadcast_shapes(self.batch_shape, x1.shape[:-2], x2.shape[:-2])
        b1 = x1.expand(*batch, *x1.shape[-2:]).reshape(-1, *x1.shape[-2:])
        b2 = x2.expand(*batch, *x2.shape[-2:]).reshape(-1, *x2.shape[-2:])
        values = {name: self.trained_value(name).expand(*batch, 1).reshape(-1)
                  for name in self._trained}
        blocks = [
            self.zoo_kernel.gram_with(a, None if same else b,
                                      {name: v[i] for name, v in values.items()}, diag=diag)
            for i, (a, b) in enumerate(zip(b1, b2))
        ]
        return torch.stack(blocks).reshape(*batch, *blocks[0].shape)
