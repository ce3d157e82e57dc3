"""The ensemble of layerwise CKNs with independent anchors (``--option seeds=...``)."""

from __future__ import annotations

import pytest

from kernelzoo.reproduce import run_experiment, standin_loader
from kernelzoo.reproduce._ensemble import parse_seeds

BASE = {"anchors": "8,16", "n_patches": "2000", "kmeans_iters": "3", "features": "raw",
        "lambdas": "-6:-2", "sqhinge": "2", "refit": "1"}


def _run(tmp_path, **extra):
    return run_experiment("mnist-ckn", quick=True, out=tmp_path, loader=standin_loader(),
                          options={**BASE, **extra}, smoke=True, progress=False)


def test_one_member_is_the_single_run(tmp_path):
    single = _run(tmp_path / "single")
    ens = _run(tmp_path / "ens", seeds="0")
    (chosen_single,) = [r for r in single if r.chosen]
    member, ensemble = ens
    assert member.details["seed"] == 0 and "ensemble" in ensemble.model
    # the member is the single run's chosen classifier (seed 0, same split, same grid)
    assert member.val_accuracy == chosen_single.val_accuracy
    assert member.method + "+refit(fit+val)" == chosen_single.method
    # the mean of one member's scores is that member: same validation, chosen (ties), same test
    assert ensemble.val_accuracy == member.val_accuracy and ensemble.chosen
    assert ensemble.test_accuracy == pytest.approx(chosen_single.test_accuracy, abs=1e-12)
    assert ensemble.details["test_fit_only"] == chosen_single.details["test_fit_only"]


def test_two_members_choice_on_validation(tmp_path):
    records = _run(tmp_path, seeds="0,1")
    members = [r for r in records if "seed" in r.details]
    (ensemble,) = [r for r in records if "ensemble" in r.model]
    assert [m.details["seed"] for m in members] == [0, 1]
    (chosen,) = [r for r in records if r.chosen]
    assert chosen.test_accuracy is not None
    assert all(r.test_accuracy is None for r in records if not r.chosen)
    best_member = max(m.val_accuracy for m in members)
    assert (chosen is ensemble) == (ensemble.val_accuracy >= best_member)
    assert chosen.val_accuracy == max(best_member, ensemble.val_accuracy)


@pytest.mark.parametrize("text", ["", "0,0", "a,1"])
def test_seeds_errors_name_the_option(text):
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds(text)


def test_ensemble_needs_one_configuration(tmp_path):
    with pytest.raises(ValueError, match="seeds"):
        run_experiment("mnist-ckn", quick=True, out=tmp_path, loader=standin_loader(),
                       options={"seeds": "0,1"}, smoke=True, progress=False)
