"""Device paths: no host round trip per tile (checked on the CPU through the GPU code path),
and, on a CUDA machine, placement, CPU/GPU agreement and seeds (marked ``gpu``).

A Gram may wait for the device a fixed number of times (checking its input, once
per call), never once per tile: the counts with one tile and with many must be
equal. On the CPU, :data:`kernelzoo.kernels.functional.indices.DEVICE_PATH_ON_CPU`
runs the accelerator path and :class:`tests.device_cases.HostSyncCounter` counts
the operations that would make the host wait.
"""

from __future__ import annotations

import warnings

import pytest
import torch

import kernelzoo.kernels.functional.indices as indices
from tests.device_cases import APPROXIMATIONS, EXACT, Case, HostSyncCounter, inputs

ALL = EXACT + APPROXIMATIONS
TINY = 4_000  # bytes: many tiles (and a warning that single blocks exceed it)


def _gram(model, x, budget):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return model.gram(x, memory_budget=budget)


@pytest.fixture
def device_path(monkeypatch):
    monkeypatch.setattr(indices, "DEVICE_PATH_ON_CPU", True)


@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_host_waits_do_not_grow_with_tiles(case: Case, device_path):
    x, labels = inputs(case, 12)
    model = case.model(x, labels)
    _gram(model, x[:3], "1GB")  # per-model work done once (the CKN layers' inverse roots)
    counts = {}
    grams = {}
    for budget in ("1GB", TINY):
        with HostSyncCounter() as counter:
            grams[budget] = _gram(model, x, budget)
        counts[budget] = counter.ops
    assert counts["1GB"] == counts[TINY]
    assert sum(counts[TINY].values()) <= 12, counts  # a few per call, none per tile
    torch.testing.assert_close(grams[TINY], grams["1GB"], rtol=1e-10, atol=1e-12)


def test_per_block_constants_are_built_on_the_device_once():
    """Pair blocks, hyperparameter vectors and pooling matrices reach a non-CPU device
    without a host-to-device copy per block or call (on a GPU, a wait each; seen on the
    H200 as syncs that grew with the tiles). ``meta`` stands in for the GPU."""
    from kernelzoo.kernels.functional.ckn_ops import pooling_matrix_on
    from kernelzoo.kernels.functional.indices import device_constant, pair_chunks

    meta = torch.device("meta")
    device_constant((0.5, 2.0), torch.float32, meta)  # first builds: one copy each
    pooling_matrix_on(7, 2, torch.float32, meta)
    with HostSyncCounter() as counter:
        blocks = list(pair_chunks(5, 7, False, 4, meta)) + list(pair_chunks(6, 6, True, 5, meta))
        for _ in range(3):
            device_constant((0.5, 2.0), torch.float32, meta)
            pooling_matrix_on(7, 2, torch.float32, meta)
    assert counter.ops == {}, counter.ops
    assert all(r.device == meta and c.device == meta for r, c in blocks)
    assert sum(r.numel() for r, _ in blocks) == 5 * 7 + 6 * 7 // 2
    with HostSyncCounter() as counter:  # the counter sees such copies
        torch.ones(3).to(meta)
    assert counter.count == 1


def test_device_path_refines_like_the_host_path(device_path):
    """Identical and near-identical rows far from the origin: the slots of the device
    path give the host path's values (identical inputs: k(x, x))."""
    import kernelzoo as kz

    g = torch.Generator().manual_seed(3)
    base = torch.rand(5, 30, generator=g, dtype=torch.float64)
    x = torch.cat([base, base[:3], base[:2] * (1 + 1e-9)]) * 1e6
    y = x.flip(0)
    for spec in ("arccos(degree=0)", "arccos(degree=1, depth=2)", "rbf(lengthscale=1e6)",
                 "matern(nu=0.5, lengthscale=1e6)"):
        k = kz.kernel(spec)
        device = (k.gram(x, memory_budget=TINY * 4), k.gram(x, y, memory_budget=TINY * 4))
        indices.DEVICE_PATH_ON_CPU = False
        host = (k.gram(x, memory_budget=TINY * 4), k.gram(x, y, memory_budget=TINY * 4))
        indices.DEVICE_PATH_ON_CPU = True
        for d, h in zip(device, host):
            torch.testing.assert_close(d, h, rtol=1e-14, atol=0)
        # identical inputs (exact angle 0, distance 0): k(x, x) up to the rounding of norms
        diag = torch.diagonal(device[0])[:3]
        for pairs in (device[0][torch.arange(3), torch.arange(5, 8)],
                      device[1][torch.arange(3), 9 - torch.arange(5, 8)]):
            torch.testing.assert_close(pairs, diag, rtol=4e-16, atol=0, msg=spec)


def test_masked_indices_slots(device_path):
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1, 2] = mask[3, 0] = True
    rows, cols, found = indices.masked_indices(mask, 6)
    assert bool(found)
    assert rows.tolist() == [1, 3, 1, 1, 1, 1] and cols.tolist() == [2, 0, 2, 2, 2, 2]
    target = torch.arange(20.0).reshape(4, 5)
    indices.write_masked(target, rows, cols, -torch.ones(6), found)
    assert target[1, 2] == -1 and target[3, 0] == -1 and int((target < 0).sum()) == 2
    rows, cols, found = indices.masked_indices(torch.zeros(4, 5, dtype=torch.bool), 3)
    assert not bool(found) and rows.tolist() == [0, 0, 0]
    target = torch.arange(20.0).reshape(4, 5)
    indices.write_masked(target, rows, cols, -torch.ones(3), found)
    assert torch.equal(target, torch.arange(20.0).reshape(4, 5))
    # capacity: the first entries only
    rows, cols, _ = indices.masked_indices(torch.ones(2, 2, dtype=torch.bool), 3)
    assert list(zip(rows.tolist(), cols.tolist())) == [(0, 0), (0, 1), (1, 0)]


