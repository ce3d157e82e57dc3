"""Arc-cosine kernels of Cho & Saul (2009), single and multilayer.

``k_n(x, y) = (1/pi) |x|^n |y|^n J_n(theta)``, theta the angle between x and y,
composed ``depth`` times: ``k^(l+1)(x, y) = (1/pi) [k^(l)(x,x) k^(l)(y,y)]^(n/2)
J_n(theta^(l))`` with ``k^(0) = x.y``. ``k = 0`` when either input is zero.

Representable range of input scale s (the kernel scales like s^(2 n^depth)...):
degree 0 is scale invariant; degree 1 is homogeneous of degree 2 at every
depth (float64: s in 1e-15..1e15; float32: 1e-15..1e15 with ``|x|^2`` kept
within float32's range); degree 2 grows like ``s^(2^(depth+1))`` (float64 at
depth 1: 1e-15..1e15; float32 at depth 1: 1e-4..1e4).
"""

from __future__ import annotations

import torch

from kernelzoo._validation import as_vectors
from kernelzoo.kernels._dot import arccos_fn, cosine, safe_sqrt
from kernelzoo.kernels.base import Kernel, Param, check_int

__all__ = ["ArcCosine", "arccos_layers"]


def arccos_layers(
    dot: torch.Tensor,
    kxx: torch.Tensor,
    kyy: torch.Tensor,
    degree: int,
    depth: int,
    same: bool = False,
) -> torch.Tensor:
    """Apply ``depth`` arc-cosine layers to a block of dot products.

    Parameters
    ----------
    dot : (n, m) tensor
        ``k^(0)(x_i, y_j)``.
    kxx, kyy : (n,), (m,) tensors
        ``k^(0)(x_i, x_i)`` and ``k^(0)(y_j, y_j)``.
    same : bool
        The block is a diagonal tile (x is y): its diagonal has angle 0 exactly.

    Returns
    -------
    (n, m) tensor ``k^(depth)``.
    """
    k = dot
    for _ in range(depth):
        nx, ny = safe_sqrt(kxx), safe_sqrt(kyy)
        c = cosine(k, nx, ny)
        if same:
            c = c.fill_diagonal_(1.0) if not c.requires_grad else _set_diag_one(c)
        f = arccos_fn(c, degree)
        if degree == 0:
            # k = 0 when either input is zero (no continuous value there)
            nonzero = (nx[:, None] > 0) & (ny[None, :] > 0)
            k = f * nonzero
        elif degree == 1:
            k = f * (nx[:, None] * ny[None, :])
        else:
            k = f * (kxx[:, None] * kyy[None, :])
        kxx, kyy = _diag_update(kxx, degree), _diag_update(kyy, degree)
    return k


def _set_diag_one(c: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(c.shape[0], c.shape[1], dtype=torch.bool, device=c.device)
    return torch.where(eye, torch.ones_like(c), c)


def _diag_update(kxx: torch.Tensor, degree: int) -> torch.Tensor:
    """k^(l+1)(x, x) from k^(l)(x, x): theta = 0, where f_0 = f_1 = 1 and f_2 = 3."""
    if degree == 0:
        return (kxx > 0).to(kxx.dtype)
    if degree == 1:
        return kxx
    return 3.0 * kxx * kxx


class ArcCosine(Kernel):
    """Arc-cosine kernel (Cho & Saul 2009).

    Parameters
    ----------
    degree : {0, 1, 2}, default 1
        0: step (Heaviside) features, 1: ReLU, 2: squared ReLU.
    depth : int >= 1, default 1
        Number of composed layers.

    Shape: inputs ``(n, d)`` (images are flattened).
    """

    family = "arccos"
    params = (
        Param("degree", 1, check_int(choices=(0, 1, 2)), "0 step, 1 ReLU, 2 ReLU^2"),
        Param("depth", 1, check_int(minimum=1), "number of layers, >= 1"),
    )
    approximations = ("random-features", "nystrom")

    def _prepare(self, x: torch.Tensor, name: str) -> torch.Tensor:
        return as_vectors(x, name)

    def _block(self, x: torch.Tensor, y: torch.Tensor, same: bool) -> torch.Tensor:
        kxx = x.square().sum(1)
        kyy = kxx if same else y.square().sum(1)
        return arccos_layers(x @ y.T, kxx, kyy, self.degree, self.depth, same)

    def _block_bytes(self, n_rows: int, n_cols: int, x: torch.Tensor) -> int:
        item = x.element_size()
        return item * (5 * n_rows * n_cols + (n_rows + n_cols) * (x.shape[1] + 4))

    def _diag(self, x: torch.Tensor) -> torch.Tensor:
        k = x.square().sum(1)
        for _ in range(self.depth):
            k = _diag_update(k, self.degree)
        return k
