"""Tiled on-disk Gram stores, under their former path: see :mod:`kernelzoo.store`.

The store moved to the lowest layer, where the solvers (``ops``) can read it
without importing an integration; this module keeps the old import path.
"""

from kernelzoo.store import *  # noqa: F403 - the same public names
from kernelzoo.store import __all__  # noqa: F401
