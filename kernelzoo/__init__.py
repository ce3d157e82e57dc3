"""kernelzoo: the kernels behind convolutional and infinitely wide networks.

>>> import kernelzoo as kz
>>> k = kz.kernel("arccos(degree=1, depth=2)")
>>> K = k.gram(X)                                   # doctest: +SKIP
"""

from kernelzoo._validation import get_memory_budget, set_memory_budget
from kernelzoo._version import __version__
from kernelzoo.ops.precision import get_allow_tf32, set_allow_tf32
from kernelzoo.registry import available, kernel

__all__ = ["kernel", "available", "load", "set_memory_budget", "get_memory_budget",
           "set_allow_tf32", "get_allow_tf32", "__version__"]


def load(path):
    """Load an approximation saved with ``a.save(path)``.

    Parameters
    ----------
    path : str or path-like
        The file.

    Returns
    -------
    Approximation
        Fitted; every part of the file is checked first (a ``ValueError`` naming
        the file otherwise).
    """
    from kernelzoo.approx.base import load as _load

    return _load(path)
