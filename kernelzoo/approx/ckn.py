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
``supervised`` starts there and trains the anchors end to end, alternating an
exact refit of a one-vs-all linear classifier (lambda chosen on a validation
split taken out of the training data) with SGD on the anchors, re-projected
to the sphere after every step.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kernelzoo.approx.base import Approximation, check_budget, generator
from kernelzoo.approx.kmeans import spherical_kmeans
from kernelzoo.kernels.functional.ckn_ops import kappa_fn, pooling_matrix
from kernelzoo.kernels.functional.dot import safe_div, safe_sqrt
from kernelzoo.ops.linalg import check_eigen_options, default_rel_clip, inv_sqrt_psd

__all__ = ["CKNLayer", "CKNNetwork", "LayerwiseCKN", "SupervisedCKN", "spherical_kmeans"]


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
            g_rows = pooling_matrix(h, self.subsampling, x.dtype, x.device)
            g_cols = pooling_matrix(w, self.subsampling, x.dtype, x.device)
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


class SupervisedCKN(LayerwiseCKN):
    """The Nyström CKN network with anchors trained end to end (Mairal 2016).

    ``fit(X, y)`` initialises as :class:`LayerwiseCKN` on the training part,
    then for every epoch refits a one-vs-all linear classifier exactly (ridge or
    squared hinge, lambda chosen on a validation split taken out of ``X``) and
    runs SGD with momentum on the anchors against that classifier's loss
    (anchors re-projected to the unit sphere after each step; the learning rate
    decays geometrically to ``lr * lr_final`` over the epochs). The classifier is
    refitted on the final features; the network kept is the one (initial,
    after an epoch, or final) whose refitted classifier has the best validation
    accuracy, with that classifier: :meth:`predict`, :meth:`score`.
    :meth:`fit_split` takes an explicit validation split instead of ``val_fraction``.

    After fitting: ``loss_history_`` (mean training loss of each epoch),
    ``val_accuracy_history_`` (validation accuracy of each refit: before
    every epoch, then final; entry 0 is the layerwise initialisation) and
    ``best_epoch_`` (the entry of the network kept).

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
    n_patches, kmeans_iters, eps, rel_clip
        As :class:`LayerwiseCKN` (the initialisation).
    batch_size : int, default 128
        Images per SGD step.
    epochs : int, default 10
        Epochs of SGD on the anchors.
    lr : float, default 0.01
        Learning rate (1.0 diverged on Fashion-MNIST; 0.03 already did).
    momentum : float, default 0.9
        SGD momentum.
    lr_final : float, default 0.1
        The last epoch's learning rate, relative to ``lr``.
    val_fraction : float, default 0.2
        Part of ``X`` held out for validation by :meth:`fit`.
    classifier : {'ridge', 'squared_hinge'}, default 'ridge'
        The linear classifier refitted exactly at every epoch.
    min_lambda : float, default 1e-4
        The classifier that the anchors are trained against has its lambda chosen
        on validation among ``lambda >= min_lambda * top`` (``top``: the largest
        eigenvalue of the centred ``F^T F / n``); 0 lifts the floor. The final
        classifier, and the choice of the network kept, use the full grid.
    device : str, optional
        Where to train (default: where X is).
    progress : bool, default True
        A tqdm progress bar over epochs.
    """

    method = "supervised"
    requires_labels = True
    trains_features = False  # trained for classification already: fixed features downstream
    options: ClassVar[dict[str, Any]] = {
        **LayerwiseCKN.options, "batch_size": 128, "epochs": 10, "lr": 0.01, "momentum": 0.9,
        "lr_final": 0.1, "val_fraction": 0.2, "classifier": "ridge", "min_lambda": 1e-4,
        "device": None,
        "progress": True,
    }

    def _check_options(self) -> None:
        super()._check_options()
        check_budget(self.opts["epochs"], "epochs")
        vf = self.opts["val_fraction"]
        if not isinstance(vf, (int, float)) or not 0 < vf < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {vf!r}")
        if self.opts["classifier"] not in ("ridge", "squared_hinge"):
            raise ValueError(
                f"classifier={self.opts['classifier']!r} is not allowed; expected 'ridge' or "
                f"'squared_hinge'"
            )
        ml = self.opts["min_lambda"]
        if isinstance(ml, bool) or not isinstance(ml, (int, float)) or ml < 0:
            raise ValueError(f"min_lambda must be a number >= 0, got {ml!r}")
        for name in ("lr", "lr_final"):
            if not isinstance(self.opts[name], (int, float)) or self.opts[name] <= 0:
                raise ValueError(f"{name} must be > 0, got {self.opts[name]!r}")

    def _refit_classifier(self, f_tr, y_tr, f_val, y_val, training: bool = False):
        """The validation-chosen classifier; for ``training``, lambda >= ``min_lambda * top``.

        ``top`` is the largest eigenvalue of the centred ``F^T F / n`` (the scale of the
        default lambda grids). A tiny lambda gives huge weights, and then the loss is so
        sharp in the anchors that SGD diverges; the final classifier uses the full grid.
        """
        from kernelzoo.classify import (
            default_lambdas,
            fit_ridge_classifier,
            fit_squared_hinge_classifier,
        )

        ridge = self.opts["classifier"] == "ridge"
        fit = fit_ridge_classifier if ridge else fit_squared_hinge_classifier
        floor = float(self.opts["min_lambda"])
        if not training or floor <= 0:
            return fit(f_tr, y_tr, f_val, y_val)
        centred = (f_tr - f_tr.mean(0)).double()
        vec = torch.ones(centred.shape[1], dtype=torch.float64, device=centred.device)
        for _ in range(30):  # power iteration: the top eigenvalue, to a few digits
            vec = centred.T @ (centred @ vec)
            vec = vec / vec.norm().clamp_min(1e-300)
        top = float((centred @ vec).square().sum()) / centred.shape[0]
        grid = default_lambdas(top) if ridge else top * np.logspace(-8, 0, 9)
        return fit(f_tr, y_tr, f_val, y_val, lambdas=grid[grid >= 0.999 * floor * top])

    def _loss(self, scores: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
              lam: float) -> torch.Tensor:
        if self.opts["classifier"] == "ridge":
            data = (scores - targets).square().sum(1).mean()
        else:
            data = (1.0 - targets * scores).clamp_min(0.0).square().sum(1).mean()
        return data + lam * weight.square().sum()

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        if y is None:
            raise ValueError("supervised CKN needs labels: fit(X, y)")
        y = y.reshape(-1).to(torch.int64).cpu()
        gen = generator(self.seed + 1)
        n = x.shape[0]
        n_val = max(1, round(self.opts["val_fraction"] * n))
        if n - n_val < 2:
            raise ValueError(f"too few samples ({n}) for val_fraction={self.opts['val_fraction']}")
        perm = torch.randperm(n, generator=gen)
        val_idx, tr_idx = perm[:n_val], perm[n_val:]
        self._train(x[tr_idx.to(x.device)], y[tr_idx], x[val_idx.to(x.device)], y[val_idx], gen)

    def fit_split(self, X_train: Any, y_train: Any, X_val: Any, y_val: Any) -> SupervisedCKN:
        """Fit with an explicit validation split (``val_fraction`` is not used).

        The validation split chooses the classifier's lambda at every refit, as in :meth:`fit`.

        Shape: ``X_train (n, ...)``, ``y_train (n,)``, ``X_val (m, ...)``, ``y_val (m,)``.

        Parameters
        ----------
        X_train, y_train : array or tensor
            Training images and labels.
        X_val, y_val : array or tensor
            Validation images and labels.

        Returns
        -------
        SupervisedCKN
            ``self``, fitted.
        """
        x_tr = self.kernel.prepare(X_train, "X_train")
        x_val = self.kernel.prepare(X_val, "X_val")
        if tuple(x_val.shape[1:]) != tuple(x_tr.shape[1:]):
            raise ValueError(
                f"X_val has feature shape {tuple(x_val.shape[1:])} but X_train has "
                f"{tuple(x_tr.shape[1:])}"
            )
        labels = []
        for name, t, xx in (("y_train", y_train, x_tr), ("y_val", y_val, x_val)):
            t = torch.as_tensor(np.asarray(t) if not torch.is_tensor(t) else t)
            if t.reshape(-1).shape[0] != xx.shape[0]:
                raise ValueError(f"{name} has {t.reshape(-1).shape[0]} labels but there are "
                                 f"{xx.shape[0]} samples")
            labels.append(t.reshape(-1).to(torch.int64).cpu())
        self._cache = {}
        self.input_shape_ = tuple(x_tr.shape[1:])
        self._train(x_tr, labels[0], x_val, labels[1], generator(self.seed + 1))
        self.fitted_ = True
        return self

    def _train(self, x_tr: torch.Tensor, y_tr: torch.Tensor, x_val: torch.Tensor,
               y_val: torch.Tensor, gen: torch.Generator) -> None:
        from tqdm.auto import tqdm

        device = torch.device(self.opts["device"]) if self.opts["device"] else x_tr.device
        x_tr, x_val = x_tr.to(device), x_val.to(device)
        x = x_tr
        super()._fit(x_tr, None)  # layerwise initialisation on the training part
        net = self._build_network(device, x.dtype)
        params = [layer.weight for layer in net.layers]
        opt = torch.optim.SGD(params, lr=float(self.opts["lr"]),
                              momentum=float(self.opts["momentum"]))
        epochs = int(self.opts["epochs"])
        decay = float(self.opts["lr_final"]) ** (1.0 / max(1, epochs - 1))
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=decay)
        batch = int(self.opts["batch_size"])
        self.loss_history_ = []
        self.val_accuracy_history_ = []
        bar = tqdm(range(epochs), desc="supervised ckn", disable=not self.opts["progress"],
                   leave=False)
        best: tuple[float, list[torch.Tensor], Any] | None = None
        for _ in bar:
            with torch.no_grad():
                f_tr, f_val = self._batched(net, x_tr), self._batched(net, x_val)
            clf = self._refit_classifier(f_tr, y_tr, f_val, y_val)
            self.val_accuracy_history_.append(clf.val_accuracy)
            if best is None or clf.val_accuracy > best[0]:
                best = (clf.val_accuracy, [layer.weight.detach().clone() for layer in net.layers],
                        clf)
            if float(self.opts["min_lambda"]) > 0:  # the classifier the anchors train against
                clf = self._refit_classifier(f_tr, y_tr, f_val, y_val, training=True)
            del f_tr, f_val
            weight = clf.weight.to(device=device, dtype=x.dtype)
            intercept = clf.intercept.to(device=device, dtype=x.dtype)
            targets = torch.where(y_tr[:, None] == clf.classes[None, :], 1.0, -1.0).to(
                device=device, dtype=x.dtype)
            order = torch.randperm(x_tr.shape[0], generator=gen).to(device)
            total, count = 0.0, 0
            for s in range(0, x_tr.shape[0], batch):
                idx = order[s:s + batch]
                opt.zero_grad()
                loss = self._loss(net(x_tr[idx]) @ weight + intercept, targets[idx], weight,
                                  clf.lam)
                loss.backward()
                opt.step()
                for layer in net.layers:
                    layer.normalise_()
                total += float(loss.detach()) * idx.numel()
                count += idx.numel()
            sched.step()
            self.loss_history_.append(total / count)
            bar.set_postfix(loss=self.loss_history_[-1], val_acc=clf.val_accuracy)
        net.requires_grad_(False)
        clf = self._fit_classifier_on(net, x_tr, y_tr, x_val, y_val)
        self.val_accuracy_history_.append(clf.val_accuracy)
        self.best_epoch_ = len(self.val_accuracy_history_) - 1
        if best is not None and best[0] > clf.val_accuracy:  # keep the best network on validation
            with torch.no_grad():
                for layer, weight in zip(net.layers, best[1], strict=True):
                    layer.weight.copy_(weight)
            clf = best[2]
            self.best_epoch_ = self.val_accuracy_history_.index(best[0])
        self.anchors_ = [layer.weight.detach().cpu() for layer in net.layers]
        self._networks = {}
        self.classifier_ = {k: (v if not isinstance(v, torch.Tensor) else v.cpu())
                            for k, v in clf.state().items()}

    def _fit_classifier_on(self, net, x_tr, y_tr, x_val, y_val):
        with torch.no_grad():
            f_tr = self._batched(net, x_tr)
            f_val = self._batched(net, x_val)
        return self._refit_classifier(f_tr, y_tr, f_val, y_val)

    # ------------------------------------------------------------------ classifier
    def _classifier(self):
        from kernelzoo.classify import LinearClassifier

        self._require_fit()
        return LinearClassifier(**self.classifier_)

    def predict(self, X: Any) -> torch.Tensor:
        """Class labels from the trained network and its classifier.

        Shape: ``(n, ...)`` -> ``(n,)``.

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Numpy or torch, in the kernel's layout.

        Returns
        -------
        torch.Tensor
            Labels.
        """
        with torch.no_grad():
            return self._classifier().predict(self.features(X))

    def score(self, X: Any, y: Any) -> float:
        """Accuracy on ``(X, y)``.

        Parameters
        ----------
        X : array or tensor, ``(n, ...)``
            Images.
        y : array, ``(n,)``
            Labels.

        Returns
        -------
        float
            Accuracy.
        """
        from kernelzoo.classify import accuracy

        return accuracy(self.predict(X).cpu(), np.asarray(y))
