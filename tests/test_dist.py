"""Distributed Gram stores (Dask + zarr), resuming, refusal, corruption, out-of-core ridge.

One LocalCluster of two worker processes (loopback, no dashboard) is shared by
the module. Every wait is bounded (``timeout=`` on the runs, deadlines on the
polling loops), so a broken cluster fails a test instead of hanging it.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
import torch

pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

import kernelzoo as kz
from kernelzoo.integrations.dask import gram_to_store
from kernelzoo.store import (
    JOURNAL_NAME,
    MANIFEST_NAME,
    load_store,
    open_store,
    open_store_dask,
    read_journal,
    read_manifest,
    store_status,
    verify_store,
    write_manifest,
)
from kernelzoo.kernels.rbf import RBF
from kernelzoo.ops.solvers import (
    GramPanels,
    block_cg,
    kernel_ridge_from_store,
    kernel_ridge_path,
    predict,
)

RUN_TIMEOUT = 180.0  # seconds; a run that takes longer fails
SPEC = "rbf(lengthscale=3.0)"


class SlowRBF(RBF):
    """An RBF kernel whose every ``gram`` call sleeps, so that runs can be killed mid-way.

    Its spec is the plain rbf spec: a store started with it resumes with ``kz.kernel(SPEC)``.
    """

    delay = 0.15

    def gram(self, X, Y=None, memory_budget=None):
        time.sleep(self.delay)
        return super().gram(X, Y, memory_budget=memory_budget)


@pytest.fixture(scope="module")
def cluster():
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            silence_logs=logging.ERROR,
        ) as local_cluster,
        distributed.Client(local_cluster, timeout="60s") as client,
    ):
        client.wait_for_workers(2, timeout=120)
        client.run(lambda: __import__("torch").zeros(1))  # import torch once, up front
        yield local_cluster


@pytest.fixture(scope="module")
def address(cluster):
    return cluster.scheduler_address


@pytest.fixture
def one_thread():
    """Tiny products thrash with several torch threads on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d))


def _done_tasks(store) -> int:
    """Tile tasks recorded in a symmetric store's manifest (chunks on or above the diagonal)."""
    try:
        with open(os.path.join(store, MANIFEST_NAME), encoding="utf-8") as fh:
            tiles = json.load(fh)["tiles"]
    except (OSError, ValueError):  # not written yet
        return 0
    return sum(1 for key in tiles if int(key.split(",")[0]) <= int(key.split(",")[1]))


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


