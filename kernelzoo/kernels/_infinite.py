"""The infinite-width recursion shared by the NNGP and NTK families (fc and conv).

Conventions are neural-tangents' ``stax`` with parameterization "ntk" (see
docs: DESIGN, "NNGP / NTK conventions"): ``depth`` hidden ``Dense`` / ``Conv``
layers, each followed by the activation (and, for conv nets, by an optional
average pooling), then the readout (``gap``: ``GlobalAvgPool``, ``flatten``:
``Flatten``) and, if ``readout_dense``, one ``Dense(1)``. Layer updates (K the
NNGP, T the NTK, c = weight_std^2 / filter_size^2 for conv, weight_std^2 for
dense)::

    K <- c * (K summed over the filter window) + bias_std^2
    T <- c * (T summed over the filter window) + K_new
    K <- E[f(u) f(v)],  T <- T * E[f'(u) f'(v)]    (u, v ~ N(0, [[K11, K12], [K12, K22]]))

with the input kernel ``x.x' / d`` (per pixel, over channels, for conv).

Three evaluation paths:

- **fc**: (n, m) tiles, the recursion on matrices.
- **conv, diagonal** (``readout='flatten'`` without pooling): the conv step sums
  K over positions ``(p + s, q + s)`` with the *same* shift s on both sides, so
  the diagonal ``p = q`` of layer l+1 needs only the diagonal of layer l: P
  numbers per image pair (a 2-D window sum per pair), as neural-tangents does.
- **conv, full** (``readout='gap'``, or any pooling, which mixes neighbouring
  positions): the covariance over all position pairs, ``(B, H, W, H, W)`` per
  block of B image pairs. The conv step is separable: a sum of f shifted
  copies jointly along (h1, h2), then along (w1, w2) (2 f adds instead of f^2).
  Flatten with pooling takes the diagonal at the end.

Angles are ``atan2(sqrt(K11 K22 - K12^2), K12)``; ``K12^2`` is inflated by
``1 + 64 eps`` before the subtraction, so that rounding in (near-)identical
pairs gives an angle of exactly 0 (neural-tangents' own NTK diagonal is off by
about 1e-8 there) at a relative cost of ~1e-14 elsewhere.

The full path can run under ``torch.compile`` (one fused kernel per layer: the
first layer, a middle layer, the last layer with the readout; 3-5x faster than
eager on CPU, see benchmarks/results/nt_compare.md); by default
only for Grams large enough to amortise the compilation (tens of seconds),
never with gradients, and it falls back to eager torch, with a warning, if
compilation fails. ``KERNELZOO_COMPILE=0`` disables it, ``=1`` forces it.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import types
import warnings
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kernelzoo._validation import as_images, as_vectors, get_memory_budget
from kernelzoo.kernels._dot import safe_sqrt
from kernelzoo.kernels.base import Kernel, Param, check_choice, check_int, check_positive

__all__ = [
    "InfiniteWidthKernel",
    "Net",
    "conv_diag_block",
    "conv_full_gram",
    "conv_self_pairs",
    "conv_shapes",
    "conv_variances",
    "fc_block",
    "fc_diag",
    "full_pair_bytes",
    "pair_chunks",
]

_PI = math.pi
ACTIVATIONS = ("relu", "erf", "abs")
PADDINGS = ("same", "valid", "circular")
READOUTS = ("gap", "flatten")


@dataclasses.dataclass(frozen=True)
class Net:
    """The resolved architecture (hashable: it keys the compiled functions)."""

    conv: bool
    depth: int
    activation: str
    weight_var: float  # weight_std^2
    bias_var: float  # bias_std^2 (0: no bias)
    filter_size: int
    padding: str
    readout: str
    readout_dense: bool
    pooling: tuple[int, ...]  # one stride per hidden layer, 1 = no pooling
    ntk: bool  # also carry the tangent kernel

    @property
    def conv_scale(self) -> float:
        """c = weight_std^2 / filter_size^2 (fan-in normalisation of a conv layer)."""
        return self.weight_var / self.filter_size**2

    @property
    def pooled(self) -> bool:
        return any(s > 1 for s in self.pooling)

    @property
    def full_spatial(self) -> bool:
        """Whether conv needs the covariance over all position pairs."""
        return self.readout == "gap" or self.pooled


# ----------------------------------------------------------------------- activations
def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def activate(
    k: torch.Tensor,
    t: torch.Tensor | None,
    v1: torch.Tensor,
    v2: torch.Tensor,
    activation: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One activation layer: ``(K, T) -> (E[f f], T * E[f' f'])``, elementwise.

    Parameters
    ----------
    k : pre-activation covariances K12 of the pairs.
    t : tangent kernel of the pairs, or None (NNGP only).
    v1, v2 : pre-activation variances K11, K22, broadcastable to ``k``.

    Shape: ``k``, ``t`` any shape; ``v1``, ``v2`` broadcastable to it.
    """
    grad = _needs_grad(k, t, v1, v2)
    if activation == "erf":
        q = (1.0 + 2.0 * v1) * (1.0 + 2.0 * v2)
        root = q.sqrt()
        a = torch.asin((2.0 * k / root).clamp(-1.0, 1.0)) * (2.0 / _PI)
        if t is None:
            return a, None
        d = (q - 4.0 * k * k).clamp_min(torch.finfo(k.dtype).tiny).rsqrt() * (4.0 / _PI)
        return a, t * d
    # relu, abs: theta = atan2(sqrt(K11 K22 - K12^2), K12)
    eps = torch.finfo(k.dtype).eps
    s2 = v1 * v2 - (1.0 + 64 * eps) * (k * k)
    if grad:
        s = safe_sqrt(s2)
        # atan2(0, 0) has a 0/0 gradient: nudge K12 where both vanish (zero inputs)
        both_zero = (s == 0) & (k == 0)
        theta = torch.atan2(s, torch.where(both_zero, torch.ones_like(k), k))
    else:
        s = s2.clamp_min(0.0).sqrt()
        theta = torch.atan2(s, k)
    if activation == "relu":
        rest = _PI - theta  # pi - theta
        a = (s + rest * k) * (1.0 / (2 * _PI))
        d = rest * (1.0 / (2 * _PI))
    else:  # abs = relu(u) + relu(-u)
        rest = _PI - 2.0 * theta
        a = (2.0 * s + rest * k) * (1.0 / _PI)
        d = rest * (1.0 / _PI)
    return a, (None if t is None else t * d)


