"""What every experiment of :mod:`kernelzoo.reproduce` shares: data, splits, records, reports."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

#: ``loader(dataset, split) -> (X (n, 1, 28, 28) float32 in [0, 1], y (n,) int64)``
Loader = Callable[[str, str], tuple[np.ndarray, np.ndarray]]

#: the seed of the train/validation split and of every model
SEED = 0
#: --quick: the first QUICK_TRAIN training images, QUICK_VAL of them for validation
QUICK_TRAIN, QUICK_VAL = 10000, 2000
#: full runs: all training images, FULL_VAL of them for validation
FULL_VAL = 10000

_FETCH = {
    "mnist": "kernelzoo data fetch mnist",
    "fashion-mnist": "apt-get install dataset-fashion-mnist (as root), or kernelzoo data "
    "fetch fashion-mnist",
}


@dataclasses.dataclass(frozen=True)
class Published:
    """A figure an experiment is set beside.

    Parameters
    ----------
    what : str
        What was measured (e.g. "MNIST test accuracy").
    value : float or None
        The figure in percent (None: no published figure, only a target).
    source : str
        Where it comes from.
    kind : str
        "published" (a paper's figure) or "target" (the goal set by issue 13).
    """

    what: str
    value: float | None
    source: str
    kind: str = "published"


@dataclasses.dataclass
class Record:
    """One model tried: one row of ``results.json``.

    Parameters
    ----------
    experiment : str
        The experiment's name.
    model : str
        The kernel spec (and the approximation's budget).
    method : str
        ``exact``, ``layerwise``, ``supervised``, ``nystrom``... and the classifier.
    n_train : int
        Images the model was fitted on (the validation split excluded).
    val_accuracy : float
        Accuracy on the validation split (chooses the model and lambda).
    test_accuracy : float or None
        Accuracy on the test split: only for the chosen models.
    seconds : float
        Wall time of the model (fit, features or Grams, classifier).
    chosen : bool
        Whether validation chose it.
    details : dict
        Anything else (lambda, seed, n_test, group...).
    """

    experiment: str
    model: str
    method: str
    n_train: int
    val_accuracy: float
    test_accuracy: float | None
    seconds: float
    chosen: bool = False
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Context:
    """The settings of one run, handed to an experiment.

    Parameters
    ----------
    name : str
        The experiment.
    quick : bool
        The reduced run.
    loader : Loader
        Where the images come from.
    smoke : bool
        Tiny budgets (tests of the plumbing on a generated stand-in).
    progress : bool
        tqdm progress bars.
    options : dict
        Experiment options (``--option KEY=VALUE``).
    """

    name: str
    quick: bool
    loader: Loader
    smoke: bool = False
    progress: bool = True
    options: dict[str, str] = dataclasses.field(default_factory=dict)
    records: list[Record] = dataclasses.field(default_factory=list)
    notes: list[str] = dataclasses.field(default_factory=list)

    def log(self, message: str) -> None:
        if self.progress:
            print(f"[{self.name}] {message}", file=sys.stderr, flush=True)

    def add(self, record: Record) -> Record:
        self.records.append(record)
        test = "" if record.test_accuracy is None else f" test {100 * record.test_accuracy:.2f}%"
        self.log(
            f"{record.model} [{record.method}]: val {100 * record.val_accuracy:.2f}%"
            f"{test} ({record.seconds:.0f} s)"
        )
        return record


def default_loader(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one split of MNIST or Fashion-MNIST, from the usual places.

    Parameters
    ----------
    dataset : {"mnist", "fashion-mnist"}
        The dataset.
    split : {"train", "test"}
        The split.

    Returns
    -------
    tuple of numpy.ndarray
        ``X (n, 1, 28, 28)`` float32 in [0, 1] and ``y (n,)`` int64.

    Raises
    ------
    FileNotFoundError
        When the files are absent; the message says how to get them.
    """
    from kernelzoo.data import load_dataset

    try:
        d = load_dataset(dataset, split=split)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{dataset} is needed by this experiment and was not found. Get it with: "
            f"{_FETCH.get(dataset, 'kernelzoo data fetch ' + dataset)}. ({exc})"
        ) from None
    return d.X, d.y


def standin_loader(n_train: int = 240, n_test: int = 120, seed: int = 0) -> Loader:
    """A generated stand-in for MNIST or Fashion-MNIST: 10 classes of 28x28 images.

    Each class is a fixed random smooth pattern; each image is its class's pattern,
    shifted by up to 2 pixels, plus noise, clipped to [0, 1]. For tests of the
    experiments' plumbing where the real data is absent (not for any figure).

    Parameters
    ----------
    n_train, n_test : int
        Sizes of the two splits.
    seed : int
        Seed of the patterns and the draws.

    Returns
    -------
    Loader
        ``loader(dataset, split)``.
    """
    rng = np.random.default_rng(seed)
    base = rng.random((10, 7, 7))
    patterns = np.kron(base, np.ones((4, 4)))  # (10, 28, 28), blocky

    def draw(n: int, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
        r = np.random.default_rng(split_seed)
        y = np.arange(n) % 10
        r.shuffle(y)
        shifts = r.integers(-2, 3, size=(n, 2))
        x = np.stack([np.roll(patterns[c], tuple(s), axis=(0, 1)) for c, s in zip(y, shifts)])
        x = np.clip(x + 0.3 * r.standard_normal(x.shape), 0.0, 1.0)
        return x[:, None].astype(np.float32), y.astype(np.int64)

    splits = {"train": draw(n_train, seed + 1), "test": draw(n_test, seed + 2)}

    def loader(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
        return splits[split]

    return loader


@dataclasses.dataclass
class Splits:
    """Fit, validation and test images (torch float32) and labels (int64)."""

    x_fit: torch.Tensor
    y_fit: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


def load_splits(ctx: Context, dataset: str) -> Splits:
    """The training split (the first 10000 images with ``quick``), shuffled with :data:`SEED`,
    less a validation split (2000 with ``quick``, 10000 otherwise; a fifth of a smaller
    stand-in), and the whole test split."""
    x, y = ctx.loader(dataset, "train")
    x_te, y_te = ctx.loader(dataset, "test")
    n = min(len(y), QUICK_TRAIN) if ctx.quick else len(y)
    n_val = QUICK_VAL if ctx.quick else FULL_VAL
    if n < 5 * n_val:  # a stand-in, or a small dataset: a fifth for validation
        n_val = max(1, n // 5)
    perm = np.random.default_rng(SEED).permutation(n)
    val, fit = perm[:n_val], perm[n_val:]
    t = torch.from_numpy
    return Splits(
        t(np.ascontiguousarray(x[fit])),
        t(y[fit]),
        t(np.ascontiguousarray(x[val])),
        t(y[val]),
        t(np.ascontiguousarray(x_te)),
        t(np.asarray(y_te)),
    )


def stratified_subset(y: torch.Tensor, n: int, seed: int = SEED) -> torch.Tensor:
    """Indices of ``n`` examples with the classes as equal as possible (seeded, sorted).

    Parameters
    ----------
    y : torch.Tensor
        ``(m,)`` labels.
    n : int
        How many to keep (at most ``m``).
    seed : int
        Seed of the draw.

    Returns
    -------
    torch.Tensor
        ``(n,)`` indices into ``y``.
    """
    labels = y.numpy()
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    pools = {c: rng.permutation(np.flatnonzero(labels == c)) for c in classes}
    out: list[int] = []
    depth = 0
    while len(out) < min(n, len(labels)):
        for c in classes:
            if depth < len(pools[c]) and len(out) < n:
                out.append(int(pools[c][depth]))
        depth += 1
    return torch.as_tensor(np.sort(np.array(out, dtype=np.int64)))


def batched(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    desc: str,
    progress: bool,
    batch: int = 1000,
) -> torch.Tensor:
    """``fn`` over ``x`` in batches, under ``no_grad``, with a tqdm bar."""
    from tqdm.auto import tqdm

    outs = []
    with torch.no_grad():
        for s in tqdm(
            range(0, x.shape[0], batch), desc=desc, disable=not progress, leave=False, unit="batch"
        ):
            outs.append(fn(x[s : s + batch]))
    return torch.cat(outs)


def machine() -> str:
    """The machine in one line: CPU, cores, torch threads, OS, Python, torch."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def load_average() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def write_report(
    ctx: Context, experiment: Any, out: Path, command: str, wall: float, loads: tuple[str, str]
) -> None:
    """``results.json`` (the records) and ``results.md`` (the tables) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    rows = [dataclasses.asdict(r) for r in ctx.records]
    (out / "results.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    mode = ("quick" if ctx.quick else "full") + (" (smoke: tiny budgets)" if ctx.smoke else "")
    lines = [
        f"# {experiment.name} v{experiment.version}: {experiment.title}",
        "",
        f"- command: `{command}`",
        f"- mode: {mode}",
        f"- seeds: split and models {SEED} (every seed used is in the details column)",
        f"- wall time: {wall:.0f} s",
        f"- load average (1, 5, 15 min) at start: {loads[0]}; at end: {loads[1]}",
        f"- machine: {machine()}",
        "",
        "## Published figure beside ours",
        "",
        "| result | published / target | source | ours (test) | model |",
        "|---|---|---|---|---|",
    ]
    chosen = [r for r in ctx.records if r.chosen]
    for p in experiment.published:
        best = [r for r in chosen if r.details.get("group") == p.what]
        ours = "; ".join(f"{_pct(r.test_accuracy)}" for r in best) or "-"
        model = "; ".join(f"{r.model} [{r.method}]" for r in best) or "-"
        value = "-" if p.value is None else f"{p.value:.2f}%"
        lines.append(f"| {p.what} | {value} ({p.kind}) | {p.source} | {ours} | {model} |")
    lines += [
        "",
        "## Every configuration tried (chosen on validation)",
        "",
        "| model | method | n_train | val acc | test acc | seconds | chosen | details |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in ctx.records:
        details = ", ".join(f"{k}={v}" for k, v in r.details.items())
        lines.append(
            f"| {r.model} | {r.method} | {r.n_train} | {_pct(r.val_accuracy)} | "
            f"{_pct(r.test_accuracy)} | {r.seconds:.1f} | {'yes' if r.chosen else ''} "
            f"| {details} |"
        )
    if ctx.notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in ctx.notes]
    (out / "results.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def timed() -> Callable[[], float]:
    t0 = time.perf_counter()
    return lambda: time.perf_counter() - t0
