"""kernelzoo's asv suite (https://asv.readthedocs.io/): imports kernelzoo, never the reverse.

Modules: ``bench_gram`` (exact Gram matrices of every family), ``bench_approx``
(fit, features, Gram and error of every approximation), ``bench_accuracy``
(kernel ridge accuracy on the embedded digits), ``bench_peers`` (scikit-learn,
gpytorch, a bare ``X @ X.T`` and neural-tangents side by side with kernelzoo).

Run it with ``bash scripts/asv_dashboard.sh`` from the repository root.
"""
