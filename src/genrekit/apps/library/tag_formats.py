"""Where each audio format keeps its genre, read and written the format's own way with mutagen.

=================================================  =====================================
Formats                                            Genre tag (all hold several values)
=================================================  =====================================
MP3, WAV, AIFF, DSF                                ID3v2 ``TCON``
FLAC, Ogg Vorbis, Opus                             Vorbis comment ``GENRE``
M4A (AAC, ALAC)                                    MP4 ``\\xa9gen`` atom
WavPack, Monkey's Audio, Musepack, TTA             APEv2 ``Genre`` (as FFmpeg and foobar2000 write it)
WMA (ASF)                                          ``WM/Genre`` attributes
=================================================  =====================================

Functions here work on a file opened by :func:`open_tags`; :mod:`.genre_tags` does the safe
copy-and-replace around them.
"""

from __future__ import annotations

from pathlib import Path

import mutagen
from mutagen.aiff import AIFF
from mutagen.apev2 import APEv2File
from mutagen.asf import ASF
from mutagen.dsf import DSF, DSDChunk
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON
from mutagen.monkeysaudio import MonkeysAudio
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.musepack import Musepack
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.trueaudio import TrueAudio
from mutagen.wave import WAVE
from mutagen.wavpack import WavPack

from genrekit.errors import AudioError, AudioMissingError, CorruptAudioError

_ID3_TYPES = (MP3, WAVE, AIFF, DSF)


_VORBIS_TYPES = (FLAC, OggVorbis, OggOpus)


_MP4_TYPES = (MP4,)


# TrueAudio is not among them: mutagen gives it ID3, but FFmpeg and foobar2000 write APEv2
_APE_TYPES = (WavPack, MonkeysAudio, Musepack, APEv2File)


_ASF_TYPES = (ASF,)


#: The genre key of each tag family that is not ID3.
_KEYS = {_VORBIS_TYPES: "genre", _MP4_TYPES: "\xa9gen", _APE_TYPES: "Genre", _ASF_TYPES: "WM/Genre"}


class TagError(AudioError):
    """A file's tags could not be read or written."""

    cause = "cannot write tags"


class TaggingNotSupportedError(TagError):
    def __init__(self, path):
        super().__init__(path)
        suffix = Path(path).suffix.lower() or "this file type"
        self.args = (f"{self.path}: tagging not supported for {suffix}",)


def open_tags(path) -> mutagen.FileType:
    """The file parsed by mutagen; raises a :class:`TagError` family error if it cannot be tagged."""
    path = Path(path)
    if not path.exists():
        raise AudioMissingError(path)
    try:
        audio = mutagen.File(path)
        if isinstance(audio, TrueAudio):
            audio = APEv2File(path)
    except mutagen.MutagenError as exc:
        raise CorruptAudioError(path, f"cannot read its tags: {exc}") from None
    if audio is None or not isinstance(audio, _ID3_TYPES + _VORBIS_TYPES + _MP4_TYPES + _APE_TYPES + _ASF_TYPES):
        raise TaggingNotSupportedError(path)
    return audio


def _key(audio: mutagen.FileType) -> str:
    return next(key for types, key in _KEYS.items() if isinstance(audio, types))


def get_genres(audio: mutagen.FileType) -> list[str]:
    """The genre values of an opened file, as stored (``[]`` without a genre tag)."""
    tags = audio.tags
    if tags is None:
        return []
    if isinstance(tags, ID3):
        frame = tags.get("TCON")
        return [] if frame is None else [str(text) for text in frame.text]
    values = tags.get(_key(audio), [])
    # an APEv2 value iterates over its NUL-separated items, ASF and MP4 values are lists
    return [str(value) for value in values]


def set_genres(audio: mutagen.FileType, genres: list[str] | None) -> None:
    """Set (or with None remove) the genre values of an opened file, in memory."""
    if audio.tags is None:
        if genres is None:
            return
        audio.add_tags()
    tags = audio.tags
    if isinstance(tags, ID3):
        if genres is None:
            tags.delall("TCON")
        else:
            tags.setall("TCON", [TCON(encoding=3, text=list(genres))])
        return
    key = _key(audio)
    if genres is not None:
        tags[key] = list(genres)
    elif key in tags:
        del tags[key]


def save_tags(audio: mutagen.FileType) -> None:
    """Write an opened file's tags back to it, keeping its tag version; a tag left empty is
    removed, so that undoing the tagging of an untagged file gives back its exact bytes."""
    if isinstance(audio.tags, ID3) and not audio.tags:
        if isinstance(audio, DSF):
            _delete_dsf_id3(audio.filename)
        else:
            audio.delete()
        return
    if isinstance(audio, _APE_TYPES) and audio.tags is not None and not audio.tags:
        audio.delete()
        return
    if isinstance(audio.tags, ID3):
        # Keep the file's ID3 version (rewriting v2.3 as v2.4 hides tags from old players), and
        # in v2.3 join multiple values with NUL as they were read, not with mutagen's "/",
        # so other multi-valued frames and restored genres come back exactly as they were.
        version = 3 if audio.tags.version[:2] == (2, 3) else 4
        audio.save(v2_version=version, v23_sep=None)
    else:
        audio.save()


def _delete_dsf_id3(path) -> None:
    """Remove a DSF file's ID3 chunk, stating the shorter file size in the DSD header (mutagen
    1.48's ``DSF.delete`` leaves the old size there)."""
    with open(path, "rb+") as handle:
        header = DSDChunk(handle)
        if header.offset_metdata_chunk:
            handle.seek(header.offset_metdata_chunk)
            handle.truncate()
            header.total_size = header.offset_metdata_chunk
            header.offset_metdata_chunk = 0
            header.write()
