"""The genre service: a REST API and a web page over one model loaded at start-up.

Endpoints (``create_app``)::

    POST /v1/predict        one audio file (multipart field ``file``) -> the JSON object of
                            ``genrekit predict --format json``, ``path`` = the upload's filename
    POST /v1/spectrogram    one audio file -> log-mel spectrogram as a PNG image
    GET  /v1/models         the model: name, labels, front end, metrics; and the service limits
    GET  /healthz           liveness and load
    GET  /docs, /openapi.json   API reference (Swagger UI served from this app, no CDN)
    GET  /                  the web page (``genrekit/web``)

Resource policy: uploads in flight and inference are counted apart, so that slow clients
cannot hold the workers. At most ``max_uploads`` uploads are received at once; each must arrive
at ``min_upload_rate_kbs`` on average after ``upload_grace_s`` seconds (408 otherwise), within
``request_timeout_s``. A received upload then takes one of ``workers + queue_limit`` inference
slots: ``workers`` requests run inference at once and ``queue_limit`` more wait for a worker.
When either kind of slot is full the request is refused with 429 and a ``Retry-After`` estimate
(before its upload is read when the inference slots are already full). So at most
``max_uploads + workers + queue_limit`` uploads of at most ``max_upload_mb`` each are on disk at
any time. Uploads are streamed to a private temporary folder in chunks, counted as they arrive
(413 past the limit, whatever Content-Length said), and deleted when the request ends.
The length of the audio is checked before it is classified (422 past ``max_duration_s``); a file
whose header states no length is decoded only until the limit is passed. A request that runs
past ``request_timeout_s`` gets 504; its inference thread cannot be killed, so it keeps its slot
and its upload until it finishes (bounded by ``max_duration_s``).
Hosts, API key and security headers: see :mod:`genrekit.apps.service.security`.
Every error is JSON ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import shutil
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from genrekit.apps.service.security import (
    SecurityMiddleware,
    default_hosts,
    policy_with_inline_scripts,
)
from genrekit.apps.service.uploads import (  # noqa: F401 - clean_filename is part of this module's API
    ServiceError,
    Upload,
    UploadPolicy,
    clean_filename,
    receive_upload,
)
from genrekit.audio.windows import DEFAULT_MAX_WINDOWS
from genrekit.errors import GenrekitError
from genrekit.version import __version__

#: Tolerance on the duration limit: container headers round durations.
DURATION_SLACK_S = 1.0


#: The spectrogram image is at most this many columns wide (frames are averaged to fit).
SPECTROGRAM_COLUMNS = 1600


MAX_TOP_K = 100


ERROR_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 408: "upload_timeout",
               413: "upload_too_large", 415: "unsupported_media_type", 422: "invalid_request",
               429: "busy", 500: "internal_error", 504: "timeout"}


@dataclass(frozen=True)
class ServiceLimits:
    """What one service instance accepts; reported by ``GET /v1/models``."""

    max_upload_mb: float = 50.0
    max_duration_s: float = 1200.0
    workers: int = 2
    queue_limit: int = 8
    request_timeout_s: float = 120.0
    max_uploads: int = 16
    min_upload_rate_kbs: float = 16.0
    upload_grace_s: float = 10.0
    #: The window budget when a request does not give ``max_windows`` (0: every window).
    max_windows: int = DEFAULT_MAX_WINDOWS

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def upload_policy(self) -> UploadPolicy:
        return UploadPolicy(self.max_upload_bytes, self.min_upload_rate_kbs * 1024, self.upload_grace_s)


class UploadSlots:
    """At most ``capacity`` uploads received at once (taken and given back on the event loop)."""

    def __init__(self, capacity: int):
        if capacity < 1:
            raise GenrekitError("--max-uploads must be at least 1")
        self.capacity = capacity
        self.in_flight = 0

    def try_enter(self) -> bool:
        if self.in_flight >= self.capacity:
            return False
        self.in_flight += 1
        return True

    def leave(self) -> None:
        self.in_flight -= 1


class InferencePool:
    """``workers`` threads for inference and ``workers + queue_limit`` admission slots.

    Slots are taken and given back on the event loop's thread only, so a plain counter is enough.
    """

    def __init__(self, workers: int, queue_limit: int):
        if workers < 1 or queue_limit < 0:
            raise GenrekitError("--workers must be at least 1 and the queue limit at least 0")
        self.workers = workers
        self.capacity = workers + queue_limit
        self.in_flight = 0
        self.executor = self._new_executor()
        self._mean_job_s = 1.0

    def _new_executor(self) -> concurrent.futures.ThreadPoolExecutor:
        return concurrent.futures.ThreadPoolExecutor(self.workers, thread_name_prefix="genrekit-infer")

    def start(self) -> None:
        """Ready for work again after :meth:`stop` (an app's lifespan may run more than once)."""
        if getattr(self.executor, "_shutdown", False):
            self.executor = self._new_executor()

    def stop(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)

    def full(self) -> bool:
        return self.in_flight >= self.capacity

    def try_admit(self) -> bool:
        if self.full():
            return False
        self.in_flight += 1
        return True

    def release(self) -> None:
        self.in_flight -= 1

    def record(self, seconds: float) -> None:
        self._mean_job_s = 0.8 * self._mean_job_s + 0.2 * seconds

    def retry_after(self) -> int:
        """Seconds until a slot is likely free: the queue ahead drained by all workers."""
        return max(1, math.ceil(self._mean_job_s * self.capacity / self.workers))


class Ticket:
    """One request: its upload file and, once admitted, its inference slot; both given back
    exactly once."""

    def __init__(self, pool: InferencePool):
        self.pool = pool
        self.upload: Upload | None = None
        self.admitted = False
        self._closed = False

    def admit(self) -> bool:
        self.admitted = self.pool.try_admit()
        return self.admitted

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.upload is not None:
            self.upload.path.unlink(missing_ok=True)
        if self.admitted:
            self.pool.release()


def check_duration(upload: Upload, limits: ServiceLimits) -> float:
    """The upload's duration from its header; 422 when it is longer than the limit.

    A file whose header states no length is decoded to count its samples, but only until the
    limit is passed: the work is bounded by the limit, not by the file.
    """
    from genrekit.audio.decode import audio_info

    limit = limits.max_duration_s + DURATION_SLACK_S
    info = audio_info(upload.path, max_duration=limit)
    if info.lower_bound or info.duration > limit:
        amount = f"more than {limits.max_duration_s:g} s" if info.lower_bound else f"{info.duration:.0f} s"
        raise ServiceError(422, "audio_too_long",
                           f"{upload.filename}: {amount} of audio is longer than this "
                           f"service's limit of {limits.max_duration_s:g} s")
    return info.duration


def predict_job(model, limits: ServiceLimits, upload: Upload, **options) -> dict:
    check_duration(upload, limits)
    prediction = model.predict(str(upload.path), max_duration=limits.max_duration_s, **options)
    record = prediction.to_dict()
    record["path"] = upload.filename
    return record


def spectrogram_job(limits: ServiceLimits, upload: Upload) -> bytes:
    check_duration(upload, limits)
    return spectrogram_png(upload.path, max_duration=limits.max_duration_s)


def spectrogram_png(path, *, sr: int = 22050, n_mels: int = 96, hop_length: int = 512,
                    max_columns: int = SPECTROGRAM_COLUMNS, top_db: float = 80.0,
                    max_duration: float | None = None) -> bytes:
    """A log-mel spectrogram of an audio file as a PNG image (magma colours, low bands at the bottom).

    The audio is decoded in blocks (bounded memory for long files); frames are averaged in power
    so that the image is at most ``max_columns`` wide and spans the whole file; dB are relative to
    the loudest column, floored ``top_db`` below it. Height: ``n_mels`` pixels.
    """
    import torch
    from matplotlib.image import imsave

    from genrekit.audio.decode import stream_audio
    from genrekit.features.spectral import MelSpectrogram

    mel = MelSpectrogram(sr=sr, n_fft=2048, hop_length=hop_length, n_mels=n_mels)
    blocks = []
    with torch.inference_mode():
        for block in stream_audio(path, sr, duration=max_duration):
            if len(block):
                blocks.append(mel(torch.from_numpy(np.ascontiguousarray(block))).numpy())
    if not blocks:
        raise GenrekitError(f"{path}: no audio samples")
    power = np.concatenate(blocks, axis=1)
    columns = min(power.shape[1], max_columns)
    edges = np.linspace(0, power.shape[1], columns + 1).astype(int)[:-1]
    power = np.add.reduceat(power, edges, axis=1) / np.diff(np.append(edges, power.shape[1]))
    db = 10.0 * np.log10(np.maximum(power, 1e-10))
    db = np.maximum(db, db.max() - top_db)
    buffer = io.BytesIO()
    imsave(buffer, db, cmap="magma", origin="lower", format="png")
    return buffer.getvalue()


class Service:
    """State shared by the routes: model, limits, pool and upload folder."""

    def __init__(self, model, limits: ServiceLimits, upload_dir: Path | None):
        self.model = model
        self.limits = limits
        self.pool = InferencePool(limits.workers, limits.queue_limit)
        self.uploads = UploadSlots(limits.max_uploads)
        self.owns_upload_dir = upload_dir is None
        self.upload_dir = Path(upload_dir or tempfile.mkdtemp(prefix="genrekit-uploads-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)

    async def run(self, request: Request, job: Callable[[Upload], Any]) -> Any:
        """Receive the request's upload, then run ``job(upload)`` on a worker; clean up."""
        if self.pool.full():  # no point in receiving a file that cannot be classified
            raise self._busy()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.request_timeout_s
        ticket = Ticket(self.pool)
        future: concurrent.futures.Future | None = None
        try:
            upload = await self._receive(request, ticket)
            if not ticket.admit():
                raise self._busy()
            future = self.pool.executor.submit(self._timed, job, upload)
            waiting = asyncio.wrap_future(future)
            try:
                return await asyncio.wait_for(asyncio.shield(waiting), max(0.0, deadline - loop.time()))
            except TimeoutError:
                # nobody awaits the job any more: take its outcome, so that a late failure is
                # not logged as "Future exception was never retrieved"
                waiting.add_done_callback(_discard_outcome)
                raise ServiceError(504, "timeout", f"{upload.filename}: no answer within "
                                   f"{self.limits.request_timeout_s:g} s") from None
            except GenrekitError as exc:
                raise ServiceError(422, "invalid_audio", _public_message(exc, upload)) from None
        finally:
            if future is not None and not future.done() and not future.cancel():
                # the job is still running: it keeps its slot and its file until it ends
                future.add_done_callback(lambda _: _close_from_thread(loop, ticket))
            else:
                ticket.close()

    async def _receive(self, request: Request, ticket: Ticket) -> Upload:
        """The upload, received in one of the upload slots, within the rate and the timeout."""
        if not self.uploads.try_enter():
            raise self._busy()
        try:
            return await asyncio.wait_for(
                receive_upload(request, self.upload_dir, self.limits.upload_policy(), ticket),
                self.limits.request_timeout_s)
        except TimeoutError:
            raise ServiceError(408, "upload_timeout", "the upload took too long") from None
        finally:
            self.uploads.leave()

    def _busy(self) -> ServiceError:
        return ServiceError(429, "busy", "the service is busy; try again shortly",
                            headers={"Retry-After": str(self.pool.retry_after())})

    def _timed(self, job, upload):
        start = time.perf_counter()
        try:
            return job(upload)
        finally:
            self.pool.record(time.perf_counter() - start)

    def model_description(self) -> dict:
        spec = self.model.spec
        return {
            "name": self.model.name,
            "labels": self.model.labels,
            "sample_rate": self.model.sample_rate,
            "segment": spec.segment.to_spec(),
            "feature": list(spec.feature) if spec.multi_input else spec.feature,
            "architecture": spec.architecture["name"],
            "calibration": spec.calibration,
            "not_music": self.model.not_music is not None,
            "styles": self.model.gives_taggram,
            "metrics": spec.metrics,
            "created": spec.created,
        }

    def start(self) -> None:
        self.pool.start()
        self.upload_dir.mkdir(parents=True, exist_ok=True)

    def shutdown(self) -> None:
        self.pool.stop()
        if self.owns_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


def _discard_outcome(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()


def _close_from_thread(loop: asyncio.AbstractEventLoop, ticket: Ticket) -> None:
    try:
        loop.call_soon_threadsafe(ticket.close)
    except RuntimeError:  # the server has stopped: no loop to hand back to, only the file matters
        ticket.close()


def _public_message(exc: Exception, upload: Upload) -> str:
    """The error's message naming the upload's filename, never the server's temporary path."""
    message = str(exc).replace(str(upload.path), upload.filename)
    return message.replace(upload.path.name, upload.filename).splitlines()[0]


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


_ERROR_SCHEMA = {"application/json": {"schema": {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"],
                             "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}}}}}


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary",
                            "description": "One audio file (WAV, FLAC, MP3, OGG, M4A, ...)."}}}}}}}


