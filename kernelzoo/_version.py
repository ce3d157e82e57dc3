"""The package version (read by the public face, run metadata and store manifests)."""

__version__ = "0.1.0"
