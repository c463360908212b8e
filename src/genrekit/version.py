"""The version of genrekit (its own module, so that any layer can record it without importing the package API)."""

__version__ = "0.1.0"
