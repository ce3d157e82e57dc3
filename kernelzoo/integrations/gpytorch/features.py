"""gpytorch kernels computing a kernelzoo approximation.

- :class:`FeatureKernel`: explicit features, as low-rank operators ``Z1 Z2^T``
  (gpytorch's ``RFFKernel`` convention), cached by input content when nothing
  trains;
- :class:`ScaledFeatureKernel`: features of ``x / lengthscale``
  (``features_of_scaled_input``: random Fourier features) with gpytorch's
  trainable lengthscale;
- :class:`TrainableNystromKernel`: Nyström features through a trainable exact
  kernel, the normalisation recomputed differentiably;
- :class:`GramKernel`: approximations without (affordable) features: the
  dense approximate Gram, cached.
"""

from __future__ import annotations

from typing import Any

import torch
from gpytorch.constraints import Positive
from gpytorch.models import exact_prediction_strategies
from linear_operator.operators import (
    LowRankRootLinearOperator,
    MatmulLinearOperator,
    RootLinearOperator,
)

from kernelzoo.approx.base import Approximation
from kernelzoo.integrations.gpytorch.base import ZooKernelBase, broadcast_batches, same_inputs
from kernelzoo.integrations.gpytorch.exact import ExactKernel
from kernelzoo.ops.linalg import default_rel_clip, inv_sqrt_psd

__all__ = ["FeatureKernel", "GramKernel", "ScaledFeatureKernel", "TrainableNystromKernel"]


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
        if self.approximation.requires_labels:
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
        self._check_dtypes(x1)
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = same_inputs(x1, x2)
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


class ScaledFeatureKernel(FeatureKernel):
    """Features of ``x / lengthscale`` with a trainable gpytorch lengthscale.

    For approximations with ``features_of_scaled_input`` (random Fourier and
    orthogonal features): the features were drawn for lengthscale l0, and
    ``z(x * l0 / l)`` are the features for lengthscale ``l`` with the same
    draws (differentiable in l).
    """

    has_lengthscale = True

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        (name,) = [n for n, kind in approximation.kernel.trainable_params().items()
                   if kind == "lengthscale"]
        kwargs.setdefault("lengthscale_constraint", Positive())
        super().__init__(approximation, **kwargs)
        self.fitted_lengthscale = float(approximation.kernel.get_params()[name])
        self._init_hyper("lengthscale", self.fitted_lengthscale)

    def featurize(self, x: torch.Tensor) -> torch.Tensor:
        self._ensure_fitted(x)
        ratio = self.fitted_lengthscale / self.lengthscale.to(x.dtype)
        scaled = x * ratio  # (*batch, n, d): lengthscale batches broadcast here
        z = self.approximation.features(self._points(scaled.reshape(-1, scaled.shape[-1])))
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
            rel_clip = default_rel_clip(x.dtype)
        kzz = self.exact.forward(z, z).to(torch.float64)  # (*kernel_batch, m, m)
        flat = kzz.reshape(-1, *kzz.shape[-2:])
        norm = torch.stack(
            [inv_sqrt_psd(k, eps=float(opts["eps"]), rel_clip=rel_clip) for k in flat]
        ).reshape(kzz.shape)
        return self.exact.forward(x, z) @ norm.to(x.dtype)


class GramKernel(ZooKernelBase):
    """An approximation without affordable features (dense approximate Gram, cached)."""

    def __init__(self, approximation: Approximation, **kwargs: Any) -> None:
        super().__init__(approximation.kernel, **kwargs)
        self.approximation = approximation

    def forward(self, x1, x2, diag=False, last_dim_is_batch=False, **params):
        self._check_dtypes(x1)
        if last_dim_is_batch:
            x1, x2 = self._last_dim_as_batch(x1, x2)
        same = same_inputs(x1, x2)
        if not self.approximation.is_fitted:
            self.approximation.fit(self._points(x1.detach().reshape(-1, x1.shape[-1])))
        batch, b1, b2 = broadcast_batches(x1, x2)

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
