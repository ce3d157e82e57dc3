"""Datasets, preprocessing and deformations for kernelzoo's benchmarks.

Numpy in, numpy out for datasets and preprocessing (:class:`PatchZCA` and
:func:`standardize_images` also keep torch tensors as torch); deformations
return torch tensors.

>>> from kernelzoo.data import load_dataset, train_val_test_split
>>> train = load_dataset("digits", split="train")
>>> train.X.shape, train.y.shape
((1348, 1, 8, 8), (1348,))
"""

from kernelzoo.data.cifar import read_cifar10
from kernelzoo.data.datasets import (
    Dataset,
    available_datasets,
    data_home,
    dataset_dir,
    load_dataset,
)
from kernelzoo.data.deform import displacement_norms, smooth_deformation, translate, warp
from kernelzoo.data.fetch import fetch, install_idx_files
from kernelzoo.data.idx import find_idx_files, read_idx, write_idx
from kernelzoo.data.preprocess import PatchZCA, extract_patches, standardize_images
from kernelzoo.data.splits import train_val_test_split
from kernelzoo.data.synthetic import make_blobs, make_images

__all__ = [
    "Dataset",
    "PatchZCA",
    "available_datasets",
    "data_home",
    "dataset_dir",
    "displacement_norms",
    "extract_patches",
    "fetch",
    "find_idx_files",
    "install_idx_files",
    "load_dataset",
    "make_blobs",
    "make_images",
    "read_cifar10",
    "read_idx",
    "smooth_deformation",
    "standardize_images",
    "train_val_test_split",
    "translate",
    "warp",
    "write_idx",
]
