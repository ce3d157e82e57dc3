"""Gaussian (RBF) kernel: ``k(x, y) = exp(-|x - y|^2 / (2 lengthscale^2))``."""

from __future__ import annotations

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.base import Kernel, Param, check_positive

__all__ = ["RBF"]


def _refine_near_duplicates(
    x: torch.Tensor, y: torch.Tensor, v: torch.Tensor, bound: float
) -> None:
    """Recompute ``v = -|x_i - y_j|^2 / 2`` directly where the expanded form cancels.

    ``x.y - |x|^2/2 - |y|^2/2`` loses all digits when x and y nearly coincide
    far from the origin (scaled inputs, near-duplicates); entries with
    ``v >= -bound`` are redone as a sum of squared differences, in place.
    """
    idx = (v >= -bound).nonzero()
    if idx.numel() == 0:
        return
    rows, cols = idx[:, 0], idx[:, 1]
    chunk = max(1, (1 << 24) // max(1, x.shape[1]))
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        v[r, c] = -0.5 * (x[r] - y[c]).square().sum(1)


class RBF(Kernel):
    """Gaussian kernel, no output scale (gpytorch's ``ScaleKernel`` adds one).

    Parameters
    ----------
    lengthscale : float, default 1.0

    Shape: inputs ``(n, d)`` (images are flattened).
    """

    family = "rbf"
    params = (
        Param("lengthscale", 1.0, check_positive(), "length scale, > 0",
              search=(0.5, 1.0, 2.0), search_scale="median_distance"),
    )
    approximations = ("rff", "orf", "nystrom")

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        scale = 1.0 / self.lengthscale
        xs = x * scale
        ys = xs if same else y * scale
        sx = xs.square().sum(1)
        sy = sx if same else ys.square().sum(1)
        if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
            d2 = (sx[:, None] + sy[None, :] - 2.0 * xs @ ys.T).clamp_min(0.0)
            if same:
                d2 = d2 * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
            return torch.exp(-0.5 * d2)
        # one GEMM of augmented rows gives v = x.y - |x|^2/2 - |y|^2/2 = -|x - y|^2/2,
        # then two in-place passes: clamp and exp
        ones_x, ones_y = sx.new_ones(len(sx), 1), sy.new_ones(len(sy), 1)
        xa = torch.cat([xs, -0.5 * sx[:, None], ones_x], dim=1)
        ya = torch.cat([ys, ones_y, -0.5 * sy[:, None]], dim=1)
        v = (xa @ ya.T).clamp_max_(0.0)
        tol = 64 * torch.finfo(x.dtype).eps
        _refine_near_duplicates(xs, ys, v, tol * 0.5 * float(sx.max() + sy.max()))
        if same:
            v.fill_diagonal_(0.0)
        return v.exp_()

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