# ----------------------------------------------------------------------------- CUDA
cuda = pytest.mark.gpu


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double().cpu() - b.double().cpu()).norm() / b.double().norm().clamp_min(1e-300))


@cuda
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_cuda_placement_and_agreement(case: Case):
    """Fitted and evaluated on CUDA, everything stays there and equals the CPU result."""
    x, labels = inputs(case, 10)
    xc = x.cuda()
    model_cpu = case.model(x, labels)
    model_gpu = case.model(xc, labels.cuda())
    gram, diag = model_gpu.gram(xc), model_gpu.diag(xc)
    cross = model_gpu.gram(xc[:4], xc[4:])
    assert gram.device.type == diag.device.type == cross.device.type == "cuda"
    if case.method is not None and model_gpu.has_features:
        assert model_gpu.features(xc).device.type == "cuda"
    # exact kernels to 1e-12; fitted approximations (k-means, eigendecompositions on the
    # device) to 1e-8
    tol = 1e-12 if case.method is None else 1e-8
    assert _rel(gram, model_cpu.gram(x)) < tol
    assert _rel(cross, model_cpu.gram(x[:4], x[4:])) < tol


@cuda
@pytest.mark.parametrize("case", ALL, ids=lambda c: c.name)
def test_cuda_gram_waits_do_not_grow_with_tiles(case: Case):
    """``torch.cuda.set_sync_debug_mode('warn')``: as many synchronisations with many
    tiles as with one."""
    x, labels = inputs(case, 12)
    xc = x.cuda()
    model = case.model(xc, labels.cuda())
    model.gram(xc[:3])  # per-model work done once (the CKN layers' inverse roots)
    counts = {}
    for budget in ("1GB", TINY):
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                model.gram(xc, memory_budget=budget)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        counts[budget] = sum("synchroniz" in str(w.message) for w in caught)
    assert counts["1GB"] == counts[TINY], counts


@cuda
@pytest.mark.parametrize("spec", ["ckn(subsampling=[2, 2])",
                                  "ntk(architecture='conv', depth=2, readout='gap')",
                                  "rbf(lengthscale=3.0)"])
def test_cuda_float32_is_full_precision_under_tf32_flags(spec):
    """The caller allows TF32 (cuDNN's default): kernelzoo still computes in full
    float32 on CUDA (kernelzoo.ops.precision) and restores the caller's flags."""
    import kernelzoo as kz

    g = torch.Generator().manual_seed(2)
    x = torch.rand(12, 1, 10, 10, generator=g)
    if spec.startswith("rbf"):
        x = x.flatten(1)
    k = kz.kernel(spec)
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    try:
        gpu = k.gram(x.cuda())
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (
            True, True)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    assert _rel(gpu, k.gram(x.double())) < 1e-5


@cuda
@pytest.mark.parametrize("case", [c for c in APPROXIMATIONS if c.method != "supervised"],
                         ids=lambda c: c.name)
def test_cuda_seed_gives_the_cpu_approximation(case: Case):
    """Draws are made on the CPU in float64 and moved: one seed, one approximation."""
    x, labels = inputs(case, 10)
    a_cpu = case.model(x, labels, seed=5)
    a_gpu = case.model(x.cuda(), labels.cuda(), seed=5)
    tol = 1e-8 if case.method in ("nystrom", "layerwise") else 1e-12
    assert _rel(a_gpu.gram(x.cuda()), a_cpu.gram(x)) < tol


# ----------------------------------------------------------------------------- scaling paths
def test_scale_factors_equal_the_per_entry_scale():
    """Power-of-two scales put back as row and column factors equal the per-entry
    ``ldexp`` where the exponents fit; exponents near the dtype's range take the
    per-entry path (no overflowing factor)."""
    from kernelzoo.kernels.functional.extremes import (
        factors_fit,
        rows_times_power_of_two,
        unscale,
    )

    g = torch.Generator().manual_seed(0)
    k = torch.rand(5, 4, generator=g, dtype=torch.float32) + 0.5
    ex, ey = torch.tensor([-30, 0, 3, 40, 7]), torch.tensor([2, -9, 25, 0])
    assert factors_fit(torch.cat([ex, ey]), torch.float32)
    assert torch.equal(unscale(k.clone(), ex, ey, 1, exact=False),
                       unscale(k.clone(), ex, ey, 1, exact=True))
    big = torch.tensor([100, -120, 0, 0, 0])
    assert not factors_fit(big, torch.float32)
    out = unscale(k.clone(), big, ey)  # decides: per entry
    assert torch.equal(out, torch.ldexp(k, big[:, None] + ey[None, :]))
    # rows brought to [0.5, 1) by two exact products, even from subnormal or huge rows
    rows = torch.tensor([[1e-44, 0.0], [3e38, -1e38], [0.75, 0.25]], dtype=torch.float32)
    e = torch.frexp(rows.abs().amax(1))[1].to(torch.int64)
    scaled = rows_times_power_of_two(rows, -e)
    assert torch.equal(scaled, torch.ldexp(rows.double(), -e[:, None]).float())
    assert bool(((scaled.abs().amax(1) >= 0.5) & (scaled.abs().amax(1) < 1)).all())
