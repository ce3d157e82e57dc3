"""Convolutional NNGP/NTK over all position pairs (GAP readout, or any pooling).

The covariance over all position pairs, ``(B, H, W, H, W)`` per block of B
image pairs. The conv step is separable: a sum of f shifted copies jointly
along (h1, h2), then along (w1, w2) (2 f adds instead of f^2). Flatten with
pooling takes the diagonal at the end. Blocks of image pairs are sized to the
memory budget; each unordered pair is computed once for a Gram of X with itself.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from kernelzoo.kernels.functional.activations import activate, activate_diag, needs_grad
from kernelzoo.kernels.functional.architecture import Net
from kernelzoo.kernels.functional.compile import compile_wanted, run_stage, structure
from kernelzoo.kernels.functional.conv import (
    conv2d_sum,
    pad_axis,
    pixel_variance,
    pool_axis,
    window_sum,
)
from kernelzoo.kernels.functional.conv_fused import FUSED_ACTIVATIONS, fused_activate
from kernelzoo.kernels.functional.fc import dense_readout
from kernelzoo.kernels.functional.indices import device_constant, pair_chunks

__all__ = [
    "conv_diag_full",
    "conv_full_gram",
    "conv_self_pairs",
    "conv_variances",
    "full_pair_bytes",
    "pair_chunks",
    "pairs_chunk",
    "pairs_per_block",
]


# The conv step reads a padded copy made once per layer (outside the compiled
# kernels): plain shifted slices then vectorise, where padding inside the fused
# stencil costs masked loads (about 1.5x slower on CPU).
def _input_covariance(x_a: torch.Tensor, x_b: torch.Tensor) -> torch.Tensor:
    """x_a(p).x_b(q) / C over position pairs: ``(B, C, H, W)`` twice -> ``(B, H, W, H, W)``."""
    n_pairs, channels, h, w = x_a.shape
    k0 = torch.bmm(
        x_a.reshape(n_pairs, channels, h * w).transpose(1, 2), x_b.reshape(n_pairs, channels, h * w)
    ) * (1.0 / channels)
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
        k = pad_axis(k, axis, low, high, circular=True)
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


def hyper(net: Net, like: torch.Tensor) -> torch.Tensor:
    """The runtime hyperparameters of the stages: ``[c, bias_var, weight_var]``.

    Passed as a tensor, so that one compiled stage (keyed by
    :func:`~kernelzoo.kernels.functional.conv_fused.structure`) serves every
    grid value of ``weight_std`` and ``bias_std``.
    """
    values = (float(net.conv_scale), float(net.bias_var), float(net.weight_var))
    return device_constant(values, like.dtype, like.device)  # no copy per block


def _layer_first(k0p, s, net: Net):
    """Conv + bias of the first layer from the padded input kernel."""
    k = s[0] * _pair_conv(k0p, net) + s[1]
    return k, (k if net.ntk else None)


def _layer_next(ap, tap, s, net: Net):
    """Conv + bias of a later hidden layer from the padded previous activations."""
    k = s[0] * _pair_conv(ap, net) + s[1]
    t = None if tap is None else s[0] * _pair_conv(tap, net) + k
    return k, t


def _activate_pairs(k, t, v_a, v_b, activation: str, negative_slope: float = 0.01):
    v1, v2 = v_a[:, :, :, None, None], v_b[:, None, None, :, :]
    if activation in FUSED_ACTIVATIONS and torch.compiler.is_compiling():
        # compiled: the branch-free maps (float32: a rational atan2, about 18% faster here)
        return fused_activate(k, t, v1, v2, activation)
    return activate(k, t, v1, v2, activation, negative_slope)


def _step(ap, tap, v_a, v_b, s, net: Net):
    """Conv + bias + activation of a hidden layer after the first (padded inputs)."""
    k, t = _layer_next(ap, tap, s, net)
    return _activate_pairs(k, t, v_a, v_b, net.activation, net.negative_slope)


def _step_first(k0p, v_a, v_b, s, net: Net):
    k, t = _layer_first(k0p, s, net)
    return _activate_pairs(k, t, v_a, v_b, net.activation, net.negative_slope)


def _step_last(ap, tap, v_a, v_b, s, net: Net):
    """The last hidden layer (without pooling) fused with the readout: its
    activations are only ever summed, never stored."""
    return _readout_pairs(*_step(ap, tap, v_a, v_b, s, net), s, net)


def _diagonal(k: torch.Tensor) -> torch.Tensor:
    """``K(p, p)`` of ``(B, H, W, H, W)`` -> ``(B, H, W)``."""
    n_pairs, h, w = k.shape[:3]
    return k.reshape(n_pairs, h * w, h * w).diagonal(dim1=1, dim2=2).reshape(n_pairs, h, w)


def _readout_pairs(a, ta, s, net: Net):
    if net.readout == "gap":
        a_r = a.mean((1, 2, 3, 4))
        ta_r = None if ta is None else ta.mean((1, 2, 3, 4))
    else:
        a_r = _diagonal(a).mean((1, 2))
        ta_r = None if ta is None else _diagonal(ta).mean((1, 2))
    return dense_readout(a_r, ta_r, net, weight_var=s[2], bias_var=s[1])


def pairs_chunk(
    x_a, x_b, v_a, v_b, net: Net, use_compile: bool, collect: bool, buffers: dict | None = None
):
    """The full recursion for B image pairs (x_a[i], x_b[i]).

    ``v_a``, ``v_b``: per-layer pre-activation variance maps, or None to read
    them off the diagonal of the pair covariance itself (``x_a is x_b``).
    Returns the readout (K, T) ``(B,)`` and, if ``collect``, the variance maps.
    """
    collected = []
    a = ta = None
    s = hyper(net, x_a)
    key = structure(net)  # one compilation for every hyperparameter value
    for layer in range(net.depth):
        grad = needs_grad(x_a, x_b)  # in-place buffers only without autograd
        reuse = None if grad else buffers
        if layer == 0:
            padded = (_pad_pairs(_input_covariance(x_a, x_b), net, reuse, 0),)
        else:
            padded = (_pad_pairs(a, net, reuse, 0), _pad_pairs(ta, net, reuse, 1))
        if v_a is None:  # self pairs: the variances are the diagonal of K itself
            k, t = (_layer_first if layer == 0 else _layer_next)(*padded, s, net)
            var = _diagonal(k)
            if collect:
                collected.append(var)
            a, ta = _activate_pairs(k, t, var, var, net.activation, net.negative_slope)
        elif layer == 0:
            a, ta = run_stage(_step_first, use_compile, key, *padded, v_a[0], v_b[0], s)
        elif layer == net.depth - 1 and net.pooling[layer] == 1:
            k_out, t_out = run_stage(
                _step_last, use_compile, key, *padded, v_a[layer], v_b[layer], s
            )
            return k_out, t_out, collected
        else:
            a, ta = run_stage(_step, use_compile, key, *padded, v_a[layer], v_b[layer], s)
        padded = None  # free the padded copies before the next layer
        if net.pooling[layer] > 1:
            a = _pair_pool(a, net.pooling[layer])
            ta = None if ta is None else _pair_pool(ta, net.pooling[layer])
    k_out, t_out = _readout_pairs(a, ta, s, net)
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
    # the compiled stages' dynamic pair axis needs blocks of two or more pairs (a block of
    # one is padded to two): where the budget holds only one pair, the eager stages run
    use_compile = chunk >= 2 and compile_wanted(float(h * w) ** 2 * net.depth * n_pairs, x, y)
    k_out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    t_out = torch.empty_like(k_out) if net.ntk else None
    chunks = pair_chunks(n, m, symmetric, chunk, x.device)
    show = n_pairs >= 64 * chunk
    for rows, cols in tqdm(
        chunks, desc=desc, total=-(-n_pairs // chunk), leave=False, disable=(not show) or None
    ):
        n_block = rows.numel()
        if use_compile and n_block == 1:  # a dynamic axis of length 1 would be specialised
            rows, cols = rows.repeat(2), cols.repeat(2)
        v_a = [v[rows] for v in vx]
        v_b = [v[cols] for v in vy]
        kb, tb, _ = pairs_chunk(
            x[rows], y[cols], v_a, v_b, net, use_compile, collect=False, buffers=buffers
        )
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
        kb, tb, var = pairs_chunk(xc, xc, None, None, net, False, collect=True)
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
    v = c * conv2d_sum(pixel_variance(x), net) + b
    variances = []
    for layer in range(net.depth):
        variances.append(v)
        if layer + 1 < net.depth:
            v = c * conv2d_sum(activate_diag(v, net.activation, net.negative_slope), net) + b
    return variances


def conv_diag_full(
    x: torch.Tensor, net: Net, budget: int, desc: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """k(x, x) on the full path (GAP readout or pooling), in blocks under ``budget``.

    Shape: ``(n, C, H, W)`` -> K ``(n,)``, T ``(n,)`` or None.
    """
    if net.pooled:
        k, t, _ = conv_self_pairs(x, net, budget, desc)
        return k, t
    vx = conv_variances(x, net, budget, desc)
    rows = torch.arange(x.shape[0], device=x.device)
    chunk = pairs_per_block(x.shape[2], x.shape[3], x.element_size(), net, budget, desc)
    ks, ts = [], []
    for start in range(0, x.shape[0], chunk):
        r = rows[start : start + chunk]
        kb, tb, _ = pairs_chunk(
            x[r], x[r], [v[r] for v in vx], [v[r] for v in vx], net, False, collect=False
        )
        ks.append(kb)
        ts.append(tb)
    return torch.cat(ks), (None if ts[0] is None else torch.cat(ts))
