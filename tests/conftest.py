import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

# hypothesis: "ci" (the default) is derandomised, so every run tries the same examples
# and CI is deterministic; "dev" draws new ones each run (HYPOTHESIS_PROFILE=dev) and
# "thorough" more of them. No example database is written.
_HYPOTHESIS = dict(deadline=None, database=None, print_blob=True,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", derandomize=True, **_HYPOTHESIS)
settings.register_profile("dev", derandomize=False, **_HYPOTHESIS)
settings.register_profile("thorough", derandomize=False, max_examples=2000, **_HYPOTHESIS)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

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
