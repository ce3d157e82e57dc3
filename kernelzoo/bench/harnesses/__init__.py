"""The harnesses of ``kernelzoo compare``, one per file.

Adding one: write a :class:`~kernelzoo.bench.harness.Harness` subclass in a new
file here and add the module to the import line below (modules are imported
by name only in the registry; this list is the one place that names them).
:data:`HARNESSES` maps each harness's ``name`` to its class, in run order.
"""

from __future__ import annotations

from kernelzoo.bench.harness import Harness
from kernelzoo.bench.harnesses import (  # noqa: F401 - each module defines one harness
    accuracy,
    approximation,
    gp,
    similarity,
    spectrum,
    speed,
    stability,
    training_time,
)

__all__ = ["HARNESSES", "default_harnesses"]


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


#: name -> harness class, in run order (``Harness.order``)
HARNESSES: dict[str, type[Harness]] = {
    cls.name: cls for cls in sorted(_subclasses(Harness), key=lambda c: (c.order, c.name))
    if cls.name
}


def default_harnesses() -> list[str]:
    """Names of the harnesses a plain ``kernelzoo compare`` runs."""
    return [name for name, cls in HARNESSES.items() if cls.default]
