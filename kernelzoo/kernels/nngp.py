"""The NNGP family: the Gaussian-process kernel of an infinitely wide fc or conv net.

Neal (1996); Lee et al. (2018); Novak et al. (2019). Equal to neural-tangents'
``stax`` ``kernel_fn(..., 'nngp')`` (parameterization "ntk"); the recursion
lives in :mod:`kernelzoo.kernels.infinite`, shared with :mod:`~kernelzoo.kernels.ntk`.
"""

from __future__ import annotations

from kernelzoo.kernels.infinite import InfiniteWidthKernel

__all__ = ["NNGP"]


class NNGP(InfiniteWidthKernel):
    __doc__ = (
        "Neural-network Gaussian-process kernel (the output covariance at initialisation).\n"
        + InfiniteWidthKernel.__doc__.split("\n", 1)[1]
    )

    family = "nngp"
    approximations = ("monte-carlo", "nystrom")
    tangent = False
