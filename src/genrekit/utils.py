"""Small helpers shared across modules: atomic file writes, progress reporting, terminal-safe text.

Nothing here prints. Library code reports through :mod:`logging` (the ``genrekit`` logger and
its children, one per module: ``logging.getLogger(__name__)``) and through :func:`track`'s
progress reporter; the command line (:mod:`genrekit.apps.console`) decides what reaches the
terminal.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import Callable, ContextManager, Iterable, Iterator, TypeVar

T = TypeVar("T")

#: ``reporter(description, total)`` -> a context manager giving ``advance()``, called once per
#: item done; ``total`` is ``None`` when unknown.
ProgressReporter = Callable[[str, "int | None"], ContextManager[Callable[[], None]]]

_progress: dict = {"reporter": None}


def set_progress(reporter: ProgressReporter | None) -> ProgressReporter | None:
    """Report the progress of long loops to ``reporter`` (``None``: report nothing); returns the previous one.

    Parameters
    ----------
    reporter : callable or None
        ``reporter(description, total)`` returns a context manager that yields an ``advance()``
        callable; :func:`track` calls ``advance()`` after each item. The command line installs
        a progress bar; library callers may install their own (a GUI, a log line every N items).

    Returns
    -------
    callable or None
        The reporter installed before (to put it back).

    Examples
    --------
    >>> import contextlib
    >>> from genrekit.utils import set_progress, track
    >>> done = []
    >>> @contextlib.contextmanager
    ... def count(description, total):
    ...     yield lambda: done.append(description)
    >>> previous = set_progress(count)
    >>> list(track([1, 2], "adding"))
    [1, 2]
    >>> done
    ['adding', 'adding']
    >>> _ = set_progress(previous)
    """
    previous = _progress["reporter"]
    _progress["reporter"] = reporter
    return previous


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items``, telling the progress reporter (see :func:`set_progress`) of each one done.

    Parameters
    ----------
    items : iterable
    description : str
        What is being done, for the reporter ("decoding clips").
    total : int or None
        Number of items, when known.

    Yields
    ------
    object
        The items, unchanged.
    """
    reporter = _progress["reporter"]
    if reporter is None:
        yield from items
        return
    with reporter(description, total) as advance:
        for item in items:
            yield item
            advance()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, parents: bool = False):
    """Open ``path`` for writing the way :func:`output_target` decides; yield the open file.

    A regular file (or a new one) is written to a temporary file beside it and moved into place
    only when the block succeeds: readers never see a half-written file, and a crash leaves the
    old file (if any) untouched. A FIFO or a device is written through, as a shell's ``>`` would.
    A symbolic link is followed: its target is replaced, the link stays. ``parents=True`` creates
    missing folders (for genrekit's own trees: caches, run folders); otherwise a missing folder,
    a folder, a read-only file or an unwritable folder is an :class:`~genrekit.errors.OutputError`.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or FIFO, device, ``/dev/stdout``).
    parents : bool, default False
        Create missing folders.
    mode : {"wb", "w"}, default "wb"
        Binary or text.

    Yields
    ------
    file object
        Open for writing; the file is in place once the block ends without an exception.

    Raises
    ------
    OutputError
        The output cannot be written (see :func:`output_target`).
    """
    target, regular = output_target(path, parents=parents)
    if not regular:
        with _opened(path, target, mode) as handle:
            yield handle
        return
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as exc:
        raise _output_error(path, f"cannot create a file in {target.parent}: {exc.strerror or exc}") from None
    try:
        # mkstemp makes 0600 files; give the result the mode a plain open() would have
        os.fchmod(fd, _mode_for(target))
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _opened(path, target: Path, mode: str):
    try:
        # appending: /dev/stdout of ``>> log.jsonl`` reopens that file, and "w" would empty it
        handle = open(target, mode.replace("w", "a"))
    except OSError as exc:
        raise _output_error(path, f"cannot write: {exc.strerror or exc}") from None
    with handle:
        yield handle


