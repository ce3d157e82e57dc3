"""Preprocessing from the kernel literature: per-image standardisation, patch ZCA.

Both are fitted on training data only: :func:`standardize_images` uses each
image's own statistics, and :class:`PatchZCA` estimates its mean and
whitening matrix from patches of the training images, then applies them
unchanged to any other patches.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kernelzoo._validation import check_int

__all__ = ["PatchZCA", "extract_patches", "standardize_images"]


def _check_finite(X: np.ndarray | torch.Tensor, name: str) -> None:
    finite = torch.isfinite(X).all() if isinstance(X, torch.Tensor) else np.isfinite(X).all()
    if not bool(finite):
        raise ValueError(f"{name} contains NaN or Inf values")


def _float_dtype_np(X: np.ndarray) -> np.dtype:
    return X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float32)


def standardize_images(
    X: np.ndarray | torch.Tensor, eps: float = 1e-8
) -> np.ndarray | torch.Tensor:
    """Per-image standardisation: subtract each image's mean, divide by its std.

    The mean and (population, ``ddof=0``) standard deviation are taken over
    all channels and pixels of one image, in float64. An image whose standard
    deviation is at most ``eps`` counts as constant and becomes all zeros
    (never NaN).

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Images (or any batch of arrays: the statistics are taken over all
        axes but the first).
    eps : float
        Threshold (>= 0) under which an image counts as constant.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Of the type of ``X``, on its device; float32 and float64 are kept,
        other dtypes become float32.

    Shape
    -----
    ``X``: (n, C, H, W) or (n, ...); output: the same.
    """
    if not eps >= 0:
        raise ValueError(f"eps must be >= 0, got {eps!r}")
    if isinstance(X, torch.Tensor):
        if X.ndim < 2 or X.shape[0] == 0:
            raise ValueError(f"X must be a non-empty batch (n, ...), got shape {tuple(X.shape)}")
        _check_finite(X, "X")
        out_dtype = X.dtype if X.dtype in (torch.float32, torch.float64) else torch.float32
        flat = X.reshape(X.shape[0], -1).to(torch.float64)
        centred = flat - flat.mean(dim=1, keepdim=True)
        std = centred.square().mean(dim=1, keepdim=True).sqrt()
        constant = std <= eps
        out = torch.where(
            constant, torch.zeros_like(centred), centred / torch.where(constant, 1, std)
        )
        return out.reshape(X.shape).to(out_dtype)
    X = np.asarray(X)
    if X.ndim < 2 or X.shape[0] == 0:
        raise ValueError(f"X must be a non-empty batch (n, ...), got shape {X.shape}")
    _check_finite(X, "X")
    flat = X.reshape(X.shape[0], -1).astype(np.float64)
    centred = flat - flat.mean(axis=1, keepdims=True)
    std = np.sqrt(np.square(centred).mean(axis=1, keepdims=True))
    constant = std <= eps
    out = np.where(constant, 0.0, centred / np.where(constant, 1.0, std))
    return out.reshape(X.shape).astype(_float_dtype_np(X))


def _check_filter_size(filter_size: Any) -> int:
    return check_int(filter_size, "filter_size", positive=True, odd=True)


def _as_images(X: Any, name: str = "X") -> np.ndarray:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = np.asarray(X)
    if X.ndim != 4:
        raise ValueError(f"{name} must be images (n, C, H, W), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"{name} must be numeric, got dtype {X.dtype}")
    _check_finite(X, name)
    return X


def extract_patches(X: np.ndarray | torch.Tensor, filter_size: int) -> np.ndarray:
    """Every ``filter_size`` x ``filter_size`` patch, with zero padding ``filter_size // 2``.

    This is the patch extraction of a CKN layer: one patch per position,
    each flattened in ``(C, f, f)`` order, the order of
    ``torch.nn.functional.unfold(X, f, padding=f // 2).transpose(1, 2)``.

    Parameters
    ----------
    X : numpy.ndarray or torch.Tensor
        Images.
    filter_size : int
        Odd patch side ``f``.

    Returns
    -------
    numpy.ndarray
        Same float dtype as ``X`` (float32 for integer input).

    Shape
    -----
    ``X``: (n, C, H, W); output: (n, H * W, C * f * f).
    """
    f = _check_filter_size(filter_size)
    X = _as_images(X)
    X = X.astype(_float_dtype_np(X), copy=False)
    n, C, H, W = X.shape
    r = f // 2
    padded = np.pad(X, ((0, 0), (0, 0), (r, r), (r, r)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (f, f), axis=(2, 3))
    # (n, C, H, W, f, f) -> (n, H, W, C, f, f)
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(n, H * W, C * f * f)


def _sample_patches(X: np.ndarray, f: int, n_patches: int, rng: np.random.Generator) -> np.ndarray:
    """``n_patches`` zero-padded patches at distinct random (image, position) pairs, float64."""
    n, C, H, W = X.shape
    total = n * H * W
    if n_patches >= total:
        flat = np.arange(total)
    else:
        flat = np.sort(rng.choice(total, size=n_patches, replace=False))
    image, position = np.divmod(flat, H * W)
    row, col = np.divmod(position, W)
    offsets = np.arange(f) - f // 2
    rows = row[:, None, None] + offsets[None, :, None]  # (K, f, 1)
    cols = col[:, None, None] + offsets[None, None, :]  # (K, 1, f)
    inside = (rows >= 0) & (rows < H) & (cols >= 0) & (cols < W)  # (K, f, f)
    # advanced indices around a slice: the result is (K, f, f, C)
    values = X[image[:, None, None], :, np.clip(rows, 0, H - 1), np.clip(cols, 0, W - 1)]
    values = np.where(inside[..., None], values.astype(np.float64), 0.0)
    return values.transpose(0, 3, 1, 2).reshape(len(flat), C * f * f)


class PatchZCA:
    """ZCA whitening of image patches, fitted on training images only.

    ``fit`` samples ``n_patches`` patches (zero padding ``filter_size // 2``,
    as a CKN layer extracts them; distinct random positions drawn with
    ``numpy.random.default_rng(seed)``; all patches if there are fewer) and
    estimates in float64 their mean ``m`` and covariance ``S = U diag(lam)
    U^T``. The whitening matrix is ``W = U diag((lam + eps)^{-1/2}) U^T``
    (symmetric), and a patch ``p`` maps to ``W (p - m)``. ``eps`` (absolute,
    in squared pixel units) damps the directions of small variance.

    The first CKN layer (Mairal 2016) applies it to its patches: with
    ``W, m = zca.to_torch()``, a patch matrix ``P`` (rows in the order of
    :func:`extract_patches`) becomes ``(P - m) @ W``. Whitening the images
    themselves is not done (it would need a deconvolution).

    Parameters
    ----------
    filter_size : int
        Odd patch side ``f``; patches have ``d = C * f * f`` values.
    eps : float
        Ridge (> 0) added to the covariance eigenvalues.
    n_patches : int
        Number of patches sampled by ``fit``.
    seed : int
        Seed of the patch sampling.

    Attributes
    ----------
    mean_ : numpy.ndarray
        float64 (d,), the patch mean.
    covariance_ : numpy.ndarray
        float64 (d, d), the patch covariance (``ddof=0``).
    whitening_ : numpy.ndarray
        float64 (d, d), ``W``.
    n_channels_ : int
        ``C`` of the training images.

    Shape
    -----
    ``fit``: (n, C, H, W). ``transform_patches``: (..., d) -> (..., d).
    """

    def __init__(
        self, filter_size: int = 3, eps: float = 1e-3, *, n_patches: int = 100_000, seed: int = 0
    ) -> None:
        self.filter_size = filter_size
        self.eps = eps
        self.n_patches = n_patches
        self.seed = seed

    def __repr__(self) -> str:
        return (
            f"PatchZCA(filter_size={self.filter_size!r}, eps={self.eps!r}, "
            f"n_patches={self.n_patches!r}, seed={self.seed!r})"
        )

    def fit(self, X_train: np.ndarray | torch.Tensor) -> PatchZCA:
        """Estimate the patch mean and whitening matrix from training images ``(n, C, H, W)``.

        Parameters
        ----------
        X_train : array or tensor, ``(n, C, H, W)``
            Training images.

        Returns
        -------
        PatchZCA
            ``self``, fitted.
        """
        f = _check_filter_size(self.filter_size)
        if not self.eps > 0:
            raise ValueError(f"eps must be > 0, got {self.eps!r}")
        check_int(self.n_patches, "n_patches", minimum=2)
        X = _as_images(X_train, "X_train")
        patches = _sample_patches(X, f, int(self.n_patches), np.random.default_rng(self.seed))
        self.mean_ = patches.mean(axis=0)
        centred = patches - self.mean_
        self.covariance_ = centred.T @ centred / len(patches)
        eigenvalues, eigenvectors = np.linalg.eigh(self.covariance_)
        scale = 1.0 / np.sqrt(np.clip(eigenvalues, 0.0, None) + self.eps)
        self.whitening_ = (eigenvectors * scale) @ eigenvectors.T
        self.n_channels_ = X.shape[1]
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "whitening_"):
            raise RuntimeError("PatchZCA is not fitted: call fit(X_train) first")

    @property
    def n_features(self) -> int:
        """Patch dimension ``d = C * f * f`` (after ``fit``)."""
        self._check_fitted()
        return len(self.mean_)

    def transform_patches(self, patches: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """Whiten patches: ``(patches - mean_) @ whitening_``.

        Parameters
        ----------
        patches : numpy.ndarray or torch.Tensor
            Flattened patches in the order of :func:`extract_patches`.

        Returns
        -------
        numpy.ndarray or torch.Tensor
            Of the type, float dtype and device of ``patches`` (float32 for
            integer input); numpy is computed in float64.

        Shape
        -----
        ``patches``: (..., d); output: (..., d).
        """
        self._check_fitted()
        d = self.n_features
        if patches.shape[-1:] != (d,):
            raise ValueError(
                f"patches must have last dimension d = C*f*f = {d}, got shape "
                f"{tuple(patches.shape)}"
            )
        if isinstance(patches, torch.Tensor):
            dtype = patches.dtype if patches.is_floating_point() else torch.float32
            W, mean = self.to_torch(dtype=dtype, device=patches.device)
            return (patches.to(dtype) - mean) @ W
        patches = np.asarray(patches)
        out = (patches.astype(np.float64) - self.mean_) @ self.whitening_
        return out.astype(_float_dtype_np(patches))

    def to_torch(
        self, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The whitening matrix ``W`` (d, d) and patch mean (d,) as tensors.

        ``W`` is symmetric, so ``(P - mean) @ W`` whitens the rows of ``P``.

        Parameters
        ----------
        dtype : torch.dtype
            Of the tensors.
        device : torch.device or str, optional
            Where they live.

        Returns
        -------
        tuple of torch.Tensor
            ``(W, mean)``.
        """
        self._check_fitted()
        W = torch.from_numpy(self.whitening_).to(device=device, dtype=dtype)
        mean = torch.from_numpy(self.mean_).to(device=device, dtype=dtype)
        return W, mean
