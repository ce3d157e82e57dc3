"""Harnesses that put the kernels side by side; each returns a tidy pandas DataFrame."""
