"""Scoring models: metrics (NumPy only), evaluating a model file on a dataset, reports and figures.

Imports :mod:`genrekit.data` and below.
"""
