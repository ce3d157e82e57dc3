"""Synthetic image and vector data sets, seeded: class-dependent patterns plus noise.

Shape: :func:`make_images` -> ``X`` ``(n, C, H, W)`` float32 in [0, 1], ``y`` ``(n,)``
int64; :func:`make_blobs` -> ``X`` ``(n, d)``, ``y`` ``(n,)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from kernelzoo._validation import check_int

__all__ = ["make_blobs", "make_images"]


def _balanced_labels(n: int, n_classes: int, rng: np.random.Generator) -> np.ndarray:
    return rng.permutation(np.arange(n, dtype=np.int64) % n_classes)


def _check_positive_int(value: Any, name: str) -> int:
    return check_int(value, name, positive=True)


def make_images(
    n: int = 256,
    shape: Sequence[int] = (1, 8, 8),
    n_classes: int = 3,
    *,
    noise: float = 0.1,
    seed: int = 0,
    pattern_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Small labelled images: a smooth pattern per class, jittered, plus noise.

    Each class has a prototype per channel, ``0.5 + 0.25 (cos(2 pi <f1, u> +
    phi1) + cos(2 pi <f2, u> + phi2))`` with frequencies of 0.5 to 2 cycles
    per image, drawn from ``pattern_seed`` (so different ``seed`` values give
    new samples of the *same* classes). Each image shifts the phases by up to
    +-0.5 rad, scales the contrast by 0.8..1.2, adds Gaussian noise of
    standard deviation ``noise`` and is clipped to [0, 1]. Classes are
    balanced (``n % n_classes`` classes get one image more).

    Parameters
    ----------
    n : int
        Number of images.
    shape : (C, H, W)
        Image shape.
    n_classes : int
        Number of classes.
    noise : float
        Standard deviation of the pixel noise (>= 0).
    seed : int
        Seed of the labels, jitter and noise.
    pattern_seed : int
        Seed of the class prototypes.

    Returns
    -------
    X : numpy.ndarray
        float32 in [0, 1].
    y : numpy.ndarray
        int64 in ``0..n_classes-1``.

    Shape
    -----
    ``X``: (n, C, H, W); ``y``: (n,).
    """
    n = _check_positive_int(n, "n")
    n_classes = _check_positive_int(n_classes, "n_classes")
    if len(shape) != 3:
        raise ValueError(f"shape must be (C, H, W), got {tuple(shape)}")
    n_channels, height, width = (_check_positive_int(s, "shape") for s in shape)
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise!r}")
    proto_rng = np.random.default_rng(pattern_seed)
    # (n_classes, C, 2 waves, 2 axes) frequencies in cycles per image, and phases
    freq = proto_rng.uniform(0.5, 2.0, (n_classes, n_channels, 2, 2))
    freq *= proto_rng.choice([-1.0, 1.0], freq.shape)
    phase = proto_rng.uniform(0.0, 2 * np.pi, (n_classes, n_channels, 2))

    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, n_classes, rng)
    jitter = rng.uniform(-0.5, 0.5, (n, n_channels, 2))
    contrast = rng.uniform(0.8, 1.2, (n, 1, 1, 1))
    rows = np.arange(height)[:, None] / height
    cols = np.arange(width)[None, :] / width
    f = freq[y]  # (n, C, 2, 2)
    angle = (
        2 * np.pi * (f[..., 0, None, None] * rows + f[..., 1, None, None] * cols)
        + (phase[y] + jitter)[..., None, None]
    )  # (n, C, 2, H, W)
    X = 0.5 + 0.25 * contrast * np.cos(angle).sum(axis=2)
    X += noise * rng.standard_normal(X.shape)
    return np.clip(X, 0.0, 1.0).astype(np.float32), y


def make_blobs(
    n: int = 256,
    n_features: int = 2,
    n_classes: int = 3,
    *,
    spread: float = 1.0,
    separation: float = 4.0,
    seed: int = 0,
    pattern_seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs: one isotropic Gaussian per class around a random centre.

    Centres are drawn from ``pattern_seed`` with standard deviation
    ``separation`` per coordinate; samples add ``spread`` times standard
    normal noise. Classes are balanced.

    Parameters
    ----------
    n : int
        Number of samples.
    n_features : int
        Dimension.
    n_classes : int
        Number of classes (blobs).
    spread : float
        Standard deviation of the noise around each centre.
    separation : float
        Standard deviation of the centres.
    seed : int
        Seed of the samples.
    pattern_seed : int
        Seed of the centres.

    Returns
    -------
    X : numpy.ndarray
        float32.
    y : numpy.ndarray
        int64.

    Shape
    -----
    ``X``: (n, n_features); ``y``: (n,).
    """
    n = _check_positive_int(n, "n")
    n_features = _check_positive_int(n_features, "n_features")
    n_classes = _check_positive_int(n_classes, "n_classes")
    if not spread >= 0:
        raise ValueError(f"spread must be >= 0, got {spread!r}")
    centres = separation * np.random.default_rng(pattern_seed).standard_normal(
        (n_classes, n_features)
    )
    rng = np.random.default_rng(seed)
    y = _balanced_labels(n, n_classes, rng)
    X = centres[y] + spread * rng.standard_normal((n, n_features))
    return X.astype(np.float32), y
