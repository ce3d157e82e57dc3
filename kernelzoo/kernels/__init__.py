"""Kernel families, one module each (see :mod:`kernelzoo.registry` for the list)."""
