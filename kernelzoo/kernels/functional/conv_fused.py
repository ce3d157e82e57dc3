"""Fused conv NNGP/NTK with the GAP readout for small images: image pairs innermost.

The all-position-pairs recursion of :mod:`~kernelzoo.kernels.functional.conv_pairs`
in one ``torch.compile`` graph per (architecture structure, dtype), laid out as
``(H, W, H, W, B)`` with the B image pairs of a block in the last, contiguous
axis: every elementwise step vectorises over pairs, the conv's shifts move
along the outer axes only (no masked or unaligned vector loads), and inductor
fuses each layer's conv, bias and activation into one pass over memory.

- The first layer needs no covariance of the input: its conv window sum is a
  sum over the ``C f^2`` patch entries of both images, ``K1(p, q) = c / C
  sum_f Pa[f, p] Pb[f, q] + b``, evaluated inside the fused pass.
- Hyperparameters (``weight_std^2``, ``bias_std^2``) are a runtime tensor, so
  one compilation serves a whole grid of values; the block size is a dynamic
  dimension, so one compilation serves every number of pairs (a one-pair
  block is padded to two).
- The arc-cosine angle ``atan2(s, k)`` is a branch-free rational form in
  float32 (:func:`atan2_fast`, within 2e-8 of the closed form), so the
  fused loop vectorises; float64 keeps ``torch.atan2``.
- Compiled code is cached by inductor on disk (its FX graph cache, on by
  default, in ``$TORCHINDUCTOR_CACHE_DIR`` or ``/tmp/torchinductor_$USER``):
  a second process skips the C++ compilation.

This layout pays when a block holds many pairs of small images (8x8 digits:
hundreds of pairs per block); for large images (32x32) the pairs-outermost
stages of :mod:`~kernelzoo.kernels.functional.conv_pairs` vectorise over
positions instead (:func:`fused_applies` chooses).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kernelzoo.kernels.functional import compile as compile_mod
from kernelzoo.kernels.functional.activations import erf_terms, needs_grad
from kernelzoo.kernels.functional.architecture import Net, conv_shapes
from kernelzoo.kernels.functional.indices import device_constant, pair_chunks

__all__ = [
    "FUSED_ACTIVATIONS",
    "CompileFailed",
    "MAX_FUSED_POSITIONS",
    "atan2_fast",
    "fused_activate",
    "fused_applies",
    "fused_gram",
    "fused_pairs",
]

#: activations whose dual maps the fused pass evaluates (others run the eager stages)
FUSED_ACTIVATIONS = ("relu", "abs", "erf")
#: the pairs-innermost layout is used up to this many positions per image (16x16)
MAX_FUSED_POSITIONS = 256
#: pairs per block: about this many (position pair x image pair) entries (128 pairs of
#: 8x8 digits: measured faster than 256 or 512, whose blocks spill out of the L2 cache)
_BLOCK_ENTRIES = 1 << 19
_PI = math.pi
# A&S 4.4.49: atan(r) on [0, 1], |error| <= 2e-8
_ATAN = (
    0.9999993329,
    -0.3332985605,
    0.1994653599,
    -0.1390853351,
    0.0964200441,
    -0.0559098861,
    0.0218612288,
    -0.0040540580,
)


def atan2_fast(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``atan2(y, x)`` for ``y >= 0`` (an angle in [0, pi]) without branches.

    float32: ``atan(min / max)`` as the odd polynomial of Abramowitz and
    Stegun 4.4.49 (absolute error <= 2e-8, below float32's rounding of
    angles near pi), then two selects for the octant; ``atan2(0, 0) = 0``.
    Other dtypes: ``torch.atan2``.

    Parameters
    ----------
    y : torch.Tensor
        Non-negative.
    x : torch.Tensor
        Broadcastable to ``y``.

    Returns
    -------
    torch.Tensor
        The angle, in [0, pi].
    """
    if y.dtype != torch.float32:
        return torch.atan2(y, x)
    ax = x.abs()
    big = torch.maximum(ax, y)
    r = torch.minimum(ax, y) / big.clamp_min(torch.finfo(y.dtype).tiny)
    r2 = r * r
    p = _ATAN[-1]
    for c in reversed(_ATAN[:-1]):
        p = p * r2 + c
    a = p * r
    a = torch.where(y > ax, _PI / 2 - a, a)
    return torch.where(x < 0, _PI - a, a)


