"""Convolutional NNGP/NTK: window sums, pooling, and the equal-positions (diagonal) path.

The conv step sums the covariance over positions ``(p + s, q + s)`` with the
*same* shift s on both sides, so with the flatten readout and no pooling the
diagonal ``p = q`` of layer l+1 needs only the diagonal of layer l: P numbers
per image pair (a 2-D window sum per pair), as neural-tangents does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kernelzoo.kernels.functional.activations import activate, activate_diag, diag_derivative
from kernelzoo.kernels.functional.architecture import Net
from kernelzoo.kernels.functional.fc import dense_readout

__all__ = [
    "conv2d_sum",
    "conv_diag_block",
    "conv_diag_self",
    "diag_block_bytes",
    "pad_axis",
    "pixel_variance",
    "pool_axis",
    "window_sum",
]


def pad_axis(t: torch.Tensor, axis: int, low: int, high: int, circular: bool) -> torch.Tensor:
    if low == 0 and high == 0:
        return t
    n = t.shape[axis]
    if circular:
        index = torch.arange(-low, n + high, device=t.device) % n
        return t.index_select(axis, index)
    # F.pad lists (low, high) pairs from the last dimension backwards
    spec = [0, 0] * (t.ndim - axis)
    spec[-2], spec[-1] = low, high
    return F.pad(t, spec)


def window_sum(t: torch.Tensor, axes: tuple[int, ...], size: int, padding: str) -> torch.Tensor:
    """``out[p] = sum_k t_padded[p + k]`` for k in [0, size), the *same* shift k
    applied jointly along every axis in ``axes`` (one spatial axis of a conv,
    seen from both images of a pair).

    ``padding``: 'same' (zeros, low side (size-1)//2 as lax's SAME), 'circular'
    (wrap, same amounts), 'valid' (no padding; the output is size-1 shorter).

    Shape: ``t`` any, the listed axes of equal length n -> n (same, circular)
    or n - size + 1 (valid).
    """
    n = t.shape[axes[0]]
    if padding == "valid":
        n_out = n - size + 1
        src = t
    else:
        n_out = n
        low = (size - 1) // 2
        high = size - 1 - low
        src = t
        for axis in axes:
            src = pad_axis(src, axis, low, high, padding == "circular")
    out = None
    for shift in range(size):
        index = [slice(None)] * t.ndim
        for axis in axes:
            index[axis] = slice(shift, shift + n_out)
        piece = src[tuple(index)]
        out = piece if out is None else out + piece
    return out


def pool_axis(t: torch.Tensor, axis: int, stride: int) -> torch.Tensor:
    """Average pooling of window ``stride``, stride ``stride``, 'SAME' zero padding
    (``ceil(n / stride)`` outputs, low pad ``total // 2``), dividing by the window
    size: neural-tangents' ``AvgPool`` with ``normalize_edges=False`` along one axis.

    Shape: axis of length n -> ``ceil(n / stride)``.
    """
    if stride == 1:
        return t
    n = t.shape[axis]
    n_out = -(-n // stride)
    total = n_out * stride - n
    t = pad_axis(t, axis, total // 2, total - total // 2, circular=False)
    shape = t.shape[:axis] + (n_out, stride) + t.shape[axis + 1 :]
    return t.reshape(shape).sum(axis + 1) * (1.0 / stride)


def conv2d_sum(t: torch.Tensor, net: Net) -> torch.Tensor:
    """The f x f window sum of maps ``(..., H, W)`` (separable)."""
    t = window_sum(t, (t.ndim - 2,), net.filter_size, net.padding)
    return window_sum(t, (t.ndim - 1,), net.filter_size, net.padding)


def pixel_variance(x: torch.Tensor) -> torch.Tensor:
    """x(p).x(p) / C: ``(n, C, H, W)`` -> ``(n, H, W)``."""
    return x.square().mean(1)


# ----------------------------------------------------------------------- conv, diagonal path
def conv_diag_block(
    x: torch.Tensor,
    y: torch.Tensor,
    vx: list[torch.Tensor],
    vy: list[torch.Tensor],
    net: Net,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flatten readout without pooling: only equal positions, an ``(r, c)`` tile.

    Shape: ``x (r, C, H, W)``, ``y (c, C, H, W)``, ``vx[l] (r, H_l, W_l)`` ->
    ``(r, c)`` twice.
    """
    cs, b = net.conv_scale, net.bias_var
    k0 = torch.einsum("ichw,jchw->ijhw", x, y) * (1.0 / x.shape[1])
    a, ta = k0, None
    for layer in range(net.depth):
        k = cs * conv2d_sum(a, net) + b
        t = None if not net.ntk else (k if ta is None else cs * conv2d_sum(ta, net) + k)
        a, ta = activate(k, t, vx[layer][:, None], vy[layer][None, :], net.activation,
                         net.negative_slope)
    a = a.mean((-2, -1))
    ta = None if ta is None else ta.mean((-2, -1))
    return dense_readout(a, ta, net)


def diag_block_bytes(n_rows: int, n_cols: int, positions: int, item: int) -> int:
    """Working memory of a ``conv_diag_block`` tile (about 10 pair maps live)."""
    return item * n_rows * n_cols * positions * 10


def conv_diag_self(x: torch.Tensor, net: Net) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(x, x) of the flatten readout without pooling: angle 0 at every position.

    Shape: ``(n, C, H, W)`` -> ``(n,)`` twice.
    """
    cs, b = net.conv_scale, net.bias_var
    a, ta = pixel_variance(x), None
    for _ in range(net.depth):
        k = cs * conv2d_sum(a, net) + b
        t = None if not net.ntk else (k if ta is None else cs * conv2d_sum(ta, net) + k)
        a = activate_diag(k, net.activation, net.negative_slope)
        ta = None if t is None else t * diag_derivative(k, net.activation, net.negative_slope)
    a = a.mean((-2, -1))
    ta = None if ta is None else ta.mean((-2, -1))
    return dense_readout(a, ta, net)
