"""Scales of a data set: median distances, for lengthscale grids and initial values.

Two statistics with two uses, named by what they compute:

- :func:`median_pairwise_distance`: the median over all pairs of the first
  ``max_points`` rows; the unit of ``Param.search_scale="median_distance"``
  (the accuracy harness multiplies a family's ``search`` values by it).
- :func:`median_nonzero_distance`: the median over the distinct pairs of a
  seeded random subset; an initial lengthscale for GP training, robust to
  duplicated rows.
"""

from __future__ import annotations

import torch

__all__ = ["median_nonzero_distance", "median_pairwise_distance"]


def median_pairwise_distance(x: torch.Tensor, max_points: int = 512) -> float:
    """Median Euclidean distance over the pairs ``i < j`` of the first ``max_points`` rows.

    Rows are flattened and compared in float64; 1.0 for a single row.

    Shape: ``(n, ...)`` -> a float.

    Parameters
    ----------
    x : torch.Tensor
        Rows ``(n, ...)``.
    max_points : int
        Rows used.

    Returns
    -------
    float
        The median distance.
    """
    flat = x[:max_points].reshape(min(len(x), max_points), -1).to(torch.float64)
    distances = torch.cdist(flat, flat)
    upper = distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), diagonal=1)]
    return float(upper.median()) if upper.numel() else 1.0


def median_nonzero_distance(x: torch.Tensor, seed: int, max_points: int = 500) -> float:
    """Median of the non-zero distances among ``max_points`` rows drawn without replacement.

    The rows come from a permutation seeded with ``seed`` (CPU generator);
    1.0 when every distance is zero.

    Shape: ``(n, d)`` -> a float.

    Parameters
    ----------
    x : torch.Tensor
        Rows ``(n, d)``.
    seed : int
        Seed of the draw.
    max_points : int
        Rows drawn.

    Returns
    -------
    float
        The median non-zero distance.
    """
    gen = torch.Generator().manual_seed(seed)
    sub = x[torch.randperm(len(x), generator=gen)[:max_points].to(x.device)]
    d = torch.cdist(sub, sub)
    return float(d[d > 0].median()) if (d > 0).any() else 1.0
