"""Gaussian (RBF) kernel: ``k(x, y) = exp(-|x - y|^2 / (2 lengthscale^2))``."""

from __future__ import annotations

import functools

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.base import Kernel, Param, check_positive
from kernelzoo.kernels.functional.distance import neg_half_sq_distances, scaled_neg_half_sq
from kernelzoo.kernels.functional.indices import refine_bytes
from kernelzoo.kernels.functional.extremes import common_exponent
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["RBF"]


class RBF(Kernel):
    """Gaussian kernel, no output scale (gpytorch's ``ScaleKernel`` adds one).

    ``k(x, y) = exp(-|x - y|^2 / (2 lengthscale^2))``. Its spectral density is
    Gaussian: frequencies ``N(0, I / lengthscale^2)``.

    Parameters
    ----------
    lengthscale : float, default 1.0
        Length scale, > 0.

    Shape
    -----
    Inputs ``(n, d)`` (images are flattened).
    """

    family = "rbf"
    params = (
        Param("lengthscale", 1.0, check_positive(), "length scale, > 0",
              search=(0.5, 1.0, 2.0), search_scale="median_distance", train="lengthscale"),
    )
    approximations = ("rff", "orf", "nystrom")
    is_stationary = True

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        # once per Gram (it reads a maximum on the host): scale the inputs by a power of two?
        exponent = common_exponent(x, x if y is None else y, self.lengthscale)
        block = functools.partial(self._block, exponent=exponent)
        return tiled_gram(block, x, y, budget, self._block_bytes, into=True)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool,
               out: torch.Tensor | None = None, exponent: int | None | str = "auto",
               ) -> torch.Tensor:
        """One tile; without gradients written into ``out`` (a contiguous buffer) if given.

        ``exponent``: the power of two the inputs are divided by where their squares
        would overflow (None: not needed; ``"auto"``: decided from this tile).
        """
        # v = -|x - y|^2 / (2 l^2) (exact near duplicates; scaled by a power of two where
        # the squares would overflow: far-apart points give -inf, so 0), then exp, in place
        # without gradients
        v = scaled_neg_half_sq(x, y, same, self.lengthscale, exponent=exponent)
        if v is None:
            scale = 1.0 / self.lengthscale
            xs = x * scale
            ys = xs if same else y * scale
            v = neg_half_sq_distances(xs, ys, same, out=out)
        return torch.exp(v) if v.requires_grad else v.exp_()

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        """The tile and its transpose (symmetric Grams), the near-duplicate mask (one
        byte an entry), scaled and augmented rows, the near-duplicate refinement."""
        item, d = x.element_size(), x.shape[1]
        return ((2 * item + 1) * n_rows * n_cols + 2 * item * (n_rows + n_cols) * (d + 2)
                + refine_bytes(n_rows, n_cols, d, item))

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)

    def spectral_frequencies(
        self, n_samples: int, dim: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Gaussian frequencies ``N(0, I) / lengthscale`` (CPU, float64).

        Parameters
        ----------
        n_samples : int
            Number of frequencies.
        dim : int
            Input dimension.
        generator : torch.Generator
            The CPU generator to draw from.

        Returns
        -------
        torch.Tensor
            ``(n_samples, dim)``.
        """
        draws = torch.randn(n_samples, dim, generator=generator, dtype=torch.float64)
        return draws / self.lengthscale
