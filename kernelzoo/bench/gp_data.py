"""Datasets of the GP harness (:mod:`kernelzoo.bench.gp`): rotated digits and diabetes."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["diabetes", "rotate_images", "rotated_digits"]


def rotate_images(images: torch.Tensor, angles_deg: torch.Tensor) -> torch.Tensor:
    """Rotate each image about its centre (bilinear, zero padding).

    Shape: ``(n, C, H, W)``, ``(n,)`` -> ``(n, C, H, W)``.

    Parameters
    ----------
    images : torch.Tensor
        Images.
    angles_deg : torch.Tensor
        One angle per image, degrees.

    Returns
    -------
    torch.Tensor
        The rotated images.
    """
    theta = angles_deg.to(images.dtype) * (math.pi / 180.0)
    cos, sin = torch.cos(theta), torch.sin(theta)
    zero = torch.zeros_like(cos)
    affine = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(affine, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _mnist_available() -> bool:
    try:
        from kernelzoo.data.datasets import load_dataset

        load_dataset("mnist", "test", n=1)
    except Exception:  # noqa: BLE001 - any failure means: not installed
        return False
    return True


def rotated_digits(n_train: int, n_test: int, seed: int = 0, source: str = "auto"):
    """Rotated digit images and their angles (degrees).

    Returns ``(x_train, y_train, x_test, y_test, image_shape, name)`` with
    ``x`` float64 ``(n, C*H*W)`` numpy arrays and ``name`` the dataset label.

    Parameters
    ----------
    n_train, n_test : int
        Sizes.
    seed : int
        Seed of the draw and the angles.
    source : {'auto', 'mnist', 'digits'}
        ``auto``: MNIST when its files are installed, else the digits (padded to 12x12).

    Returns
    -------
    tuple
        ``(x_train, y_train, x_test, y_test, image_shape, name)``.
    """
    if source not in ("auto", "mnist", "digits"):
        raise ValueError(f"source={source!r} is not allowed; expected 'auto', 'mnist' or 'digits'")
    use_mnist = source == "mnist" or (source == "auto" and _mnist_available())
    rng = np.random.default_rng(seed)
    if use_mnist:
        from kernelzoo.data.datasets import load_dataset

        train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
        if n_train > len(train) or n_test > len(test):
            raise ValueError(f"MNIST has {len(train)} train and {len(test)} test images")
        tr = rng.choice(len(train), n_train, replace=False)
        te = rng.choice(len(test), n_test, replace=False)
        images = np.concatenate([train.X[tr], test.X[te]]).astype(np.float64)
        name = "mnist-rotation"
    else:
        from sklearn.datasets import load_digits

        data = load_digits().images / 16.0
        if n_train + n_test > len(data):
            raise ValueError(
                f"digits has {len(data)} images; n_train + n_test = {n_train + n_test} is too "
                f"many (install MNIST: kernelzoo data fetch mnist)"
            )
        idx = rng.permutation(len(data))[: n_train + n_test]
        images = np.pad(data[idx], ((0, 0), (2, 2), (2, 2)))[:, None].astype(np.float64)
        name = "digits-rotation"
    angles = rng.uniform(-45.0, 45.0, size=len(images))
    rotated = rotate_images(torch.from_numpy(images), torch.from_numpy(angles)).numpy()
    shape = tuple(int(s) for s in rotated.shape[1:])
    flat = rotated.reshape(len(rotated), -1)
    return (flat[:n_train], angles[:n_train], flat[n_train:], angles[n_train:], shape, name)


def diabetes(n_train: int, n_test: int | None = None, seed: int = 0):
    """scikit-learn's diabetes, split (seeded) and standardised on the training part.

    Returns ``(x_train, y_train, x_test, y_test, None, "diabetes")``.

    Parameters
    ----------
    n_train : int
        Training size.
    n_test : int, optional
        Test size (default: the rest).
    seed : int
        Seed of the split.

    Returns
    -------
    tuple
        ``(x_train, y_train, x_test, y_test, None, 'diabetes')``.
    """
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True)
    n_test = len(x) - n_train if n_test is None else n_test
    if n_train + n_test > len(x) or n_train < 2 or n_test < 1:
        raise ValueError(f"diabetes has {len(x)} samples; got n_train={n_train}, n_test={n_test}")
    idx = np.random.default_rng(seed).permutation(len(x))
    tr, te = idx[:n_train], idx[n_train : n_train + n_test]
    mean, std = x[tr].mean(0), x[tr].std(0)
    std[std == 0] = 1.0
    return (x[tr] - mean) / std, y[tr], (x[te] - mean) / std, y[te], None, "diabetes"
