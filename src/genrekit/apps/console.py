"""The terminal: the only place that prints status, warnings and progress bars.

Library code below :mod:`genrekit.apps` logs to the ``genrekit`` logger hierarchy and reports
progress through :func:`genrekit.utils.track`; :func:`set_verbosity` routes both here: INFO
lines plain on stderr, warnings as ``warning: ...``, progress as a rich bar (on a terminal
only). ``--quiet`` shows warnings and errors only, ``--debug`` adds DEBUG lines and tracebacks.
Messages and progress go to stderr so that stdout carries only data (JSON, CSV, tables).
"""

from __future__ import annotations

import contextlib
import logging
import sys

from rich.console import Console

from genrekit.utils import printable, set_progress

stderr = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

LOGGER = logging.getLogger("genrekit")

_settings = {"quiet": False, "debug": False}


class _ConsoleHandler(logging.Handler):
    """genrekit's log records as terminal lines: ``warning:``/``error:`` prefixes, no timestamps."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = printable(record.getMessage()) if record.levelno >= logging.WARNING else record.getMessage()
            if record.levelno >= logging.ERROR:
                stderr.print(f"[red]error:[/red] {_escape(message)}", markup=True, highlight=False)
            elif record.levelno >= logging.WARNING:
                stderr.print(f"[yellow]warning:[/yellow] {_escape(message)}", markup=True, highlight=False)
            else:
                stderr.print(message, markup=False, highlight=False)  # a path may hold "[...]"
        except Exception:  # a handler must not raise into the code that logged
            self.handleError(record)


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


_HANDLER = _ConsoleHandler()


def set_verbosity(*, quiet: bool | None = None, debug: bool | None = None) -> None:
    """Route genrekit's logging and progress to the terminal at the level ``-q``/``--debug`` ask for.

    Parameters
    ----------
    quiet : bool, optional
        Warnings and errors only, no progress bars. ``None`` keeps the current setting.
    debug : bool, optional
        Also DEBUG lines (and full tracebacks, see :func:`is_debug`). ``None`` keeps it.
    """
    if quiet is not None:
        _settings["quiet"] = quiet
    if debug is not None:
        _settings["debug"] = debug
    if _HANDLER not in LOGGER.handlers:
        LOGGER.addHandler(_HANDLER)
    if _settings["debug"]:
        LOGGER.setLevel(logging.DEBUG)
    else:
        LOGGER.setLevel(logging.WARNING if _settings["quiet"] else logging.INFO)
    set_progress(None if _settings["quiet"] else progress_bar)


def is_quiet() -> bool:
    return _settings["quiet"]


def is_debug() -> bool:
    return _settings["debug"]


def info(message: str) -> None:
    """A status line of the command line itself on stderr (hidden with ``--quiet``)."""
    LOGGER.getChild("apps").info(message)


def warn(message: str) -> None:
    """A warning of the command line itself on stderr (shown even with ``--quiet``)."""
    LOGGER.getChild("apps").warning(message)


@contextlib.contextmanager
def progress_bar(description: str, total: int | None):
    """A transient rich progress bar on stderr; nothing off a terminal (a log file gets no bars)."""
    if not sys.stderr.isatty():
        yield lambda: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=total, rate="")

        def advance() -> None:
            state = progress.tasks[0]
            elapsed = state.elapsed or 0.0
            rate = f"{(state.completed + 1) / elapsed:.1f}/s" if elapsed > 0 else ""
            progress.update(task, advance=1, rate=rate)

        yield advance
