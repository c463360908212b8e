"""Which files a Ray run reads: local paths, folders and globs, ``pyarrow.fs`` URIs and
``--files-from`` lists (text, CSV or Parquet); their fingerprints for resuming."""

from __future__ import annotations

import os
from typing import Iterable

from genrekit.data.embed import file_fingerprint
from genrekit.errors import UsageError
from genrekit.inference.batch import collect_audio_files


#: Longest file name (one path component) and longest path Linux takes, in bytes.
NAME_MAX, PATH_MAX = 255, 4095


def is_uri(path: str) -> bool:
    return "://" in str(path)


def name_problem(path: str) -> str | None:
    """Why ``path`` cannot name a file, seen without touching the disk (a list entry is not
    looked at before its decoding task): a NUL byte, or a name longer than the system takes."""
    if "\x00" in path:
        return "not a file name (it holds a NUL byte)"
    raw = os.fsencode(path)
    if len(raw) > PATH_MAX or any(len(part) > NAME_MAX for part in raw.split(b"/")):
        return f"file name too long (a name may have {NAME_MAX} bytes, a path {PATH_MAX})"
    return None


def read_file_list(list_path: str) -> list[str]:
    """Paths from ``--files-from``: a text file (one per line; blank and ``#`` lines skipped), a
    CSV (its ``path`` column if the first row names one, else the first column of every row) or
    Parquet (its ``path`` column, else the first). Relative paths are relative to the list's own
    folder; URIs are kept. The list itself may be a URI.
    """
    import csv
    import io

    suffix = os.path.splitext(str(list_path).lower())[1]
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            with open_input(list_path) as stream:
                table = pq.read_table(stream)
            column = "path" if "path" in table.column_names else table.column_names[0]
            entries = [str(p) for p in table[column].to_pylist() if p]
        else:
            with open_input(list_path) as stream:
                # a name that is not UTF-8 stays the bytes it is, as os.fsdecode gives it
                text = stream.read().decode("utf-8-sig", "surrogateescape")
            if suffix in (".csv", ".tsv"):
                rows = [row for row in csv.reader(io.StringIO(text), delimiter="\t" if suffix == ".tsv" else ",")
                        if row]
                index = 0
                if rows and "path" in [cell.strip().lower() for cell in rows[0]]:
                    index = [cell.strip().lower() for cell in rows[0]].index("path")
                    rows = rows[1:]
                entries = [row[index].strip() for row in rows if len(row) > index and row[index].strip()]
            else:
                entries = [line.strip() for line in text.splitlines()
                           if line.strip() and not line.lstrip().startswith("#")]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"--files-from {list_path}: cannot read the list ({exc})") from None
    if is_uri(list_path):
        return entries
    base = os.path.dirname(os.path.abspath(list_path))
    return [e if is_uri(e) or os.path.isabs(e) else os.path.normpath(os.path.join(base, e)) for e in entries]


def open_input(path: str):
    """A binary file (random access) of a local path or a ``pyarrow.fs`` URI."""
    if not is_uri(path):
        return open(path, "rb")
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)


def list_uri(uri: str, recursive: bool = True) -> list[tuple[str, str | None]]:
    """``(uri, problem)`` pairs for a ``pyarrow.fs`` URI: the file, or a folder's audio files."""
    from pyarrow import fs

    from genrekit.audio.decode import AUDIO_EXTENSIONS

    try:
        filesystem, inner = fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(inner)
    except (OSError, ValueError) as exc:
        return [(uri, f"cannot open ({exc})")]
    if info.type == fs.FileType.NotFound:
        return [(uri, "file not found")]
    if info.type != fs.FileType.Directory:
        return [(uri, None)]
    prefix = uri[: uri.index("://") + 3]
    if prefix == "file://" and not inner.startswith("/"):
        inner = "/" + inner
    found = filesystem.get_file_info(fs.FileSelector(inner, recursive=recursive))
    return [(prefix + f.path.lstrip("/") if prefix != "file://" else prefix + f.path, None)
            for f in sorted(found, key=lambda f: f.path)
            if f.type == fs.FileType.File and os.path.splitext(f.path)[1].lower() in AUDIO_EXTENSIONS
            and not os.path.basename(f.path).startswith(".")]


def list_files(inputs: Iterable[str], files_from: str | None = None, recursive: bool = True) -> list[tuple[str, str | None]]:
    """The ``(path, problem)`` pairs of a Ray run: inputs expanded as by ``genrekit predict``
    (URIs through ``pyarrow.fs``), then the entries of ``files_from`` as they are."""
    found: list[tuple[str, str | None]] = []
    local: list[str] = []
    for item in inputs:
        if is_uri(item):
            found += list(collect_audio_files(local, recursive=recursive)) + list_uri(item, recursive)
            local = []
        else:
            local.append(item)
    found += collect_audio_files(local, recursive=recursive)
    if files_from:
        found += [(entry, name_problem(entry)) for entry in read_file_list(files_from)]
    return found


def fingerprint(path: str) -> str | None:
    """Size and modification time of a local file or URI (``None`` if it cannot be seen)."""
    if not is_uri(path):
        return file_fingerprint(path)
    from pyarrow import fs

    try:
        filesystem, inner = fs.FileSystem.from_uri(path)
        info = filesystem.get_file_info(inner)
    except (OSError, ValueError):
        return None
    if info.type != fs.FileType.File:
        return None
    return f"{info.size}-{info.mtime_ns or 0}"
