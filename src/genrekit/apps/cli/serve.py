"""``genrekit serve``: the REST service and web page."""

from __future__ import annotations

from typing import List, Optional

import typer

from genrekit.apps.cli.options import MaxWindows, Model
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS


def serve(
    model: Model = None,
    host: str = typer.Option("127.0.0.1", "--host", metavar="ADDRESS", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(50.0, "--max-upload-mb", min=0.001, help="Largest accepted upload, in MB (413 beyond)."),
    max_duration: float = typer.Option(1200.0, "--max-duration", min=1.0, help="Longest accepted audio, in seconds (422 beyond)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Inference threads (requests classified at once)."),
    queue_limit: int = typer.Option(8, "--queue-limit", min=0, help="Requests that may wait for a worker (429 beyond)."),
    request_timeout: float = typer.Option(120.0, "--request-timeout", min=1.0, help="Seconds before a request gets 504."),
    max_uploads: int = typer.Option(16, "--max-uploads", min=1, help="Uploads received at once, apart from inference (429 beyond)."),
    min_upload_rate: float = typer.Option(16.0, "--min-upload-rate", min=0.0, help="Slowest accepted upload, in kB/s on average after a 10 s grace period (408 below; 0: no minimum)."),
    allowed_host: Optional[List[str]] = typer.Option(None, "--allowed-host", metavar="NAME", help="Another Host name to answer besides localhost, IP addresses and --host (repeatable; '*': any)."),
    max_windows: MaxWindows = DEFAULT_MAX_WINDOWS,
    api_key: Optional[str] = typer.Option(None, "--api-key", metavar="KEY", envvar="GENREKIT_API_KEY", show_envvar=True, help="Require 'Authorization: Bearer KEY' on /v1/ (the web page asks for it). Prefer the environment variable: options show in the process list."),
) -> None:
    """Serve the REST API (/v1/predict, /docs) and the web page (/) with one model loaded once."""
    from genrekit.apps.service import app as service_app
    from genrekit.errors import UsageError

    if api_key is not None and not api_key.strip():
        # an empty key would serve without authentication while the command line asked for it
        raise UsageError("--api-key is empty: give a key, or leave the option out to serve without one")
    service_app.run_server(model, host=host, port=port, max_upload_mb=max_upload_mb, max_duration_s=max_duration,
                           workers=workers, queue_limit=queue_limit, request_timeout_s=request_timeout,
                           max_uploads=max_uploads, min_upload_rate_kbs=min_upload_rate,
                           allowed_hosts=list(allowed_host or []), api_key=api_key, max_windows=max_windows)
