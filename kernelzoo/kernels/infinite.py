"""The NNGP/NTK kernel class, shared by :mod:`~kernelzoo.kernels.nngp` and
:mod:`~kernelzoo.kernels.ntk`.

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

Small images with the GAP readout run a fused graph with image pairs innermost
(:mod:`~kernelzoo.kernels.functional.conv_fused`), compiled by default from
about 1e6 units of work, once per structure and dtype (hyperparameters and
the number of pairs are runtime values; inductor caches the code on disk).
Otherwise the full path can run under ``torch.compile`` (one fused kernel per
layer: the first layer, a middle layer, the last layer with the readout; 3-5x
faster than eager on CPU, see benchmarks/results/nt_compare.md); by default
only for Grams large enough to amortise the compilation (tens of seconds).
Never with gradients; it falls back to eager torch, with a warning, if
compilation fails. ``KERNELZOO_COMPILE=0`` disables it, ``=1`` forces it.

Relu and abs nets without bias (``Net.homogeneous``) are evaluated on samples
scaled to unit norm by powers of two, the scale put back at the end
(:mod:`~kernelzoo.kernels.functional.extremes`): huge finite inputs give the
exact Gram or an ``OverflowError``, never NaN.

The numerics live in :mod:`kernelzoo.kernels.functional` (activations and
their dual maps, the fc recursion, the conv diagonal and all-pairs paths, the
``torch.compile`` plumbing); this module holds the parameters and dispatch.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
import torch

from kernelzoo._validation import (
    as_images,
    as_vectors,
    check_image_shape,
    get_memory_budget,
    parse_memory_budget,
)
from kernelzoo.kernels.base import Kernel, Param, check_choice, check_int, check_positive
from kernelzoo.kernels.functional.activations import DEFAULT_NEGATIVE_SLOPE
from kernelzoo.kernels.functional.architecture import (
    ACTIVATIONS,
    MYRTLE_GROUPS,
    PADDINGS,
    READOUTS,
    Net,
    conv_shapes,
    myrtle_layers,
)
from kernelzoo.kernels.functional.conv import conv_diag_block, conv_diag_self, diag_block_bytes
from kernelzoo.kernels.functional.conv_fused import CompileFailed, fused_applies, fused_gram
from kernelzoo.kernels.functional.conv_pairs import (
    conv_diag_full,
    conv_full_gram,
    conv_variances,
)
from kernelzoo.kernels.functional.extremes import unit_samples, unscale, unscale_diag
from kernelzoo.kernels.functional.fc import fc_block, fc_diag
from kernelzoo.ops.tiling import tiled_gram

__all__ = ["INFINITE_PARAMS", "InfiniteWidthKernel"]


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


def _check_slope(value, name: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return value


INFINITE_PARAMS = (
    Param("architecture", "fc", check_choice("fc", "conv", "myrtle"),
          "fc (Dense layers), conv, or myrtle (Myrtle-5/7/10 on 32x32 images)"),
    Param("depth", 2, check_int(minimum=1),
          "number of hidden layers, >= 1 (myrtle: 5, 7 or 10)"),
    Param("activation", "relu", check_choice(*ACTIVATIONS),
          "relu, erf, abs, gelu, sin, cos, sign or leaky_relu"),
    Param("negative_slope", DEFAULT_NEGATIVE_SLOPE, _check_slope,
          "leaky_relu's slope below 0 (neural-tangents' LeakyRelu(alpha))"),
    Param("weight_std", 2**0.5, check_positive(), "W_std (parameterization 'ntk')",
          train="positive"),
    # relu networks are positively homogeneous: without a bias, weight_std only rescales
    # the kernel (which the ridge lambda absorbs), so the search varies the bias against it
    Param("bias_std", 0.0, _check_bias, "b_std; 0 or None: no bias", search=(0.0, 0.3, 1.0),
          train="positive"),
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
    Param("image_shape", None, check_image_shape, "(C, H, W) for (n, d) input to conv"),
)


class InfiniteWidthKernel(Kernel):
    """The NNGP / NTK of an infinitely wide fc or conv net (neural-tangents' ``stax``).

    Parameters
    ----------
    architecture : {'fc', 'conv', 'myrtle'}, default 'fc'
        ``depth`` hidden ``Dense`` layers, or ``Conv(filter_size, padding)``
        layers; ``'myrtle'``: the Myrtle network of Shankar et al. (2020) as
        neural-tangents builds it (three groups of 3x3 SAME conv + activation
        with [2, 1, 1] / [2, 2, 2] / [3, 3, 3] layers for ``depth`` 5 / 7 / 10,
        2x2 average pooling after the first and second group and three times
        after the third, then the readout and the Dense); its images must
        have sides divisible by 32 (32 -> 16 -> 8 -> 1 on CIFAR-10), and
        ``filter_size``, ``padding`` and ``pooling`` stay at their defaults.
    depth : int >= 1, default 2
        Hidden layers; for ``'myrtle'`` the Myrtle depth, 5, 7 or 10.
    activation : {'relu', 'erf', 'abs', 'gelu', 'sin', 'cos', 'sign', 'leaky_relu'}, \
default 'relu'
        ``gelu`` is ``u Phi(u)`` (not the tanh form); ``sign``'s NTK contribution
        is 0 (its derivative vanishes almost everywhere, as in neural-tangents).
    negative_slope : float, default 0.01
        ``leaky_relu``: ``max(u, 0) + negative_slope * min(u, 0)``
        (neural-tangents' ``LeakyRelu(negative_slope)``); other activations
        take only the default.
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

    Shape
    -----
    fc ``(n, d)`` (images are flattened); conv ``(n, C, H, W)`` or ``(n, d)``
    with ``image_shape``; ``gram`` -> ``(n, m)``.
    """

    params = INFINITE_PARAMS
    #: ``kernelzoo compare`` runs the fc and the conv architecture
    compare_variants = ({}, {"architecture": "conv"})
    #: which kernel of the pair this family returns
    tangent: ClassVar[bool] = False

    def _check_params(self) -> None:
        p = self._params
        if p["activation"] != "leaky_relu" and p["negative_slope"] != DEFAULT_NEGATIVE_SLOPE:
            raise ValueError(
                f"negative_slope is for activation='leaky_relu'; activation="
                f"{p['activation']!r} takes only the default {DEFAULT_NEGATIVE_SLOPE}"
            )
        if p["architecture"] == "myrtle":
            if p["depth"] not in MYRTLE_GROUPS:
                raise ValueError(
                    f"architecture='myrtle' takes depth=5, 7 or 10 (Myrtle-5/7/10), got "
                    f"depth={p['depth']!r}"
                )
            fixed = {"filter_size": 3, "padding": "same", "pooling": None}
            for name, value in fixed.items():
                if p[name] != value:
                    raise ValueError(
                        f"architecture='myrtle' fixes {name}={value!r} (3x3 SAME convs and its "
                        f"own pooling); got {name}={p[name]!r}"
                    )
            return
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
        """Whether inputs are images (``architecture='conv'`` or ``'myrtle'``)."""
        return self._params["architecture"] in ("conv", "myrtle")

    @property
    def homogeneity(self) -> int | None:  # type: ignore[override]
        """1 for nets without bias whose activation is positively homogeneous of degree 1
        (``k(a x, b y) = a b k(x, y)``), else None."""
        # sign is homogeneous of degree 0 but not declared: Net.homogeneous lists degree 1 only
        homogeneous = self.net.homogeneous
        return 1 if homogeneous else None

    def trainable_params(self) -> dict[str, str]:
        """``weight_std`` and, when the net has a bias, ``bias_std`` (fc only).

        The conv recursion is too expensive to differentiate in a GP training
        loop; a bias of 0 stays off (0 is not a positive value to start from).
        """
        if self.is_conv:
            return {}
        trainable = super().trainable_params()
        if not self._params["bias_std"]:
            trainable.pop("bias_std", None)
        return trainable

    def gram_with(
        self, x: torch.Tensor, y: torch.Tensor | None, values: dict[str, torch.Tensor],
        diag: bool = False,
    ) -> torch.Tensor:
        """The fc recursion with ``weight_std`` / ``bias_std`` as (differentiable) tensors.

        Parameters
        ----------
        x, y : torch.Tensor
            Prepared ``(n, d)`` and ``(m, d)``; ``y=None``: x with itself.
        values : dict of str to torch.Tensor
            ``weight_std`` and/or ``bias_std`` as scalar tensors.
        diag : bool
            Only the diagonal ``(n,)``.

        Returns
        -------
        torch.Tensor
            ``(n, m)``, or ``(n,)`` with ``diag=True``.
        """
        if self.is_conv:
            raise NotImplementedError(f"{self.family}: the conv recursion is not trained here")
        changes = {f"{name[:-4]}_var": values[name].to(x.dtype).square()
                   for name in ("weight_std", "bias_std") if name in values}
        net = dataclasses.replace(self.net, **changes)
        vx = x.square().mean(1)
        if diag and y is None:
            return self._pick(*fc_diag(vx, net))
        vy = vx if y is None else y.square().mean(1)
        gram = self._pick(*fc_block(x, x if y is None else y, vx, vy, net, same=y is None))
        if y is None:
            gram = 0.5 * (gram + gram.mT)
        return torch.diagonal(gram) if diag else gram

    @property
    def net(self) -> Net:
        p = self._params
        bias = 0.0 if p["bias_std"] is None else float(p["bias_std"])
        depth = p["depth"]
        pooling = tuple(p["pooling"]) if p["pooling"] is not None else (1,) * depth
        if p["architecture"] == "myrtle":
            depth, pooling = myrtle_layers(depth)
        return Net(
            conv=self.is_conv,
            depth=depth,
            activation=p["activation"],
            weight_var=float(p["weight_std"]) ** 2,
            bias_var=bias**2,
            filter_size=p["filter_size"],
            padding=p["padding"],
            readout=p["readout"],
            readout_dense=bool(p["readout_dense"]),
            pooling=pooling,
            ntk=self.tangent,
            negative_slope=float(p["negative_slope"]),
        )

    # ------------------------------------------------------------------ inputs
    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        if not self.is_conv:
            return as_vectors(x, name)
        images = as_images(x, self._params["image_shape"], name)
        if self._params["architecture"] == "myrtle" and (
            images.shape[2] % 32 or images.shape[3] % 32
        ):
            raise ValueError(
                f"{self.family}: architecture='myrtle' pools its images by 2, 2 and 8 "
                f"(32 -> 16 -> 8 -> 1), so {name}'s height and width must be multiples of 32; "
                f"got {images.shape[2]}x{images.shape[3]} images"
            )
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
    def _pair_block(
        self, x: torch.Tensor, y: torch.Tensor, same: bool, net: Net
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(K, T) of one tile on the fc or conv equal-positions path."""
        if not net.conv:
            vx = x.square().mean(1)
            vy = vx if same else y.square().mean(1)
            return fc_block(x, y, vx, vy, net, same=same)
        # conv, flatten readout without pooling: equal positions only
        vx = conv_variances(x, net, 0, self.family)
        vy = vx if same else conv_variances(y, net, 0, self.family)
        return conv_diag_block(x, y, vx, vy, net)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        return self._pick(*self._pair_block(x, y, same, self.net))

    def gram_nngp_ntk(
        self, X: Any, Y: Any = None, memory_budget: int | float | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The NNGP and the NTK of this architecture together, ``(K, Theta)``.

        The NTK recursion carries the NNGP, so on the conv all-position-pairs
        path (GAP readout or pooling, the expensive one) both come out of one
        pass; the cheap paths (fc, flatten without pooling) evaluate each
        tile for both. The result does not depend on which of the two families
        ``self`` is.

        Parameters
        ----------
        X, Y : array or tensor, ``(n, ...)`` and ``(m, ...)``
            ``Y=None``: X with itself.
        memory_budget : int or str, optional
            As :meth:`~kernelzoo.kernels.base.Kernel.gram`.

        Returns
        -------
        tuple of torch.Tensor
            ``(K, Theta)``, each ``(n, m)``.
        """
        budget = parse_memory_budget(memory_budget)
        x, y = self.prepare_pair(X, Y)
        net = dataclasses.replace(self.net, ntk=True)
        if net.homogeneous:  # unit-scale samples, the scale put back at the end
            xs, ex = unit_samples(x)
            ys, ey = (None, ex) if y is None else unit_samples(y)
            k, t = self._both(xs, ys, net, budget)
            return unscale(k, ex, ey, 1), unscale(t, ex, ey, 1)
        return self._both(x, y, net, budget)

    def _both(self, x, y, net: Net, budget: int) -> tuple[torch.Tensor, torch.Tensor]:
        if net.conv and net.full_spatial:
            return self._full_gram(x, y, net, budget)  # type: ignore[return-value]
        return tuple(  # type: ignore[return-value]
            tiled_gram(
                lambda a, b, same, i=index: self._pair_block(a, b, same, net)[i],
                x, y, budget, self._block_bytes,
            )
            for index in (0, 1)
        )

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        item = x.element_size()
        if not self.is_conv:
            return item * (8 * n_rows * n_cols + (n_rows + n_cols) * (x.shape[1] + 4))
        positions = x.shape[2] * x.shape[3]
        feat = x.shape[1] * positions
        pair_maps = diag_block_bytes(n_rows, n_cols, positions, item)
        return pair_maps + item * (n_rows + n_cols) * (feat + 4 * positions * self.depth)

    def _evaluate(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        if self.net.homogeneous:  # unit-scale samples (no overflow), the scale put back
            xs, ex = unit_samples(x)
            ys, ey = (None, ex) if y is None else unit_samples(y)
            return unscale(self._evaluate_unit(xs, ys, budget), ex, ey, 1)
        return self._evaluate_unit(x, y, budget)

    def _evaluate_unit(self, x: torch.Tensor, y: torch.Tensor | None, budget: int) -> torch.Tensor:
        net = self.net
        if not (net.conv and net.full_spatial):
            return super()._evaluate(x, y, budget)
        return self._pick(*self._full_gram(x, y, net, budget))

    def _full_gram(
        self, x: torch.Tensor, y: torch.Tensor | None, net: Net, budget: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(K, T) on the all-position-pairs path: the fused graph where it applies."""
        vx = conv_variances(x, net, budget, self.family)
        vy = None if y is None else conv_variances(y, net, budget, self.family)
        if fused_applies(net, x, y):
            try:
                return fused_gram(x, y, vx, vy, net, budget)
            except CompileFailed:  # warned once; compiling is now off
                pass
        return conv_full_gram(x, y, vx, vy, net, budget, self.family)

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        if self.net.homogeneous:
            xs, e = unit_samples(x)
            return unscale_diag(self._diag_unit(xs), e, 1)
        return self._diag_unit(x)

    def _diag_unit(self, x: torch.Tensor) -> torch.Tensor:
        net = self.net
        if not net.conv:
            return self._pick(*fc_diag(x.square().mean(1), net))
        if not net.full_spatial:
            return self._pick(*conv_diag_self(x, net))
        if fused_applies(net, x[:1]) and fused_applies(net, x):
            budget = get_memory_budget()
            rows = torch.arange(x.shape[0], device=x.device)
            vx = conv_variances(x, net, budget, self.family)
            try:
                return self._pick(*fused_gram(x, x, vx, vx, net, budget, pairs=(rows, rows)))
            except CompileFailed:  # warned once; compiling is now off
                pass
        k, t = conv_diag_full(x, net, get_memory_budget(), self.family)
        return self._pick(k, t)
