"""Matérn kernels of smoothness nu = 1/2, 3/2, 5/2 (Rasmussen & Williams 2006, eq. 4.14).

With ``r = |x - y| / lengthscale``::

    nu = 1/2:  k = exp(-r)
    nu = 3/2:  k = (1 + sqrt(3) r) exp(-sqrt(3) r)
    nu = 5/2:  k = (1 + sqrt(5) r + 5 r^2 / 3) exp(-sqrt(5) r)

as scikit-learn's ``Matern(length_scale, nu)``. Distances come from one GEMM
with the entries where it cancels (near-duplicates) recomputed directly and an
exact zero for identical inputs (:mod:`kernelzoo.kernels.functional.distance`);
the threshold is larger than rbf's because ``r`` is the square root of what
the GEMM gives, which turns an absolute error ``e`` of ``r^2`` into ``e / 2r``.

The spectral density is a multivariate Student-t with ``2 nu`` degrees of
freedom and scale ``1 / lengthscale``: ``w = z sqrt(2 nu / g) / lengthscale``
with ``z ~ N(0, I)`` and ``g ~ chi^2(2 nu)`` (a sum of ``2 nu`` squared
normals, since ``2 nu`` is an integer here), which random Fourier features draw.
"""

from __future__ import annotations

import functools
import math

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.base import Kernel, Param, check_choice, check_positive
from kernelzoo.kernels.functional.distance import neg_half_sq_distances, scaled_neg_half_sq
from kernelzoo.kernels.functional.indices import refine_bytes
from kernelzoo.kernels.functional.dot import safe_sqrt
from kernelzoo.kernels.functional.extremes import common_exponent
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["Matern"]

_NUS = (0.5, 1.5, 2.5)
#: scaled distances beyond this give k = 0 in float64 already (exp(-1e4) underflows), and
#: clamping them keeps ``(1 + s + s^2/3) exp(-s)`` from becoming ``inf * 0``
_R_MAX = 1e4


def _check_nu(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be one of {_NUS}, got {value!r}")
    return float(check_choice(*_NUS)(float(value), name))


_check_nu.choices = _NUS  # type: ignore[attr-defined]


def matern_of_distance(r: torch.Tensor, nu: float) -> torch.Tensor:
    """``k(r)`` for scaled distances ``r >= 0`` (out of place, differentiable).

    Shape: any -> the same.
    """
    if nu == 0.5:
        return torch.exp(-r)
    if nu == 1.5:
        s = math.sqrt(3.0) * r
        return (1.0 + s) * torch.exp(-s)
    s = math.sqrt(5.0) * r
    return (1.0 + s + s * s / 3.0) * torch.exp(-s)


class Matern(Kernel):
    """Matérn kernel, no output scale (gpytorch's ``ScaleKernel`` adds one).

    Parameters
    ----------
    nu : {0.5, 1.5, 2.5}, default 1.5
        Smoothness: the GP's sample paths are ``ceil(nu) - 1`` times differentiable.
    lengthscale : float, default 1.0
        Length scale, > 0.

    Shape
    -----
    Inputs ``(n, d)`` (images are flattened).
    """

    family = "matern"
    params = (
        Param("nu", 1.5, _check_nu, "smoothness: 0.5, 1.5 or 2.5"),
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
        return tiled_gram(block, x, y, budget, self._block_bytes)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool,
               exponent: int | None | str = "auto") -> torch.Tensor:
        """One tile; ``exponent`` as for :meth:`RBF._block <kernelzoo.kernels.rbf.RBF._block>`."""
        refine = math.sqrt(torch.finfo(x.dtype).eps)
        v = scaled_neg_half_sq(x, y, same, self.lengthscale, refine=refine, exponent=exponent)
        if v is not None:  # far from the origin: r may be inf, where k is 0
            r = safe_sqrt(-2.0 * v).clamp_max(_R_MAX)
            return matern_of_distance(r, self.nu)
        xs = x / self.lengthscale
        ys = xs if same else y / self.lengthscale
        r = safe_sqrt(-2.0 * neg_half_sq_distances(xs, ys, same, refine=refine))
        return matern_of_distance(r, self.nu)

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        item, d = x.element_size(), x.shape[1]
        return (item * (4 * n_rows * n_cols + (n_rows + n_cols) * (d + 4))
                + refine_bytes(n_rows, n_cols, d, item))

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)

    def spectral_frequencies(
        self, n_samples: int, dim: int, generator: torch.Generator
    ) -> torch.Tensor:
        """Student-t frequencies, ``2 nu`` degrees of freedom, scale ``1 / lengthscale``.

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
            ``(n_samples, dim)``, CPU float64.
        """
        dof = round(2 * self.nu)
        z = torch.randn(n_samples, dim, generator=generator, dtype=torch.float64)
        chi2 = torch.randn(n_samples, dof, generator=generator, dtype=torch.float64).square()
        return z * (dof / chi2.sum(1, keepdim=True)).sqrt() / self.lengthscale
