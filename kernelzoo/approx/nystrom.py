"""Generic Nyström approximation, for every exact kernel in the registry.

``features(x) = k(x, Z) (k(Z, Z) + eps I)^(-1/2)`` with landmarks Z chosen
``uniform`` (a prefix of one seeded permutation, so budgets are nested),
``kmeans`` (k-means centres of the training inputs) or given by the user
(``landmarks=array``), which scikit-learn's ``Nystroem`` lacks (sklearn#20232).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kernelzoo.approx.base import Approximation, check_budget, generator
from kernelzoo.ops.linalg import check_eigen_options, default_rel_clip, inv_sqrt_psd

__all__ = ["Nystrom", "nested_permutation"]


def nested_permutation(n: int, seed: int) -> torch.Tensor:
    """The seeded permutation whose prefixes are the uniform landmark sets."""
    return torch.randperm(n, generator=generator(seed))


class Nystrom(Approximation):
    """Nyström approximation with ``budget`` landmarks.

    Options
    -------
    landmarks : 'uniform' | 'kmeans' | array of shape (m, ...)
        Given landmarks need no ``budget`` (it is their number ``m``); a
        budget given with them must equal ``m``.
    eps : float, default 0.0
        Ridge added to the landmark Gram's eigenvalues (finite, >= 0).
    rel_clip : float, optional
        Eigenvalues below ``rel_clip * max`` are clipped (in [0, 1); default
        :func:`~kernelzoo.ops.linalg.default_rel_clip`: 1e-12 for float64
        inputs, 1e-6 for float32). Both are checked at construction by
        :func:`~kernelzoo.ops.linalg.check_eigen_options`.
    """

    method = "nystrom"
    options = {"landmarks": "uniform", "eps": 0.0, "rel_clip": None}

    def _check_budget(self, budget: Any) -> Any:
        return None if budget is None else check_budget(budget)

    def _check_options(self) -> None:
        lm = self.opts["landmarks"]
        if isinstance(lm, str):
            if lm not in ("uniform", "kmeans"):
                raise ValueError(
                    f"landmarks={lm!r} is not allowed; expected 'uniform', 'kmeans' or an array"
                )
            if self.budget is None:
                raise ValueError("budget (number of landmarks) is required for nystrom")
        elif self.budget is not None and self.budget != len(lm):
            raise ValueError(f"budget={self.budget} but {len(lm)} landmarks were given")
        self.opts["eps"], self.opts["rel_clip"] = check_eigen_options(
            self.opts["eps"], self.opts["rel_clip"]
        )

    def _choose_landmarks(self, x: torch.Tensor) -> torch.Tensor:
        lm = self.opts["landmarks"]
        if not isinstance(lm, str):
            z = self.kernel.prepare(lm, "landmarks").to(device=x.device, dtype=x.dtype)
            if z.shape[1:] != x.shape[1:]:
                raise ValueError(
                    f"landmarks have shape {tuple(z.shape[1:])} per point, X has "
                    f"{tuple(x.shape[1:])}"
                )
            return z
        if self.budget > x.shape[0]:
            raise ValueError(f"budget={self.budget} landmarks but X has only {x.shape[0]} samples")
        if lm == "uniform":
            idx = nested_permutation(x.shape[0], self.seed)[: self.budget]
            return x[idx.to(x.device)]
        from sklearn.cluster import KMeans

        flat = x.reshape(x.shape[0], -1).detach().cpu().double().numpy()
        km = KMeans(n_clusters=self.budget, n_init=1, random_state=self.seed).fit(flat)
        centres = torch.from_numpy(np.asarray(km.cluster_centers_))
        return centres.reshape(self.budget, *x.shape[1:]).to(device=x.device, dtype=x.dtype)

    def _fit(self, x: torch.Tensor, y: torch.Tensor | None) -> None:
        z = self._choose_landmarks(x)
        rel_clip = self.opts["rel_clip"]
        if rel_clip is None:
            rel_clip = default_rel_clip(x.dtype)
        kzz = self.kernel.gram(z).to(torch.float64)
        self.landmarks_ = z.detach().cpu()
        self.normalization_ = inv_sqrt_psd(
            kzz, eps=float(self.opts["eps"]), rel_clip=rel_clip
        ).cpu()
        self.n_features_ = z.shape[0]

    def _state_shapes(self, state: dict[str, Any]) -> dict[str, Any]:
        lm = self.opts["landmarks"]
        m = self.budget if isinstance(lm, str) else len(lm)
        shape = tuple(state["input_shape_"])
        return {"landmarks_": (m, *shape), "normalization_": (m, m), "n_features_": m}

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        fitted = self.fitted_on(x, z=self.landmarks_, w=self.normalization_)
        return self.kernel.gram(x, fitted["z"]) @ fitted["w"]
