"""On-disk cache of computed features, so that a second epoch or a second experiment skips decoding.

An entry is keyed by the audio file's identity (resolved path, size and mtime in nanoseconds, or
a SHA-256 of its content with ``content_hash=True``), by the feature spec (canonical JSON) and by
:data:`FEATURE_VERSION`; changing any of them computes afresh. Entries are plain ``.npy`` files read
with ``allow_pickle=False`` and written atomically (temporary file, then ``os.replace``), so any
number of worker processes may fill the same cache: racing writers store equal arrays and readers
never see half a file. An unreadable entry is deleted and computed again.

Layout: ``<root>/<first 2 hex digits of the key>/<64 hex digit key>.npy``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from genrekit.data.identity import file_identity
from genrekit.errors import OutputError
from genrekit.utils import atomic_write, cache_root

logger = logging.getLogger(__name__)

#: Bump when a feature's output changes for the same spec, so that old entries are not reused.
FEATURE_VERSION = "2"


_ENTRY = re.compile(r"^[0-9a-f]{64}\.npy$")


_SHARD = re.compile(r"^[0-9a-f]{2}$")


@dataclass(frozen=True)
class CacheInfo:
    """What a cache folder holds.

    Attributes
    ----------
    root : Path
    entries : int
        Number of cached arrays.
    size_bytes : int
        Bytes they take.
    """

    root: Path
    entries: int
    size_bytes: int


def default_cache_dir() -> Path:
    """The default feature cache folder.

    Returns
    -------
    Path
        ``genrekit.utils.cache_root() / "features"`` (``$GENREKIT_CACHE_DIR`` moves it).
    """
    return cache_root() / "features"


class FeatureCache:
    """Feature arrays on disk, keyed by audio file and feature spec.

    Parameters
    ----------
    root : str or Path, optional
        Cache folder; default :func:`default_cache_dir`. Created on first write.
    content_hash : bool
        Identify files by the SHA-256 of their bytes instead of path, size and mtime: survives
        moves and ``touch``, catches rewrites within one mtime tick, but reads the whole file on
        every lookup (twice on a miss, to notice a change during the computation).
    version : str
        Feature version mixed into every key; default :data:`FEATURE_VERSION`.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np, soundfile as sf
    >>> folder = tempfile.mkdtemp()
    >>> song = os.path.join(folder, "song.wav")
    >>> sf.write(song, np.zeros(22050, np.float32), 22050)
    >>> cache = FeatureCache(os.path.join(folder, "cache"))  # default: ~/.cache/genrekit/features
    >>> spec = {"name": "mfcc", "n_mfcc": 20, "sr": 22050}
    >>> cache.get_or_compute(song, spec, lambda: np.ones((20, 44))).shape  # computed and stored
    (20, 44)
    >>> cache.get(song, spec).shape  # read back
    (20, 44)
    """

    def __init__(self, root: str | Path | None = None, *, content_hash: bool = False, version: str = FEATURE_VERSION):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.content_hash = content_hash
        self.version = version
        self._write_failed = False

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r}, content_hash={self.content_hash})"

    def key(self, path: str | Path, spec: dict) -> str:
        """Hex SHA-256 naming the entry for ``path`` computed with ``spec``.

        Parameters
        ----------
        path : str or Path
            The audio file.
        spec : dict
            What was computed from it (feature spec, rate, windows): JSON-able.

        Returns
        -------
        str
            64 hex digits.

        Raises
        ------
        AudioMissingError
            If ``path`` does not exist.
        TypeError
            If ``spec`` is not JSON-serialisable.
        """
        return _digest(file_identity(path, content_hash=self.content_hash), spec, self.version)

    def entry_path(self, key: str) -> Path:
        """Where the entry named ``key`` lives.

        Parameters
        ----------
        key : str
            What :meth:`key` returned.

        Returns
        -------
        Path
            ``root/<first two hex digits>/<key>.npy``.
        """
        return self.root / key[:2] / f"{key}.npy"

    def get(self, path: str | Path, spec: dict) -> np.ndarray | None:
        """The cached array, or ``None`` if absent (or corrupt, in which case it is deleted).

        Parameters
        ----------
        path : str or Path
            The audio file.
        spec : dict
            What was computed from it.

        Returns
        -------
        np.ndarray or None
        """
        return self._load(self.entry_path(self.key(path, spec)))

    def put(self, path: str | Path, spec: dict, array: np.ndarray) -> None:
        """Store ``array`` for ``path`` and ``spec`` (numeric arrays only: no pickled objects).

        Parameters
        ----------
        path : str or Path
            The audio file.
        spec : dict
            What was computed from it.
        array : np.ndarray
            Numeric; a failed write is reported once and otherwise ignored.
        """
        self._store(self.entry_path(self.key(path, spec)), array)

    def get_or_compute(self, path: str | Path, spec: dict, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """The cached array for ``path`` and ``spec``, or ``compute()``'s result, stored.

        If the file changes while ``compute`` runs, the result is returned but not stored, since it
        may belong to either version of the file.

        Parameters
        ----------
        path : str or Path
            The audio file.
        spec : dict
            What ``compute`` computes from it.
        compute : callable
            Takes no arguments (use a lambda or :func:`functools.partial`), returns an array.

        Returns
        -------
        np.ndarray
        """
        identity = file_identity(path, content_hash=self.content_hash)
        entry = self.entry_path(_digest(identity, spec, self.version))
        cached = self._load(entry)
        if cached is not None:
            return cached
        array = np.asarray(compute())
        if file_identity(path, content_hash=self.content_hash) == identity:
            self._store(entry, array)
        return array

    def info(self) -> CacheInfo:
        """What the cache holds now.

        Returns
        -------
        CacheInfo
        """
        entries = list(self._entries())
        return CacheInfo(self.root, len(entries), sum(_size(entry) for entry in entries))

    def clear(self) -> int:
        """Delete every entry (and leftover temporary files).

        Only files named like cache entries are touched, so a mistaken ``root`` loses nothing else.

        Returns
        -------
        int
            How many entries went.
        """
        removed = 0
        for entry in self._entries():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
        for shard in self._shards():
            for leftover in shard.glob(".*.npy.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    leftover.unlink()
            with contextlib.suppress(OSError):  # not empty: someone else's file, leave it
                shard.rmdir()
        return removed

    def _load(self, entry: Path) -> np.ndarray | None:
        try:
            return np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (ValueError, OSError, EOFError):  # truncated, garbage or pickled: recompute
            with contextlib.suppress(OSError):
                entry.unlink()
            return None

    def _store(self, entry: Path, array: np.ndarray) -> None:
        array = np.asarray(array)
        if array.dtype.hasobject:
            raise TypeError(f"cannot cache an array of dtype {array.dtype}: only numeric arrays")
        try:
            with atomic_write(entry, "wb", parents=True) as handle:
                np.save(handle, array, allow_pickle=False)
        except (OSError, OutputError) as exc:  # a full or read-only cache must not stop the computation
            if not self._write_failed:
                logger.warning(f"feature cache {self.root} not written ({getattr(exc, 'strerror', None) or exc}); "
                               "computing without it")
                self._write_failed = True

    def _shards(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        return [shard for shard in self.root.iterdir() if _SHARD.match(shard.name) and shard.is_dir()]

    def _entries(self):
        for shard in self._shards():
            for entry in shard.iterdir():
                if _ENTRY.match(entry.name) and entry.name.startswith(shard.name):
                    yield entry


def _digest(identity: dict, spec: dict, version: str) -> str:
    try:
        payload = json.dumps(
            {"file": identity, "spec": spec, "version": version}, sort_keys=True, separators=(",", ":")
        )
    except TypeError as exc:
        raise TypeError(f"feature spec must be JSON-serialisable: {exc}") from None
    return hashlib.sha256(payload.encode()).hexdigest()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
