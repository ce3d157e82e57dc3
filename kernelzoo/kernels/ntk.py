"""The NTK family: the neural tangent kernel of an infinitely wide fc or conv net.

Jacot et al. (2018); Arora et al. (2019). Equal to neural-tangents' ``stax``
``kernel_fn(..., 'ntk')`` (parameterization "ntk"); the recursion lives in
:mod:`kernelzoo.kernels.infinite`, shared with :mod:`~kernelzoo.kernels.nngp`.
"""

from __future__ import annotations

from kernelzoo.kernels.infinite import InfiniteWidthKernel

__all__ = ["NTK"]


class NTK(InfiniteWidthKernel):
    __doc__ = (
        "Neural tangent kernel (gradient-descent training dynamics at infinite width).\n"
        + InfiniteWidthKernel.__doc__.split("\n", 1)[1]
    )

    family = "ntk"
    approximations = ("empirical", "nystrom")
    tangent = True