def fused_activate(
    k: torch.Tensor, t: torch.Tensor | None, v1: torch.Tensor, v2: torch.Tensor, activation: str
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One activation layer ``(K, T) -> (E[f f], T E[f' f'])`` in branch-free form.

    The same dual maps as :func:`~kernelzoo.kernels.functional.activations.activate`
    (relu, abs; erf through :func:`~kernelzoo.kernels.functional.activations.erf_terms`),
    written for a fused loop: no ``asin``/``acos`` and no autograd guards.

    Parameters
    ----------
    k : torch.Tensor
        Pre-activation covariances K12.
    t : torch.Tensor or None
        The tangent kernel, or None (NNGP only).
    v1, v2 : torch.Tensor
        Pre-activation variances K11, K22, broadcastable to ``k``.
    activation : {'relu', 'abs', 'erf'}
        The activation.

    Returns
    -------
    tuple of torch.Tensor
        The activated K and T (None without ``t``).
    """
    if activation == "erf":
        x, root = erf_terms(k, v1, v2)
        a = atan2_fast(x.abs(), root) * (2.0 / _PI)
        a = torch.where(x < 0, -a, a)
        if t is None:
            return a, None
        u = (1.0 + 2.0 * v1).sqrt() * (1.0 + 2.0 * v2).sqrt()
        return a, t * ((4.0 / _PI) / (u * root))
    eps = torch.finfo(k.dtype).eps
    s = (v1 * v2 - (1.0 + 64 * eps) * (k * k)).clamp_min(0.0).sqrt()
    theta = atan2_fast(s, k)
    if activation == "relu":
        rest = _PI - theta
        a = (s + rest * k) * (1.0 / (2 * _PI))
        d = rest * (1.0 / (2 * _PI))
    else:  # abs
        rest = _PI - 2.0 * theta
        a = (2.0 * s + rest * k) * (1.0 / _PI)
        d = rest * (1.0 / _PI)
    return a, (None if t is None else t * d)


def fused_applies(net: Net, x: torch.Tensor, y: torch.Tensor | None = None) -> bool:
    """Whether :func:`fused_gram` evaluates this Gram (else the stages of ``conv_pairs``).

    Conv nets with the GAP readout and no pooling, an activation in
    :data:`FUSED_ACTIVATIONS`, images of at most :data:`MAX_FUSED_POSITIONS`
    positions, no gradients, and compiling allowed
    (:func:`~kernelzoo.kernels.functional.compile.compile_wanted`).

    Parameters
    ----------
    net : Net
        The architecture.
    x, y : torch.Tensor
        The prepared images ``(n, C, H, W)`` (``y`` may be None).

    Returns
    -------
    bool
        True where the fused path runs.
    """
    if not (net.conv and net.readout == "gap" and not net.pooled):
        return False
    if net.activation not in FUSED_ACTIVATIONS or x.dtype not in (torch.float32, torch.float64):
        return False
    if x.shape[2] * x.shape[3] > MAX_FUSED_POSITIONS or needs_grad(x, y):
        return False
    positions = x.shape[2] * x.shape[3]
    n_pairs = x.shape[0] * (x.shape[0] if y is None else y.shape[0])
    work = float(positions) ** 2 * net.depth * n_pairs
    return compile_mod.compile_wanted(work, x, y)


def _patches(x: torch.Tensor, net: Net) -> torch.Tensor:
    """First-layer patches, pairs last: ``(n, C, H, W)`` -> ``(C f^2, H1, W1, n)``."""
    f = net.filter_size
    if net.padding != "valid":
        low = (f - 1) // 2
        pad = (low, f - 1 - low, low, f - 1 - low)
        x = F.pad(x, pad, mode="circular" if net.padding == "circular" else "constant")
    n, _, h, w = x.shape
    cols = F.unfold(x, f)  # (n, C f^2, H1 W1)
    h1, w1 = h - f + 1, w - f + 1
    return cols.reshape(n, -1, h1, w1).permute(1, 2, 3, 0).contiguous()


def _pad_positions(a: torch.Tensor, net: Net) -> torch.Tensor:
    """Pad the four position axes of ``(H, W, H, W, B)`` for the next conv."""
    if net.padding == "valid":
        return a
    low = (net.filter_size - 1) // 2
    high = net.filter_size - 1 - low
    if net.padding == "same":
        return F.pad(a, (0, 0) + (low, high) * 4)
    for axis in range(4):
        n = a.shape[axis]
        index = torch.arange(-low, n + high, device=a.device) % n
        a = a.index_select(axis, index)
    return a


def _conv(a: torch.Tensor, net: Net) -> torch.Tensor:
    """The conv window sum of ``(H, W, H, W, B)`` maps: ``f^2`` jointly shifted slices.

    Summed directly from the padded maps rather than as two separable window
    sums: the separable form makes inductor write its intermediate to memory,
    and the direct one (one pass, no intermediate) measured 10-20% faster on
    the digits' NTK.
    """
    padded = _pad_positions(a, net)
    f = net.filter_size
    h, w = padded.shape[0] - f + 1, padded.shape[1] - f + 1
    out = None
    for i in range(f):
        for j in range(f):
            piece = padded[i : i + h, j : j + w, i : i + h, j : j + w]
            out = piece if out is None else out + piece
    return out


def _first(pa, pb, v1, v2, scalars, net: Net):
    """The first layer: patch products, bias, activation; ``(H1, W1, H1, W1, B)`` maps."""
    k = None
    for i in range(pa.shape[0]):
        term = pa[i][:, :, None, None, :] * pb[i][None, None, :, :, :]
        k = term if k is None else k + term
    k = scalars[0] * k + scalars[2]
    t = k if net.ntk else None
    return fused_activate(k, t, v1[:, :, None, None], v2[None, None], net.activation)


def _middle(a, ta, v1, v2, scalars, net: Net):
    """A later hidden layer: conv, bias, activation."""
    c, b = scalars[1], scalars[2]
    k = c * _conv(a, net) + b
    t = None if ta is None else c * _conv(ta, net) + k
    return fused_activate(k, t, v1[:, :, None, None], v2[None, None], net.activation)


def _last(a, ta, v1, v2, scalars, net: Net):
    """The last hidden layer fused with the GAP readout and the final Dense."""
    a, ta = _middle(a, ta, v1, v2, scalars, net)
    return _readout(a, ta, scalars, net)


def _readout(a, ta, scalars, net: Net):
    """GAP and Dense of the last hidden layer's activations."""
    scale = 1.0 / float(a.shape[0] * a.shape[1] * a.shape[2] * a.shape[3])
    k_out = a.reshape(-1, a.shape[-1]).sum(0) * scale
    t_out = None if ta is None else ta.reshape(-1, ta.shape[-1]).sum(0) * scale
    if net.readout_dense:
        w, b = scalars[3], scalars[2]
        k_out = w * k_out + b
        t_out = None if t_out is None else w * t_out + k_out
    return k_out, t_out


def fused_pairs(
    pa: torch.Tensor,
    pb: torch.Tensor,
    va: list[torch.Tensor],
    vb: list[torch.Tensor],
    scalars: torch.Tensor,
    net: Net,
    stage=None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole recursion and readout for a block of B image pairs.

    One fused pass per layer (the first: patch products and activation; each
    later one: conv, bias and activation; the last also the readout), each
    layer's maps written once.

    Parameters
    ----------
    pa, pb : torch.Tensor
        First-layer patches of the pairs' two images, ``(C f^2, H1, W1, B)``.
    va, vb : list of torch.Tensor
        Per hidden layer, the pre-activation variances ``(H_l, W_l, B)``.
    scalars : torch.Tensor
        ``[c / C, c, bias_var, weight_var]`` with ``c = weight_var / f^2``.
    net : Net
        The structure (its hyperparameter values are not read).
    stage : callable, optional
        ``stage(fn, *args)`` runs one layer (default: ``fn(*args, net=net)``);
        :func:`fused_gram` passes the compiled copies.

    Returns
    -------
    tuple of torch.Tensor
        K and T (None for the NNGP) of the readout, ``(B,)`` each.
    """
    if stage is None:

        def stage(fn, *args):
            return fn(*args, net=net)

    a, ta = stage(_first, pa, pb, va[0], vb[0], scalars)
    if net.depth == 1:
        return stage(_readout, a, ta, scalars)
    for layer in range(1, net.depth - 1):
        a, ta = stage(_middle, a, ta, va[layer], vb[layer], scalars)
    return stage(_last, a, ta, va[-1], vb[-1], scalars)


def _compiled_stage(fn, args, key: Net):
    return compile_mod.call_dynamic(fn, key, args, -1)


class CompileFailed(RuntimeError):
    """Compiling the fused graph failed (compiling is then off for the process)."""


def _run(pa, pb, va, vb, scalars, net: Net):
    """One block through the compiled stages (batch axis dynamic).

    A compilation failure turns compiling off for the process, with one
    warning, and raises :class:`CompileFailed`: the caller then evaluates the
    Gram on the eager path.
    """
    key = compile_mod.structure(net)
    if compile_mod.STATE["failed"]:
        raise CompileFailed("compiling is off after an earlier failure")
    try:
        return fused_pairs(
            pa, pb, va, vb, scalars, key, stage=lambda fn, *args: _compiled_stage(fn, args, key)
        )
    # a missing or broken compiler raises many kinds of errors: fall back, once, loudly
    except Exception as exc:  # noqa: BLE001
        compile_mod.disable(exc)
        raise CompileFailed(str(exc)) from exc


def block_pairs(positions: int, item: int, net: Net, budget: int) -> int:
    """Image pairs per block: about ``2**19`` entries, at least 16, within ``budget``.

    Parameters
    ----------
    positions : int
        Positions per image (H W).
    item : int
        Bytes per number.
    net : Net
        The architecture (filter size, NTK or not).
    budget : int
        Working memory in bytes.

    Returns
    -------
    int
        Pairs per block, at least 2.
    """
    padded = (math.isqrt(positions) + net.filter_size) ** 4
    per_pair = item * padded * (8 if net.ntk else 5)
    chunk = max(16, _BLOCK_ENTRIES // max(positions * positions, 1))
    return max(2, min(chunk, budget // per_pair))


def fused_gram(
    x: torch.Tensor,
    y: torch.Tensor | None,
    vx: list[torch.Tensor],
    vy: list[torch.Tensor] | None,
    net: Net,
    budget: int,
    pairs: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The GAP conv Gram (K and T) of x with y through the fused graph.

    Parameters
    ----------
    x, y : torch.Tensor
        Images ``(n, C, H, W)`` and ``(m, C, H, W)``; ``y=None``: x with itself
        (each unordered pair evaluated once).
    vx, vy : list of torch.Tensor
        Per hidden layer, the pre-activation variances ``(n, H_l, W_l)``
        (:func:`~kernelzoo.kernels.functional.conv_pairs.conv_variances`).
    net : Net
        The architecture (GAP readout, no pooling).
    budget : int
        Working memory in bytes.
    pairs : tuple of torch.Tensor, optional
        Only these pairs ``(rows, cols)``: the result is then ``(P,)`` each
        (the diagonal uses ``rows = cols``).

    Returns
    -------
    tuple of torch.Tensor
        ``(n, m)`` K and T (T None for the NNGP), or ``(P,)`` with ``pairs``.

    Raises
    ------
    CompileFailed
        When compiling fails (one warning; compiling is then off for the
        process): the caller evaluates on the eager path instead.
    """
    symmetric = y is None and pairs is None
    y_, vy_ = (x, vx) if y is None else (y, vy)
    n, m = x.shape[0], y_.shape[0]
    conv_shapes(x.shape[2], x.shape[3], net)
    px = _patches(x, net)
    py = px if y is None else _patches(y_, net)
    wx = [v.permute(1, 2, 0) for v in vx]
    wy = wx if y is None else [v.permute(1, 2, 0) for v in vy_]
    cs = net.weight_var / net.filter_size**2
    scalars = device_constant(  # built once: no host-to-device copy per call
        (float(cs / x.shape[1]), float(cs), float(net.bias_var), float(net.weight_var)),
        x.dtype, x.device,
    )
    chunk = block_pairs(x.shape[2] * x.shape[3], x.element_size(), net, budget)
    if pairs is not None:
        rows_all, cols_all = pairs
        blocks = (
            (rows_all[s : s + chunk], cols_all[s : s + chunk])
            for s in range(0, rows_all.numel(), chunk)
        )
        k_out = torch.empty(rows_all.numel(), dtype=x.dtype, device=x.device)
    else:
        blocks = pair_chunks(n, m, symmetric, chunk, x.device)
        k_out = torch.empty((n, m), dtype=x.dtype, device=x.device)
    t_out = torch.empty_like(k_out) if net.ntk else None
    start = 0
    for rows, cols in blocks:
        size = rows.numel()
        if size == 1:  # a dynamic axis of length 1 would be specialised: recompile
            rows, cols = rows.repeat(2), cols.repeat(2)
        va = [v[..., rows] for v in wx]
        vb = [v[..., cols] for v in wy]
        kb, tb = _run(px[..., rows], py[..., cols], va, vb, scalars, net)
        rows, cols = rows[:size], cols[:size]
        for out, val in ((k_out, kb), (t_out, tb)):
            if out is None:
                continue
            if pairs is not None:
                out[start : start + size] = val[:size]
                continue
            out[rows, cols] = val[:size]
            if symmetric:
                out[cols, rows] = val[:size]
        start += size
    return k_out, t_out
