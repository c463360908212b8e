"""Features of audio windows, as ``nn.Module``s mapping ``(batch, samples)`` to arrays:
spectral (mel, log-mel, MFCC), GTZAN-style summary statistics, the raw waveform and the
pretrained musicnn network (:mod:`.musicnn`). :mod:`.registry` is the one table of names.

Imports :mod:`genrekit.audio` and below.
"""
