"""Many runs at once: k-fold cross-validation (the one driver behind ``evaluate --split kfold``,
experiments and tuning), experiment tables, hyper-parameter tuning and the data report.

Imports :mod:`genrekit.training` and below.
"""
