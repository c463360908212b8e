"""The ``genrekit`` command line.

Each command is a thin wrapper: it parses options, calls the library and prints. Exit codes:
0 success, 1 some inputs failed, 2 usage error. User errors (:class:`GenrekitError`) print one
line without a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from typing import Optional

import typer

from genrekit.apps.cli.options import Debug, HelpGroup, Quiet
from genrekit.apps.console import is_debug, set_verbosity, stderr
from genrekit.errors import GenrekitError, UsageError
from genrekit.utils import printable
from genrekit.version import __version__

app = typer.Typer(
    name="genrekit",
    help="Tell the genre of a piece of music; train, evaluate and serve genre models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=HelpGroup,
)


from genrekit.apps.cli import data, library, predict, research, serve  # noqa: E402

app.command()(predict.predict)
app.command()(predict.embed)
app.command("tags")(predict.tags_command)
app.command()(library.tag)
app.command()(data.plot)
app.command()(serve.serve)
app.command()(research.train)
app.command()(research.evaluate)
app.command()(research.tune)
app.add_typer(data.data_app, name="data")
app.add_typer(data.cache_app, name="cache")
app.add_typer(research.experiment_app, name="experiment")


def _version_callback(value: bool) -> None:
    if value:
        from genrekit.models.files import default_model_id

        typer.echo(f"genrekit {__version__} (default model {default_model_id()})")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
    quiet: Quiet = False,
    debug: Debug = False,
) -> None:
    set_verbosity(quiet=quiet, debug=debug)



def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``genrekit`` script; exits with 0, 1 or 2."""
    command = typer.main.get_command(app)
    invoke = command.invoke
    command.invoke = lambda ctx: _report_broken_pipe(invoke, ctx)
    try:
        # standalone mode: click prints usage errors itself and exits 2, --help exits 0, and a
        # closed output pipe (``genrekit predict ... | head -1``) ends the program quietly
        code = command.main(args=argv, prog_name="genrekit", standalone_mode=True)
    except GenrekitError as exc:
        if is_debug():
            raise
        _error_line(str(exc))
        code = 2 if isinstance(exc, UsageError) else 1
    except sqlite3.DatabaseError as exc:  # damage the up-front integrity check could not see
        if is_debug():
            raise
        _error_line(f"library database: {exc}")
        code = 1
    except OSError as exc:  # not caught where it happened: still one line, not a traceback
        if is_debug():
            raise
        _error_line(f"{exc.filename}: {exc.strerror}" if exc.filename and exc.strerror else str(exc))
        code = 1
    except KeyboardInterrupt:
        stderr.print("interrupted")
        code = 130
    _settle_stdout()
    sys.exit(code if isinstance(code, int) else 0)


def _error_line(message: str) -> None:
    # escaped: a file name with a newline or an escape sequence stays one plain line
    stderr.print(f"error: {printable(message)}", markup=False, highlight=False, soft_wrap=True)


def _report_broken_pipe(invoke, ctx):
    """Run the command; with ``--debug``, say in one line that its output was closed early."""
    try:
        return invoke(ctx)
    except BrokenPipeError:
        if is_debug():
            _error_line("output closed before everything was written (broken pipe); stopped")
        raise


def _settle_stdout() -> None:
    """Flush stdout now; if it cannot take the rest (a full disk, a closed pipe), drop it, so
    that the interpreter's own flush at exit adds no "Exception ignored" message."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            os.close(devnull)
        except (OSError, ValueError):
            pass
