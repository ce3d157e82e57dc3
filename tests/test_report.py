"""Reports (kernelzoo.report) and the main job, ``kernelzoo compare``, on tiny inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kernelzoo.bench import approximation, spectrum, speed, stability
from kernelzoo.report import tables, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def frames():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.images[:40, None] / 16.0).astype(np.float32)
    kernels = ["rbf(lengthscale=3.0)", "arccos", "rbf(bogus=1)"]
    return {
        "approximation": approximation(kernels, x, budgets=[4, 8, 16], seeds=[0, 1]),
        "stability": stability(kernels, x[:6], shifts=(0, 1, 2), displacements=(0.5, 1.0)),
        "spectrum": spectrum(kernels, x[:30], chosen_lambdas={"arccos": 1e-3}),
        "speed": speed(kernels, x, sizes=(16, 32), budget=8, repeats=1),
    }


def test_write_report_writes_markdown_csv_and_pngs(frames, tmp_path):
    written = write_report(frames, tmp_path / "out", title="tiny")
    out = tmp_path / "out"
    report = (out / "report.md").read_text()
    assert report.startswith("# tiny")
    for section in ("Headline", "Approximation error", "Stability", "Spectrum", "Speed",
                    "Failures and skips"):
        assert f"## {section}" in report
    assert "rbf(bogus=1)" in report and "unknown parameter" in report
    results = pd.read_csv(out / "results.csv", keep_default_na=False)
    assert len(results) == sum(len(f) for f in frames.values())
    for name in ("approximation_error.png", "approximation_error_vs_time.png",
                 "stability.png", "spectrum.png", "speed.png"):
        path = out / name
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000, name
        assert f"]({name})" in report
    assert (out / "metadata.json").exists()
    assert "rbf(lengthscale=3.0)" in written["headline"]


def test_headline_has_a_row_per_kernel_and_failures_stay(frames):
    combined = pd.concat(list(frames.values()), ignore_index=True)
    headline = tables.headline_table(combined)
    assert list(headline.index) == ["rbf(lengthscale=3.0)", "arccos", "rbf(bogus=1)"]
    assert "unknown parameter" in headline.loc["rbf(bogus=1)", "errors"]
    assert headline.loc["arccos", "pairs/s"] > 0


def test_pivot_tables_put_kernels_in_rows(frames):
    table = tables.approximation_table(frames["approximation"])
    assert "arccos / nystrom" in table.index and "rbf(lengthscale=3.0) / rff" in table.index
    assert list(table.columns) == ["budget 4", "budget 8", "budget 16"]
    stab = tables.stability_table(frames["stability"])
    assert stab.loc["pixels", "shift 0px"] == 0
    assert "deform 0.5px" in stab.columns
    markdown = tables.to_markdown(stab)
    assert markdown.splitlines()[1].startswith("|---|---:")


def test_format_number():
    assert tables.format_number(float("nan")) == "-"
    assert tables.format_number(1000.0) == "1000"
    assert tables.format_number(0.012345) == "0.0123"
    assert tables.format_number(3.2e7) == "3.20e+07"
    assert tables.format_number("a|b") == "a|b"


# ---------------------------------------------------------------------------- the CLI
TINY = ["--n-train", "48", "--n-val", "30", "--n-test", "30", "--seeds", "0",
        "--budgets", "4,8", "--no-progress"]


def test_compare_cli_writes_a_report(tmp_path, capsys):
    from kernelzoo.cli import main

    out = tmp_path / "report"
    code = main(["compare", "--family", "arccos", "--family", "rbf(bogus=1)",
                 "--harness", "accuracy,stability", "--harness", "spectrum",
                 "--out", str(out), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and "| arccos |" in printed
    report = (out / "report.md").read_text()
    assert "## Classification accuracy" in report and "## Stability" in report
    assert "## Approximation error" not in report
    results = pd.read_csv(out / "results.csv")
    results["error"] = results["error"].fillna("")
    assert set(results["harness"]) == {"accuracy", "stability", "spectrum"}
    assert (results.loc[results["spec"] == "rbf(bogus=1)", "error"] != "").all()
    acc = results[(results["spec"] == "arccos") & (results["metric"] == "test_accuracy")]
    assert len(acc) and (acc["error"] == "").all()
    exact = acc[acc["method"] == "exact"].sort_values("n")
    assert exact["n"].iloc[-1] == 48 and exact["value"].iloc[-1] > 0.5
    assert Path(out / "stability.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--harness", "nope"], "--harness 'nope' is not allowed"),
    (["--seeds", "a"], "--seeds must be a comma list of integers"),
    (["--budgets", "0,4"], "--budgets must be positive"),
    (["--device", "cuda:7"], None),
])
def test_compare_cli_bad_arguments(tmp_path, capsys, argv, message):
    import torch

    from kernelzoo.cli import main

    if message is None and torch.cuda.is_available():
        pytest.skip("CUDA present")
    code = main(["compare", "--family", "arccos", "--out", str(tmp_path / "r"), *TINY, *argv])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("kernelzoo compare: error:")
    if message:
        assert message in err
    assert not (tmp_path / "r").exists()
