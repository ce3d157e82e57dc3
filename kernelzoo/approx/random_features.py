"""Random feature maps: Fourier features of stationary kernels (RFF, ORF) and
arc-cosine random features.

Fourier features draw their frequencies from the kernel's spectral density
(:meth:`~kernelzoo.kernels.base.Kernel.spectral_frequencies`: Gaussian for
``rbf``, multivariate Student-t for ``matern``), so any stationary family gets
them by declaring ``"rff"`` among its approximations. All weights are drawn on
the CPU in float64 from ``seed`` and cast on use.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from kernelzoo.approx.base import Approximation, generator

__all__ = ["RandomFourierFeatures", "OrthogonalRandomFeatures", "ArcCosineFeatures"]


class RandomFourierFeatures(Approximation):
    """Random Fourier features (Rahimi & Recht 2007), ``budget`` = D features.

    ``z(x) = sqrt(2/D) cos(W x + b)``, the rows of W drawn from the kernel's
    spectral density (for a lengthscale l, ``W = W_1 / l``), b uniform on
    [0, 2 pi): ``E[z(x) . z(y)] = k(x - y)`` for a stationary kernel with
    ``k(0) = 1``.
    """

    method = "rff"
    #: the features are ``f(x / lengthscale)`` with draws independent of the lengthscale
    features_of_scaled_input = True

    def _check_options(self) -> None:
        if not self.kernel.is_stationary:
            raise ValueError(
                f"{self.method} needs a stationary kernel (a spectral density); "
                f"{self.kernel.family} is not"
            )

    def _directions(self, d: int, gen: torch.Generator) -> torch.Tensor:
        return self.kernel.spectral_frequencies(self.budget, d, gen)

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        gen = generator(self.seed)
        d = x.shape[1]
        self.weights_ = self._directions(d, gen)
        self.offsets_ = torch.rand(self.budget, generator=gen, dtype=torch.float64) * (2 * math.pi)
        self.n_features_ = self.budget

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        d = math.prod(state["input_shape_"])
        return {"weights_": (self.budget, d), "offsets_": (self.budget,),
                "n_features_": self.budget}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        fitted = self.fitted_on(x, w=self.weights_, b=self.offsets_)
        proj = torch.addmm(fitted["b"][None, :], x, fitted["w"].T)
        return proj.cos_().mul_(math.sqrt(2.0 / self.budget))


class OrthogonalRandomFeatures(RandomFourierFeatures):
    """Orthogonal random features (Yu et al. 2016), ``budget`` = D features.

    Frequencies come in blocks ``S Q``: Q a Haar-random orthogonal d x d matrix
    (QR of a Gaussian matrix, signs fixed), S diagonal with the lengths of d
    independent draws from the kernel's spectral density (chi(d) / lengthscale
    for rbf). For an isotropic density each frequency then has the right
    distribution (a uniform direction times an independent length), while the
    frequencies within a block are orthogonal, which lowers the variance at
    equal D.
    """

    method = "orf"

    def _directions(self, d: int, gen: torch.Generator) -> torch.Tensor:
        blocks = []
        for _ in range(math.ceil(self.budget / d)):
            q, r = torch.linalg.qr(torch.randn(d, d, generator=gen, dtype=torch.float64))
            q = q * torch.sign(torch.diagonal(r))[None, :]
            lengths = self.kernel.spectral_frequencies(d, d, gen).norm(dim=1)
            blocks.append(lengths[:, None] * q.T)
        return torch.cat(blocks)[: self.budget]


class ArcCosineFeatures(Approximation):
    """Random features of the arc-cosine kernel, ``budget`` = width of every layer.

    ``h <- sqrt(2/m) step(W h) (W h)^n`` with W Gaussian, stacked ``depth``
    times; ``E[h(x).h(y)]`` is the degree-n arc-cosine kernel at depth 1.
    """

    method = "random-features"

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        gen = generator(self.seed)
        dims = [x.shape[1]] + [self.budget] * self.kernel.depth
        self.weights_ = [
            torch.randn(dims[i + 1], dims[i], generator=gen, dtype=torch.float64)
            for i in range(self.kernel.depth)
        ]
        self.n_features_ = self.budget

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        dims = [math.prod(state["input_shape_"])] + [self.budget] * self.kernel.depth
        shapes: dict[str, Any] = {f"weights_[{i}]": (dims[i + 1], dims[i])
                                  for i in range(self.kernel.depth)}
        if len(state.get("weights_", ())) != self.kernel.depth:
            raise ValueError(f"state weights_ must hold {self.kernel.depth} matrices (one per "
                             f"layer), got {len(state.get('weights_', ()))}")
        return {**shapes, "n_features_": self.budget}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        fitted = self.fitted_on(x, **{f"w{i}": w for i, w in enumerate(self.weights_)})
        degree, scale = self.kernel.degree, math.sqrt(2.0 / self.budget)
        h = x
        for i in range(self.kernel.depth):
            pre = h @ fitted[f"w{i}"].T
            if degree == 0:
                h = (pre > 0).to(pre.dtype)
            elif degree == 1:
                h = pre.clamp_min(0.0)
            else:
                h = pre.clamp_min(0.0).square()
            h = h * scale
        return h
