"""Labelled data for training and evaluation: datasets (GTZAN, FMA, folders, manifests),
track-level splits, the on-disk feature cache and feature extraction for many tracks.

Imports :mod:`genrekit.inference` and below.
"""
