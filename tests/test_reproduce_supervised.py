"""``fashion-ckn-supervised``'s options (anchors, seeds, the training options), the
supervised CKN's gradient clipping, and ``fashion-kernels``' conv architecture options,
on a generated stand-in with tiny budgets."""

from __future__ import annotations

import json

import pytest
import torch

import kernelzoo as kz
from kernelzoo.reproduce import run_experiment, standin_loader
from kernelzoo.reproduce._common import Context
from kernelzoo.reproduce._supervised import TRAINING, training_options


def _ctx(**options) -> Context:
    return Context("fashion-ckn-supervised", quick=True, loader=standin_loader(),
                   options={k: str(v) for k, v in options.items()})


def test_training_options_defaults_and_overrides():
    assert training_options(_ctx()) == {k: d for k, (_, d) in TRAINING.items()}
    got = training_options(_ctx(lr=0.1, min_lambda=0, batch_size=64, max_grad_norm=5,
                                classifier="squared_hinge"))
    assert got["lr"] == 0.1 and got["min_lambda"] == 0.0 and got["batch_size"] == 64
    assert got["max_grad_norm"] == 5.0 and got["classifier"] == "squared_hinge"
    with pytest.raises(ValueError, match="batch_size"):
        training_options(_ctx(batch_size="many"))


def test_anchors_seeds_and_training_options_reach_the_run(tmp_path):
    out = tmp_path / "sup"
    run_experiment("fashion-ckn-supervised", quick=True, out=out, loader=standin_loader(),
                   smoke=True, progress=False,
                   options={"anchors": "3,5", "seeds": "4", "lr": "0.02", "min_lambda": "1e-5",
                            "max_grad_norm": "7"})
    rows = json.loads((out / "results.json").read_text())
    assert [r["method"] for r in rows] == ["layerwise+ridge", "supervised+ridge"]
    assert all(r["details"]["seed"] == 4 for r in rows)
    assert all("[3, 5]" in r["model"] for r in rows)
    sup = rows[1]["details"]
    assert sup["lr"] == 0.02 and sup["min_lambda"] == 1e-5 and sup["max_grad_norm"] == 7.0
    with pytest.raises(ValueError, match="anchors"):
        run_experiment("fashion-ckn-supervised", quick=True, out=tmp_path / "bad",
                       loader=standin_loader(), smoke=True, progress=False,
                       options={"anchors": "3,x"})


def _labelled(n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g, dtype=torch.float64)
    y = (x[:, 0, :4].mean((1, 2)) > x[:, 0, 4:].mean((1, 2))).long()
    x[y == 1, 0, :2] += 0.5
    return x, y


def test_gradient_clipping_bounds_each_step_and_records_the_norms():
    x, y = _labelled(60, seed=0)
    k = kz.kernel("ckn", filter_size=[3, 3], subsampling=[2, 2])
    opts = dict(budget=[4, 4], seed=0, epochs=2, batch_size=20, lr=0.5, momentum=0.0,
                progress=False)
    split = (x[:48], y[:48], x[48:], y[48:])
    free = k.approximate("supervised", **opts).fit_split(*split)
    assert len(free.grad_norm_history_) == 2 and min(free.grad_norm_history_) > 0
    tiny = 1e-6  # without momentum, a step moves the anchors by at most lr * tiny
    clipped = k.approximate("supervised", max_grad_norm=tiny, **opts).fit_split(*split)
    assert min(clipped.grad_norm_history_) > tiny  # recorded before clipping
    init = k.approximate("layerwise", budget=[4, 4], seed=0).fit(x[:48])
    steps = 2 * 3  # 2 epochs of 48 images in batches of 20
    moved = [float((a - b).norm()) for a, b in zip(clipped.anchors_, init.anchors_, strict=True)]
    assert 0 < max(moved) <= 2 * 0.5 * tiny * steps
    assert max(float((a - b).norm()) for a, b in
               zip(free.anchors_, init.anchors_, strict=True)) > 100 * max(moved)
    for bad in (0, -1.0, True, "1"):
        with pytest.raises(ValueError, match="max_grad_norm"):
            k.approximate("supervised", budget=4, max_grad_norm=bad)


def test_fashion_kernels_conv_architecture_options():
    from kernelzoo.reproduce._kernels import _conv_architecture, _conv_specs

    def ctx(**options):
        return Context("fashion-kernels", quick=True, loader=standin_loader(),
                       options={k: str(v) for k, v in options.items()})

    assert _conv_architecture(ctx()) == (  # the default: the screened architecture
        "architecture='conv', depth=3, image_shape=[1, 28, 28], pooling=[2, 2, 1]")
    assert _conv_architecture(ctx(conv_depth=2)) == (
        "architecture='conv', depth=2, image_shape=[1, 28, 28]")
    arch = _conv_architecture(ctx(conv_depth=3, conv_pooling="2,2,1"))
    specs = _conv_specs(11.5, arch)
    assert len(specs) == 5 and specs[0].startswith("rbf")
    for spec in specs[1:]:
        k = kz.kernel(spec)  # a valid kernel spec, with the options in it
        assert k.depth == 3 and list(k.pooling) == [2, 2, 1]
    for options, word in (({"conv_depth": "two"}, "conv_depth"),
                          ({"conv_depth": "0"}, "conv_depth"),
                          ({"conv_depth": "2", "conv_pooling": "2"}, "conv_pooling"),
                          ({"conv_pooling": "2,x"}, "conv_pooling")):
        with pytest.raises(ValueError, match=word):
            _conv_architecture(ctx(**options))


def test_fashion_kernels_device_and_groups_options():
    from kernelzoo.reproduce._kernels import _conv_device

    def ctx(**options):
        return Context("fashion-kernels", quick=True, loader=standin_loader(), options=options)

    assert _conv_device(ctx()) == torch.device("cpu")
    assert _conv_device(ctx(device="cpu")) == torch.device("cpu")
    for bad in ("gpu", "mps"):
        with pytest.raises(ValueError, match="device"):
            _conv_device(ctx(device=bad))
    from kernelzoo.reproduce._kernels import _groups

    assert _groups(ctx()) == {"all", "conv"} and _groups(ctx(groups="conv")) == {"conv"}
    for bad in ("", "fc", "conv,gpu"):
        with pytest.raises(ValueError, match="groups"):
            _groups(ctx(groups=bad))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            _conv_device(ctx(device="cuda"))
    else:
        assert _conv_device(ctx(device="cuda")).type == "cuda"
