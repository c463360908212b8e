"""The genre service: a REST API and a web page over one model loaded at start-up.

Endpoints (``create_app``)::

    POST /v1/predict        one audio file (multipart field ``file``) -> the JSON object of
                            ``genrekit predict --format json``, ``path`` = the upload's filename
    POST /v1/spectrogram    one audio file -> log-mel spectrogram as a PNG image
    GET  /v1/models         the model: name, labels, front end, metrics; and the service limits
    GET  /healthz           liveness and load
    GET  /docs, /openapi.json   API reference (Swagger UI served from this app, no CDN)
    GET  /                  the web page (``genrekit/web``)

Resource policy: at most ``workers`` requests run inference at once and ``queue_limit`` more
wait for a worker; a request arriving beyond that is refused at once with 429 and a
``Retry-After`` estimate, before its upload is read. A slot covers receiving the upload and the
inference, so at most ``workers + queue_limit`` uploads of at most ``max_upload_mb`` each are on
disk at any time. Uploads are streamed to a private temporary folder in chunks, counted as they
arrive (413 past the limit, whatever Content-Length said), and deleted when the request ends.
A request that runs past ``request_timeout_s`` gets 504; its inference thread cannot be killed,
so it keeps its slot and its upload until it finishes (bounded by ``max_duration_s``).
Every error is JSON ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import math
import re
import shutil
import tempfile
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from genrekit.errors import GenrekitError
from genrekit.version import __version__

#: Bytes read past the upload limit (and thrown away) before the connection is dropped, so that
#: ordinary clients, which send the whole body before reading the reply, see the 413.
UPLOAD_DRAIN_BYTES = 64 * 1024 * 1024


#: Tolerance on the duration limit: container headers round durations.
DURATION_SLACK_S = 1.0


#: The spectrogram image is at most this many columns wide (frames are averaged to fit).
SPECTROGRAM_COLUMNS = 1600


MAX_TOP_K = 100


ERROR_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "upload_timeout",
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

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


class ServiceError(Exception):
    """An error answered to the client as ``{"error": {"code", "message"}}`` with ``status``."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


@dataclass
class Upload:
    path: Path
    filename: str
    size: int = 0


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

    def try_admit(self) -> bool:
        if self.in_flight >= self.capacity:
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
    """One admitted request: its slot and its upload, both given back exactly once."""

    def __init__(self, pool: InferencePool):
        self.pool = pool
        self.upload: Upload | None = None
        self._closed = False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.upload is not None:
            self.upload.path.unlink(missing_ok=True)
        self.pool.release()


def clean_filename(raw: str | None) -> str:
    """The last path component of a client's filename, without control characters."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:200]
    return name or "upload"


def _temp_suffix(filename: str) -> str:
    # decoders pick a demuxer by extension, so keep a plain one; never reuse the client's name
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def receive_upload(request: Request, folder: Path, max_bytes: int, ticket: Ticket) -> Upload:
    """Stream the multipart field ``file`` of ``request`` into a new file in ``folder``.

    Bytes are counted as they arrive; past ``max_bytes`` the upload is abandoned with 413.
    The file is registered on ``ticket`` as soon as it exists, so it is deleted whatever happens.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise ServiceError(415, "unsupported_media_type",
                           "send the audio file as multipart/form-data in the field 'file'")
    if b"boundary" not in params:
        raise ServiceError(400, "bad_request", "multipart body without a boundary")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + UPLOAD_DRAIN_BYTES:
        raise _too_large(max_bytes)
    state = _MultipartState(folder, max_bytes, ticket)
    parser = MultipartParser(params[b"boundary"], state.callbacks())
    received = 0
    try:
        async for chunk in request.stream():
            received += len(chunk)
            if state.overflow and received > max_bytes + UPLOAD_DRAIN_BYTES:
                break
            if not state.overflow:
                parser.write(chunk)
        if not state.overflow:
            parser.finalize()
    except ServiceError:
        raise
    except Exception as exc:  # python-multipart's parse errors have no common base class
        raise ServiceError(400, "bad_request", f"malformed multipart body ({type(exc).__name__})") from None
    finally:
        state.close_file()
    if state.overflow:
        raise _too_large(max_bytes)
    if ticket.upload is None:
        raise ServiceError(422, "missing_file", "no file in the multipart field 'file'")
    return ticket.upload


def _too_large(max_bytes: int) -> ServiceError:
    return ServiceError(413, "upload_too_large",
                        f"the upload is larger than this service's limit of {max_bytes / 2**20:.3g} MB")


