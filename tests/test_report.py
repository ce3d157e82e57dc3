"""Reports (kernelzoo.report): Markdown and HTML from one set of sections, the headline's
mean ± std and paired differences, the HTML page in a real headless Chromium, and the
``kernelzoo compare`` command line."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from kernelzoo.report import browser, summaries, tables

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TINY = ["--n-train", "40", "--n-val", "20", "--n-test", "20", "--splits", "2", "--seeds", "0",
        "--budgets", "4,8", "--accuracy-budgets", "8", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One tiny ``kernelzoo compare`` run with a kernel that cannot be built."""
    from kernelzoo.cli import main

    out = tmp_path_factory.mktemp("report") / "out"
    code = main(["compare", "--family", "rbf", "--family", "arccos(depth=2)",
                 "--family", "rbf(bogus=1)", "--out", str(out), *TINY])
    assert code == 0
    return out


def test_compare_writes_markdown_html_csv_and_pngs(report, capsys):
    text = (report / "report.md").read_text()
    assert text.startswith("# kernelzoo compare: digits")
    for section in ("Headline", "Plan", "Classification accuracy", "Approximation error",
                    "Kernel similarity", "Spectrum", "Stability", "Speed",
                    "Failures and skips"):
        assert f"## {section}" in text, section
    assert "rbf(bogus=1)" in text and "unknown parameter" in text
    pngs = re.findall(r"\]\(([\w.]+\.png)\)", text)
    assert {"accuracy_vs_n_train.png", "similarity.png", "stability.png"} <= set(pngs)
    for name in pngs:
        assert (report / name).read_bytes()[:8] == PNG_MAGIC, name
    page = (report / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(pngs)  # inline: self-contained
    assert 'src="' + "accuracy" not in page and "<table>" in page
    results = pd.read_csv(report / "results.csv")
    assert {"split", "seed", "spec_other"} <= set(results.columns)


def test_headline_shows_mean_std_and_paired_differences(report):
    from kernelzoo.report import read_results

    frame = read_results(report)
    headline = summaries.headline_table(frame, "rbf")
    assert list(headline.index) == ["rbf", "arccos(depth=2)", "rbf(bogus=1)"]
    assert re.fullmatch(r"[\d.]+ ± [\d.e-]+", headline.loc["rbf", "exact acc."])
    assert headline.loc["rbf", "Δ vs rbf"] == "reference"
    acc = frame[(frame["metric"] == "test_accuracy") & (frame["method"] == "exact")
                & (frame["n"] == 40)]
    by_split = acc.pivot_table(index="split", columns="spec", values="value")
    diff = by_split["arccos(depth=2)"] - by_split["rbf"]
    assert headline.loc["arccos(depth=2)", "Δ vs rbf"] == summaries.mean_std(diff)
    assert "unknown parameter" in headline.loc["rbf(bogus=1)", "errors"]


def test_mean_std_and_format_number():
    assert summaries.mean_std([0.5, 0.7]) == "0.6 ± 0.14"
    assert summaries.mean_std([0.25]) == "0.25" and summaries.mean_std([]) == "-"
    assert tables.format_number(float("nan")) == "-"
    assert tables.format_number(1000.0) == "1000"
    assert tables.format_number(0.012345) == "0.0123"
    assert tables.format_number(3.2e7) == "3.20e+07"


def test_rewriting_a_report_from_its_results_gives_the_same_tables(report, tmp_path):
    import shutil

    from kernelzoo.bench.compare import rewrite_report

    copy = tmp_path / "copy"
    shutil.copytree(report, copy)
    for png in copy.glob("*.png"):
        png.unlink()
    rewrite_report(copy)
    strip = re.compile(r"^- \*\*(time|git_commit)\*\*.*$", re.M)
    assert strip.sub("", (copy / "report.md").read_text()) == \
        strip.sub("", (report / "report.md").read_text())
    assert (copy / "stability.png").exists()


@pytest.mark.skipif(browser.chromium_path() is None,
                    reason="no Chromium (Debian package 'chromium'; .ci/run installs it)")
def test_the_html_report_renders_in_headless_chromium(report, tmp_path):
    dom = browser.dump_dom(report / "report.html")
    images = len(re.findall(r"\]\([\w.]+\.png\)", (report / "report.md").read_text()))
    assert f'data-images-decoded="{images}/{images}"' in dom  # every PNG decoded
    assert dom.count("<table") >= 8 and "<h2>Headline</h2>" in dom
    assert "rbf(bogus=1)" in dom
    png = Path(browser.screenshot(report / "report.html", tmp_path / "report.png",
                                  width=1200, height=1600))
    data = png.read_bytes()
    assert data[:8] == PNG_MAGIC
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 1600) and len(data) > 50_000  # not a blank page


def test_compare_cli_runs_only_the_named_harnesses(tmp_path, capsys):
    from kernelzoo.cli import main

    out = tmp_path / "report"
    code = main(["compare", "--family", "arccos", "--harness", "accuracy,stability",
                 "--harness", "spectrum", "--out", str(out), *TINY])
    assert code == 0
    printed = capsys.readouterr().out
    assert str(out / "report.md") in printed and "| arccos |" in printed
    results = pd.read_csv(out / "results.csv")
    assert set(results["harness"]) == {"accuracy", "stability", "spectrum"}
    assert "## Approximation error" not in (out / "report.md").read_text()


def test_training_time_section_has_a_table_and_a_plot(tmp_path, capsys):
    from kernelzoo.cli import main

    out = tmp_path / "report"
    code = main(["compare", "--family", "ntk", "--harness", "accuracy,training_time",
                 "--out", str(out), *TINY])
    assert code == 0
    results = pd.read_csv(out / "results.csv")
    rows = results[results["harness"] == "training_time"]
    assert len(rows) == 8 and rows["error"].isna().all()
    assert {"time", "time_scaled"} <= set(results.columns)
    text = (out / "report.md").read_text()
    assert "## Accuracy against training time" in text
    assert "training_time.png" in text and "t=inf" in text
    assert (out / "training_time.png").read_bytes()[:8] == PNG_MAGIC
    table = tables.training_time_table(rows.assign(error=""))
    assert list(table.columns)[-1] == "t=inf" and list(table.index) == ["ntk"]


@pytest.mark.parametrize("argv, message", [
    (["--harness", "nope"], "--harness 'nope' is not allowed"),
    (["--seeds", "a"], "--seeds must be a comma list of integers"),
    (["--budgets", "0,4"], "--budgets must be integers >= 1"),
    (["--splits", "0"], "--splits must be an integer >= 1, got 0"),
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
        assert message in err, err
    assert not (tmp_path / "r").exists()
