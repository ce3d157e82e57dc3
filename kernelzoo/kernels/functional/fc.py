"""The fully connected NNGP/NTK recursion on (rows x columns) tiles."""

from __future__ import annotations

import torch

from kernelzoo.kernels.functional.activations import activate, activate_diag, diag_derivative
from kernelzoo.kernels.functional.architecture import Net

__all__ = ["dense_readout", "fc_block", "fc_diag"]


def fc_block(
    x: torch.Tensor, y: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, net: Net,
    same: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """NNGP and NTK of a fully connected net for an ``(r, c)`` tile.

    ``vx``, ``vy`` are the input kernels ``|x|^2 / d`` of the rows and columns.
    ``same``: the tile is x with itself, whose diagonal then takes ``vx`` exactly
    (the GEMM rounds differently, and erf's dual map near angle 0 amplifies it).

    Shape: ``x (r, d)``, ``y (c, d)``, ``vx (r,)``, ``vy (c,)`` -> ``(r, c)`` twice.
    """
    a = (x @ y.T) / x.shape[1]
    if same:
        a = a - torch.diag_embed(a.diagonal()) + torch.diag_embed(vx)
    ta: torch.Tensor | None = None
    for _ in range(net.depth):
        k = net.weight_var * a + net.bias_var
        t = None if not net.ntk else (k if ta is None else net.weight_var * ta + k)
        vx = net.weight_var * vx + net.bias_var
        vy = net.weight_var * vy + net.bias_var
        a, ta = activate(k, t, vx[:, None], vy[None, :], net.activation, net.negative_slope)
        vx = activate_diag(vx, net.activation, net.negative_slope)
        vy = activate_diag(vy, net.activation, net.negative_slope)
    return dense_readout(a, ta, net)


def fc_diag(vx: torch.Tensor, net: Net) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(x, x) from the input kernels ``|x|^2 / d`` (the angle is 0 at every layer).

    Shape: ``(n,)`` -> ``(n,)`` twice.
    """
    a, ta = vx, None
    for _ in range(net.depth):
        k = net.weight_var * a + net.bias_var
        t = None if not net.ntk else (k if ta is None else net.weight_var * ta + k)
        a = activate_diag(k, net.activation, net.negative_slope)
        if t is not None:
            t = t * diag_derivative(k, net.activation, net.negative_slope)
        ta = t
    return dense_readout(a, ta, net)


def dense_readout(a, ta, net: Net, weight_var=None, bias_var=None):
    """The final Dense layer of the readout (``weight_var``/``bias_var`` override
    the net's values: runtime tensors in compiled stages)."""
    if not net.readout_dense:
        return a, ta
    w = net.weight_var if weight_var is None else weight_var
    b = net.bias_var if bias_var is None else bias_var
    k = w * a + b
    t = None if ta is None else w * ta + k
    return k, t
