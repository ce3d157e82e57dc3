"""The ``kernelzoo`` command line.

Subcommands: ``list``, ``gram``, ``compare``, ``reproduce``, ``data fetch``. Errors are a
clear message on stderr (one line, or more where it quotes another tool's
output) and exit status 2, not a traceback (``--debug`` shows it). ``gram``
never writes a file holding NaN or Inf values.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import numpy as np

from kernelzoo._io import atomic_write

__all__ = ["main", "build_parser"]


class CLIError(Exception):
    """An error reported as one line with exit code 2."""


def _cmd_list(args: argparse.Namespace) -> int:
    from kernelzoo.registry import available, kernel_class

    for family in available():
        cls = kernel_class(family)
        print(f"{family}")
        for p in cls.params:
            doc = f"  # {p.doc}" if p.doc else ""
            print(f"    {p.name}={p.default!r}{doc}")
        print(f"    approximations: {', '.join(cls.approximations)}")
    return 0


def _load_array(path: str, name: str) -> np.ndarray:
    if not os.path.exists(path):
        raise CLIError(f"{name}: file not found: {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one error naming it
        raise CLIError(f"{name}: cannot read {path} as a .npy array ({exc})") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise CLIError(f"{name}: {path} is an .npz archive; give a .npy array")
    return arr


def save_npy_atomic(path: str, array: np.ndarray) -> None:
    """Write ``array`` to ``path`` atomically (:func:`kernelzoo._io.atomic_write`)."""
    with atomic_write(path) as fh:
        np.save(fh, array)


def _as_input(arr: np.ndarray, name: str, dtype: str, device: str):
    """A checked input tensor in ``--dtype`` on ``--device``, or an error naming the option.

    The API's checks (:func:`kernelzoo._validation.as_tensor`: numbers only, real, not
    empty, finite), then the cast: a float64 file whose values overflow float32 is
    refused with that reason (not as NaN/Inf after the cast); integers are cast once,
    straight to ``--dtype``.
    """
    import torch

    from kernelzoo._validation import as_tensor

    checked = as_tensor(arr, name)
    target = {"float32": torch.float32, "float64": torch.float64}[dtype]
    if not np.issubdtype(arr.dtype, np.floating):  # integers, booleans: one exact cast
        checked = torch.from_numpy(np.ascontiguousarray(arr, dtype=dtype))
    elif target == torch.float32 and checked.dtype == torch.float64:
        peak = float(checked.abs().max())
        limit = torch.finfo(torch.float32).max
        if peak > limit:
            raise CLIError(
                f"{name}: values up to {peak:.3g} overflow float32 (largest {limit:.3g}); "
                f"use --dtype float64"
            )
    return checked.to(device=device, dtype=target)


def _cmd_gram(args: argparse.Namespace) -> int:
    import torch

    import kernelzoo as kz

    if (args.out is None) == (args.store is None):
        raise CLIError("give exactly one of --out K.npy or --store K.zarr")
    if args.out is not None:
        for option, value in (("--tile", args.tile), ("--scheduler", args.scheduler)):
            if value is not None:
                raise CLIError(f"{option} is for --store; --out computes in this process")
    k = kz.kernel(args.spec)
    x = _load_array(args.x, "--x")
    y = None if args.y is None else _load_array(args.y, "--y")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CLIError(f"--device {args.device}: CUDA is not available on this machine")
    xt = _as_input(x, "--x", args.dtype, args.device)
    yt = None if y is None else _as_input(y, "--y", args.dtype, args.device)
    if args.store is not None:
        try:
            from kernelzoo.integrations.dask import gram_to_store
        except ImportError as exc:
            raise CLIError(
                f"--store needs the distributed extra: pip install 'kernelzoo[dist]' ({exc})"
            ) from None
        result = gram_to_store(
            k, xt, yt, args.store, tile=args.tile, scheduler=args.scheduler,
            memory_budget=args.memory_budget, progress=True,
        )
        print(
            f"wrote {args.store} {result.shape} {result.dtype}: {result.n_computed} tiles "
            f"computed, {result.n_reused} already done"
        )
        return 0
    gram = k.gram(xt, yt, memory_budget=args.memory_budget)
    if not bool(torch.isfinite(gram).all()):  # the API raises first; never write one anyway
        raise CLIError(f"the Gram has NaN or Inf values; nothing was written to {args.out}")
    save_npy_atomic(args.out, gram.cpu().numpy())
    print(f"wrote {args.out} {tuple(gram.shape)} {args.dtype}")
    return 0


def _cmd_data_fetch(args: argparse.Namespace) -> int:
    from kernelzoo.data import fetch

    path = fetch(args.name, root=args.root)
    print(f"{args.name}: files in {path}")
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from kernelzoo.bench.compare import run

    return run(args)


def _cmd_reproduce(args: argparse.Namespace) -> int:
    from kernelzoo.reproduce import list_experiments, run_experiment

    if args.list:
        print("\n".join(list_experiments()))
        return 0
    if args.name is None:
        raise CLIError("name an experiment (kernelzoo reproduce --list shows them)")
    options = {}
    for item in args.option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"--option takes KEY=VALUE, got {item!r}")
        options[key] = value
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    command = ["kernelzoo", "reproduce", *args.argv]
    run_experiment(args.name, quick=args.quick, out=args.out, options=options,
                   progress=not args.no_progress, command=command)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``kernelzoo`` and its commands (the documentation's CLI
    reference is generated from it).

    Returns
    -------
    argparse.ArgumentParser
        The ``kernelzoo`` parser.
    """
    parser = argparse.ArgumentParser(
        prog="kernelzoo",
        description="Kernels of convolutional and infinitely wide networks, exact and "
        "approximated, side by side.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("list", help="families, parameters, defaults, approximations")
    p.set_defaults(func=_cmd_list)

    p = sub.add_parser("gram", help="compute a Gram matrix into a .npy file or a zarr store")
    p.add_argument("spec", help="kernel spec, e.g. \"arccos(degree=1, depth=2)\"")
    p.add_argument("--x", required=True, help="inputs X as a .npy file, (n, d) or (n, C, H, W)")
    p.add_argument("--y", help="optional second input Y (.npy); default: X with itself")
    p.add_argument("--out", help="output .npy (written atomically)")
    p.add_argument("--store", help="output zarr store (resumable, tiled; needs the dist extra)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N] (default cpu)")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    p.add_argument("--memory-budget", default=None, help="working memory, e.g. 2GB")
    p.add_argument("--tile", type=int, default=None, help="tile size of a --store (--store only)")
    p.add_argument("--scheduler", default=None,
                   help="Dask scheduler address for --store (--store only)")
    p.set_defaults(func=_cmd_gram)

    p = sub.add_parser("compare", help="the main job: every family through every harness")
    try:
        from kernelzoo.bench.compare import add_arguments
    except ImportError:  # harnesses not installed in this build
        add_arguments = None
    if add_arguments is not None:
        add_arguments(p)
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("reproduce", help="named reproductions of published results")
    p.add_argument("name", nargs="?", help="the experiment (see --list)")
    p.add_argument("--list", action="store_true", help="name, version and title of each")
    p.add_argument("--quick", action="store_true",
                   help="10000 training images (8000 fit / 2000 validation), full test split")
    p.add_argument("--out", default=None,
                   help="output folder (default reports/reproduce/NAME[-quick])")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="an experiment option, e.g. conv_n=100 (fashion-kernels), svm=1")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bars or log lines")
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser("data", help="datasets")
    data_sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    data_sub.required = True
    f = data_sub.add_parser("fetch", help="obtain MNIST or Fashion-MNIST files where possible")
    f.add_argument("name", choices=["mnist", "fashion-mnist"])
    f.add_argument("--root", default=None, help="data folder (default $KERNELZOO_DATA or cache)")
    f.set_defaults(func=_cmd_data_fetch)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``kernelzoo`` (the console script).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit status: 0, 2 for an error (its message on stderr), 130 when
        interrupted.
    """
    parser = build_parser()
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw[raw.index("reproduce") + 1:] if "reproduce" in raw else raw
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("kernelzoo: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, FileNotFoundError, RuntimeError, OSError,
            OverflowError) as exc:
        if args.debug:
            raise
        # the whole message: some carry the output of a tool on their later lines (pip's)
        message = str(exc).strip() or type(exc).__name__
        print(f"kernelzoo {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
