"""What identifies a file: the one place that computes file keys, for the feature cache
(:func:`file_identity`), feature tables and Ray resuming (:func:`file_fingerprint`) and the
library database (:func:`file_fingerprint` with ``sampled=True``, :func:`file_sha256`).

The keys are stored on disk (cache entry names, Parquet ``fingerprint`` columns, database rows):
their formats must not change, or stored results stop matching their files.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from genrekit.errors import AudioMissingError

#: Bytes read from each end of a file for a sampled fingerprint.
FINGERPRINT_BLOCK = 64 * 1024


HASH_CHUNK = 1 << 20  # 1 MiB


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes, read in 1 MiB chunks (bounded memory).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
        64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_identity(path: str | os.PathLike, *, content_hash: bool = False) -> dict:
    """What identifies the file's content for the feature cache.

    Parameters
    ----------
    path : str or os.PathLike
    content_hash : bool, default False
        Identify the file by its bytes (survives moves and ``touch``) rather than by its path,
        size and modification time (no read).

    Returns
    -------
    dict
        ``{"path": resolved path, "size": bytes, "mtime_ns": int}``, or with ``content_hash``
        ``{"size": bytes, "sha256": hex}`` (independent of where the file lives).

    Raises
    ------
    AudioMissingError
        No such file (or a folder).
    """
    path = Path(path)
    try:
        stat = path.stat()
        if not content_hash:
            return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        digest = file_sha256(path)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise AudioMissingError(path) from None
    return {"size": stat.st_size, "sha256": digest}


def file_fingerprint(path: str | os.PathLike, *, sampled: bool = False) -> str | None:
    """A short text key of a file's content; None when the file cannot be read.

    Parameters
    ----------
    path : str or PathLike
    sampled : bool
        False: ``"<size>-<mtime_ns>"`` (feature tables and Ray outputs: what resuming compares).
        True: ``"<size>:<32 hex digits>"``, a SHA-256 of the first and last
        :data:`FINGERPRINT_BLOCK` bytes (128 KiB read at most, whatever the file's size): it tells
        apart files of the same size and mtime (a file replaced by another recording with its
        mtime restored), which the size and mtime alone cannot; audio data changes in every
        block, and tags live at the start or the end (the library database).

    Returns
    -------
    str or None
        The key; None when the file cannot be read.
    """
    try:
        if not sampled:
            stat = os.stat(path)
            return f"{stat.st_size}-{stat.st_mtime_ns}"
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            digest.update(handle.read(FINGERPRINT_BLOCK))
            if size > FINGERPRINT_BLOCK:
                handle.seek(max(FINGERPRINT_BLOCK, size - FINGERPRINT_BLOCK))
                digest.update(handle.read(FINGERPRINT_BLOCK))
    except (OSError, ValueError):
        return None
    return f"{size}:{digest.hexdigest()[:32]}"
