"""Harnesses that put the kernels side by side; each returns a tidy pandas DataFrame.

- :func:`approximation`: error of each approximation against its exact kernel vs budget;
- :func:`accuracy`: test accuracy vs n_train and budget (hyperparameters on validation);
- :func:`stability`: RKHS distance to translated / deformed images;
- :func:`spectrum`: eigenvalue decay and effective dimension of each Gram;
- :func:`speed`: Gram and feature-extraction time, throughput and peak memory;
- ``kernelzoo.bench.gp.run_gp``: Gaussian-process regression (its own module).

Rows share the columns :data:`COLUMNS`; run metadata (versions, git commit,
machine) is in ``df.attrs["metadata"]``. :mod:`kernelzoo.bench.compare` runs
them all (``kernelzoo compare``).
"""

from kernelzoo.bench._accuracy import accuracy
from kernelzoo.bench._approximation import approximation, approximation_errors
from kernelzoo.bench._common import COLUMNS, run_metadata
from kernelzoo.bench._spectrum import effective_dimension, spectrum
from kernelzoo.bench._speed import speed
from kernelzoo.bench._stability import rkhs_relative_distance, stability

__all__ = [
    "COLUMNS",
    "accuracy",
    "approximation",
    "approximation_errors",
    "effective_dimension",
    "rkhs_relative_distance",
    "run_metadata",
    "spectrum",
    "speed",
    "stability",
]
