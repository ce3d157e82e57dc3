"""Nyström CKN networks (Mairal 2016): ``layerwise`` (k-means anchors) and ``supervised``.

Each layer (:class:`CKNLayer`) maps a feature map ``(n, C, H, W)`` to
``(n, p, h, w)``: patches of size ``f`` at every position (zero padding
``f // 2``), ``psi(z) = |z| kappa(Z Z^T)^{-1/2} kappa(Z z / |z|)`` with ``p``
anchors Z on the unit sphere, then the Gaussian pooling of the exact kernel
(:mod:`kernelzoo.kernels.functional.ckn_ops`, same matrices). ``<psi(z), psi(z')>`` is the
kernel of the projections onto the span of the anchors' feature maps, so with
enough anchors the network's Gram converges to the exact CKN Gram; the
features are the flattened last map (their dot product sums over positions).

``layerwise`` fits the anchors greedily, layer by layer, by spherical k-means
on patches sampled at random (seeded) from the training images.
``supervised`` (:mod:`kernelzoo.approx.ckn_supervised`) starts there and trains
the anchors end to end, alternating an
exact refit of a one-vs-all linear classifier (lambda chosen on a validation
split taken out of the training data) with SGD on the anchors, re-projected
to the sphere after every step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from kernelzoo.approx.base import Approximation, check_budget, generator
from kernelzoo.approx.kmeans import spherical_kmeans
from kernelzoo.kernels.functional.ckn_ops import kappa_fn, pooling_matrix_on
from kernelzoo.kernels.functional.dot import safe_div, safe_sqrt
from kernelzoo.ops.linalg import check_eigen_options, default_rel_clip, inv_sqrt_psd

__all__ = ["CKNLayer", "CKNNetwork", "LayerwiseCKN", "spherical_kmeans"]


class CKNLayer(nn.Module):
    """One Nyström CKN layer: patches, kernel map on anchors, ``kappa(Z Z^T)^{-1/2}``, pooling.

    Parameters
    ----------
    anchors : (p, C * f * f) tensor
        Anchor patches (normalised to the unit sphere here); the ``weight`` parameter.
    filter_size, subsampling : int
        Patch size (odd) and pooling stride.
    kappa : str
        ``exp``, ``arccos0``, ``arccos1`` or ``poly2``; ``sigma`` is used by ``exp``.
    sigma : float
        Bandwidth of ``exp``.
    eps : float
        Ridge added to the eigenvalues of ``kappa(Z Z^T)``.
    rel_clip : float, optional
        Eigenvalues below ``rel_clip * max`` are clipped (default 1e-6 for
        float32, 1e-12 for float64).
    centering : bool, default False
        Centre every patch (``z - mean(z)`` over its ``C f f`` entries) before the
        kernel map, as the ``ckn`` kernel's ``centering`` (first layer only): the
        dot products are taken with the centred anchors, ``<Z_c, z>``, and the norms
        are ``sqrt(|z|^2 - (sum z)^2 / D)``; cosines are clamped to ``[-1, 1]``.

    Shape
    -----
    ``(n, C, H, W)`` -> ``(n, p, floor((H-1)/s)+1, floor((W-1)/s)+1)``.
    """

    def __init__(self, anchors: torch.Tensor, filter_size: int, subsampling: int, kappa: str,
                 sigma: float, eps: float = 0.0, rel_clip: float | None = None,
                 centering: bool = False) -> None:
        super().__init__()
        self.centering = bool(centering)
        _p, dim = anchors.shape
        if dim % (filter_size * filter_size):
            raise ValueError(
                f"anchors have {dim} entries, not a multiple of filter_size^2={filter_size**2}"
            )
        self.in_channels = dim // (filter_size * filter_size)
        self.filter_size, self.subsampling = int(filter_size), int(subsampling)
        self.kappa, self.sigma = kappa, float(sigma)
        self.eps, self.rel_clip = check_eigen_options(eps, rel_clip)
        self.weight = nn.Parameter(safe_div(anchors, anchors.norm(dim=1, keepdim=True)))
        self._cache: dict[tuple, torch.Tensor] = {}

    @property
    def n_anchors(self) -> int:
        return self.weight.shape[0]

    def normalise_(self) -> None:
        """Project the anchors back onto the unit sphere (after an optimiser step)."""
        with torch.no_grad():
            self.weight.copy_(safe_div(self.weight, self.weight.norm(dim=1, keepdim=True)))

    @contextlib.contextmanager
    def using_sigma(self, sigma: float | torch.Tensor) -> Iterator[CKNLayer]:
        """Evaluate the layer with another ``sigma`` inside the block (a float or a
        differentiable scalar tensor, e.g. a trained gpytorch parameter).

        The cached normalisation is dropped on entry and on exit, and the float
        sigma is restored, so that the module still deep-copies and pickles.

        Parameters
        ----------
        sigma : float or torch.Tensor
            The bandwidth to use inside the block.

        Yields
        ------
        CKNLayer
            This layer.
        """
        fixed = self.sigma
        self.sigma, self._cache = sigma, {}
        try:
            yield self
        finally:
            self.sigma, self._cache = fixed, {}

    def normalization(self) -> torch.Tensor:
        """``(kappa(Z Z^T) + eps I)^{-1/2}``, ``(p, p)``; cached while the anchors do not change."""
        z = self.weight
        track = torch.is_grad_enabled() and z.requires_grad
        key = (z._version, z.dtype, z.device)
        if not track and key in self._cache:
            return self._cache[key]
        # no clamp: exp and poly2 need none, arccos_fn clamps itself (a clamp at the
        # diagonal's 1 would make the map non-differentiable there)
        gram = kappa_fn(z @ z.T, self.kappa, self.sigma)
        rel_clip = self.rel_clip
        if rel_clip is None:
            rel_clip = default_rel_clip(z.dtype)
        out = inv_sqrt_psd(gram, eps=self.eps, rel_clip=rel_clip)
        if not track:
            self._cache = {key: out}
        return out

    def _unnormalised_map(self, x: torch.Tensor) -> torch.Tensor:
        """``|z| kappa(Z z / |z|)`` at every position, before ``kappa(Z Z^T)^{-1/2}``.

        Shape: ``(n, C, H, W)`` -> ``(n, p, H, W)``.
        """
        f = self.filter_size
        c = x.shape[1]
        if c != self.in_channels:
            raise ValueError(f"CKNLayer expects {self.in_channels} channels, got {c}")
        z = self.weight.to(x.dtype)
        ones = torch.ones(1, c, f, f, dtype=x.dtype, device=x.device)
        squares = F.conv2d(x * x, ones, padding=f // 2)  # (n, 1, H, W)
        if self.centering:  # |z - mean z|^2 = |z|^2 - (sum z)^2 / D; <Z, z - mean z> = <Z_c, z>
            sums = F.conv2d(x, ones, padding=f // 2)
            squares = (squares - sums.square() / (c * f * f)).clamp_min(0.0)
            z = z - z.mean(1, keepdim=True)
        norms = safe_sqrt(squares)
        dots = F.conv2d(x, z.reshape(-1, c, f, f), padding=f // 2)  # (n, p, H, W)
        tracked = torch.is_grad_enabled() and (x.requires_grad or z.requires_grad)
        if self.centering:  # rounding of near-constant patches: keep cosines in [-1, 1]
            inv = safe_div(torch.ones_like(norms), norms)
            if self.kappa == "exp" and not tracked:
                s2 = self.sigma * self.sigma
                return dots.mul_(inv).clamp_(-1.0, 1.0).sub_(1.0).div_(s2).exp_().mul_(norms)
            return kappa_fn((dots * inv).clamp(-1.0, 1.0), self.kappa, self.sigma) * norms
        if self.kappa == "exp" and not tracked:
            # inference: kappa(u) |z| = exp(u / sigma^2) * (|z| exp(-1 / sigma^2)), three
            # in-place passes over the big map; the divisions stay on the (n, 1, H, W) norms
            # (a zero patch has zero dots, so exp(0) * 0 = 0)
            s2 = self.sigma * self.sigma
            inv = safe_div(torch.ones_like(norms), norms * s2)
            return dots.mul_(inv).exp_().mul_(norms * math.exp(-1.0 / s2))
        inv = safe_div(torch.ones_like(norms), norms)
        return kappa_fn(dots * inv, self.kappa, self.sigma) * norms

    def _normalise_map(self, mapped: torch.Tensor) -> torch.Tensor:
        """Apply ``kappa(Z Z^T)^{-1/2}`` over the channels: ``(n, p, h, w)`` -> same."""
        w = self.normalization().to(mapped.dtype)
        n, p, h, wd = mapped.shape
        # one GEMM on (n, p, h*w): (p, p) @ (n, p, hw)
        return torch.matmul(w, mapped.reshape(n, p, h * wd)).reshape(n, p, h, wd)

    def patch_map(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel map before pooling: ``(n, C, H, W)`` -> ``(n, p, H, W)``.

        Parameters
        ----------
        x : torch.Tensor
            Input maps.

        Returns
        -------
        torch.Tensor
            The kernel map of every patch.
        """
        return self._normalise_map(self._unnormalised_map(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # pooling is linear over positions and the normalisation linear over channels,
        # so they commute: normalise the (smaller) pooled map
        mapped = self._unnormalised_map(x)
        if self.subsampling > 1:
            h, w = mapped.shape[2:]
            g_rows = pooling_matrix_on(h, self.subsampling, x.dtype, x.device)
            g_cols = pooling_matrix_on(w, self.subsampling, x.dtype, x.device)
            mapped = g_rows @ mapped @ g_cols.T
        return self._normalise_map(mapped)


class CKNNetwork(nn.Module):
    """A stack of :class:`CKNLayer`; ``forward`` returns the flattened last map.

    Shape: ``(n, C, H, W)`` -> ``(n, p_L * h_L * w_L)``.

    Parameters
    ----------
    layers : sequence of CKNLayer
        The layers, input first.
    """

    def __init__(self, layers: list[CKNLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def maps(self, x: torch.Tensor, n_layers: int | None = None) -> torch.Tensor:
        for layer in list(self.layers)[:n_layers]:
            x = layer(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maps(x).flatten(1)


class LayerwiseCKN(Approximation):
    """Mairal's Nyström CKN network with anchors from spherical k-means, layer by layer.

    ``budget``: anchors per layer, an int for every layer or a list (one per layer).
    If a layer has fewer distinct non-zero patches than anchors, every distinct
    patch becomes an anchor (the layer is then exact on the training images).

    Parameters
    ----------
    kernel : Kernel
        The exact kernel to approximate.
    budget : int or list of int
        Anchors per layer.
    seed : int, default 0
        Seed of every random draw (CPU float64 generator), in ``[0, 2**32 - 1]``.

    Other Parameters
    ----------------
    n_patches : int, default 100000
        Patches sampled (seeded, uniformly over images and positions) per layer,
        capped by how many exist.
    kmeans_iters : int, default 20
        Iterations of spherical k-means.
    eps : float, default 0.0
        Ridge on the eigenvalues of ``kappa(Z Z^T)``.
    rel_clip : float, optional
        Eigenvalue clipping (default 1e-6 in float32, 1e-12 in float64).
    batch_size : int, default 256
        Images per forward pass when computing features.
    """

    method = "layerwise"
    trains_features = True  # :meth:`network`: anchors as parameters (gpytorch trains them)
    options: ClassVar[dict[str, Any]] = {
        "n_patches": 100000, "kmeans_iters": 20, "eps": 0.0, "rel_clip": None, "batch_size": 256,
    }

    def __init__(self, kernel, budget: Any = None, seed: int = 0, **options: Any) -> None:
        super().__init__(kernel, budget=budget, seed=seed, **options)
        self._networks: dict[tuple, CKNNetwork] = {}

    # ------------------------------------------------------------------ checks
    def _check_budget(self, budget: Any) -> Any:
        n_layers = self.kernel.n_layers
        if isinstance(budget, (list, tuple)):
            values = [check_budget(b, "budget") for b in budget]
            if n_layers is not None and len(values) != n_layers:
                raise ValueError(
                    f"budget has {len(values)} values but the kernel has n_layers={n_layers}"
                )
            return values
        if budget is None:
            raise ValueError("budget (anchors per layer: an int or a list) is required")
        return check_budget(budget, "budget")

    def _check_options(self) -> None:
        for name in ("n_patches", "kmeans_iters", "batch_size"):
            check_budget(self.opts[name], name)
        self.opts["eps"], self.opts["rel_clip"] = check_eigen_options(
            self.opts["eps"], self.opts["rel_clip"]
        )

    def _anchors_per_layer(self) -> list[int]:
        b = self.budget
        return list(b) if isinstance(b, list) else [b] * self.kernel.n_layers

    # ------------------------------------------------------------------ network
    def _layer(self, k: int, anchors: torch.Tensor) -> CKNLayer:
        kern = self.kernel
        return CKNLayer(anchors, kern.filter_size[k], kern.subsampling[k], kern.kappa[k],
                        kern.sigma[k], eps=float(self.opts["eps"]), rel_clip=self.opts["rel_clip"],
                        centering=bool(kern.centering) and k == 0)

    def network(self, device=None, dtype: torch.dtype = torch.float64) -> CKNNetwork:
        """The fitted network (a new module, anchors as parameters) on ``device`` in ``dtype``.

        Parameters
        ----------
        device : torch.device or str, optional
            Where the module lives (default CPU).
        dtype : torch.dtype
            Its parameters' dtype.

        Returns
        -------
        CKNNetwork
            A new module.
        """
        self._require_fit()
        return self._build_network(device, dtype)

    def _build_network(self, device, dtype: torch.dtype) -> CKNNetwork:
        layers = [self._layer(k, a.to(device=device, dtype=dtype))
                  for k, a in enumerate(self.anchors_)]
        return CKNNetwork(layers).to(device=device, dtype=dtype)

    def _network_on(self, x: torch.Tensor) -> CKNNetwork:
        key = (x.device, x.dtype)
        if key not in self._networks:
            net = self.network(x.device, x.dtype)
            net.requires_grad_(False)
            self._networks[key] = net
        return self._networks[key]

    def _batched(self, net: CKNNetwork, x: torch.Tensor, n_layers: int | None = None,
                 flatten: bool = True) -> torch.Tensor:
        size = int(self.opts["batch_size"])
        outs = []
        for s in range(0, x.shape[0], size):
            out = net.maps(x[s:s + size], n_layers)
            outs.append(out.flatten(1) if flatten else out)
        return torch.cat(outs)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self._batched(self._network_on(x), x)

    # ------------------------------------------------------------------ fit
    def _sample_patches(self, layers: list[CKNLayer], x: torch.Tensor, k: int,
                        gen: torch.Generator) -> torch.Tensor:
        """Unit-norm non-zero patches of layer k's input, sampled uniformly (seeded)."""
        f = self.kernel.filter_size[k]
        net = CKNNetwork(layers)
        with torch.no_grad():
            probe = net.maps(x[:1])
        positions = probe.shape[2] * probe.shape[3]
        total = x.shape[0] * positions
        n_patches = int(self.opts["n_patches"])
        if total <= n_patches:
            chosen = torch.arange(total)
        else:
            chosen = torch.randperm(total, generator=gen)[:n_patches].sort().values
        images, where = chosen // positions, chosen % positions
        out = []
        size = max(1, int(self.opts["batch_size"]) // 4)
        unique_images = torch.unique(images)
        for s in range(0, unique_images.numel(), size):
            batch = unique_images[s:s + size]
            with torch.no_grad():
                maps = net.maps(x[batch.to(x.device)])
            # gather only the sampled patches (not every patch, as F.unfold would), in
            # unfold's (channel, row, column) order
            sel = (images[:, None] == batch[None, :])  # which sampled patches are in this batch
            rows, local = sel.nonzero(as_tuple=True)
            width = maps.shape[3]
            top, left = where[rows] // width, where[rows] % width
            offsets = torch.arange(f)
            padded = F.pad(maps, (f // 2,) * 4).permute(0, 2, 3, 1)  # (b, H + 2r, W + 2r, C)
            picked = padded[local[:, None, None].to(x.device),
                            (top[:, None, None] + offsets[None, :, None]).to(x.device),
                            (left[:, None, None] + offsets[None, None, :]).to(x.device)]
            out.append(picked.permute(0, 3, 1, 2).flatten(1))  # (N, C * f * f)
        patches = torch.cat(out)
        if k == 0 and self.kernel.centering:  # the anchors live among the centred patches
            patches = patches - patches.mean(1, keepdim=True)
        norms = patches.norm(dim=1, keepdim=True)
        keep = norms[:, 0] > 0
        return patches[keep] / norms[keep]

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        self._networks = {}
        gen = generator(self.seed)
        layers: list[CKNLayer] = []
        for k, n_anchors in enumerate(self._anchors_per_layer()):
            patches = self._sample_patches(layers, x, k, gen)
            if patches.shape[0] == 0:
                raise ValueError(f"layer {k + 1}: every sampled patch is zero; cannot fit anchors")
            anchors = spherical_kmeans(patches, n_anchors, int(self.opts["kmeans_iters"]), gen)
            layer = self._layer(k, anchors)
            layer.requires_grad_(False)
            layers.append(layer)
        self.anchors_ = [layer.weight.detach().cpu() for layer in layers]
        self.n_features_ = self._n_features(x)

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        """Anchors of layer k: ``(p_k, C_k f_k^2)`` with ``p_k <= budget_k`` (k-means keeps
        at most as many as there are distinct patches), ``C_1`` the input channels and
        ``C_k = p_(k-1)``; ``n_features_ = p_L h_L w_L``."""
        from kernelzoo.kernels.ckn import layer_sizes

        anchors = state.get("anchors_")
        budgets = self._anchors_per_layer()
        if not isinstance(anchors, list) or len(anchors) != len(budgets):
            raise ValueError(f"state anchors_ must be a list of {len(budgets)} tensors "
                             f"(one per layer)")
        channels, shapes = state["input_shape_"][0], {}
        for k, (a, budget) in enumerate(zip(anchors, budgets)):
            rows = int(a.shape[0]) if isinstance(a, torch.Tensor) and a.ndim == 2 else budget
            if not 1 <= rows <= budget:
                raise ValueError(f"state anchors_[{k}] has {rows} anchors, more than the "
                                 f"budget of {budget}")
            shapes[f"anchors_[{k}]"] = (rows, channels * self.kernel.filter_size[k] ** 2)
            channels = rows
        if len(state["input_shape_"]) != 3:
            raise ValueError(f"state has input_shape_={state['input_shape_']!r}, expected "
                             f"(C, H, W)")
        h, w = layer_sizes(state["input_shape_"][1], state["input_shape_"][2],
                           self.kernel.subsampling)[-1]
        return {**shapes, "n_features_": channels * h * w}

    def _n_features(self, x: torch.Tensor) -> int:
        from kernelzoo.kernels.ckn import layer_sizes

        h, w = layer_sizes(x.shape[2], x.shape[3], self.kernel.subsampling)[-1]
        return int(self.anchors_[-1].shape[0] * h * w)

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._networks = {}
