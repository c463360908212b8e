"""genrekit: tell the genre of a piece of music, and train, evaluate and serve genre models.

The data flow follows the modules: ``audio`` (decode) -> ``segments`` (fixed windows) ->
``features`` (log-mel, MFCC, musicnn embeddings) -> ``models`` -> ``aggregate`` (segments to
track) -> ``outputs`` (table, JSON, CSV).
"""

__version__ = "0.1.0"

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
    "AudioError",
    "AudioMissingError",
    "CorruptAudioError",
    "EmptyAudioError",
    "GenrekitError",
    "NotAudioError",
    "UnsupportedAudioError",
]
