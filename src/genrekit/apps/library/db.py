"""The library database (SQLite, WAL): stored predictions per file and model, and the journal of
genre-tag changes that ``genrekit tag --undo`` restores from.
"""

from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from genrekit.data.identity import file_fingerprint, file_sha256
from genrekit.errors import GenrekitError
from genrekit.utils import utf8_json, utf8_text

DEFAULT_DB_NAME = ".genrekit.sqlite"


SCHEMA_VERSION = 2  # 2: files.fingerprint


_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path        TEXT NOT NULL,      -- relative to the database's folder when inside it
    model_id    TEXT NOT NULL,
    size        INTEGER NOT NULL,   -- bytes
    mtime_ns    INTEGER NOT NULL,
    sha256      TEXT,               -- of the file bytes; NULL when hashing is off
    fingerprint TEXT,               -- file_fingerprint(sampled=True): size + hash of first and last blocks
    status      TEXT NOT NULL CHECK (status IN ('ok', 'error')),
    result      TEXT,               -- prediction as JSON (status ok)
    error       TEXT,               -- one-line message (status error)
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (path, model_id)
);
CREATE INDEX IF NOT EXISTS files_by_content ON files (model_id, size, sha256);
CREATE TABLE IF NOT EXISTS tag_batches (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at  TEXT NOT NULL,
    model_id    TEXT,
    undone_at   TEXT
);
CREATE TABLE IF NOT EXISTS tag_changes (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    batch_id    INTEGER NOT NULL REFERENCES tag_batches (id),
    path        TEXT NOT NULL,
    previous    TEXT,               -- JSON list of the genre values before, NULL if there was no tag
    new         TEXT,               -- JSON list written, NULL if the tag was removed
    state       TEXT NOT NULL CHECK (state IN ('pending', 'applied', 'failed', 'undone')),
    error       TEXT,
    changed_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS tag_changes_by_batch ON tag_changes (batch_id);
"""


#: Columns every genrekit library database has had in its ``files`` table (schema 1 on).
_FILES_COLUMNS = frozenset({"path", "model_id", "size", "mtime_ns", "sha256", "status", "result", "error"})


def _one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.startswith("***")] or [text]
    return lines[0] + (f" ... and {len(lines) - 1} more problems" if len(lines) > 1 else "")


class LibraryDBError(GenrekitError):
    """The library database cannot be opened or is not a genrekit database."""


def _open_error(path: Path, exc: Exception) -> LibraryDBError:
    if isinstance(exc, LibraryDBError):
        return exc
    if isinstance(exc, sqlite3.OperationalError):  # read-only folder, locked, no space
        return LibraryDBError(f"{path}: cannot use library database ({exc}); --db PATH puts it elsewhere")
    if isinstance(exc, sqlite3.Error):
        return LibraryDBError(f"{path}: not a usable genrekit library database ({exc})")
    reason = getattr(exc, "strerror", None) or exc
    return LibraryDBError(f"{path}: cannot use library database ({reason}); --db PATH puts it elsewhere")


def _check_database_path(path: Path) -> None:
    """A database is a regular file in an existing folder: a FIFO, a device or a folder there,
    or a missing folder, is refused before SQLite touches it (it would replace or hang on it)."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        folder = Path(os.path.realpath(path)).parent
        if not folder.is_dir():
            raise LibraryDBError(f"{path}: folder {folder} does not exist") from None
        return
    if not stat.S_ISREG(mode):
        raise LibraryDBError(f"{path}: not a regular file, so not a library database")


@dataclass(frozen=True)
class LibraryEntry:
    """One stored row of the ``files`` table, as found on disk at lookup time."""

    path: Path
    model_id: str
    size: int
    mtime_ns: int
    sha256: str | None
    status: str  # "ok" or "error"
    result: dict | None
    error: str | None
    updated_at: str
    fingerprint: str | None = None


@dataclass(frozen=True)
class TagRecord:
    """One file's entry in a tag batch. ``previous``/``new`` are ``None`` where the tag is absent."""

    id: int
    batch_id: int
    path: Path
    previous: list[str] | None
    new: list[str] | None
    state: str  # pending, applied, failed, undone
    error: str | None
    changed_at: str


def default_db_path(library: str | os.PathLike) -> Path:
    """``<library>/.genrekit.sqlite`` for a folder, or beside the file for a single file."""
    library = Path(library)
    folder = library if library.is_dir() else library.parent
    return folder / DEFAULT_DB_NAME


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LibraryDB:
    """Prediction results and tag history of one music library.

    Parameters
    ----------
    path : str or PathLike
        The SQLite file; created if missing (its folder must exist).
    hash_files : bool
        Record the SHA-256 of each file when storing a result (default True). The hash lets a
        renamed or touched file reuse its result; it costs one extra read of the file, which is
        small next to decoding it. Lookups of unchanged files never hash.
    timeout : float
        Seconds to wait for another process holding the write lock.
    """

    def __init__(self, path: str | os.PathLike, *, hash_files: bool = True, timeout: float = 30.0):
        self.path = Path(path)
        self.root = Path(os.path.abspath(self.path.parent))
        self.hash_files = hash_files
        self._conn = None
        try:
            _check_database_path(self.path)
            # autocommit mode: every statement outside an explicit BEGIN commits at once
            self._conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._conn.row_factory = sqlite3.Row
            self._setup()
        except (sqlite3.Error, OSError) as exc:
            self._close_quietly()
            raise _open_error(self.path, exc) from exc
        except BaseException:
            self._close_quietly()
            raise

    def _close_quietly(self) -> None:
        """Close a connection that is given up on, so no -wal or -shm file stays beside the file."""
        if self._conn is not None:
            self._conn.close()

    def _setup(self) -> None:
        conn = self._conn
        self._check_existing()  # before anything is written: a foreign or damaged file stays as it is
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed result survives a power cut too, not only a killed process
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
        # schema 1 had no fingerprint: its rows are checked by content once, then re-keyed
        upgrade = "ALTER TABLE files ADD COLUMN fingerprint TEXT;" if columns and "fingerprint" not in columns else ""
        conn.executescript(f"BEGIN; {upgrade} {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")

    def _check_existing(self) -> None:
        """Refuse, by reading only, a damaged database or a SQLite file genrekit did not make.

        An empty file (or one SQLite left without any table) is a new database. Anything else
        must pass ``PRAGMA integrity_check`` and hold genrekit's ``files`` table under a schema
        version genrekit knows, or nothing is written to it (not even the switch to WAL mode).
        """
        conn = self._conn
        try:
            problem = conn.execute("PRAGMA integrity_check").fetchone()[0]
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # too damaged to be checked, or not SQLite at all
            if str(exc) == "file is not a database":
                raise
            problem = str(exc)
        if problem != "ok":
            raise LibraryDBError(f"{self.path}: library database is damaged ({_one_line(problem)});"
                                 " nothing was changed; restore it from a backup or use --db NEW_PATH")
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        has_objects = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
        columns = {row[1] for row in conn.execute("PRAGMA table_info(files)")}
        foreign = has_objects and not _FILES_COLUMNS <= columns
        if version > SCHEMA_VERSION and not foreign:
            raise LibraryDBError(
                f"{self.path}: written by a newer genrekit (schema {version} > {SCHEMA_VERSION})"
            )
        if foreign or (has_objects and version < 1):
            raise LibraryDBError(f"{self.path}: a SQLite database, but not a genrekit library database;"
                                 " left unchanged (--db PATH chooses another file)")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LibraryDB:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- paths ------------------------------------------------------------------------------

    def _key(self, path: str | os.PathLike) -> str | bytes:
        """The stored key of ``path``: text, or for a name that is not UTF-8 its exact bytes (a
        BLOB; SQLite text must be UTF-8), so such files are found, stored and undone too."""
        absolute = Path(os.path.abspath(path))
        try:
            key = absolute.relative_to(self.root).as_posix()
        except ValueError:
            key = str(absolute)
        try:
            key.encode("utf-8")
        except UnicodeEncodeError:
            return os.fsencode(key)
        return key

    def _resolve(self, key: str | bytes) -> Path:
        key = os.fsdecode(key)
        return Path(key) if os.path.isabs(key) else self.root / key

    # -- predictions ------------------------------------------------------------------------

    def entry(self, path: str | os.PathLike, model_id: str) -> LibraryEntry | None:
        """The stored row for ``path`` and ``model_id`` whether or not it is still valid."""
        row = self._conn.execute(
            "SELECT * FROM files WHERE path = ? AND model_id = ?", (self._key(path), model_id)
        ).fetchone()
        return None if row is None else self._entry(row)

    def _entry(self, row: sqlite3.Row) -> LibraryEntry:
        return LibraryEntry(
            path=self._resolve(row["path"]),
            model_id=row["model_id"],
            size=row["size"],
            mtime_ns=row["mtime_ns"],
            sha256=row["sha256"],
            status=row["status"],
            result=None if row["result"] is None else json.loads(row["result"]),
            error=row["error"],
            updated_at=row["updated_at"],
            fingerprint=row["fingerprint"],
        )

    def lookup(self, path: str | os.PathLike, model_id: str) -> dict | None:
        """The stored prediction of ``path`` by ``model_id``, or None if it must be (re)computed.

        A result is valid while the file's size, mtime and sampled
        :func:`~genrekit.data.identity.file_fingerprint` (size and hash of the first and last
        64 KiB) match what was stored. When they do
        not, or when the path is unknown, the file is hashed once and a stored result for the
        same bytes (a touched, renamed or moved file) is reused and re-keyed to the file as it is
        now. Errors are not returned, so failed files are retried.
        """
        try:
            stat = os.stat(path)
        except OSError:
            return None
        entry = self.entry(path, model_id)
        if (entry is not None and (entry.size, entry.mtime_ns) == (stat.st_size, stat.st_mtime_ns)
                and entry.fingerprint is not None and entry.fingerprint == file_fingerprint(path, sampled=True)):
            return self._as_result(entry, path)
        return self._lookup_by_content(path, model_id, stat, entry)

    def _lookup_by_content(self, path, model_id, stat, entry) -> dict | None:
        if entry is not None and entry.sha256 is None:
            return None
        candidates = self._conn.execute(
            "SELECT * FROM files WHERE model_id = ? AND size = ? AND sha256 IS NOT NULL"
            " AND status = 'ok'",
            (model_id, stat.st_size),
        ).fetchall()
        if not candidates:
            return None
        sha256 = file_sha256(path)
        for row in candidates:
            if row["sha256"] == sha256:
                found = self._entry(row)
                result = self._as_result(found, path)
                self._upsert(path, model_id, stat, sha256, "ok", result, None)
                return result
        return None

    @staticmethod
    def _as_result(entry: LibraryEntry, path) -> dict | None:
        if entry.status != "ok" or entry.result is None:
            return None
        return {**entry.result, "path": str(path)}

    def store(self, path: str | os.PathLike, model_id: str, result: dict) -> None:
        """Record ``result`` (a JSON-able prediction dict) for ``path`` as it is on disk now."""
        stat = os.stat(path)
        self._upsert(path, model_id, stat, self._hash(path), "ok", result, None)

    def store_error(self, path: str | os.PathLike, model_id: str, message: str) -> None:
        """Record that predicting ``path`` failed with ``message`` (kept for reports; retried)."""
        try:
            stat = os.stat(path)
        except OSError:
            return  # a vanished file has no identity to record
        self._upsert(path, model_id, stat, None, "error", None, message)

    def _hash(self, path) -> str | None:
        return file_sha256(path) if self.hash_files else None

    def _upsert(self, path, model_id, stat, sha256, status, result, error) -> None:
        now = _now()
        self._conn.execute(
            "INSERT INTO files (path, model_id, size, mtime_ns, sha256, fingerprint, status, result,"
            " error, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (path, model_id) DO UPDATE SET size = excluded.size,"
            " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
            " fingerprint = excluded.fingerprint, status = excluded.status,"
            " result = excluded.result, error = excluded.error, updated_at = excluded.updated_at",
            (
                self._key(path), model_id, stat.st_size, stat.st_mtime_ns, sha256,
                file_fingerprint(path, sampled=True), status,
                None if result is None else utf8_json(json.dumps(result, ensure_ascii=False, allow_nan=False)),
                None if error is None else utf8_text(error), now, now,
            ),
        )

    def refresh_identity(self, path: str | os.PathLike, before: os.stat_result) -> int:
        """Re-key stored results of ``path`` after a change that kept its audio (a tag write).

        Only rows that were valid for the file as it was (``before``, its stat before the change)
        are updated, so a result that was already stale stays stale. Returns the number of rows.
        """
        stat = os.stat(path)
        cursor = self._conn.execute(
            "UPDATE files SET size = ?, mtime_ns = ?, sha256 = ?, fingerprint = ?, updated_at = ?"
            " WHERE path = ? AND size = ? AND mtime_ns = ?",
            (
                stat.st_size, stat.st_mtime_ns, self._hash(path), file_fingerprint(path, sampled=True), _now(),
                self._key(path), before.st_size, before.st_mtime_ns,
            ),
        )
        return cursor.rowcount

    def entries(self, model_id: str | None = None) -> list[LibraryEntry]:
        """All stored rows (of one model if given), ordered by path."""
        if model_id is None:
            rows = self._conn.execute("SELECT * FROM files ORDER BY path, model_id")
        else:
            rows = self._conn.execute(
                "SELECT * FROM files WHERE model_id = ? ORDER BY path", (model_id,)
            )
        return [self._entry(row) for row in rows]

    # -- tag history ------------------------------------------------------------------------

    def begin_tag_batch(self, model_id: str | None = None) -> int:
        """Start a batch of tag writes; returns its id (1, 2, ...)."""
        cursor = self._conn.execute(
            "INSERT INTO tag_batches (created_at, model_id) VALUES (?, ?)", (_now(), model_id)
        )
        return cursor.lastrowid

    def record_tag_intent(
        self, batch_id: int, path: str | os.PathLike, previous: list[str] | None, new: list[str] | None
    ) -> int:
        """Record a tag change BEFORE the file is touched; returns the change id.

        Writing the intent first means a crash between the file write and
        :meth:`finish_tag_change` still leaves what is needed to undo it.
        """
        cursor = self._conn.execute(
            "INSERT INTO tag_changes (batch_id, path, previous, new, state, changed_at)"
            " VALUES (?, ?, ?, ?, 'pending', ?)",
            (batch_id, self._key(path), _json_or_null(previous), _json_or_null(new), _now()),
        )
        return cursor.lastrowid

    def finish_tag_change(self, change_id: int, state: str, error: str | None = None) -> None:
        """Mark a recorded change ``applied``, ``failed`` (with ``error``) or ``undone``."""
        self._conn.execute(
            "UPDATE tag_changes SET state = ?, error = ?, changed_at = ? WHERE id = ?",
            (state, None if error is None else utf8_text(error), _now(), change_id),
        )

    def last_tag_batch(self) -> int | None:
        """Id of the most recent batch that changed files and is not undone yet, or None."""
        row = self._conn.execute(
            "SELECT b.id FROM tag_batches b WHERE b.undone_at IS NULL AND EXISTS ("
            " SELECT 1 FROM tag_changes c WHERE c.batch_id = b.id"
            " AND c.state IN ('pending', 'applied')) ORDER BY b.id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else row[0]

    def tag_batch_exists(self, batch_id: int) -> bool:
        query = "SELECT 1 FROM tag_batches WHERE id = ?"
        return self._conn.execute(query, (batch_id,)).fetchone() is not None

    def tag_changes(self, batch_id: int) -> list[TagRecord]:
        """The changes of one batch in the order they were made."""
        rows = self._conn.execute(
            "SELECT * FROM tag_changes WHERE batch_id = ? ORDER BY id", (batch_id,)
        )
        return [
            TagRecord(
                id=row["id"], batch_id=row["batch_id"], path=self._resolve(row["path"]),
                previous=_list_or_none(row["previous"]), new=_list_or_none(row["new"]),
                state=row["state"], error=row["error"], changed_at=row["changed_at"],
            )
            for row in rows
        ]

    def mark_batch_undone(self, batch_id: int) -> None:
        self._conn.execute("UPDATE tag_batches SET undone_at = ? WHERE id = ?", (_now(), batch_id))

    # -- plumbing ---------------------------------------------------------------------------

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"`` for a sound database."""
        return self._conn.execute("PRAGMA integrity_check").fetchone()[0]


def _json_or_null(values: list[str] | None) -> str | None:
    return None if values is None else utf8_json(json.dumps(list(values), ensure_ascii=False, allow_nan=False))


def _list_or_none(text: str | None) -> list[str] | None:
    return None if text is None else json.loads(text)
