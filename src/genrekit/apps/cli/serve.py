"""``genrekit serve``: the REST service and web page."""

from __future__ import annotations

from typing import Optional

import typer


def serve(
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model file (NAME.json); default: the bundled model."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.001, help="Largest accepted upload, in MB (413 beyond)."),
    max_duration: float = typer.Option(1200.0, "--max-duration", min=1.0, help="Longest accepted audio, in seconds (422 beyond)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Inference threads (requests classified at once)."),
    queue_limit: int = typer.Option(8, "--queue-limit", min=0, help="Requests that may wait for a worker (429 beyond)."),
    request_timeout: float = typer.Option(120.0, "--request-timeout", min=1.0, help="Seconds before a request gets 504."),
) -> None:
    """Serve the REST API (/v1/predict, /docs) and the web page (/) with one model loaded once."""
    from genrekit.apps.service.app import run_server

    run_server(model, host=host, port=port, max_upload_mb=max_upload_mb, max_duration_s=max_duration,
               workers=workers, queue_limit=queue_limit, request_timeout_s=request_timeout)
