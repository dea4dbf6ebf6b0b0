"""Deterministic test and benchmark data generators (not used by the product)."""