def _documented_errors(*statuses: int) -> dict:
    return {status: {"description": ERROR_CODES[status].replace("_", " "), "content": _ERROR_SCHEMA}
            for status in statuses}


def _web_dir() -> Path:
    return Path(str(resources.files("genrekit") / "apps" / "service" / "web"))


def create_app(model, *, max_upload_mb: float = 50, max_duration_s: float = 1200, workers: int = 2,
               queue_limit: int = 8, request_timeout_s: float = 120, max_uploads: int = 16,
               min_upload_rate_kbs: float = 16, upload_grace_s: float = 10,
               upload_dir: str | Path | None = None, allowed_hosts: Iterable[str] | None = None,
               api_key: str | None = None, max_windows: int = DEFAULT_MAX_WINDOWS) -> FastAPI:
    """The service for one loaded :class:`~genrekit.inference.model.GenreModel` (see the module doc).

    ``upload_dir`` is where uploads stay while they are processed; by default a private
    temporary folder that is removed at shutdown. ``allowed_hosts``: the ``Host`` names answered
    besides IP addresses (default ``localhost``; ``"*"``: any). ``api_key``: when set, every
    ``/v1/`` request needs ``Authorization: Bearer API_KEY``.
    """
    limits = ServiceLimits(float(max_upload_mb), float(max_duration_s), int(workers),
                           int(queue_limit), float(request_timeout_s), int(max_uploads),
                           float(min_upload_rate_kbs), float(upload_grace_s), int(max_windows))
    if limits.max_windows < 0:
        raise GenrekitError("the window budget cannot be negative (0: every window)")
    if limits.min_upload_rate_kbs < 0 or limits.upload_grace_s < 0:
        raise GenrekitError("the minimum upload rate and the grace period cannot be negative")
    service = Service(model, limits, Path(upload_dir) if upload_dir else None)

    @asynccontextmanager
    async def lifespan(_app):
        service.start()
        yield
        service.shutdown()

    app = FastAPI(title="genrekit", version=__version__, lifespan=lifespan,
                  description="Tell the genre of a piece of music.",
                  docs_url=None, redoc_url=None, swagger_ui_oauth2_redirect_url=None)
    app.state.service = service
    _add_error_handlers(app)
    _add_api_routes(app, service)
    _add_page_routes(app)
    if api_key:
        _document_bearer_auth(app)
    # outermost, around Starlette's own error middleware, so that every response (500s too)
    # gets the security headers and no request reaches the app from a foreign Host
    build_stack = app.build_middleware_stack
    hosts = list(default_hosts("127.0.0.1") if allowed_hosts is None else allowed_hosts)
    app.build_middleware_stack = lambda: SecurityMiddleware(build_stack(), allowed_hosts=hosts,
                                                            api_key=api_key)
    return app


