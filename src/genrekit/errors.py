"""Exceptions that mean "the user gave us something we cannot use".

The CLI prints these as one line and exits non-zero without a traceback; any other exception is
a bug and is shown in full with ``--debug``.
"""


class GenrekitError(Exception):
    """Base class for errors caused by input or configuration, not by a bug."""


class UsageError(GenrekitError):
    """A wrong option, path or combination of arguments (CLI exit code 2)."""


class OutputError(GenrekitError):
    """An output cannot be written: its folder is missing, it is a folder or a read-only file, or
    writing failed (full disk, closed output)."""


class AudioError(GenrekitError):
    """A file could not be used as audio; each subclass names one cause.

    Parameters
    ----------
    path : str or path-like
        The file (kept as ``path``, a str).
    detail : str or None
        What the decoder said, shown in parentheses after the cause.

    Examples
    --------
    >>> str(CorruptAudioError("song.mp3", "stream ends at 0:12"))
    'song.mp3: corrupt or truncated audio (stream ends at 0:12)'
    """

    cause = "cannot be read as audio"

    def __init__(self, path, detail: str | None = None):
        self.path = str(path)
        self.detail = detail
        message = f"{self.path}: {self.cause}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class AudioMissingError(AudioError):
    """The file does not exist (or is a folder)."""

    cause = "file not found"


class NotAudioError(AudioError):
    """The file is not audio (text, an image, random bytes)."""

    cause = "not an audio file"


class CorruptAudioError(AudioError):
    """The file is audio but damaged or truncated."""

    cause = "corrupt or truncated audio"


class EmptyAudioError(AudioError):
    """The file holds no samples (or none after the requested offset)."""

    cause = "no audio samples"


class UnsupportedAudioError(AudioError):
    """The file's format or codec cannot be decoded here."""

    cause = "unsupported audio format"


class ModelError(GenrekitError):
    """A model file is missing, malformed or incompatible."""


class DatasetError(GenrekitError):
    """A dataset folder or manifest cannot be used."""
