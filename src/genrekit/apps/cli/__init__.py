"""The ``genrekit`` command: one module per command group; importing it loads no torch."""

from genrekit.apps.cli.main import app, main

__all__ = ["app", "main"]
