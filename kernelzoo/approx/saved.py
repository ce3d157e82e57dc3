"""Saved approximations: the file format, its checksum, and :func:`load`.

:meth:`kernelzoo.approx.base.Approximation.save` writes :data:`FORMAT`;
:func:`load` reads it (and the previous format, unverified), checks it, and
rebuilds the approximation through the registry.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch

from kernelzoo import registry
from kernelzoo._io import canonical_digest

__all__ = ["FORMAT", "PREVIOUS_FORMAT", "load", "payload_checksum"]


# functions here return an Approximation typed Any: approx.base imports this module
#: the format ``Approximation.save`` writes
FORMAT = "kernelzoo-approximation/2"
#: the format before checksums and registry keys (still read, 'not verified')
PREVIOUS_FORMAT = "kernelzoo-approximation/1"
#: the keys of a FORMAT file (``checksum`` may be missing: 'not verified')
_KEYS = ("format", "family", "method", "params", "spec", "budget", "seed", "options", "state",
         "kernelzoo_version", "checksum")
_REQUIRED = ("family", "method", "params", "budget", "seed", "options", "state")
def payload_checksum(payload: dict[str, Any]) -> str:
    """The checksum of a saved approximation: over every key but ``checksum`` itself.

    Parameters
    ----------
    payload : dict
        The saved content.

    Returns
    -------
    str
        Hex sha256.
    """
    return canonical_digest({k: v for k, v in payload.items() if k != "checksum"})


def _storable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value)
    if isinstance(value, tuple):
        return [_storable(v) for v in value]
    if isinstance(value, list):
        return [_storable(v) for v in value]
    return value


def _tensors(value: Any, name: str = ""):
    """``(name, tensor)`` for every tensor in nested state (``weights_[0]``, ``params_[w0]``)."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for key, entry in value.items():
            yield from _tensors(entry, f"{name}[{key}]" if name else str(key))
    elif isinstance(value, (list, tuple)):
        for i, entry in enumerate(value):
            yield from _tensors(entry, f"{name}[{i}]")


def _from_previous(payload: dict[str, Any], path: str) -> dict[str, Any]:
    """A PREVIOUS_FORMAT payload in today's keys (family from its spec, method from its class)."""
    for key in ("class", "kernel", "budget", "seed", "options", "state"):
        if key not in payload:
            raise ValueError(f"{path}: missing key {key!r}")
    method = registry.PREVIOUS_CLASSES.get(payload["class"])
    if method is None:
        raise ValueError(f"{path}: refusing to load class {payload['class']!r}")
    try:
        family, params = registry.parse_spec(payload["kernel"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: kernel spec rejected: {exc}") from None
    return {"family": family, "method": method, "params": params, "spec": payload["kernel"],
            **{k: payload[k] for k in ("budget", "seed", "options", "state")}}


def load(path: str | os.PathLike) -> Any:
    """Load an approximation written by :meth:`~kernelzoo.approx.base.Approximation.save`.

    Checks, each with its own ``ValueError`` naming the file: readable (else
    corrupt or truncated), the format, the checksum (else corrupt or edited),
    the keys, that the method is one of the family's approximations, that the
    kernel's parameters are valid and agree with the spec string, the
    approximation's settings, and that the fitted state is complete, finite
    and of the shapes those settings give. A file without a checksum (this
    format, or the previous one, ``kernelzoo-approximation/1``) loads with a
    ``UserWarning`` that it is not verified.

    Parameters
    ----------
    path : str or path-like
        A file written by :meth:`~kernelzoo.approx.base.Approximation.save`.

    Returns
    -------
    Approximation
        Fitted, of the saved family and method.
    """
    where = os.fspath(path)
    try:
        payload = torch.load(where, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error naming it
        raise ValueError(
            f"{where}: cannot be read as a kernelzoo approximation file (corrupt, truncated or "
            f"another kind of file): {exc}"
        ) from None
    fmt = payload.get("format") if isinstance(payload, dict) else None
    if not (isinstance(fmt, str) and fmt.startswith("kernelzoo-approximation/")):
        raise ValueError(f"{where}: not a kernelzoo approximation file")
    if fmt == PREVIOUS_FORMAT:
        payload = _from_previous(payload, where)
        _not_verified(where, f"it is in the previous format {PREVIOUS_FORMAT!r}, without one")
    elif fmt == FORMAT:
        unknown = sorted(str(k) for k in payload if k not in _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r}; the file is damaged")
        if "checksum" in payload:
            try:
                intact = payload["checksum"] == payload_checksum(payload)
            except TypeError:  # a value no saved file holds
                intact = False
            if not intact:
                raise ValueError(
                    f"{where}: checksum mismatch: the file is corrupt or was edited after it "
                    f"was saved"
                )
        else:
            _not_verified(where, "it has none")
    else:
        raise ValueError(
            f"{where}: format {fmt!r} is not one this kernelzoo reads ({FORMAT}, "
            f"{PREVIOUS_FORMAT})"
        )
    return _build(payload, where)


def _not_verified(where: str, why: str) -> None:
    warnings.warn(f"{where}: loaded without checksum, not verified ({why})", UserWarning,
                  stacklevel=3)


def _build(payload: dict[str, Any], where: str) -> Any:
    """The approximation a (checked) payload describes, or a ValueError naming the damage."""
    for key in _REQUIRED:
        if key not in payload:
            raise ValueError(f"{where}: missing key {key!r}")
    family, method, params = payload["family"], payload["method"], payload["params"]
    if not isinstance(family, str) or family not in registry.FAMILIES:
        raise ValueError(
            f"{where}: unknown family {family!r}; known: {', '.join(registry.available())}"
        )
    if not isinstance(method, str) or method not in registry.METHODS:
        raise ValueError(
            f"{where}: unknown method {method!r}; known: {', '.join(sorted(registry.METHODS))}"
        )
    kernel_cls = registry.kernel_class(family)
    if method not in kernel_cls.approximations:
        raise ValueError(
            f"{where}: {method!r} is not an approximation of {family} (its methods: "
            f"{', '.join(kernel_cls.approximations)})"
        )
    if not isinstance(params, dict):
        raise ValueError(f"{where}: params must be a dict, got {type(params).__name__}")
    try:
        kernel = kernel_cls(**params)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: kernel parameters rejected: {exc}") from None
    if "spec" in payload:
        try:
            named = registry.kernel(payload["spec"])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: spec rejected: {exc}") from None
        if named != kernel:  # compared with defaults filled in, not as strings
            raise ValueError(
                f"{where}: the spec {payload['spec']!r} and the parameters ({kernel.spec}) "
                f"disagree"
            )
    options = payload["options"]
    if not isinstance(options, dict):
        raise ValueError(f"{where}: options must be a dict, got {type(options).__name__}")
    cls = registry.resolve(registry.METHODS[method])
    try:
        obj = cls(kernel, budget=payload["budget"], seed=payload["seed"], **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: approximation settings rejected: {exc}") from None
    state = payload["state"]
    try:
        obj.check_state(state)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
    state = dict(state)
    state["input_shape_"] = tuple(state["input_shape_"])
    obj._set_state(state)
    obj._cache = {}
    return obj
