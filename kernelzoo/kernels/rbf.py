"""Gaussian (RBF) kernel: ``k(x, y) = exp(-|x - y|^2 / (2 lengthscale^2))``."""

from __future__ import annotations

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels.base import Kernel, Param, check_positive

__all__ = ["RBF"]


def _sq_dist_fix(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor, sx, sy) -> None:
    """Recompute ``|x_i - y_j|^2`` directly where the expanded formula cancels.

    ``|x|^2 + |y|^2 - 2 x.y`` loses all digits when x and y nearly coincide far
    from the origin (scaled inputs, near-duplicates); those few entries are
    redone as a sum of squared differences, in place in ``out``.
    """
    tol = 64 * torch.finfo(out.dtype).eps
    suspicious = out <= tol * (sx[:, None] + sy[None, :])
    idx = suspicious.nonzero()
    if idx.numel() == 0:
        return
    rows, cols = idx[:, 0], idx[:, 1]
    chunk = max(1, (1 << 24) // max(1, x.shape[1]))
    for start in range(0, rows.numel(), chunk):
        r, c = rows[start : start + chunk], cols[start : start + chunk]
        out[r, c] = (x[r] - y[c]).square().sum(1)


class RBF(Kernel):
    """Gaussian kernel, no output scale (gpytorch's ``ScaleKernel`` adds one).

    Parameters
    ----------
    lengthscale : float, default 1.0

    Shape: inputs ``(n, d)`` (images are flattened).
    """

    family = "rbf"
    params = (Param("lengthscale", 1.0, check_positive(), "length scale, > 0"),)
    approximations = ("rff", "orf", "nystrom")

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        scale = 1.0 / self.lengthscale
        xs, ys = x * scale, (x * scale if same else y * scale)
        sx, sy = xs.square().sum(1), (None if same else ys.square().sum(1))
        if same:
            sy = sx
        if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
            d2 = (sx[:, None] + sy[None, :] - 2.0 * xs @ ys.T).clamp_min(0.0)
            if same:
                d2 = d2 * (1 - torch.eye(len(x), dtype=x.dtype, device=x.device))
            return torch.exp(-0.5 * d2)
        # fused in place: d2 = |x|^2 + |y|^2 - 2 x.y
        d2 = torch.addmm(sy[None, :], xs, ys.T, beta=1.0, alpha=-2.0)
        d2.add_(sx[:, None]).clamp_min_(0.0)
        _sq_dist_fix(xs, ys, d2, sx, sy)
        if same:
            d2.fill_diagonal_(0.0)
        return d2.mul_(-0.5).exp_()

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
