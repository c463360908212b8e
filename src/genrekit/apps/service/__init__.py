"""The REST service and its web page: :func:`create_app` builds the FastAPI application."""

from genrekit.apps.service.app import create_app, run_server

__all__ = ["create_app", "run_server"]