def activate_diag(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f(u)^2]`` for ``u ~ N(0, v)``: the activation on the diagonal (angle 0)."""
    if activation == "relu":
        return 0.5 * v
    if activation == "abs":
        return v
    return torch.asin(2.0 * v / (1.0 + 2.0 * v)) * (2.0 / _PI)


# ----------------------------------------------------------------------- fc
def fc_block(
    x: torch.Tensor, y: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, net: Net
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """NNGP and NTK of a fully connected net for an ``(r, c)`` tile.

    ``vx``, ``vy`` are the input kernels ``|x|^2 / d`` of the rows and columns.

    Shape: ``x (r, d)``, ``y (c, d)``, ``vx (r,)``, ``vy (c,)`` -> ``(r, c)`` twice.
    """
    a = (x @ y.T) / x.shape[1]
    ta: torch.Tensor | None = None
    for _ in range(net.depth):
        k = net.weight_var * a + net.bias_var
        t = None if not net.ntk else (k if ta is None else net.weight_var * ta + k)
        vx = net.weight_var * vx + net.bias_var
        vy = net.weight_var * vy + net.bias_var
        a, ta = activate(k, t, vx[:, None], vy[None, :], net.activation)
        vx, vy = activate_diag(vx, net.activation), activate_diag(vy, net.activation)
    return _dense_readout(a, ta, net)


def fc_diag(vx: torch.Tensor, net: Net) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(x, x) from the input kernels ``|x|^2 / d`` (the angle is 0 at every layer).

    Shape: ``(n,)`` -> ``(n,)`` twice.
    """
    a, ta = vx, None
    for _ in range(net.depth):
        k = net.weight_var * a + net.bias_var
        t = None if not net.ntk else (k if ta is None else net.weight_var * ta + k)
        a = activate_diag(k, net.activation)
        if t is not None:
            t = t * _diag_derivative(k, net.activation)
        ta = t
    return _dense_readout(a, ta, net)


def _diag_derivative(v: torch.Tensor, activation: str) -> torch.Tensor:
    """``E[f'(u)^2]`` for ``u ~ N(0, v)``."""
    if activation == "relu":
        return torch.full_like(v, 0.5)
    if activation == "abs":
        return torch.ones_like(v)
    return (4.0 / _PI) / (1.0 + 4.0 * v).sqrt()


def _dense_readout(a, ta, net: Net):
    if not net.readout_dense:
        return a, ta
    k = net.weight_var * a + net.bias_var
    t = None if ta is None else net.weight_var * ta + k
    return k, t


