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
    """A file could not be used as audio. ``path`` names the file."""

    cause = "cannot be read as audio"

    def __init__(self, path, detail: str | None = None):
        self.path = str(path)
        self.detail = detail
        message = f"{self.path}: {self.cause}"
        if detail:
            message += f" ({detail})"
        super().__init__(message)


class AudioMissingError(AudioError):
    cause = "file not found"


class NotAudioError(AudioError):
    cause = "not an audio file"


class CorruptAudioError(AudioError):
    cause = "corrupt or truncated audio"


class EmptyAudioError(AudioError):
    cause = "no audio samples"


class UnsupportedAudioError(AudioError):
    cause = "unsupported audio format"


class ModelError(GenrekitError):
    """A model file is missing, malformed or incompatible."""


class DatasetError(GenrekitError):
    """A dataset folder or manifest cannot be used."""
