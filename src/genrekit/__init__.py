"""genrekit: tell the genre of a piece of music, and train, evaluate and serve genre models.

The data flow follows the modules: ``audio`` (decode) -> ``segments`` (fixed windows) ->
``features`` (log-mel, MFCC, musicnn embeddings) -> ``models`` -> ``aggregate`` (segments to
track) -> ``outputs`` (table, JSON, CSV).
"""

import os as _os

__version__ = "0.1.0"

# OpenMP threads that spin while waiting make torch's small operations many times slower as soon
# as another process wants the cores (docs/benchmarks.md, feature extraction). Sleeping threads
# cost little on an idle machine. Takes effect only if torch is imported after genrekit; a
# user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import (  # noqa: E402
    AudioError,
    AudioMissingError,
    CorruptAudioError,
    EmptyAudioError,
    GenrekitError,
    NotAudioError,
    UnsupportedAudioError,
)

__all__ = [
    "__version__",
    "load_model",
    "save_model",
    "AudioError",
    "AudioMissingError",
    "CorruptAudioError",
    "EmptyAudioError",
    "GenrekitError",
    "NotAudioError",
    "UnsupportedAudioError",
]


def __getattr__(name):
    # load_model/save_model import torch; keep ``import genrekit`` (and ``genrekit --help``) light
    if name in ("load_model", "save_model"):
        from . import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'genrekit' has no attribute {name!r}")