def _document_bearer_auth(app: FastAPI) -> None:
    """Describe the API key in the OpenAPI document (Swagger UI then offers "Authorize")."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer", "description": "the service's API key"}}
            for path, operations in schema["paths"].items():
                if path.startswith("/v1/"):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(_request, exc: ServiceError):
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        code = ERROR_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        return _error(exc.status_code, code, message, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request, exc: RequestValidationError):
        problems = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
                    for e in exc.errors()]
        return _error(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(Exception)
    async def unexpected_error(_request, exc: Exception):
        return _error(500, "internal_error", f"unexpected server error ({type(exc).__name__})")


def _add_api_routes(app: FastAPI, service: Service) -> None:
    @app.post("/v1/predict", openapi_extra=_UPLOAD_BODY,
              responses=_documented_errors(400, 408, 413, 415, 422, 429, 504),
              summary="Tell the genre of one audio file")
    async def predict(
        request: Request,
        top_k: int = Query(3, ge=1, le=MAX_TOP_K, description="How many genres to list."),
        segments: bool = Query(False, description="Include the per-segment timeline."),
        aggregate: Literal["mean", "vote"] = Query("mean", description="Segments to track."),
        styles: bool = Query(False, description="Include the styles: genre-like MSD tags with a mean "
                                                "probability of at least 0.2 (models on the MSD taggram only)."),
        max_windows: int | None = Query(None, ge=0, description="Window budget: classify at most this many "
                                           "windows, spread evenly over the file (0: every window; default: the "
                                           "service's, see /v1/models). A timeline (segments) has every window."),
    ) -> dict:
        """The same JSON object as ``genrekit predict --format json``; ``path`` is the upload's filename.

        Audio that is not music gets ``"genre": null, "not_music": true`` (segments likewise)."""
        if styles and not service.model.gives_taggram:
            raise ServiceError(400, "bad_request", f"this service's model ({service.model.name}) cannot give styles: "
                                                   "they need a model on the MSD_musicnn taggram")

        def job(upload):
            budget = service.limits.max_windows if max_windows is None else max_windows
            return predict_job(service.model, service.limits, upload, top_k=top_k, segments=segments,
                               aggregate=aggregate, styles=styles, max_windows=budget)
        return await service.run(request, job)

    @app.post("/v1/spectrogram", openapi_extra=_UPLOAD_BODY, response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "PNG image"},
                         **_documented_errors(400, 408, 413, 415, 422, 429, 504)},
              summary="Log-mel spectrogram of one audio file as a PNG image")
    async def spectrogram(request: Request) -> Response:
        png = await service.run(request, lambda upload: spectrogram_job(service.limits, upload))
        return Response(png, media_type="image/png")

    @app.get("/v1/models", summary="The model this service runs, and its limits")
    async def models() -> dict:
        return {"models": [service.model_description()],
                "limits": {**asdict(service.limits), "max_top_k": MAX_TOP_K}}

    @app.get("/healthz", summary="Liveness and load")
    async def healthz() -> dict:
        pool = service.pool
        return {"status": "ok", "model": service.model.name, "in_flight": pool.in_flight,
                "capacity": pool.capacity, "uploads_in_flight": service.uploads.in_flight,
                "max_uploads": service.uploads.capacity}


def _add_page_routes(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    web = _web_dir()

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(web / "index.html", media_type="text/html")

    app.mount("/static", StaticFiles(directory=web), name="static")
    _add_docs_routes(app)


#: Swagger UI files served from the ``swagger-ui-py`` package (FastAPI's /docs loads them from
#: a CDN, which is unreachable offline).
_SWAGGER_ASSETS = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
                   "favicon-32x32.png": "image/png"}


def _swagger_dir() -> Path | None:
    try:
        import swagger_ui
    except ImportError:
        return None
    folder = Path(swagger_ui.__file__).parent / "static"
    return folder if all((folder / name).is_file() for name in _SWAGGER_ASSETS) else None


def _add_docs_routes(app: FastAPI) -> None:
    from fastapi.openapi.docs import get_swagger_ui_html

    assets = _swagger_dir()

    @app.get("/docs", include_in_schema=False)
    async def docs():
        if assets is None:
            html = _PLAIN_DOCS
        else:
            html = get_swagger_ui_html(
                openapi_url=app.openapi_url, title="genrekit API",
                swagger_js_url="/docs/assets/swagger-ui-bundle.js",
                swagger_css_url="/docs/assets/swagger-ui.css",
                swagger_favicon_url="/docs/assets/favicon-32x32.png").body.decode()
        # the page starts Swagger UI with an inline script: allow exactly that one, by its hash
        return HTMLResponse(html, headers={"Content-Security-Policy": policy_with_inline_scripts(html)})

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str):
        if assets is None or name not in _SWAGGER_ASSETS:
            raise StarletteHTTPException(404, "not found")
        return FileResponse(assets / name, media_type=_SWAGGER_ASSETS[name])


_PLAIN_DOCS = """<!doctype html><html lang="en"><meta charset="utf-8"><title>genrekit API</title>
<body><h1>genrekit API</h1><p>Swagger UI is not installed (pip install swagger-ui-py).
The OpenAPI description is at <a href="/openapi.json">/openapi.json</a>.</p><ul id="ops"></ul>
<script>fetch('/openapi.json').then(r => r.json()).then(spec => {
  for (const [path, ops] of Object.entries(spec.paths)) for (const [verb, op] of Object.entries(ops)) {
    const li = document.createElement('li'); li.textContent = verb.toUpperCase() + ' ' + path + ' - ' + (op.summary || '');
    document.getElementById('ops').append(li); } });</script></body></html>"""


def run_server(model_path: str | None = None, *, host: str = "127.0.0.1", port: int = 8000,
               allowed_hosts: Iterable[str] = (), api_key: str | None = None, **limits) -> None:
    """Load the model once and serve it with uvicorn until interrupted.

    The ``Host`` names answered are those ``host`` is reached by (see
    :func:`~genrekit.apps.service.security.default_hosts`) plus ``allowed_hosts``.
    """
    import uvicorn

    from genrekit.inference.model import load_model
    from genrekit.apps.console import info

    model = load_model(model_path)
    hosts = [*default_hosts(host), *allowed_hosts]
    app = create_app(model, allowed_hosts=hosts, api_key=api_key or None, **limits)
    info(f"serving {model.name} at http://{host}:{port}/ (API reference: /docs)")
    if not api_key and host not in ("127.0.0.1", "localhost", "::1"):
        info("no API key: anyone who can reach this address can use the service "
             "(set GENREKIT_API_KEY or --api-key)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
