"""Bridges to other libraries: gpytorch kernels, scikit-learn transformers, Dask."""
