"""Receiving one upload: a multipart body streamed to a private file, counted as it arrives.

The body must keep up a minimum rate (after a grace period) and end with its closing boundary;
anything else is an error answered as ``{"error": {"code", "message"}}`` (:class:`ServiceError`).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

#: Bytes read past the upload limit (and thrown away) before the connection is dropped, so that
#: ordinary clients, which send the whole body before reading the reply, see the 413.
UPLOAD_DRAIN_BYTES = 64 * 1024 * 1024


#: python-multipart's limit on the boundary's length (RFC 2046 allows 70 characters).
MAX_BOUNDARY_LENGTH = 256


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


class UploadHolder(Protocol):
    """Whatever owns the upload's file (and deletes it): the file is set on it as soon as it exists."""

    upload: Upload | None


@dataclass(frozen=True)
class UploadPolicy:
    """How an upload must arrive: at most ``max_bytes``, and after ``grace_s`` seconds at least
    ``min_rate`` bytes a second on average (0: no minimum)."""

    max_bytes: int
    min_rate: float = 0.0
    grace_s: float = 10.0

    def deadline(self, start: float, received: int) -> float | None:
        """When the next byte must have arrived, on the event loop's clock (``None``: never)."""
        if self.min_rate <= 0:
            return None
        return start + self.grace_s + (received + 1) / self.min_rate


def clean_filename(raw: str | None) -> str:
    """The last path component of a client's filename, without control characters."""
    name = re.split(r"[\\/]", raw or "")[-1]
    name = "".join(ch for ch in name if ch.isprintable()).strip()[:200]
    return name or "upload"


def _temp_suffix(filename: str) -> str:
    # decoders pick a demuxer by extension, so keep a plain one; never reuse the client's name
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def receive_upload(request, folder: Path, policy: UploadPolicy, holder: UploadHolder) -> Upload:
    """Stream the multipart field ``file`` of ``request`` into a new file in ``folder``.

    Bytes are counted as they arrive; past ``policy.max_bytes`` the upload is abandoned with 413,
    and a body that falls behind ``policy.min_rate`` gets 408. The file is set on ``holder`` as
    soon as it exists, so that it is deleted whatever happens.
    """
    from python_multipart.multipart import MultipartParser, parse_options_header

    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data":
        raise ServiceError(415, "unsupported_media_type",
                           "send the audio file as multipart/form-data in the field 'file'")
    boundary = params.get(b"boundary")
    if not boundary:
        raise ServiceError(400, "bad_request", "multipart body without a boundary")
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise ServiceError(400, "bad_request", f"the multipart boundary is longer than "
                                               f"{MAX_BOUNDARY_LENGTH} characters")
    declared = request.headers.get("content-length", "")
    max_bytes = policy.max_bytes
    if declared.isdigit() and int(declared) > max_bytes + UPLOAD_DRAIN_BYTES:
        raise _too_large(max_bytes)
    state = _MultipartState(folder, max_bytes, holder)
    try:
        parser = MultipartParser(boundary, state.callbacks())
        await _feed(request, parser, state, policy)
    except ServiceError:
        raise
    except Exception as exc:  # python-multipart's parse errors have no common base class
        raise ServiceError(400, "bad_request", f"malformed multipart body ({type(exc).__name__})") from None
    finally:
        state.close_file()
    if state.overflow:
        raise _too_large(max_bytes)
    if not state.ended:
        raise ServiceError(400, "bad_request", "the multipart body ends without its closing boundary")
    if holder.upload is None:
        raise ServiceError(422, "missing_file", "no file in the multipart field 'file'")
    return holder.upload


async def _feed(request, parser, state: _MultipartState, policy: UploadPolicy) -> None:
    """Give the body to ``parser`` chunk by chunk, each chunk before the rate's deadline."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    chunks = request.stream().__aiter__()
    received = 0
    while True:
        try:
            async with asyncio.timeout_at(policy.deadline(start, received)):
                chunk = await chunks.__anext__()
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise ServiceError(408, "upload_timeout", f"the upload is slower than this service's minimum "
                                                      f"of {policy.min_rate / 1024:g} kB/s") from None
        received += len(chunk)
        if state.overflow:
            if received > policy.max_bytes + UPLOAD_DRAIN_BYTES:
                return
            continue
        parser.write(chunk)
    if not state.overflow:
        parser.finalize()


def _too_large(max_bytes: int) -> ServiceError:
    return ServiceError(413, "upload_too_large",
                        f"the upload is larger than this service's limit of {max_bytes / 2**20:.3g} MB")


class _MultipartState:
    """Callbacks for python-multipart: the part named ``file`` goes to disk, the rest is ignored.

    Writes happen on the event loop's thread: they are page-cache writes of at most one network
    chunk, cheaper than a hop to a thread.
    """

    def __init__(self, folder: Path, max_bytes: int, holder: UploadHolder):
        self.folder, self.max_bytes, self.holder = folder, max_bytes, holder
        self.overflow = False
        self.ended = False  # the closing boundary was seen
        self._headers: dict[bytes, bytes] = {}
        self._name = self._value = b""
        self._file = None

    def callbacks(self) -> dict[str, Callable]:
        return {"on_part_begin": self._part_begin, "on_header_field": self._header_field,
                "on_header_value": self._header_value, "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished, "on_part_data": self._part_data,
                "on_part_end": self.close_file, "on_end": self._end}

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
        if self.holder.upload is not None:
            raise ServiceError(422, "invalid_request", "send exactly one file per request")
        filename = clean_filename(options[b"filename"].decode("utf-8", "replace"))
        path = self.folder / f"{uuid.uuid4().hex}{_temp_suffix(filename)}"
        self._file = open(path, "xb")
        self.holder.upload = Upload(path=path, filename=filename)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is None or self.overflow:
            return
        upload = self.holder.upload
        upload.size += end - start
        if upload.size > self.max_bytes:
            self.overflow = True
            self.close_file()
            return
        self._file.write(data[start:end])

    def _end(self) -> None:
        self.ended = True

    def close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
