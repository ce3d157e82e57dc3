"""TF32 stays off while kernelzoo computes on CUDA, and the caller's flags come back.

The flags are process-wide and settable without a GPU, so the bookkeeping is
tested here on any machine; the GPU agreement itself is in tests/test_device.py.
"""

from __future__ import annotations

import threading

import pytest
import torch

import kernelzoo as kz
from kernelzoo.ops.precision import full_precision


def _flags():
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


@pytest.fixture
def caller_allows_tf32():
    saved = _flags()
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_cuda_turns_tf32_off_and_restores(caller_allows_tf32):
    with full_precision("cuda"):
        assert _flags() == (False, False)
        with full_precision(torch.device("cuda:0")):  # nested
            assert _flags() == (False, False)
        assert _flags() == (False, False)
    assert _flags() == (True, True)
    with pytest.raises(RuntimeError, match="boom"), full_precision("cuda"):
        raise RuntimeError("boom")
    assert _flags() == (True, True)


def test_cpu_and_opt_in_leave_the_flags(caller_allows_tf32):
    with full_precision("cpu"):
        assert _flags() == (True, True)
    with full_precision(None):
        assert _flags() == (True, True)
    kz.set_allow_tf32(True)
    try:
        assert kz.get_allow_tf32() is True
        with full_precision("cuda"):
            assert _flags() == (True, True)
    finally:
        kz.set_allow_tf32(False)
    assert kz.get_allow_tf32() is False
    with pytest.raises(TypeError, match="allow"):
        kz.set_allow_tf32(1)


def test_threads_restore_only_when_the_last_leaves(caller_allows_tf32):
    inside, release = threading.Barrier(3), threading.Event()
    seen = []

    def work():
        with full_precision("cuda"):
            inside.wait()
            release.wait()
            seen.append(_flags())

    threads = [threading.Thread(target=work) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()  # both threads are inside
    assert _flags() == (False, False)
    release.set()
    for t in threads:
        t.join()
    assert seen == [(False, False)] * 2
    assert _flags() == (True, True)