class _MultipartState:
    """Callbacks for python-multipart: the part named ``file`` goes to disk, the rest is ignored.

    Writes happen on the event loop's thread: they are page-cache writes of at most one network
    chunk, cheaper than a hop to a thread.
    """

    def __init__(self, folder: Path, max_bytes: int, ticket: Ticket):
        self.folder, self.max_bytes, self.ticket = folder, max_bytes, ticket
        self.overflow = False
        self._headers: dict[bytes, bytes] = {}
        self._name = self._value = b""
        self._file = None

    def callbacks(self) -> dict[str, Callable]:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self.close_file}

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._name += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._name.lower()] = self._value
        self._name = self._value = b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        if options.get(b"name") != b"file" or b"filename" not in options:
            return
        if self.ticket.upload is not None:
            raise ServiceError(422, "invalid_request", "send exactly one file per request")
        filename = clean_filename(options[b"filename"].decode("utf-8", "replace"))
        path = self.folder / f"{uuid.uuid4().hex}{_temp_suffix(filename)}"
        self._file = open(path, "xb")
        self.ticket.upload = Upload(path=path, filename=filename)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is None or self.overflow:
            return
        upload = self.ticket.upload
        upload.size += end - start
        if upload.size > self.max_bytes:
            self.overflow = True
            self.close_file()
            return
        self._file.write(data[start:end])

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def check_duration(upload: Upload, limits: ServiceLimits) -> float:
    """The upload's duration from its header; 422 when it is longer than the limit."""
    from genrekit.audio.decode import audio_info

    duration = audio_info(upload.path).duration
    if duration and duration > limits.max_duration_s + DURATION_SLACK_S:
        raise ServiceError(422, "audio_too_long",
                           f"{upload.filename}: {duration:.0f} s of audio is longer than this "
                           f"service's limit of {limits.max_duration_s:g} s")
    return duration


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
        self.owns_upload_dir = upload_dir is None
        self.upload_dir = Path(upload_dir or tempfile.mkdtemp(prefix="genrekit-uploads-"))
        self.upload_dir.mkdir(parents=True, exist_ok=True)

    async def run(self, request: Request, job: Callable[[Upload], Any]) -> Any:
        """Admit the request, receive its upload, run ``job(upload)`` on a worker, clean up."""
        if not self.pool.try_admit():
            raise ServiceError(429, "busy", "the service is busy; try again shortly",
                               headers={"Retry-After": str(self.pool.retry_after())})
        ticket = Ticket(self.pool)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.request_timeout_s
        future: concurrent.futures.Future | None = None
        try:
            try:
                upload = await asyncio.wait_for(
                    receive_upload(request, self.upload_dir, self.limits.max_upload_bytes, ticket),
                    self.limits.request_timeout_s)
            except TimeoutError:
                raise ServiceError(408, "upload_timeout", "the upload took too long") from None
            future = self.pool.executor.submit(self._timed, job, upload)
            try:
                return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                              max(0.0, deadline - loop.time()))
            except TimeoutError:
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
            "segment": spec.get("segment"),
            "feature": spec.get("feature"),
            "architecture": (spec.get("architecture") or {}).get("name"),
            "calibration": spec.get("calibration"),
            "not_music": self.model.not_music is not None,
            "styles": self.model.gives_taggram,
            "metrics": spec.get("metrics", {}),
            "created": spec.get("created"),
        }

    def start(self) -> None:
        self.pool.start()
        self.upload_dir.mkdir(parents=True, exist_ok=True)

    def shutdown(self) -> None:
        self.pool.stop()
        if self.owns_upload_dir:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


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
               queue_limit: int = 8, request_timeout_s: float = 120,
               upload_dir: str | Path | None = None) -> FastAPI:
    """The service for one loaded :class:`~genrekit.inference.model.GenreModel` (see the module doc).

    ``upload_dir`` is where uploads stay while they are processed; by default a private
    temporary folder that is removed at shutdown.
    """
    limits = ServiceLimits(float(max_upload_mb), float(max_duration_s), int(workers),
                           int(queue_limit), float(request_timeout_s))
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
    return app


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
    ) -> dict:
        """The same JSON object as ``genrekit predict --format json``; ``path`` is the upload's filename.

        Audio that is not music gets ``"genre": null, "not_music": true`` (segments likewise)."""
        if styles and not service.model.gives_taggram:
            raise ServiceError(400, "bad_request", f"this service's model ({service.model.name}) cannot give styles: "
                                                   "they need a model on the MSD_musicnn taggram")

        def job(upload):
            return predict_job(service.model, service.limits, upload,
                               top_k=top_k, segments=segments, aggregate=aggregate, styles=styles)
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
                "capacity": pool.capacity}


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
            return HTMLResponse(_PLAIN_DOCS)
        return get_swagger_ui_html(
            openapi_url=app.openapi_url, title="genrekit API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png")

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
               **limits) -> None:
    """Load the model once and serve it with uvicorn until interrupted."""
    import uvicorn

    from genrekit.inference.model import load_model
    from genrekit.utils import info

    model = load_model(model_path)
    app = create_app(model, **limits)
    info(f"serving {model.name} at http://{host}:{port}/ (API reference: /docs)")
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
