"""What a file's bytes say before any decoder runs: text or audio, which container, whether a
container shows that the file was cut short, whether FFmpeg's length for it is exact.

Helpers of :mod:`.decode`, kept apart so that the decoder reads as the decoding it does.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["has_audio_signature", "is_mpeg_audio", "looks_like_text", "states_exact_length", "truncation"]


#: Largest possible Ogg page (RFC 3533): the last page header lies within this many final bytes.
_MAX_OGG_PAGE = 65307


#: File signatures of audio containers: a file that starts like this but cannot be decoded is
#: reported as corrupt rather than as "not audio".
_AUDIO_SIGNATURES = (
    b"RIFF", b"RF64", b"FORM", b".snd", b"fLaC", b"OggS", b"caff", b"\x1aE\xdf\xa3",
    b"0&\xb2u\x8ef\xcf\x11", b"#!AMR", b"MAC ", b"wvpk", b"FRM8", b"riff",
)


def truncation(path: Path, container: str) -> str | None:
    """Say how a file is cut short, when its container shows it (else ``None``).

    libsndfile silently shortens a WAV, AIFF or AU file to the data present, and measures an
    Ogg file up to its last complete page; downloads and copies that were cut off only show in
    the declared size (WAV, AIFF, AU) or in a missing end-of-stream flag (Ogg).

    Parameters
    ----------
    path : Path
        The file.
    container : str
        The container libsndfile or FFmpeg reported (``"wav"``, ``"ogg"``, ...).

    Returns
    -------
    str or None
        What shows the file cut short (for a warning), or None.
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(12)
        if container == "ogg":
            handle.seek(max(0, size - _MAX_OGG_PAGE))
            tail = handle.read()
    if container == "ogg":
        last_page = tail.rfind(b"OggS")
        end_of_stream = last_page >= 0 and len(tail) > last_page + 5 and tail[last_page + 5] & 0x04
        return None if last_page < 0 or end_of_stream else "the last Ogg page does not end the stream"
    tag, field = head[:4], head[4:8]
    if tag == b"RIFF" and head[8:12] == b"WAVE":
        declared = int.from_bytes(field, "little")
        if declared in (0, 0xFFFFFFFF):  # written by a streaming encoder that never came back
            return None
        declared += 8
    elif tag == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
        declared = int.from_bytes(field, "big") + 8
    elif tag == b".snd" and len(head) == 12:
        data_size = int.from_bytes(head[8:12], "big")
        if data_size == 0xFFFFFFFF:  # "unknown size" by the AU specification
            return None
        declared = int.from_bytes(field, "big") + data_size
    else:
        return None
    # One byte of slack: some writers count the pad byte of an odd-sized chunk, others do not.
    if declared > size + 1:
        return f"the header declares {declared} bytes, the file holds {size}"
    return None


def looks_like_text(path: Path) -> bool:
    """Whether the file's first 4 KiB are UTF-8 text without NUL bytes (a text file given as audio).

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    bool
    """
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the 4 KiB window is still text.
        return error.start >= len(head) - 3 and error.reason == "unexpected end of data"
    return True


def has_audio_signature(path: Path) -> bool:
    """Whether the file starts like an audio container (WAV, AIFF, AU, FLAC, Ogg, CAF, Matroska,
    ASF, AMR, APE, WavPack, DSDIFF, MP4 or MPEG audio), so a failure to decode it means damage
    rather than "not audio".

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    bool
    """
    with open(path, "rb") as handle:
        head = handle.read(12)
    return head.startswith(_AUDIO_SIGNATURES) or head[4:8] == b"ftyp" or is_mpeg_audio(path)


def is_mpeg_audio(path: Path) -> bool:
    """Whether the file starts like MP3 or ADTS AAC: an ID3 tag or an 11-bit frame sync.

    Parameters
    ----------
    path : Path
        The file.

    Returns
    -------
    bool
    """
    with open(path, "rb") as handle:
        head = handle.read(3)
    return head == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


def states_exact_length(path: Path, container: str) -> bool:
    """Whether FFmpeg's duration for this file comes from the file rather than an estimate.

    MP4-family containers carry sample tables; an MP3 states its length only in a Xing, Info
    or VBRI header (otherwise FFmpeg guesses from the first frame's bit rate, which can be far
    off for variable bit rates, so a short decode would prove nothing).

    Parameters
    ----------
    path : Path
        The file.
    container : str
        FFmpeg's container name.

    Returns
    -------
    bool
    """
    if container in ("m4a", "mp4", "mov"):
        return True
    if container != "mp3":
        return False
    with open(path, "rb") as handle:
        head = handle.read(10)
        if head[:3] == b"ID3" and len(head) == 10:
            size = 0
            for byte in head[6:10]:  # "syncsafe" integer: 7 bits per byte
                size = (size << 7) | (byte & 0x7F)
            handle.seek(10 + size + (10 if head[5] & 0x10 else 0))
        else:
            handle.seek(0)
        first_frame = handle.read(200)
    return any(tag in first_frame for tag in (b"Xing", b"Info", b"VBRI"))
