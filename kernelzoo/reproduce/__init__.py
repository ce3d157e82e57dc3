"""Named, versioned reproductions of published results: ``kernelzoo reproduce NAME``.

Every experiment loads its data (an error says how to get it when it is
absent), fits on the training split, chooses every hyperparameter and lambda
on a validation split carved out of the training split (seed 0), scores the
chosen models on the test split once, and writes ``results.json`` (one record
per model tried) and ``results.md`` (the published figure beside ours, every
configuration with its validation accuracy, the command, seeds, wall time,
load average and machine) into its output folder.

``quick=True``: the first 10000 training images (8000 fit, 2000 validation)
and the whole test split, a few minutes on a 2-core CPU. The data source is
injectable (``loader``), so the experiments run on a generated stand-in
(:func:`standin_loader`) in tests.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from kernelzoo.reproduce._common import (
    Context,
    Loader,
    Published,
    Record,
    default_loader,
    load_average,
    standin_loader,
    timed,
    write_report,
)

__all__ = [
    "EXPERIMENTS",
    "Experiment",
    "Published",
    "Record",
    "default_loader",
    "list_experiments",
    "run_experiment",
    "standin_loader",
]


@dataclasses.dataclass(frozen=True)
class Experiment:
    """A named, versioned experiment.

    Parameters
    ----------
    name : str
        Its name on the command line.
    version : int
        Bumped whenever what it runs changes.
    title : str
        One line.
    dataset : str
        The dataset it loads.
    published : tuple of Published
        The figures it is set beside.
    run : callable
        ``run(context)``: appends records to ``context.records``.
    """

    name: str
    version: int
    title: str
    dataset: str
    published: tuple[Published, ...]
    run: Callable[[Context], None]


def _experiments() -> dict[str, Experiment]:
    from kernelzoo.reproduce._ckn import fashion_ckn, mnist_ckn
    from kernelzoo.reproduce._supervised import fashion_ckn_supervised
    from kernelzoo.reproduce._kernels import GROUP_ALL, GROUP_CONV, fashion_kernels

    exps = [
        Experiment(
            "mnist-ckn",
            2,
            "unsupervised (layerwise) 2-layer CKN, ridge or SVM on its features",
            "mnist",
            (
                Published(
                    "MNIST test accuracy, unsupervised CKN",
                    99.61,
                    "Mairal et al. 2014 (0.39% error)",
                ),
                Published("MNIST test accuracy, unsupervised CKN", 99.5, "issue 13", "target"),
            ),
            mnist_ckn,
        ),
        Experiment(
            "fashion-ckn",
            2,
            "unsupervised (layerwise) 2-layer CKN on Fashion-MNIST",
            "fashion-mnist",
            (
                Published(
                    "Fashion-MNIST test accuracy, unsupervised CKN", 93.0, "issue 13", "target"
                ),
                Published(
                    "Fashion-MNIST test accuracy, RBF SVM",
                    89.7,
                    "Fashion-MNIST benchmark table (Xiao et al. 2017)",
                ),
            ),
            fashion_ckn,
        ),
        Experiment(
            "fashion-ckn-supervised",
            2,
            "supervised CKN against the layerwise one at the same anchors (3 seeds quick, 1 full)",
            "fashion-mnist",
            (
                Published(
                    "Fashion-MNIST test accuracy, supervised CKN", 94.0, "issue 13", "target"
                ),
                Published(
                    "unsupervised CKN, same anchors",
                    None,
                    "issue 13: supervised >= 1 point above (mean of 3 seeds)",
                    "target",
                ),
            ),
            fashion_ckn_supervised,
        ),
        Experiment(
            "fashion-kernels",
            2,
            "every family (rbf, arccos, fc and conv NNGP/NTK, CKN) at stated, equal n",
            "fashion-mnist",
            (
                Published(GROUP_ALL, None, "no published figure at this n", "target"),
                Published(
                    GROUP_CONV, None, "issue 13: every conv kernel above rbf at equal n", "target"
                ),
            ),
            fashion_kernels,
        ),
    ]
    return {e.name: e for e in exps}


#: the experiments, by name
EXPERIMENTS: dict[str, Experiment] = _experiments()


def list_experiments() -> list[str]:
    """One line per experiment: name, version, title.

    Returns
    -------
    list of str
        The lines, sorted by name.
    """
    return [f"{e.name} (v{e.version}): {e.title}" for _, e in sorted(EXPERIMENTS.items())]


def run_experiment(
    name: str,
    quick: bool = False,
    out: str | Path | None = None,
    loader: Loader | None = None,
    options: dict[str, str] | None = None,
    smoke: bool = False,
    progress: bool = True,
    command: Sequence[str] | None = None,
) -> list[Record]:
    """Run one experiment and write ``results.json`` and ``results.md`` into ``out``.

    Parameters
    ----------
    name : str
        A key of :data:`EXPERIMENTS`.
    quick : bool
        The reduced run (10000 training images: 8000 fit, 2000 validation).
    out : str or Path, optional
        The output folder (default ``reports/reproduce/NAME``, ``NAME-quick`` with ``quick``).
    loader : callable, optional
        ``loader(dataset, split) -> (X, y)`` (default :func:`default_loader`, the real data).
    options : dict, optional
        Experiment options (e.g. ``{"conv_n": "100"}`` for ``fashion-kernels``).
    smoke : bool
        Tiny budgets, for tests of the plumbing.
    progress : bool
        Progress bars and log lines on stderr.
    command : sequence of str, optional
        The command line to record (default: this process's).

    Returns
    -------
    list of Record
        Every model tried.
    """
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(sorted(EXPERIMENTS))}")
    exp = EXPERIMENTS[name]
    folder = (
        Path(out)
        if out is not None
        else Path("reports") / "reproduce" / (name + ("-quick" if quick else ""))
    )
    ctx = Context(
        name,
        quick,
        loader or default_loader,
        smoke=smoke,
        progress=progress,
        options=dict(options or {}),
    )
    if command is not None:
        cmd = " ".join(shlex.quote(a) for a in command)
    else:
        cmd = (
            f"kernelzoo.reproduce.run_experiment({name!r}, quick={quick}, "
            f"options={dict(options or {})!r}, smoke={smoke})"
        )
    start = load_average()
    wall = timed()
    exp.run(ctx)
    write_report(ctx, exp, folder, cmd, wall(), (start, load_average()))
    ctx.log(f"wrote {folder / 'results.md'} and {folder / 'results.json'} ({wall():.0f} s)")
    return ctx.records
