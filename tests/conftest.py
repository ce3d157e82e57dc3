import os

import numpy as np
import pytest
import torch

# one thread: small tensor ops stall on thread scheduling when the machine is busy
torch.set_num_threads(int(os.environ.get("KERNELZOO_TEST_THREADS", "1")))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits

    data = load_digits()
    x = data.data.astype(np.float64) / 16.0
    x.setflags(write=False)
    return x, data.target
