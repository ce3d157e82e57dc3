"""Tiled evaluation and linear algebra shared by the families."""
