"""The ``genrekit`` command line.

Each command is a thin wrapper: it parses options, calls the library and prints. Exit codes:
0 success, 1 some inputs failed, 2 usage error. User errors (:class:`GenrekitError`) print one
line without a traceback; ``--debug`` shows it.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer

from genrekit.errors import GenrekitError, UsageError
from genrekit.utils import is_debug, set_verbosity, stderr
from genrekit.version import __version__

app = typer.Typer(
    name="genrekit",
    help="Tell the genre of a piece of music; train, evaluate and serve genre models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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
        typer.echo(f"genrekit {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    version: Optional[bool] = typer.Option(
        None, "--version", callback=_version_callback, is_eager=True, help="Show the version and exit."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or status messages."),
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks for errors."),
) -> None:
    set_verbosity(quiet=quiet, debug=debug)



def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``genrekit`` script; exits with 0, 1 or 2."""
    command = typer.main.get_command(app)
    try:
        # standalone mode: click prints usage errors itself and exits 2, --help exits 0
        code = command.main(args=argv, prog_name="genrekit", standalone_mode=True)
    except GenrekitError as exc:
        if is_debug():
            raise
        stderr.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        code = 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        stderr.print("interrupted")
        code = 130
    sys.exit(code if isinstance(code, int) else 0)