# ---------------------------------------------------------------------- values
def test_stored_gram_equals_in_memory(address, tmp_path):
    x, y = _data(150), _data(70, seed=1)
    k = kz.kernel(SPEC)
    result = gram_to_store(
        k,
        x,
        store=tmp_path / "K.zarr",
        tile=40,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    assert result.symmetric and result.n_tasks == 10 and result.n_computed == 10
    # one span per task, within the run; the task threads' CPU is part of the processes'
    assert len(result.task_spans) == 10
    assert all(start <= end for _, start, end in result.task_spans)
    assert 0 < result.task_thread_cpu_seconds <= result.task_cpu_seconds + 1e-3
    expected = k.gram(x).numpy()
    stored = load_store(result)
    assert stored.dtype == np.float64
    np.testing.assert_allclose(stored, expected, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(stored, stored.T)  # the mirror is written
    np.testing.assert_array_equal(load_store(result, backend="torch").numpy(), stored)
    dask_array = open_store_dask(result)
    assert dask_array.chunks[0][0] == 40
    np.testing.assert_array_equal(dask_array.compute(scheduler="sync"), stored)
    assert store_status(result)["complete"] and verify_store(result) == []

    cross = gram_to_store(
        k,
        x,
        y,
        tmp_path / "C.zarr",
        tile=32,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    assert not cross.symmetric and cross.shape == (150, 70) and cross.n_tasks == 5 * 3
    np.testing.assert_allclose(load_store(cross), k.gram(x, y).numpy(), rtol=1e-12, atol=1e-14)

    again = gram_to_store(k, x, store=tmp_path / "K.zarr", scheduler=address, progress=False)
    assert again.n_computed == 0 and again.n_reused == 10 and again.tile == (40, 40)


def test_float32_and_features_store(address, tmp_path):
    from kernelzoo.integrations.dask import features_to_store

    x = _data(90).astype(np.float32)
    k = kz.kernel(SPEC)
    result = gram_to_store(
        k,
        x,
        store=tmp_path / "K.zarr",
        tile=32,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    assert result.dtype == "float32"
    np.testing.assert_allclose(load_store(result), k.gram(x).numpy(), rtol=1e-6, atol=1e-7)

    approx = k.approximate("rff", budget=16, seed=0).fit(x)
    feats = features_to_store(
        approx,
        x,
        tmp_path / "F.zarr",
        tile=25,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    assert feats.shape == (90, approx.n_features) and feats.n_tasks == 4
    np.testing.assert_allclose(load_store(feats), approx.features(x).numpy(), rtol=1e-6)
    refit = k.approximate("rff", budget=16, seed=1).fit(x)
    with pytest.raises(ValueError, match="fitted approximation"):
        features_to_store(refit, x, tmp_path / "F.zarr", scheduler=address, progress=False)


def test_tasks_run_longest_first():
    """Tiles with the most entries first (a diagonal tile of a symmetric Gram counts its
    upper triangle), so the small ones fill the tail; row-major within a cost."""
    from kernelzoo.integrations.dask.layout import Layout

    layout = Layout(kind="gram", kernel=SPEC, approximation=None, x=None, y=None,
                    symmetric=True, shape=[100, 100], dtype="float64", tile=[40, 40])
    order = layout.schedule(list(reversed(layout.tasks())))
    assert order == [(0, 1), (0, 0), (1, 1), (0, 2), (1, 2), (2, 2)]
    assert [layout.task_entries(t) for t in order] == [1600, 820, 820, 800, 800, 210]
    cross = Layout(kind="gram", kernel=SPEC, approximation=None, x=None, y=None,
                   symmetric=False, shape=[50, 30], dtype="float64", tile=[40, 40])
    assert cross.schedule(cross.tasks()) == [(0, 0), (1, 0)]


def test_incomplete_store_is_refused_by_readers(tmp_path):
    from kernelzoo.integrations.dask.layout import Layout
    from kernelzoo.integrations.dask.stores import open_or_create

    layout = Layout(kind="gram", kernel=SPEC, approximation=None, x=None, y=None,
                    symmetric=True, shape=[10, 10], dtype="float64", tile=[5, 5])
    open_or_create(str(tmp_path / "K.zarr"), layout)
    with pytest.raises(ValueError, match="incomplete: 4 of 4 chunks"):
        load_store(tmp_path / "K.zarr")
    assert np.isnan(load_store(tmp_path / "K.zarr", allow_incomplete=True)).all()


# ---------------------------------------------------------------------- failures
def test_worker_killed_mid_run_still_finishes(cluster, address, tmp_path):
    x = _data(160)
    store = str(tmp_path / "K.zarr")
    n_tasks = 8 * 9 // 2
    with distributed.Client(address, timeout="60s") as client:
        client.wait_for_workers(2, timeout=120)
        pids = client.run(os.getpid)
    victim_pid = min(pids.items())[1]
    killed = {}

    def kill_when_started():
        try:
            _wait_for(lambda: _done_tasks(store) >= 3, RUN_TIMEOUT, "3 recorded tiles")
        except AssertionError:
            return
        killed["done_before"] = _done_tasks(store)
        os.kill(victim_pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_when_started, daemon=True)
    killer.start()
    result = gram_to_store(
        SlowRBF(lengthscale=3.0),
        x,
        store=store,
        tile=20,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    killer.join(timeout=10)
    assert "done_before" in killed and killed["done_before"] < n_tasks
    with pytest.raises(ProcessLookupError):
        os.kill(victim_pid, 0)  # the worker process really died
    assert result.n_computed == n_tasks and store_status(store)["complete"]
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)
    with distributed.Client(address, timeout="60s") as client:  # the nanny restarted it
        client.wait_for_workers(2, timeout=120)


_RUNNER = """
import sys, time
import numpy as np
from kernelzoo.integrations.dask import gram_to_store
from kernelzoo.kernels.rbf import RBF

class SlowRBF(RBF):
    def gram(self, X, Y=None, memory_budget=None):
        time.sleep(0.15)
        return super().gram(X, Y, memory_budget=memory_budget)

if __name__ == "__main__":
    x = np.load(sys.argv[1])
    gram_to_store(SlowRBF(lengthscale=3.0), x, store=sys.argv[2], tile=20,
                  scheduler=sys.argv[3], progress=False, timeout=300)
"""


def test_killed_run_resumes_with_only_missing_tiles(address, tmp_path):
    x = _data(160)
    np.save(tmp_path / "x.npy", x)
    (tmp_path / "runner.py").write_text(textwrap.dedent(_RUNNER))
    store = str(tmp_path / "K.zarr")
    n_tasks = 8 * 9 // 2
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "runner.py"), str(tmp_path / "x.npy"), store, address],
        cwd=os.getcwd(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(
            lambda: _done_tasks(store) >= 5 or proc.poll() is not None,
            RUN_TIMEOUT,
            "the runner to record 5 tiles",
        )
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        proc.stderr.close()
    recorded = _done_tasks(store)
    assert 5 <= recorded < n_tasks, recorded
    # a batch may be in the journal but not yet in the manifest (killed between the two
    # writes): the rerun verifies it and keeps it
    _, journal = read_journal(store)
    in_journal = {tuple(sorted(map(int, key.split(",")))) for key in journal}
    recorded = max(recorded, len(in_journal))

    result = gram_to_store(
        kz.kernel(SPEC), x, store=store, scheduler=address, progress=False, timeout=RUN_TIMEOUT
    )
    assert result.n_reused == recorded
    assert result.n_computed == n_tasks - recorded
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)


def test_changed_spec_or_inputs_are_refused(address, tmp_path):
    x = _data(60)
    store = tmp_path / "K.zarr"
    gram_to_store(
        kz.kernel(SPEC),
        x,
        store=store,
        tile=30,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    before = read_manifest(store)
    with pytest.raises(ValueError, match=r"kernel spec: store has 'rbf\(lengthscale=3.0\)'"):
        gram_to_store(kz.kernel("rbf(lengthscale=2.0)"), x, store=store, scheduler=address)
    changed = x.copy()
    changed[3, 2] += 1e-9
    with pytest.raises(ValueError, match="input X"):
        gram_to_store(kz.kernel(SPEC), changed, store=store, scheduler=address)
    with pytest.raises(ValueError, match="dtype"):
        gram_to_store(kz.kernel(SPEC), x.astype(np.float32), store=store, scheduler=address)
    with pytest.raises(ValueError, match="tile size"):
        gram_to_store(kz.kernel(SPEC), x, store=store, tile=20, scheduler=address)
    with pytest.raises(ValueError, match="input Y"):
        gram_to_store(kz.kernel(SPEC), x, x, store, scheduler=address)
    assert read_manifest(store)["tiles"] == before["tiles"]  # nothing was touched
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "data.txt").write_text("not a store")
    with pytest.raises(ValueError, match="not a kernelzoo store"):
        gram_to_store(kz.kernel(SPEC), x, store=tmp_path / "other", scheduler=address)


def test_corrupted_chunk_is_detected_and_recomputed(address, tmp_path):
    x = _data(90)
    store = tmp_path / "K.zarr"
    k = kz.kernel(SPEC)
    gram_to_store(
        k, x, store=store, tile=30, scheduler=address, progress=False, timeout=RUN_TIMEOUT
    )
    chunk_file = store / "c" / "1" / "0"  # zarr v3 default chunk key of chunk (1, 0)
    assert chunk_file.is_file()
    chunk_file.write_bytes(os.urandom(chunk_file.stat().st_size))
    array = open_store(store, mode="r+")  # a decodable chunk with wrong values
    array[60:90, 60:90] = np.zeros((30, 30))

    with pytest.warns(RuntimeWarning) as record:
        assert verify_store(store) == [(1, 0), (2, 2)]
    messages = " ".join(str(w.message) for w in record)
    assert "chunk (1, 0) (rows 30:60, columns 0:30)" in messages and "chunk (2, 2)" in messages
    with pytest.warns(RuntimeWarning) as record:
        result = gram_to_store(
            k, x, store=store, scheduler=address, progress=False, timeout=RUN_TIMEOUT
        )
    messages = " ".join(str(w.message) for w in record)
    assert "chunk (1, 0)" in messages and "chunk (2, 2)" in messages and "recomputing" in messages
    assert result.n_corrupt == 2 and result.n_computed == 2 and result.n_reused == 4
    np.testing.assert_allclose(load_store(store), k.gram(x).numpy(), rtol=1e-12)
    assert verify_store(store) == []


def test_bad_arguments(tmp_path):
    x = _data(10)
    k = kz.kernel(SPEC)
    with pytest.raises(TypeError, match="store"):
        gram_to_store(k, x)
    with pytest.raises(ValueError, match="tile must be >= 1"):
        gram_to_store(k, x, store=tmp_path / "K.zarr", tile=0)
    with pytest.raises(TypeError, match="kernelzoo kernel"):
        gram_to_store(lambda a, b: a @ b.T, x, store=tmp_path / "K.zarr")
    with pytest.raises(ValueError, match="n_workers only sizes"):
        gram_to_store(k, x, store=tmp_path / "K.zarr", scheduler="tcp://127.0.0.1:1", n_workers=2)


# ---------------------------------------------------------------------- solver
def _ridge_problem(digits):
    x, labels = digits[0][:260].copy(), digits[1][:260].copy()
    return x[:200], labels[:200], x[200:], labels[200:]


def test_block_cg_matches_dense_solve(one_thread):
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.standard_normal((40, 40)))
    k = a @ a.T / 40 + 0.1 * torch.eye(40, dtype=torch.float64)
    rhs = torch.from_numpy(rng.standard_normal((40, 3)))
    shifts = torch.tensor([1e-2, 1e-1, 1.0], dtype=torch.float64)
    x, info = block_cg(lambda p: k @ p, rhs, shifts, tol=1e-12)
    assert info["converged"]
    for j in range(3):
        dense = torch.linalg.solve(k + shifts[j] * torch.eye(40, dtype=torch.float64), rhs[:, j])
        torch.testing.assert_close(x[:, j], dense, rtol=1e-8, atol=1e-10)


def test_out_of_core_ridge_matches_dense(address, tmp_path, one_thread, digits):
    x_train, y_train, x_val, y_val = _ridge_problem(digits)
    k = kz.kernel("rbf(lengthscale=3.0)")
    train = gram_to_store(
        k,
        x_train,
        store=tmp_path / "train.zarr",
        tile=100,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    cross = gram_to_store(
        k,
        x_val,
        x_train,
        tmp_path / "val.zarr",
        tile=100,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    lambdas = [1e-2, 1e-1, 1.0]
    # a small budget forces reading several row panels of chunks on every pass
    best, coef = kernel_ridge_from_store(
        train.path, cross.path, y_train, y_val, lambdas, tol=1e-9, memory_budget=200 * 8 * 100 * 2
    )
    k_train = k.gram(x_train)
    k_val = k.gram(x_val, x_train)
    onehot = torch.nn.functional.one_hot(torch.as_tensor(y_train), 10).double()
    accuracies = []
    for lam in lambdas:
        dense = torch.linalg.solve(k_train + lam * torch.eye(200, dtype=torch.float64), onehot)
        accuracies.append(
            float((k_val @ dense).argmax(1).eq(torch.as_tensor(y_val)).double().mean())
        )
        if lam == best:
            torch.testing.assert_close(coef, dense, rtol=1e-6, atol=1e-6)
    assert best == max(zip(accuracies, lambdas))[1]
    # the same through a Dask array and a dense tensor
    selection = kernel_ridge_path(
        open_store_dask(train), k_val, y_train, y_val, lambdas, tol=1e-9, dask_scheduler="sync"
    )
    assert selection.best_lambda == best and selection.scores == pytest.approx(accuracies)
    predicted = predict(cross.path, coef, selection.classes)
    assert np.mean(predicted == y_val) == pytest.approx(max(accuracies))
    assert GramPanels(train.path, memory_budget=1).panel_rows == 100  # whole chunks per panel
    # relative lambdas: ridge n * lambda * mean(diag K) (rbf: diag 1), the harness's convention
    relative = kernel_ridge_path(k_train, k_val, y_train, y_val, [5e-4], relative=True)
    assert relative.shifts == pytest.approx([200 * 5e-4])
    dense = torch.linalg.solve(k_train + 0.1 * torch.eye(200, dtype=torch.float64), onehot)
    torch.testing.assert_close(relative.coefficients, dense, rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------------- command line
def test_cli_store_with_scheduler(address, tmp_path, capsys):
    from kernelzoo.cli import main

    x = _data(50)
    np.save(tmp_path / "x.npy", x)
    store = str(tmp_path / "K.zarr")
    argv = [
        "gram",
        SPEC,
        "--x",
        str(tmp_path / "x.npy"),
        "--store",
        store,
        "--dtype",
        "float64",
        "--tile",
        "20",
        "--scheduler",
        address,
    ]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)
    assert main(["gram", "rbf(lengthscale=1.0)", *argv[2:]]) == 2  # refused, one line
    assert "different computation" in capsys.readouterr().err


def test_cli_store_default_local_cluster(tmp_path):
    """The default path: no scheduler, a LocalCluster started and closed by the call."""
    from kernelzoo.cli import main

    x = _data(30)
    np.save(tmp_path / "x.npy", x)
    store = str(tmp_path / "K.zarr")
    assert (
        main(
            [
                "gram",
                SPEC,
                "--x",
                str(tmp_path / "x.npy"),
                "--y",
                str(tmp_path / "x.npy"),
                "--store",
                store,
                "--dtype",
                "float64",
            ]
        )
        == 0
    )
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)


@pytest.mark.gpu
def test_workers_compute_on_their_gpu(address, tmp_path):
    """Workers with CUDA use it ("auto"); the stored Gram matches the CPU one in float64."""
    x = _data(80)
    k = kz.kernel(SPEC)
    with distributed.Client(address, timeout="60s") as client:
        assert all(client.run(lambda: __import__("torch").cuda.is_available()).values())
    result = gram_to_store(
        k,
        x,
        store=tmp_path / "K.zarr",
        tile=32,
        scheduler=address,
        device="auto",
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    np.testing.assert_allclose(load_store(result), k.gram(x).numpy(), rtol=1e-10, atol=1e-12)
    cuda_input = torch.as_tensor(x, device="cuda")  # CUDA input: device "cuda" by default
    again = gram_to_store(
        k,
        cuda_input,
        store=tmp_path / "K2.zarr",
        tile=32,
        scheduler=address,
        progress=False,
        timeout=RUN_TIMEOUT,
    )
    np.testing.assert_allclose(load_store(again), load_store(result), rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------- manifest recovery
# issue 14 (item 5): a lost or truncated manifest is rebuilt from the append-only journal,
# tiles that cannot be verified are recomputed, finished tiles are never deleted
def _stored(address, store, x, spec=SPEC, **kw):
    return gram_to_store(kz.kernel(spec), x, store=store, tile=30, scheduler=address,
                         progress=False, timeout=RUN_TIMEOUT, **kw)


def _chunk_files(store):
    return sorted(p.relative_to(store) for p in (store / "c").rglob("*") if p.is_file())


def test_truncated_manifest_names_the_file_and_is_rebuilt_from_the_journal(address, tmp_path):
    x = _data(90)
    store = tmp_path / "K.zarr"
    _stored(address, store, x)
    assert (store / JOURNAL_NAME).is_file()
    chunks = _chunk_files(store)
    manifest = store / MANIFEST_NAME
    manifest.write_bytes(manifest.read_bytes()[: manifest.stat().st_size // 2])
    with pytest.raises(ValueError, match=str(manifest)):
        load_store(store)
    with pytest.warns(RuntimeWarning, match="rebuilt from"):
        result = _stored(address, store, x)
    assert result.n_reused == result.n_tasks and result.n_computed == 0
    assert _chunk_files(store) == chunks
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)


def test_lost_manifest_and_damaged_journal_recompute_only_unverifiable_tiles(address, tmp_path):
    x = _data(90)
    store = tmp_path / "K.zarr"
    _stored(address, store, x)
    (store / MANIFEST_NAME).unlink()
    journal = store / JOURNAL_NAME
    lines = journal.read_text().splitlines()
    # the last record loses its end (a crash mid-append) and one checksum is damaged
    damaged = [lines[0]] + [line.replace('"0,1": "', '"0,1": "00') for line in lines[1:-1]]
    journal.write_text("\n".join(damaged + [lines[-1][: len(lines[-1]) // 2]]))
    lost = {k for line in lines[-1:] for k in json.loads(line)["tiles"]}
    with pytest.warns(RuntimeWarning, match="rebuilt from"):
        result = _stored(address, store, x)
    symmetric_lost = {tuple(sorted(map(int, k.split(",")))) for k in lost | {"0,1"}}
    assert result.n_computed == len(symmetric_lost)
    assert result.n_reused == result.n_tasks - result.n_computed
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)
    assert verify_store(store) == []


def test_store_without_manifest_or_journal_is_recomputed_in_place(address, tmp_path):
    """A store of the previous layout (no journal) that lost its manifest: nothing can be
    verified, so every tile is recomputed into the same array; no file is deleted."""
    x = _data(60)
    store = tmp_path / "K.zarr"
    _stored(address, store, x)
    chunks = _chunk_files(store)
    (store / MANIFEST_NAME).unlink()
    (store / JOURNAL_NAME).unlink()
    with pytest.warns(RuntimeWarning, match=MANIFEST_NAME):
        result = _stored(address, store, x)
    assert result.n_computed == result.n_tasks
    assert _chunk_files(store) == chunks
    np.testing.assert_allclose(load_store(store), kz.kernel(SPEC).gram(x).numpy(), rtol=1e-12)
    # an array of another shape cannot be adopted: an error naming the file, nothing touched
    (store / MANIFEST_NAME).unlink()
    (store / JOURNAL_NAME).unlink()
    with pytest.raises(ValueError, match="zarr.json"):
        _stored(address, store, _data(50))
    assert _chunk_files(store) == chunks


def test_stores_compare_parameters_with_defaults_filled_in(address, tmp_path):
    """A manifest whose spec lacks a parameter at its default (as written before that
    parameter existed) still matches: specs are compared parsed, not as strings."""
    x = _data(60)
    store = tmp_path / "K.zarr"
    _stored(address, store, x, spec="rbf")
    manifest = read_manifest(store)
    assert manifest["kernel"] == "rbf(lengthscale=1.0)"
    manifest["kernel"] = "rbf()"
    write_manifest(store, manifest)
    journal = store / JOURNAL_NAME
    journal.write_text(journal.read_text().replace("rbf(lengthscale=1.0)", "rbf()"))
    result = _stored(address, store, x, spec="rbf(lengthscale=1.0)")
    assert result.n_reused == result.n_tasks
    with pytest.raises(ValueError, match="kernel spec"):
        _stored(address, store, x, spec="rbf(lengthscale=2.0)")
    # and after losing the manifest, the journal's header is compared the same way
    (store / MANIFEST_NAME).unlink()
    with pytest.warns(RuntimeWarning, match="rebuilt from"):
        result = _stored(address, store, x, spec="rbf")
    assert result.n_reused == result.n_tasks


def test_unreadable_manifest_errors_name_the_file(tmp_path):
    store = tmp_path / "K.zarr"
    store.mkdir()
    (store / MANIFEST_NAME).write_text('{"format": "kernelzoo-st')
    for reader in (read_manifest, store_status, load_store, verify_store):
        with pytest.raises(ValueError, match=str(store / MANIFEST_NAME)):
            reader(store)
