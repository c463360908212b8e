"""Training a model: the run configuration, augmentation, the epoch loop, fitting classical
estimators, temperature calibration and resumable checkpoints.

Imports :mod:`genrekit.evaluation` and below.
"""