def output_target(path: str | os.PathLike, *, parents: bool = False) -> tuple[Path, bool]:
    """Where writing ``path`` goes, checked before any work: ``(file to write, is it regular)``.

    Symbolic links are followed to the file they name (also a link to a file not made yet).
    Regular files and new files are replaced atomically (``regular`` True); FIFOs and devices are
    written through. Raises :class:`~genrekit.errors.OutputError`, one line naming ``path``, when
    the folder is missing (unless ``parents``), the path is a folder, a regular file is read-only
    (no write permission bit: refused also for root, whom permissions do not stop) or the folder
    that must take the temporary file is not writable.

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or FIFO, device, ``/dev/stdout``).
    parents : bool, default False
        Create missing folders.

    Returns
    -------
    target : Path
        The file to write (links resolved).
    regular : bool
        Whether it is replaced atomically (a regular or new file) rather than written through.

    Raises
    ------
    OutputError
        The output cannot be written, as above.
    """
    import stat

    try:
        info = os.stat(path)  # through links, also /dev/stdout's link to a pipe in /proc
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _output_error(path, f"cannot write: {exc.strerror or exc}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise _output_error(path, "is a folder; give a file name")
    if info is not None and (not stat.S_ISREG(info.st_mode) or _names_a_descriptor(path)):
        if not os.access(path, os.W_OK):
            raise _output_error(path, "cannot write: permission denied")
        return Path(path), False
    target = Path(os.path.realpath(path))
    if info is not None and (not info.st_mode & 0o222 or not os.access(target, os.W_OK)):
        raise _output_error(path, "read-only file; not replaced")
    folder = target.parent
    if not folder.is_dir():
        if not parents:
            raise _output_error(path, f"folder {folder} does not exist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _output_error(path, f"cannot create folder {folder}: {exc.strerror or exc}") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _output_error(path, f"folder {folder} is not writable")
    return target, True


_DESCRIPTOR = re.compile(r"/dev/(stdout|stderr|fd/\d+)|/proc/(self|thread-self|\d+)/fd/\d+")


def _names_a_descriptor(path) -> bool:
    """``/dev/stdout``, ``/dev/fd/N``, ``/proc/self/fd/N``: an open file of the shell, written
    through (appended to) even when it is a regular file: ``> out.json`` or ``>> log.jsonl``
    decided how."""
    return _DESCRIPTOR.fullmatch(os.path.abspath(path)) is not None


def _output_error(path, message: str):
    from genrekit.errors import OutputError

    return OutputError(f"{os.fsdecode(path)}: {message}")


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, parents: bool = False) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or FIFO, device, ``/dev/stdout``).
    parents : bool, default False
        Create missing folders.
    data : bytes

    Raises
    ------
    OutputError
        The output cannot be written.
    """
    with atomic_write(path, "wb", parents=parents) as handle:
        handle.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, parents: bool = False) -> None:
    """Write ``text`` to ``path`` atomically as UTF-8 (see :func:`atomic_write`).

    Parameters
    ----------
    path : str or os.PathLike
        The output file (or FIFO, device, ``/dev/stdout``).
    parents : bool, default False
        Create missing folders.
    text : str

    Raises
    ------
    OutputError
        The output cannot be written.
    """
    with atomic_write(path, "w", parents=parents) as handle:
        handle.write(text)


def cache_root() -> Path:
    """The default cache folder: ``$GENREKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/genrekit``, else
    ``~/.cache/genrekit``.

    Returns
    -------
    Path
        Not created here.
    """
    env = os.environ.get("GENREKIT_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "genrekit"


def finite_json(value):
    """``value`` ready for strict JSON (``json.dumps(..., allow_nan=False)``).

    Tuples become lists, NumPy scalars Python numbers, keys strings, NaN and infinite floats
    ``None`` (a bare ``NaN`` is not JSON). The one finite-JSON helper: model files, checkpoints,
    experiment records.

    Parameters
    ----------
    value : object
        Nested dicts, lists, tuples and scalars.

    Returns
    -------
    object
        A copy with the same structure.

    Examples
    --------
    >>> finite_json({"loss": float("nan"), "shape": (2, 3), 1: 0.5})
    {'loss': None, 'shape': [2, 3], '1': 0.5}
    """
    import math

    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "shape", None) == ():
        value = value.item()  # a NumPy (or 0-d) scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


#: Characters that must not reach a terminal raw: C0 and C1 controls (ESC starts escape
#: sequences, a newline would split one failure over two lines), DEL, line and paragraph
#: separators, bidirectional overrides, and the lone surrogates that stand for file-name bytes
#: that are not UTF-8.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text) -> str:
    r"""``text`` safe for a terminal line: control characters escaped (``\n``, ``\x1b``, ...).

    For human output only (tables, ``error:`` lines); JSON and CSV carry the text as it is.

    Parameters
    ----------
    text : object
        Converted with ``str``.

    Returns
    -------
    str

    Examples
    --------
    >>> print(printable("two\nlines \x1b[31mred"))
    two\nlines \x1b[31mred
    """
    return _UNPRINTABLE.sub(_escape, str(text))


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED_ESCAPES:
        return _NAMED_ESCAPES[char]
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # os.fsdecode's stand-in for an undecodable byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


#: Lone surrogates: in a ``str`` from :func:`os.fsdecode` they stand for file-name bytes that are
#: not UTF-8 (U+DC80-U+DCFF); no UTF-8 text (JSON, CSV, Parquet, SQLite) can carry them.
_SURROGATE = re.compile("[\ud800-\udfff]")


def utf8_text(text: str) -> str:
    r"""``text`` that UTF-8 can encode: each byte of a file name that is not UTF-8 (``os.fsdecode``
    gives it as a lone surrogate) written ``\xHH``, as in tables and ``error:`` lines.

    The machine outputs (JSON, CSV, Parquet) carry names through this, so they stay valid; the
    exact bytes live in the library database and are what genrekit opens.

    Parameters
    ----------
    text : str

    Returns
    -------
    str
    """
    return _SURROGATE.sub(_escape, text)


def utf8_json(text: str) -> str:
    r"""JSON ``text`` from ``json.dumps(..., ensure_ascii=False)`` with lone surrogates written as
    :func:`utf8_text` writes them (``"caf\\xe9.wav"`` in the JSON text decodes to ``caf\xe9.wav``).
    Lone surrogates only occur inside JSON strings, so the text stays valid JSON.

    Parameters
    ----------
    text : str
        JSON text.

    Returns
    -------
    str
    """
    return _SURROGATE.sub(lambda match: _escape(match).replace("\\", "\\\\"), text)


def read_toml(path: str | os.PathLike, what: str = "config file") -> dict:
    """The TOML file ``path`` as a dict.

    Parameters
    ----------
    path : str or os.PathLike
    what : str, default "config file"
        What to call the file in error messages.

    Returns
    -------
    dict

    Raises
    ------
    UsageError
        The file is missing or not valid TOML (one line).
    """
    import tomllib

    from genrekit.errors import UsageError

    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(f"{path}: {what} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML ({exc})") from None
