"""Genre tags in audio files: read them, plan changes from predictions, write them safely, undo.

Each format keeps its genre its own way (:mod:`.tag_formats`: ID3, Vorbis comments, MP4, APEv2,
ASF); the text written for a label comes from :mod:`.genre_names`, or a genre map, which can
also exclude labels. Writing never edits a file in place: the file
is copied beside itself, the copy is tagged with mutagen, flushed to disk and moved over the
original with ``os.replace``, so a crash or a full disk leaves either the old file or the new
one, never a broken one. Other tags and the audio data are untouched.

A write batch records each file's previous genre values in the library database *before*
touching it (see :class:`genrekit.apps.library.db.LibraryDB`), which is what :func:`undo_tag_batch`
restores.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

import mutagen

from genrekit.apps.library.db import LibraryDB
from genrekit.apps.library.genre_names import GENRE_NAMES, GenreMap, genre_tag_value, style_tag_value
from genrekit.apps.library.tag_formats import (
    TagError,
    TaggingNotSupportedError,
    get_genres,
    open_tags,
    save_tags,
    set_genres,
)
from genrekit.errors import (
    AudioError,
    AudioMissingError,
    GenrekitError,
    UsageError,
)
from genrekit.utils import printable


#: Plan actions. Only ``write`` changes a file; the others say why a file is left alone
#: (``excluded``: the genre map says never to write the predicted label).
WRITE, UNCHANGED, KEEP_EXISTING, LOW_CONFIDENCE, FAILED, UNSUPPORTED, EXCLUDED = (
    "write", "unchanged", "keep-existing", "low-confidence", "failed", "unsupported", "excluded",
)

#: Outcomes after applying or undoing.
WRITTEN, RESTORED, CHANGED_SINCE = "written", "restored", "changed-since"


class ReadOnlyFileError(TagError):
    cause = "file is read-only; not tagged"


class TagConflictError(TagError):
    cause = "genre tag changed since the changes were planned; not tagged"


@dataclass(frozen=True)
class TagChange:
    """What happens (or happened) to one file's genre tag.

    ``old`` is the genre values in the file (``[]`` when there is no genre tag), ``new`` the
    values to write (``None`` removes the tag). ``action`` is one of the plan actions
    (``write``, ``unchanged``, ``keep-existing``, ``low-confidence``, ``failed``,
    ``unsupported``) or an outcome (``written``, ``restored``, ``changed-since``, ``failed``);
    ``reason`` explains a failure or skip.
    """

    path: Path
    old: list[str]
    new: list[str] | None
    action: str
    label: str | None = None
    confidence: float | None = None
    reason: str | None = None


def read_genres(path: str | os.PathLike) -> list[str]:
    """The genre values stored in ``path``, ``[]`` when it has no genre tag.

    ID3 values are returned as stored (a legacy ``"(17)"`` stays ``"(17)"``) so that an undo can
    put back exactly what was there. Raises :class:`TaggingNotSupportedError` for formats
    without genre tag support and an :class:`~genrekit.errors.AudioError` for missing or
    unreadable files.
    """
    return get_genres(open_tags(path))


#: A style that names another of the model's genres (the MSD tag "jazz" for a GTZAN model) is
#: written beside the predicted genre only when the model itself gives that genre at least this
#: probability: a clip predicted classical at 99.7 % gets no "Jazz" from a jazz tag at 0.24,
#: while a blues / jazz toss-up (39 % / 35 %) keeps both.
OTHER_GENRE_STYLE_MIN_PROBABILITY = 0.25


def plan_tag_changes(
    predictions: Iterable[dict],
    *,
    min_confidence: float = 0.5,
    keep_existing: bool = True,
    styles: bool = False,
    genre_map: GenreMap | None = None,
    genres: Iterable[str] | None = None,
) -> list[TagChange]:
    """Decide, for each prediction, whether and how to change the file's genre tag.

    Parameters
    ----------
    predictions : iterable of dict
        Prediction records ``{"path", "genre", "confidence", ...}`` or ``{"path", "error"}``.
    min_confidence, keep_existing, styles, genre_map, genres
        The rules of :func:`decide_genres`.

    Returns
    -------
    list of TagChange
        One per prediction, in input order; only those with ``action == "write"`` change a file.
        Reading the current tags is the only file access; nothing is written.
    """
    return [
        _plan_one(prediction, min_confidence=min_confidence, keep_existing=keep_existing, styles=styles,
                  genre_map=genre_map, genres=genres)
        for prediction in predictions
    ]


def _plan_one(prediction: dict, **rules) -> TagChange:
    path = Path(prediction["path"])
    if "error" in prediction:
        return TagChange(path, [], None, FAILED, reason=str(prediction["error"]))
    label, confidence = prediction.get("genre"), prediction.get("confidence")
    if confidence is not None and not _is_finite_number(confidence):
        # NaN < min_confidence is False: such a number must never let a tag be written
        return TagChange(path, [], None, FAILED, label, None, reason=f"invalid confidence {confidence!r}")
    try:
        old = read_genres(path)
    except TaggingNotSupportedError as exc:
        return TagChange(path, [], None, UNSUPPORTED, label, confidence, reason=str(exc))
    except AudioError as exc:
        return TagChange(path, [], None, FAILED, label, confidence, reason=str(exc))
    new, action, reason = decide_genres(prediction, old, **rules)
    return TagChange(path, old, new, action, label, confidence, reason)


def decide_genres(
    prediction: dict,
    old: list[str],
    *,
    min_confidence: float = 0.5,
    keep_existing: bool = True,
    styles: bool = False,
    genre_map: GenreMap | None = None,
    genres: Iterable[str] | None = None,
) -> tuple[list[str] | None, str, str | None]:
    """The genre values a prediction gives a file that holds ``old``, and whether to write them.

    Parameters
    ----------
    prediction : dict
        A prediction record ``{"genre", "confidence", "not_music", "styles", ...}``.
    old : list of str
        The genre values the file (or a beets item) has now, ``[]`` for none.
    min_confidence : float
        Files predicted with a lower calibrated confidence (0..1) are left alone. Default 0.5.
    keep_existing : bool
        Leave files that already have a genre alone (default). With False their genre values
        are replaced by the prediction.
    styles : bool
        Write the prediction's ``styles`` after the genre as additional genre values, leaving
        out any that repeats the label or a value already in the list (case, spaces and
        punctuation aside: "Hip-Hop" repeats ``hiphop``), and any that names another of the
        model's ``genres`` unless the prediction's ``top`` gives that genre at least
        :data:`OTHER_GENRE_STYLE_MIN_PROBABILITY` (a confident genre is not contradicted).
    genre_map : mapping, optional
        Label or style -> tag text, or None for never (:func:`~.genre_names.load_genre_map`);
        labels it does not name get :func:`~.genre_names.genre_tag_value`'s text.
    genres : iterable of str, optional
        The model's labels (default: the GTZAN genres and those in the prediction's ``top``).

    Returns
    -------
    new : list of str or None
        The values to write (None when there is nothing to write).
    action : str
        ``write``, ``unchanged``, ``low-confidence`` (also for files without a genre: silent or
        not music), ``keep-existing`` or ``excluded`` (the genre map says never for the label).
    reason : str or None
        Why a file without a genre or with an excluded label is left alone.
    """
    label, confidence = prediction.get("genre"), prediction.get("confidence")
    if label is None:  # a silent file, or one that is not music, has no genre to write
        reason = "no genre (not music)" if prediction.get("not_music") else "no genre (silent)"
        return None, LOW_CONFIDENCE, reason
    genre = genre_tag_value(label, genre_map)
    if genre is None:
        return None, EXCLUDED, f"the genre map excludes {label!r}"
    new = [genre]
    unlikely = _unlikely_genres(prediction, label, genres, genre_map) if styles else set()
    for item in (prediction.get("styles") or []) if styles else []:
        value = style_tag_value(str(item["style"]), genre_map)
        # a style that names the genre again ("Hip-Hop" for hiphop, even once mapped to "Hip Hop")
        if value is not None and _spelling(value) not in {_spelling(v) for v in [label, *new]} | unlikely:
            new.append(value)
    if old == new:
        return new, UNCHANGED, None
    if not _is_finite_number(confidence) or confidence < min_confidence:
        return new, LOW_CONFIDENCE, None
    if old and keep_existing:
        return new, KEEP_EXISTING, None
    return new, WRITE, None


def _unlikely_genres(prediction: dict, label: str, genres, genre_map) -> set[str]:
    """Spellings of the model's other genres that its own probabilities do not back (see
    :data:`OTHER_GENRE_STYLE_MIN_PROBABILITY`): a style naming one of them is not written."""
    probability = {item["genre"]: item["probability"] for item in prediction.get("top") or []}
    unlikely = set()
    for genre in set(GENRE_NAMES if genres is None else genres) | set(probability):
        if genre != label and not probability.get(genre, 0.0) >= OTHER_GENRE_STYLE_MIN_PROBABILITY:
            unlikely |= {_spelling(genre), _spelling(genre_tag_value(genre, genre_map) or genre)}
    return unlikely


def _spelling(text: str) -> str:
    """``text`` without case, spaces and punctuation: "Hip-Hop", "hip hop" and "hiphop" are one."""
    return re.sub(r"[\W_]", "", text.casefold())


def _is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def write_genres(path: str | os.PathLike, genres: list[str] | None, *, expected: list[str] | None = None) -> None:
    """Set the genre tag of ``path`` to ``genres`` (``None`` or ``[]`` removes it), atomically.

    The file is copied to a hidden temporary file in its folder, the copy is tagged, flushed
    and moved over the original (through a symbolic link, to its target), keeping the
    permission bits. Other tags and the audio bytes are left as they are; the modification time
    changes, so music players notice the new tag.

    Parameters
    ----------
    expected : list of str, optional
        The genre values the file must still hold; if they differ (someone edited the file
        after the changes were planned) :class:`TagConflictError` is raised and nothing is written.

    Raises
    ------
    ReadOnlyFileError
        The file has no write permission (it is never forced, not even as root).
    TagError
        Hard-linked files, folders that are not writable, full disks and mutagen failures.
    """
    target = Path(os.path.realpath(path))
    info = _check_writable(path, target)
    kind = type(open_tags(target))
    fd, tmp = _temp_file_beside(path, target)
    try:
        _lock(fd)  # held until the copy is in place: a copy nobody holds is stale
        with os.fdopen(os.dup(fd), "wb") as out, open(target, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        copy = kind(tmp)
        if expected is not None and get_genres(copy) != list(expected):
            raise TagConflictError(path, f"it now has {get_genres(copy)!r}")
        set_genres(copy, genres or None)
        save_tags(copy)
        _fsync(tmp)
        _copy_ownership(tmp, info)
        os.replace(tmp, target)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise TagError(path, exc.strerror or str(exc)) from None
        if isinstance(exc, mutagen.MutagenError):
            raise TagError(path, str(exc)) from None
        raise
    finally:
        os.close(fd)
    _fsync_folder(target.parent)


#: Names of :func:`write_genres`' temporary copies: ``.<stem>.<8 random characters>.genrekit-tmp<suffix>``.
TEMP_NAME = re.compile(r"\..*\.[a-z0-9_]{8}\.genrekit-tmp(\.[^./]*)?", re.DOTALL)


#: Without file locks (not POSIX), a copy is taken as stale only when untouched for this long.
STALE_AFTER_SECONDS = 3600


def _lock(fd: int) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: staleness is judged by age
        return
    fcntl.flock(fd, fcntl.LOCK_EX)  # waits at most for a cleaner's test of the lock


def _is_stale(path: str) -> bool:
    """Whether a temporary copy was left by a writer that is gone (killed, crashed, powered off)."""
    try:
        import fcntl
    except ImportError:
        import time

        return time.time() - os.stat(path).st_mtime > STALE_AFTER_SECONDS
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while a writer holds the copy
    except OSError:
        return False
    else:
        return True  # closing ``fd`` releases the lock again
    finally:
        os.close(fd)


def remove_stale_temp_files(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """Remove the hidden copies that killed :func:`write_genres` calls left in ``folder``.

    Only regular files named as :func:`write_genres` names its copies (``.NAME.xxxxxxxx.genrekit-tmp.EXT``)
    and held by no running writer are removed; returns their paths. A file given instead of a
    folder means its folder. Folders that cannot be read are passed over.
    """
    folder = Path(folder)
    if not folder.is_dir():
        folder = folder.parent
    removed = []
    for root, dirs, names in os.walk(folder):
        if not recursive:
            dirs.clear()
        for name in sorted(names):
            path = os.path.join(root, name)
            if not TEMP_NAME.fullmatch(name) or os.path.islink(path) or not os.path.isfile(path):
                continue
            if _is_stale(path):
                try:
                    os.unlink(path)
                except OSError:
                    continue
                removed.append(Path(path))
    return removed


def _check_writable(path, target: Path) -> os.stat_result:
    try:
        info = os.stat(target)
    except FileNotFoundError:
        raise AudioMissingError(path) from None
    if not stat.S_ISREG(info.st_mode):
        raise TagError(path, "not a regular file")
    # a file without any write bit was made read-only on purpose: respect it even as root
    if not info.st_mode & 0o222 or not os.access(target, os.W_OK):
        raise ReadOnlyFileError(path)
    if info.st_nlink > 1:
        raise TagError(path, f"it has {info.st_nlink} hard links, which a safe rewrite would split")
    return info


def _temp_file_beside(path, target: Path) -> tuple[int, str]:
    try:
        # hidden (folder scans skip it) and short enough for a 255-byte name limit
        prefix = f".{target.stem[:40]}."
        return tempfile.mkstemp(prefix=prefix, suffix=f".genrekit-tmp{target.suffix}", dir=target.parent)
    except OSError as exc:
        raise TagError(path, f"cannot create a file in its folder ({exc.strerror})") from None


def _fsync(path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _copy_ownership(tmp: str, info: os.stat_result) -> None:
    os.chmod(tmp, stat.S_IMODE(info.st_mode))
    if hasattr(os, "chown") and (os.stat(tmp).st_uid, os.stat(tmp).st_gid) != (info.st_uid, info.st_gid):
        try:
            os.chown(tmp, info.st_uid, info.st_gid)
        except PermissionError:
            pass  # only root can give a file away; the content matters more than the owner


def apply_tag_change(change: TagChange) -> None:
    """Write one planned change (``action == "write"``) to its file; see :func:`write_genres`."""
    if change.action != WRITE:
        raise ValueError(f"{change.path}: planned action is {change.action!r}, not {WRITE!r}")
    write_genres(change.path, change.new, expected=change.old)


def apply_tag_changes(
    changes: Iterable[TagChange],
    db: LibraryDB | None = None,
    *,
    model_id: str | None = None,
    progress: Callable[[Iterable, str, int], Iterable] | None = None,
) -> tuple[int | None, list[TagChange]]:
    """Write every ``write`` change, one file at a time; a failing file does not stop the batch.

    With ``db``, each file's previous genre values are recorded as a tag batch before the file
    is touched (for :func:`undo_tag_batch`), and the stored predictions of a tagged file are
    re-keyed to its new size and mtime so the next run does not recompute them.

    Returns
    -------
    batch_id : int or None
        The batch recorded in ``db`` (None without ``db`` or when nothing was to be written).
    outcomes : list of TagChange
        The written changes with action ``written`` or ``failed`` (and ``reason``).
    """
    to_write = [change for change in changes if change.action == WRITE]
    _remove_stale_beside(change.path for change in to_write)
    batch_id = db.begin_tag_batch(model_id) if db is not None and to_write else None
    items = progress(to_write, "tagging", len(to_write)) if progress else to_write
    outcomes = []
    for change in items:
        outcomes.append(_apply_recorded(change, db, batch_id))
    return batch_id, outcomes


def _apply_recorded(change: TagChange, db: LibraryDB | None, batch_id: int | None) -> TagChange:
    record_id = None
    try:
        before = os.stat(change.path)
        if db is not None:
            record_id = db.record_tag_intent(batch_id, change.path, change.old or None, change.new)
        apply_tag_change(change)
    except (GenrekitError, OSError) as exc:
        if record_id is not None:
            db.finish_tag_change(record_id, "failed", str(exc))
        return replace(change, action=FAILED, reason=_message(change.path, exc))
    if db is not None:
        db.finish_tag_change(record_id, "applied")
        db.refresh_identity(change.path, before)
    return replace(change, action=WRITTEN)


def undo_tag_batch(
    db: LibraryDB,
    batch_id: int | None = None,
    *,
    progress: Callable[[Iterable, str, int], Iterable] | None = None,
) -> tuple[int, list[TagChange]]:
    """Put back the genre values a tag batch replaced (default: the last batch not undone).

    Files are restored in reverse order, and only where the genre is still what the batch wrote:
    a file whose genre was edited since is left as it is (action ``changed-since``). Tags that
    did not exist before are removed. The batch is marked undone once no file failed.

    Returns
    -------
    batch_id : int
    outcomes : list of TagChange
        ``old`` is the genre found, ``new`` the values put back (None: tag removed); actions are
        ``restored``, ``unchanged`` (the write never happened), ``changed-since`` or ``failed``.
    """
    if batch_id is None:
        batch_id = db.last_tag_batch()
        if batch_id is None:
            raise UsageError(f"{db.path}: no tag batch to undo")
    elif not db.tag_batch_exists(batch_id):
        raise UsageError(f"{db.path}: there is no tag batch {batch_id}")
    records = [r for r in reversed(db.tag_changes(batch_id)) if r.state in ("pending", "applied")]
    _remove_stale_beside(record.path for record in records)
    items = progress(records, "restoring", len(records)) if progress else records
    outcomes = [_undo_one(db, record) for record in items]
    if all(outcome.action != FAILED for outcome in outcomes):
        db.mark_batch_undone(batch_id)
    return batch_id, outcomes


def _undo_one(db: LibraryDB, record) -> TagChange:
    path, previous = record.path, record.previous or []
    try:
        current = read_genres(path)
        if current == previous:
            action = UNCHANGED
        elif current != (record.new or []):
            return TagChange(path, current, record.previous, CHANGED_SINCE,
                             reason=f"genre is now {current!r}, not what the batch wrote; left as is")
        else:
            before = os.stat(path)
            write_genres(path, record.previous, expected=current)
            db.refresh_identity(path, before)
            action = RESTORED
    except (GenrekitError, OSError) as exc:
        return TagChange(path, [], record.previous, FAILED, reason=_message(path, exc))
    db.finish_tag_change(record.id, "undone")
    return TagChange(path, current, record.previous, action)


def _remove_stale_beside(paths: Iterable[Path]) -> None:
    for folder in sorted({Path(os.path.realpath(path)).parent for path in paths}):
        remove_stale_temp_files(folder, recursive=False)


def _message(path, exc: Exception) -> str:
    if isinstance(exc, GenrekitError):
        return str(exc)
    return f"{path}: {getattr(exc, 'strerror', None) or exc}"


def format_tag_table(changes: Iterable[TagChange], root: str | os.PathLike | None = None) -> str:
    """Plain-text table (file, old genre, new genre, confidence, action) for people to review.

    Paths are shown relative to ``root``; reasons for skips and failures follow on their own
    indented line so long messages do not widen the table.
    """
    header = ("File", "Old genre", "New genre", "Confidence", "Action")
    rows, notes = [], []
    for change in changes:
        path = printable(os.path.relpath(change.path, root) if root else change.path)
        confidence = "" if change.confidence is None else f"{change.confidence:.2f}"
        old, new = (printable("; ".join(values or [])) or "-" for values in (change.old, change.new))
        rows.append((path, old, new, confidence, change.action))
        notes.append(change.reason and printable(change.reason))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(header, widths)).rstrip()]
    for row, note in zip(rows, notes):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
        if note:
            lines.append(f"    {note}")
    return "\n".join(lines) + "\n"
