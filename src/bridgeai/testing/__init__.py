"""Deterministic data, models and databases for the tests and the benchmarks, not the product.

Nothing in the product imports this package (``make lint`` checks it):
:mod:`~bridgeai.testing.synthetic` (housing-shaped rows), :mod:`~bridgeai.testing.models` (a
tiny trained model), :mod:`~bridgeai.testing.postgres` (a throwaway PostgreSQL cluster).
"""
