"""genrekit: tell the genre of a piece of music, and train, evaluate and serve genre models.

The data flow follows the subpackages, and imports point one way, from top to bottom:
``apps`` (cli, service, library) -> ``experiments`` -> ``training`` -> ``evaluation`` -> ``data``
-> ``inference`` (segments to track, writers) -> ``models`` -> ``features`` -> ``audio``
(decode, segments, levels). ``errors`` and ``utils`` are used by all. The public API is here:
``load_model``, ``save_model``, ``GenreModel``, ``ModelSpec``, ``Prediction`` and the errors a
caller catches (all :class:`GenrekitError`: ``UsageError``, ``ModelError``, ``DatasetError``,
``AudioError`` and its kinds).
"""

import os as _os

# OpenMP threads that spin while waiting make torch's small operations many times slower as soon
# as another process wants the cores (docs/benchmarks.md, feature extraction). Sleeping threads
# cost little on an idle machine. Takes effect only if torch is imported after genrekit; a
# user's own setting wins.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from genrekit.errors import (  # noqa: E402
    AudioError,
    AudioMissingError,
    CorruptAudioError,
    DatasetError,
    EmptyAudioError,
    GenrekitError,
    ModelError,
    NotAudioError,
    UnsupportedAudioError,
    UsageError,
)
from genrekit.version import __version__  # noqa: E402

__all__ = [
    "__version__",
    "load_model",
    "save_model",
    "GenreModel",
    "ModelSpec",
    "Prediction",
    "GenrekitError",
    "UsageError",
    "ModelError",
    "DatasetError",
    "AudioError",
    "AudioMissingError",
    "CorruptAudioError",
    "EmptyAudioError",
    "NotAudioError",
    "UnsupportedAudioError",
]


def __getattr__(name):
    # these import torch: keep ``import genrekit`` (and ``genrekit --help``) light
    if name in ("load_model", "GenreModel"):
        from genrekit.inference import model

        return getattr(model, name)
    if name == "save_model":
        from genrekit.models.files import save_model

        return save_model
    if name == "ModelSpec":
        from genrekit.models.spec import ModelSpec

        return ModelSpec
    if name == "Prediction":
        from genrekit.inference.predict import Prediction

        return Prediction
    raise AttributeError(f"module 'genrekit' has no attribute {name!r}")
