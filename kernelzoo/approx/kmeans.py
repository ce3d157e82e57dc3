"""Spherical k-means (cosine similarity, unit-norm centres) with k-means++ seeding.

The anchors of the Nyström CKN layers (:mod:`kernelzoo.approx.ckn`) are its
centres on sampled unit-norm patches; every draw comes from the generator given.
"""

from __future__ import annotations

import torch

from kernelzoo.kernels.functional.dot import safe_div

__all__ = ["spherical_kmeans"]


def _kmeans_plus_plus(points: torch.Tensor, n_clusters: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding on the sphere: each new centre drawn with probability ~ 1 - max cos."""
    n = points.shape[0]
    uniforms = torch.rand(n_clusters, generator=gen, dtype=torch.float64)
    first = int(uniforms[0] * n)
    chosen = [min(first, n - 1)]
    closest = (points @ points[chosen[0]]).clamp(-1.0, 1.0)
    for c in range(1, n_clusters):
        dist = (1.0 - closest).clamp_min(0.0).double()
        cum = dist.cumsum(0)
        if float(cum[-1]) <= 0:  # every point is already a centre
            idx = int(uniforms[c] * n)
        else:
            target = (uniforms[c] * cum[-1]).to(cum.device)
            idx = int(torch.searchsorted(cum, target.reshape(1)).clamp_max(n - 1))
        chosen.append(idx)
        closest = torch.maximum(closest, points @ points[idx])
    return points[torch.tensor(chosen, device=points.device)].clone()


def spherical_kmeans(points: torch.Tensor, n_clusters: int, n_iter: int,
                     gen: torch.Generator) -> torch.Tensor:
    """Spherical k-means on unit-norm rows (cosine similarity, centres renormalised).

    With at most ``n_clusters`` distinct points, the distinct points themselves.
    Initial centres by k-means++ seeding (with ``1 - cos`` as the distance), and
    the reseeding of empty clusters, are drawn from ``gen``.

    Shape: ``(N, D)`` -> ``(min(n_clusters, distinct N), D)``.

    Parameters
    ----------
    points : torch.Tensor
        Unit-norm rows.
    n_clusters : int
        Number of centres.
    n_iter : int
        Lloyd iterations.
    gen : torch.Generator
        The CPU generator of the seeding.

    Returns
    -------
    torch.Tensor
        The centres, unit norm.
    """
    n = points.shape[0]
    if n <= 4 * n_clusters:
        unique = torch.unique(points, dim=0)
        if unique.shape[0] <= n_clusters:
            return unique
    centres = _kmeans_plus_plus(points, n_clusters, gen)
    chunk = max(1, (1 << 25) // max(1, n_clusters))
    for _ in range(n_iter):
        assign = torch.cat([
            (points[s:s + chunk] @ centres.T).argmax(1) for s in range(0, n, chunk)
        ])
        sums = torch.zeros_like(centres).index_add_(0, assign, points)
        counts = torch.bincount(assign, minlength=n_clusters)
        empty = (counts == 0).nonzero().flatten()
        if empty.numel():
            refill = torch.randint(n, (empty.numel(),), generator=gen).to(points.device)
            sums[empty] = points[refill]
        centres = safe_div(sums, sums.norm(dim=1, keepdim=True))
    return centres
