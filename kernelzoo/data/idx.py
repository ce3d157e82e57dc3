"""The IDX file format of MNIST and Fashion-MNIST, read and written with numpy.

An IDX file is a big-endian header followed by the raw array:

- 4 bytes of magic number: two zero bytes, a dtype code (``0x08`` uint8,
  ``0x09`` int8, ``0x0B`` int16, ``0x0C`` int32, ``0x0D`` float32, ``0x0E``
  float64) and the number of dimensions;
- one big-endian uint32 per dimension;
- the values in C order, big-endian.

Files may be gzipped (recognised by their content, whatever their name).
"""

from __future__ import annotations

import gzip
import re
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "IDX_ROLES",
    "check_idx_pair",
    "find_idx_files",
    "idx_file_name",
    "read_idx",
    "validate_idx_files",
    "write_idx",
]

_IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_DTYPE_CODES = {dtype.newbyteorder(">"): code for code, dtype in _IDX_DTYPES.items()}

#: The four files of an MNIST-like dataset, by role.
IDX_ROLES: tuple[str, ...] = ("train-images", "train-labels", "test-images", "test-labels")

# "train-images-idx3-ubyte" (LeCun, Zalando) or "train-images.idx3-ubyte" (a
# common MNIST variant), optionally gzipped; "t10k" is the test split.
_IDX_NAME = re.compile(r"(train|t10k)-(images|labels)[-.]idx([0-9])-ubyte(\.gz)?")
_EXPECTED_NDIM = {"images": 3, "labels": 1}


def _read_bytes(path: Path) -> bytes:
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:  # BadGzipFile is an OSError
        raise ValueError(
            f"IDX file {str(path)!r} is a corrupt or truncated gzip file: {err}"
        ) from err


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (plain or gzipped) into a numpy array.

    Parameters
    ----------
    path : str or Path
        The file.

    Returns
    -------
    numpy.ndarray
        A writable array in native byte order, with the file's dtype.

    Shape
    -----
    As written in the header, e.g. ``(60000, 28, 28)`` for MNIST training
    images and ``(60000,)`` for its labels.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is not IDX (bad magic number or dtype code), or is
        truncated or has trailing bytes; the message names the file.
    """
    path = Path(path)
    data = _read_bytes(path)
    name = str(path)
    if len(data) < 4:
        raise ValueError(f"IDX file {name!r} is truncated: {len(data)} bytes, no complete header")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise ValueError(
            f"IDX file {name!r} has a bad magic number 0x{data[:4].hex()}: expected 0x0000 then a "
            f"dtype code in {{{', '.join(f'0x{c:02x}' for c in _IDX_DTYPES)}}} and ndim >= 1"
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {name!r} is truncated: header announces {ndim} dimensions "
            f"({header_size} header bytes) but the file has {len(data)} bytes"
        )
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    found = len(data) - header_size
    if found != expected:
        kind = "truncated" if found < expected else "too long"
        raise ValueError(
            f"IDX file {name!r} is {kind}: shape {shape} of {dtype.name} needs {expected} "
            f"data bytes, found {found}"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def write_idx(path: str | Path, array: np.ndarray, *, compress: bool | None = None) -> Path:
    """Write ``array`` as an IDX file; gzipped if ``compress`` (default: name ends in ``.gz``).

    Parameters
    ----------
    path : str or Path
        Destination file.
    array : numpy.ndarray
        Of dtype uint8, int8, int16, int32, float32 or float64, at least 1-D.
    compress : bool, optional
        Gzip the output; ``None`` means "if ``path`` ends in ``.gz``".

    Returns
    -------
    Path
        ``path``.

    Shape
    -----
    ``array``: any shape with 1 to 255 dimensions.
    """
    path = Path(path)
    array = np.asarray(array)
    big_endian = array.dtype.newbyteorder(">")
    if big_endian not in _DTYPE_CODES:
        raise TypeError(
            f"array has dtype {array.dtype}, IDX stores uint8, int8, int16, int32, float32 "
            "or float64"
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"array must have 1 to 255 dimensions, got shape {array.shape}")
    header = bytes([0, 0, _DTYPE_CODES[big_endian], array.ndim])
    header += np.asarray(array.shape, dtype=">u4").tobytes()
    payload = header + np.ascontiguousarray(array, dtype=big_endian).tobytes()
    if compress is None:
        compress = path.name.endswith(".gz")
    if compress:
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path


def idx_file_name(role: str, *, gz: bool = False) -> str:
    """Canonical file name of one of the :data:`IDX_ROLES`, e.g. ``t10k-labels-idx1-ubyte``."""
    if role not in IDX_ROLES:
        raise ValueError(f"role must be one of {IDX_ROLES}, got {role!r}")
    split, kind = role.split("-")
    prefix = "train" if split == "train" else "t10k"
    return f"{prefix}-{kind}-idx{_EXPECTED_NDIM[kind]}-ubyte" + (".gz" if gz else "")


def find_idx_files(folder: str | Path) -> dict[str, Path]:
    """The MNIST-like IDX files present in ``folder``, by role.

    Recognises ``train-images-idx3-ubyte`` and ``train-images.idx3-ubyte``
    (and likewise ``train-labels``/``t10k-images``/``t10k-labels``), plain or
    ``.gz``. AppleDouble decoys (``._*``, macOS resource forks) are skipped.
    Where a role has several candidates, a plain file is preferred to a
    gzipped one. Nothing is read: see :func:`read_idx` for validation.

    Parameters
    ----------
    folder : str or Path
        Folder to scan (not recursively). A missing folder gives ``{}``.

    Returns
    -------
    dict
        Maps each role of :data:`IDX_ROLES` that was found to its path;
        roles that are absent are absent from the dict.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return {}
    found: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("._") or not path.is_file():
            continue
        match = _IDX_NAME.fullmatch(path.name)
        if match is None:
            continue
        split, kind, ndim, gz = match.groups()
        if int(ndim) != _EXPECTED_NDIM[kind]:
            continue
        role = f"{'train' if split == 'train' else 'test'}-{kind}"
        if role not in found or (found[role].name.endswith(".gz") and not gz):
            found[role] = path
    return {role: found[role] for role in IDX_ROLES if role in found}


def check_idx_pair(
    images_path: Path, labels_path: Path, images: np.ndarray, labels: np.ndarray
) -> None:
    """Raise ``ValueError`` unless images ``(n, H, W)`` and labels ``(n,)`` agree."""
    if images.ndim != 3:
        raise ValueError(
            f"IDX file {str(images_path)!r} should hold images (n, H, W), has shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"IDX file {str(labels_path)!r} should hold labels (n,), has shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{str(images_path)!r} holds {images.shape[0]} images but {str(labels_path)!r} "
            f"holds {labels.shape[0]} labels"
        )


def validate_idx_files(files: Mapping[str, Path]) -> dict[str, tuple[int, ...]]:
    """Read every file of ``files`` (role -> path), check image/label pairs; return shapes."""
    arrays = {role: read_idx(path) for role, path in files.items()}
    for split in ("train", "test"):
        img, lab = f"{split}-images", f"{split}-labels"
        if img in arrays and lab in arrays:
            check_idx_pair(files[img], files[lab], arrays[img], arrays[lab])
    return {role: array.shape for role, array in arrays.items()}