# ----------------------------------------------------------------------- conv helpers
def conv_shapes(height: int, width: int, net: Net) -> list[tuple[int, int]]:
    """The spatial shape after each hidden layer's conv (before its pooling),
    followed by the final shape (after the last pooling).

    Raises a ``ValueError`` when ``padding='valid'`` (or pooling) leaves no pixel.
    """
    shapes = []
    h, w = height, width
    for layer in range(net.depth):
        if net.padding == "valid":
            h, w = h - net.filter_size + 1, w - net.filter_size + 1
            if h < 1 or w < 1:
                raise ValueError(
                    f"padding='valid' with filter_size={net.filter_size} leaves no pixel at "
                    f"hidden layer {layer + 1} of {net.depth} for {height}x{width} images; use "
                    f"padding='same', a smaller filter_size or depth, or larger images"
                )
        shapes.append((h, w))
        s = net.pooling[layer]
        h, w = -(-h // s), -(-w // s)
    shapes.append((h, w))
    return shapes


def _pad_axis(t: torch.Tensor, axis: int, low: int, high: int, circular: bool) -> torch.Tensor:
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
            src = _pad_axis(src, axis, low, high, padding == "circular")
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
    t = _pad_axis(t, axis, total // 2, total - total // 2, circular=False)
    shape = t.shape[:axis] + (n_out, stride) + t.shape[axis + 1 :]
    return t.reshape(shape).sum(axis + 1) * (1.0 / stride)


def _conv2d_sum(t: torch.Tensor, net: Net) -> torch.Tensor:
    """The f x f window sum of maps ``(..., H, W)`` (separable)."""
    t = window_sum(t, (t.ndim - 2,), net.filter_size, net.padding)
    return window_sum(t, (t.ndim - 1,), net.filter_size, net.padding)


def _pixel_variance(x: torch.Tensor) -> torch.Tensor:
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
        k = cs * _conv2d_sum(a, net) + b
        t = None if not net.ntk else (k if ta is None else cs * _conv2d_sum(ta, net) + k)
        a, ta = activate(k, t, vx[layer][:, None], vy[layer][None, :], net.activation)
    a = a.mean((-2, -1))
    ta = None if ta is None else ta.mean((-2, -1))
    return _dense_readout(a, ta, net)


def diag_block_bytes(n_rows: int, n_cols: int, positions: int, item: int) -> int:
    """Working memory of a ``conv_diag_block`` tile (about 10 pair maps live)."""
    return item * n_rows * n_cols * positions * 10


# ----------------------------------------------------------------------- conv, full path
# The conv step reads a padded copy made once per layer (outside the compiled
# kernels): plain shifted slices then vectorise, where padding inside the fused
# stencil costs masked loads (about 1.5x slower on CPU).
def _input_covariance(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """x_a(p).x_b(q) / C over position pairs: ``(B, C, H, W)`` twice -> ``(B, H, W, H, W)``."""
    n_pairs, channels, h, w = x_a.shape
    k0 = torch.bmm(x_a.reshape(n_pairs, channels, h * w).transpose(1, 2),
                   x_b.reshape(n_pairs, channels, h * w)) * (1.0 / channels)
    return k0.reshape(n_pairs, h, w, h, w)


def _pad_pairs(
    k: torch.Tensor | None, net: Net, buffers: dict | None = None, slot: int = 0
) -> torch.Tensor | None:
    """Pad the four position axes of ``(B, H, W, H, W)`` for the conv ('valid': none).

    With ``buffers`` (a dict kept for one Gram), 'same' padding writes into the
    interior of a zero buffer kept per (slot, shape): a strided copy instead of
    a fresh allocation each layer (page faults made ``F.pad`` 4x slower).
    """
    if k is None or net.padding == "valid":
        return k
    low = (net.filter_size - 1) // 2
    high = net.filter_size - 1 - low
    if net.padding == "same":
        if buffers is None:
            return F.pad(k, (low, high) * 4)
        shape = (k.shape[0],) + tuple(n + low + high for n in k.shape[1:])
        key = (slot, shape, k.dtype, k.device)
        if key not in buffers:
            buffers[key] = k.new_zeros(shape)
        padded = buffers[key]
        interior = tuple(slice(low, low + n) for n in k.shape[1:])
        padded[(slice(None), *interior)].copy_(k)
        return padded
    for axis in (1, 2, 3, 4):
        k = _pad_axis(k, axis, low, high, circular=True)
    return k


def _pair_conv(kp: torch.Tensor, net: Net) -> torch.Tensor:
    """The conv window sum over pairs of positions of a *padded* covariance: jointly
    along (h1, h2), then (w1, w2)."""
    k = window_sum(kp, (1, 3), net.filter_size, "valid")
    return window_sum(k, (2, 4), net.filter_size, "valid")


def _pair_pool(k: torch.Tensor, stride: int) -> torch.Tensor:
    for axis in (1, 2, 3, 4):
        k = pool_axis(k, axis, stride)
    return k


def _layer_first(k0p, net: Net):
    """Conv + bias of the first layer from the padded input kernel."""
    k = net.conv_scale * _pair_conv(k0p, net) + net.bias_var
    return k, (k if net.ntk else None)


def _layer_next(ap, tap, net: Net):
    """Conv + bias of a later hidden layer from the padded previous activations."""
    k = net.conv_scale * _pair_conv(ap, net) + net.bias_var
    t = None if tap is None else net.conv_scale * _pair_conv(tap, net) + k
    return k, t


def _activate_pairs(k, t, v_a, v_b, activation: str):
    return activate(k, t, v_a[:, :, :, None, None], v_b[:, None, None, :, :], activation)


def _step(ap, tap, v_a, v_b, net: Net):
    """Conv + bias + activation of a hidden layer after the first (padded inputs)."""
    k, t = _layer_next(ap, tap, net)
    return _activate_pairs(k, t, v_a, v_b, net.activation)


def _step_first(k0p, v_a, v_b, net: Net):
    k, t = _layer_first(k0p, net)
    return _activate_pairs(k, t, v_a, v_b, net.activation)


def _step_last(ap, tap, v_a, v_b, net: Net):
    """The last hidden layer (without pooling) fused with the readout: its
    activations are only ever summed, never stored."""
    return _readout_pairs(*_step(ap, tap, v_a, v_b, net), net)


_STAGES = {"first": _step_first, "next": _step, "last": _step_last}


def _diagonal(k: torch.Tensor) -> torch.Tensor:
    """``K(p, p)`` of ``(B, H, W, H, W)`` -> ``(B, H, W)``."""
    n_pairs, h, w = k.shape[:3]
    return k.reshape(n_pairs, h * w, h * w).diagonal(dim1=1, dim2=2).reshape(n_pairs, h, w)


def _readout_pairs(a, ta, net: Net):
    if net.readout == "gap":
        a_r = a.mean((1, 2, 3, 4))
        ta_r = None if ta is None else ta.mean((1, 2, 3, 4))
    else:
        a_r = _diagonal(a).mean((1, 2))
        ta_r = None if ta is None else _diagonal(ta).mean((1, 2))
    return _dense_readout(a_r, ta_r, net)


# torch.compile: one compiled function per (net, stage); a failure disables it.
_COMPILE_STATE = {"failed": False}
# compiling costs tens of seconds per (architecture, block shape): worth it from about
# this many (position pair x layer x image pair) updates, a minute or more of eager work
_MIN_COMPILE_WORK = 2e8


def _compile_wanted(work: float, *tensors: torch.Tensor) -> bool:
    flag = os.environ.get("KERNELZOO_COMPILE", "auto").strip().lower()
    if flag in ("0", "false", "no", "off") or _COMPILE_STATE["failed"]:
        return False
    if _needs_grad(*tensors) or not hasattr(torch, "compile"):
        return False
    if flag in ("1", "true", "yes", "on"):
        return True
    return work >= _MIN_COMPILE_WORK


@functools.lru_cache(maxsize=64)
def _compiled(net: Net, stage: str):
    """``torch.compile`` of one stage for one architecture.

    torch.compile caches graphs (and caps recompilations, at 8 by default) per
    *code object*: sharing one function (or a ``functools.partial``, which it
    wraps in one shared helper) between architectures, stages and dtypes would
    hit that cap and silently fall back to eager. So each (net, stage) gets a
    copy of the stage function with its own code object, ``net`` bound as the
    default of its last argument. Static shapes: a block size compiles once
    (the last block of a Gram is padded to it).
    """
    fn = _STAGES[stage]
    fresh = types.FunctionType(fn.__code__.replace(), fn.__globals__, fn.__name__, (net,),
                               fn.__closure__)
    return torch.compile(fresh, dynamic=False)


def _run_stage(stage: str, use_compile: bool, net: Net, *args):
    eager = _STAGES[stage]
    if use_compile and not _COMPILE_STATE["failed"]:
        try:
            return _compiled(net, stage)(*args)
        # a missing or broken compiler raises many kinds of errors: fall back, once, loudly
        except Exception as exc:  # noqa: BLE001
            _COMPILE_STATE["failed"] = True
            warnings.warn(
                f"torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); using eager "
                f"torch from now on (set KERNELZOO_COMPILE=0 to skip the attempt)",
                RuntimeWarning,
                stacklevel=4,
            )
    return eager(*args, net=net)


def _pairs_chunk(x_a, x_b, v_a, v_b, net: Net, use_compile: bool, collect: bool,
                 buffers: dict | None = None):
    """The full recursion for B image pairs (x_a[i], x_b[i]).

    ``v_a``, ``v_b``: per-layer pre-activation variance maps, or None to read
    them off the diagonal of the pair covariance itself (``x_a is x_b``).
    Returns the readout (K, T) ``(B,)`` and, if ``collect``, the variance maps.
    """
    collected = []
    a = ta = None
    for layer in range(net.depth):
        grad = _needs_grad(x_a, x_b)  # in-place buffers only without autograd
        reuse = None if grad else buffers
        if layer == 0:
            padded = (_pad_pairs(_input_covariance(x_a, x_b), net, reuse, 0),)
        else:
            padded = (_pad_pairs(a, net, reuse, 0), _pad_pairs(ta, net, reuse, 1))
        if v_a is None:  # self pairs: the variances are the diagonal of K itself
            k, t = _layer_first(*padded, net) if layer == 0 else _layer_next(*padded, net)
            var = _diagonal(k)
            if collect:
                collected.append(var)
            a, ta = _activate_pairs(k, t, var, var, net.activation)
        elif layer == 0:
            a, ta = _run_stage("first", use_compile, net, *padded, v_a[0], v_b[0])
        elif layer == net.depth - 1 and net.pooling[layer] == 1:
            k_out, t_out = _run_stage("last", use_compile, net, *padded, v_a[layer], v_b[layer])
            return k_out, t_out, collected
        else:
            a, ta = _run_stage("next", use_compile, net, *padded, v_a[layer], v_b[layer])
        padded = None  # free the padded copies before the next layer
        if net.pooling[layer] > 1:
            a = _pair_pool(a, net.pooling[layer])
            ta = None if ta is None else _pair_pool(ta, net.pooling[layer])
    k_out, t_out = _readout_pairs(a, ta, net)
    return k_out, t_out, collected


def full_pair_bytes(height: int, width: int, item: int, net: Net) -> int:
    """Working memory of one image pair on the full path: about 10 (7 without the
    NTK) position-pair maps live at the peak, padded copies included."""
    positions = height * width
    n_maps = 10 if net.ntk else 7
    pad = (height + net.filter_size) * (width + net.filter_size) / max(positions, 1)
    return int(item * positions * positions * n_maps * max(pad, 1.0)) + 1


def pairs_per_block(height: int, width: int, item: int, net: Net, budget: int, desc: str) -> int:
    """How many image pairs one block may hold under ``budget`` (>= 1, with a warning
    when even one pair needs more)."""
    per_pair = full_pair_bytes(height, width, item, net)
    if per_pair > budget:
        warnings.warn(
            f"{desc}: one image pair needs about {per_pair / 2**20:.1f} MiB of working memory, "
            f"more than the memory budget of {budget / 2**20:.1f} MiB; running it anyway",
            RuntimeWarning,
            stacklevel=4,
        )
    return max(1, budget // per_pair)


def pair_chunks(n: int, m: int, symmetric: bool, chunk: int, device: torch.device):
    """Blocks of at most ``chunk`` image pairs ``(rows, cols)``, row by row: all of
    ``[0, n) x [0, m)``, or only ``j >= i`` when ``symmetric`` (a Gram of X with
    itself needs each unordered pair once)."""
    pending: list[tuple[int, int, int]] = []
    count = 0

    def build():
        rows = torch.cat([torch.full((j1 - j0,), i, dtype=torch.long) for i, j0, j1 in pending])
        cols = torch.cat([torch.arange(j0, j1) for _, j0, j1 in pending])
        return rows.to(device), cols.to(device)

    for i in range(n):
        j = i if symmetric else 0
        while j < m:
            take = min(m - j, chunk - count)
            pending.append((i, j, j + take))
            count += take
            j += take
            if count == chunk:
                yield build()
                pending, count = [], 0
    if pending:
        yield build()


def conv_full_gram(
    x: torch.Tensor,
    y: torch.Tensor | None,
    vx: list[torch.Tensor],
    vy: list[torch.Tensor] | None,
    net: Net,
    budget: int,
    desc: str,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The full-spatial Gram (K and T) of x with y (``y=None``: x with itself).

    Blocks of image pairs sized under ``budget``; each unordered pair once for
    ``y=None``.

    Shape: ``x (n, C, H, W)``, ``y (m, C, H, W)``, ``vx[l] (n, H_l, W_l)`` ->
    ``(n, m)`` twice (T None for the NNGP).
    """
    symmetric = y is None
    if symmetric:
        y, vy = x, vx
    n, m = x.shape[0], y.shape[0]
    h, w = x.shape[-2:]
    chunk = pairs_per_block(h, w, x.element_size(), net, budget, desc)
    n_pairs = n * (n + 1) // 2 if symmetric else n * m
    buffers: dict = {}  # padded copies, reused from layer to layer and block to block
    use_compile = _compile_wanted(float(h * w) ** 2 * net.depth * n_pairs, x, y)
    k_out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    t_out = torch.empty_like(k_out) if net.ntk else None
    chunks = pair_chunks(n, m, symmetric, chunk, x.device)
    show = n_pairs >= 64 * chunk
    for rows, cols in tqdm(chunks, desc=desc, total=-(-n_pairs // chunk), leave=False,
                           disable=(not show) or None):
        n_block = rows.numel()
        if use_compile and n_pairs > chunk and n_block < chunk:
            # repeat the last pair up to the block size: no recompilation for a new shape
            rows = torch.cat([rows, rows[-1:].expand(chunk - n_block)])
            cols = torch.cat([cols, cols[-1:].expand(chunk - n_block)])
        v_a = [v[rows] for v in vx]
        v_b = [v[cols] for v in vy]
        kb, tb, _ = _pairs_chunk(x[rows], y[cols], v_a, v_b, net, use_compile, collect=False,
                                 buffers=buffers)
        rows, cols = rows[:n_block], cols[:n_block]
        kb = kb[:n_block]
        tb = None if tb is None else tb[:n_block]
        for out, val in ((k_out, kb), (t_out, tb)):
            if out is None:
                continue
            out[rows, cols] = val
            if symmetric:
                out[cols, rows] = val
    return k_out, t_out


def conv_self_pairs(
    x: torch.Tensor, net: Net, budget: int, desc: str
) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor]]:
    """Each image with itself on the full path, the variances read off the diagonal
    of its own covariance (needed with pooling, which averages neighbouring positions).

    Shape: ``(n, C, H, W)`` -> K ``(n,)``, T ``(n,)`` or None, variances
    ``[(n, H_l, W_l)]`` per hidden layer.
    """
    h, w = x.shape[-2:]
    chunk = pairs_per_block(h, w, x.element_size(), net, budget, desc)
    ks, ts, collected = [], [], [[] for _ in range(net.depth)]
    for start in range(0, x.shape[0], chunk):
        xc = x[start : start + chunk]
        kb, tb, var = _pairs_chunk(xc, xc, None, None, net, False, collect=True)
        ks.append(kb)
        if tb is not None:
            ts.append(tb)
        for layer, v in enumerate(var):
            collected[layer].append(v)
    return torch.cat(ks), (torch.cat(ts) if ts else None), [torch.cat(v) for v in collected]


def conv_variances(x: torch.Tensor, net: Net, budget: int, desc: str) -> list[torch.Tensor]:
    """Pre-activation variances ``K_l(x, x)(p, p)`` of every hidden layer.

    Without pooling the diagonal of layer l+1 needs only the diagonal of layer
    l (a 2-D window sum per image). Pooling averages neighbouring positions, so
    there the full self-covariance of each image is carried (:func:`conv_self_pairs`).

    Shape: ``(n, C, H, W)`` -> list of ``depth`` tensors ``(n, H_l, W_l)``.
    """
    if net.pooled:
        return conv_self_pairs(x, net, budget, desc)[2]
    c, b = net.conv_scale, net.bias_var
    v = c * _conv2d_sum(_pixel_variance(x), net) + b
    variances = []
    for layer in range(net.depth):
        variances.append(v)
        if layer + 1 < net.depth:
            v = c * _conv2d_sum(activate_diag(v, net.activation), net) + b
    return variances


def conv_diag_self(x: torch.Tensor, net: Net) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(x, x) of the flatten readout without pooling: angle 0 at every position.

    Shape: ``(n, C, H, W)`` -> ``(n,)`` twice.
    """
    cs, b = net.conv_scale, net.bias_var
    a, ta = _pixel_variance(x), None
    for _ in range(net.depth):
        k = cs * _conv2d_sum(a, net) + b
        t = None if not net.ntk else (k if ta is None else cs * _conv2d_sum(ta, net) + k)
        a = activate_diag(k, net.activation)
        ta = None if t is None else t * _diag_derivative(k, net.activation)
    a = a.mean((-2, -1))
    ta = None if ta is None else ta.mean((-2, -1))
    return _dense_readout(a, ta, net)


# ----------------------------------------------------------------------- the kernel class
def _check_bias(value, name: str):
    if value is None:
        return None
    return check_positive(allow_zero=True)(value, name)


def _check_pooling(value, name: str):
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        raise TypeError(
            f"{name} must be None or a list with one average-pooling stride per hidden layer "
            f"(1 = no pooling), got the scalar {value!r}; e.g. pooling=[1, 2]"
        )
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be None or a list of strides (ints >= 1), got {value!r}")
    strides = []
    for entry in value:
        stride = 1 if entry is None else check_int(minimum=1)(entry, f"{name} entry")
        strides.append(stride)
    return strides


def _check_image_shape(value, name: str):
    if value is None:
        return None
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise ValueError(f"{name} must be None or (C, H, W), got {value!r}")
    return tuple(check_int(minimum=1)(v, name) for v in value)


INFINITE_PARAMS = (
    Param("architecture", "fc", check_choice("fc", "conv"), "fc (Dense layers) or conv"),
    Param("depth", 2, check_int(minimum=1), "number of hidden layers, >= 1"),
    Param("activation", "relu", check_choice(*ACTIVATIONS), "relu, erf or abs"),
    Param("weight_std", 2**0.5, check_positive(), "W_std (parameterization 'ntk')"),
    Param("bias_std", 0.0, _check_bias, "b_std; 0 or None: no bias"),
    Param("filter_size", 3, check_int(minimum=1), "conv filter size (conv only)"),
    Param("padding", "same", check_choice(*PADDINGS), "same, valid or circular (conv only)"),
    Param("readout", "gap", check_choice(*READOUTS), "gap (global average pool) or flatten"),
    Param("readout_dense", True, check_choice(True, False), "final Dense(1) layer"),
    Param(
        "pooling",
        None,
        _check_pooling,
        "None, or one AvgPool stride s per hidden layer (window s, stride s, SAME; 1 = none)",
    ),
    Param("image_shape", None, _check_image_shape, "(C, H, W) for (n, d) input to conv"),
)


class InfiniteWidthKernel(Kernel):
    """The NNGP / NTK of an infinitely wide fc or conv net (neural-tangents' ``stax``).

    Parameters
    ----------
    architecture : {'fc', 'conv'}, default 'fc'
        ``depth`` hidden ``Dense`` layers, or ``Conv(filter_size, padding)`` layers.
    depth : int >= 1, default 2
    activation : {'relu', 'erf', 'abs'}, default 'relu'
    weight_std, bias_std : float, default sqrt(2), 0.0
        ``W_std`` and ``b_std`` of every layer (parameterization "ntk"); a bias
        of 0 or None means no bias.
    filter_size : int >= 1, default 3 (conv)
    padding : {'same', 'valid', 'circular'}, default 'same' (conv)
    readout : {'gap', 'flatten'}, default 'gap' (conv)
        ``GlobalAvgPool`` (mean over all position pairs) or ``Flatten`` (mean
        over equal positions).
    readout_dense : bool, default True
        A final ``Dense(1)`` with the same ``W_std``, ``b_std``; without it the
        kernel is that of the readout (a mean over positions).
    pooling : list of int, optional (conv)
        One stride s per hidden layer: after that layer's activation,
        ``stax.AvgPool((s, s), strides=(s, s), padding='SAME')`` with
        ``normalize_edges=False`` (output ``ceil(H / s)``, the CKN's size;
        equal to 'VALID' pooling when s divides H); 1 means no pooling.
    image_shape : (C, H, W), optional (conv)
        Shape of ``(n, d)`` input rows.

    Shape: fc ``(n, d)`` (images are flattened); conv ``(n, C, H, W)`` or
    ``(n, d)`` with ``image_shape``; ``gram`` -> ``(n, m)``.
    """

    params = INFINITE_PARAMS
    #: which kernel of the pair this family returns
    tangent: ClassVar[bool] = False

    def _check_params(self) -> None:
        pooling = self._params["pooling"]
        if pooling is not None:
            if self._params["architecture"] == "fc":
                raise ValueError(
                    "pooling is for architecture='conv'; an fc net has no positions to pool"
                )
            if len(pooling) != self._params["depth"]:
                raise ValueError(
                    f"pooling has {len(pooling)} entries but depth={self._params['depth']}; "
                    f"give one stride per hidden layer (1 = no pooling)"
                )

    @property
    def is_conv(self) -> bool:  # type: ignore[override]
        return self._params["architecture"] == "conv"

    @property
    def net(self) -> Net:
        p = self._params
        bias = 0.0 if p["bias_std"] is None else float(p["bias_std"])
        pooling = tuple(p["pooling"]) if p["pooling"] is not None else (1,) * p["depth"]
        return Net(
            conv=self.is_conv,
            depth=p["depth"],
            activation=p["activation"],
            weight_var=float(p["weight_std"]) ** 2,
            bias_var=bias**2,
            filter_size=p["filter_size"],
            padding=p["padding"],
            readout=p["readout"],
            readout_dense=bool(p["readout_dense"]),
            pooling=pooling,
            ntk=self.tangent,
        )

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not self.is_conv:
            return as_vectors(x, name)
        images = as_images(x, self._params["image_shape"], name)
        conv_shapes(images.shape[2], images.shape[3], self.net)  # raises if no pixel is left
        return images

    def _check_compatible(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.is_conv and x.shape[1] != y.shape[1]:
            raise ValueError(
                f"{self.family}: X has {x.shape[1]} channels but Y has {y.shape[1]}; "
                f"both need the same number of channels"
            )
        if self.is_conv and x.shape[2:] != y.shape[2:]:
            raise ValueError(
                f"{self.family}: X has {tuple(x.shape[2:])} images but Y has "
                f"{tuple(y.shape[2:])}; both need the same height and width"
            )
        super()._check_compatible(x, y)

    def _pick(self, k: torch.Tensor, t: torch.Tensor | None) -> torch.Tensor:
        return t if self.tangent else k

    # ------------------------------------------------------------------ compute
    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        net = self.net
        if not net.conv:
            vx = x.square().mean(1)
            vy = vx if same else y.square().mean(1)
            return self._pick(*fc_block(x, y, vx, vy, net))
        # conv, flatten readout without pooling: equal positions only
        vx = conv_variances(x, net, 0, self.family)
        vy = vx if same else conv_variances(y, net, 0, self.family)
        return self._pick(*conv_diag_block(x, y, vx, vy, net))

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        item = x.element_size()
        if not self.is_conv:
            return item * (8 * n_rows * n_cols + (n_rows + n_cols) * (x.shape[1] + 4))
        positions = x.shape[2] * x.shape[3]
        feat = x.shape[1] * positions
        pair_maps = diag_block_bytes(n_rows, n_cols, positions, item)
        return pair_maps + item * (n_rows + n_cols) * (feat + 4 * positions * self.depth)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        net = self.net
        if not (net.conv and net.full_spatial):
            return super()._evaluate(x, y, budget)
        vx = conv_variances(x, net, budget, self.family)
        vy = None if y is None else conv_variances(y, net, budget, self.family)
        return self._pick(*conv_full_gram(x, y, vx, vy, net, budget, self.family))

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if not net.conv:
            return self._pick(*fc_diag(x.square().mean(1), net))
        if not net.full_spatial:
            return self._pick(*conv_diag_self(x, net))
        budget = get_memory_budget()
        if net.pooled:
            k, t, _ = conv_self_pairs(x, net, budget, self.family)
            return self._pick(k, t)
        vx = conv_variances(x, net, budget, self.family)
        rows = torch.arange(x.shape[0], device=x.device)
        chunk = pairs_per_block(x.shape[2], x.shape[3], x.element_size(), net, budget,
                                self.family)
        ks, ts = [], []
        for start in range(0, x.shape[0], chunk):
            r = rows[start : start + chunk]
            kb, tb, _ = _pairs_chunk(x[r], x[r], [v[r] for v in vx], [v[r] for v in vx], net,
                                     False, collect=False)
            ks.append(kb)
            ts.append(tb)
        return self._pick(torch.cat(ks), None if ts[0] is None else torch.cat(ts))
