"""gpytorch kernels whose features are a network trained through the marginal likelihood.

For approximations with ``trains_features`` (the layerwise CKN): deep kernel
learning in the RKHS, the network's weights (and kernel bandwidths) as gpytorch
parameters.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch
from gpytorch.constraints import Positive

from kernelzoo.approx.base import Approximation
from kernelzoo.integrations.gpytorch.features import FeatureKernel

__all__ = ["LayerwiseCKNKernel"]


class LayerwiseCKNKernel(FeatureKernel):
    """The layerwise (Nyström) CKN with anchors and sigma trained through the likelihood.

    The fitted approximation's network (:meth:`LayerwiseCKN.network`: one
    ``CKNLayer`` torch module per layer, anchors as parameters) is registered
    as the submodule ``network``; layers with ``kappa='exp'`` get a trainable
    ``sigma`` (gpytorch parameter ``raw_sigma`` with a positivity constraint),
    evaluated through :meth:`CKNLayer.using_sigma`. Anchors are projected back
    onto the unit sphere before each evaluation (a projected-gradient step, as
    the CKN papers do). Features are recomputed at every call, so nothing is
    cached.

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
            self._init_hyper("sigma", sigma)
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
        with contextlib.ExitStack() as stack:
            for j, i in enumerate(self._exp_layers):
                stack.enter_context(layers[i].using_sigma(sigma[j].to(flat.dtype)))
            images = self._points(flat).to(layers[0].weight.dtype)
            return self.network(images).to(flat.dtype)

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
