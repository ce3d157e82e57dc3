"""Approximations: generic Nyström and random features; family-specific ones beside them."""
