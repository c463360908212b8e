"""The service's outer layer: Host allow-list, optional bearer-token authentication and security
headers on every response (an ASGI middleware, so that it also covers errors and static files).

- ``Host``: a name the service was started for, an IP address (an address cannot be rebound to
  another server, a name can: DNS rebinding), or one given with ``--allowed-host``; ``*`` turns
  the check off. Anything else gets 400 ``bad_host``.
- Authentication, when an API key is set: every ``/v1/`` request needs
  ``Authorization: Bearer KEY`` (compared in constant time), else 401 ``unauthorized``. The web
  page, its files, the API reference and ``/healthz`` stay open (they hold nothing private; the
  page asks for the key).
- Headers: ``Content-Security-Policy`` (``default-src 'self'``: the page loads nothing from
  elsewhere; ``frame-ancestors 'none'``), ``X-Content-Type-Options: nosniff``,
  ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``. A response that sets its own
  policy (the API reference, whose inline script is allowed by its hash) keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import socket
from typing import Iterable

#: The policy of every page: own files only; blob: for the chosen file's audio and spectrogram.
CONTENT_SECURITY_POLICY = ("default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                           "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")

SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
)

LOOPBACK_NAMES = ("localhost",)
WILDCARD_ADDRESSES = ("", "0.0.0.0", "::", "[::]")


def policy_with_inline_scripts(html: str) -> str:
    """:data:`CONTENT_SECURITY_POLICY` that also allows exactly the inline scripts of ``html``."""
    hashes = " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
                      for script in re.findall(r"<script>(.*?)</script>", html, re.S))
    return f"{CONTENT_SECURITY_POLICY}; script-src 'self' {hashes}".rstrip()


def default_hosts(bind: str) -> list[str]:
    """The host names a service listening on ``bind`` is reached by: ``localhost``, the address
    or name it was given, and for every interface (0.0.0.0, ::) this machine's own names."""
    hosts = list(LOOPBACK_NAMES)
    if bind in WILDCARD_ADDRESSES:
        for name in (socket.gethostname(), socket.getfqdn()):
            if name:
                hosts.append(name)
    else:
        hosts.append(bind)
    return hosts


def host_name(header: str) -> str | None:
    """The host of a ``Host`` header without its port, lowercase (``None`` when malformed)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or header[end + 1:] and not re.fullmatch(r":\d{1,5}", header[end + 1:]):
            return None
        return header[1:end]
    name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name.rstrip(".") or None


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class SecurityMiddleware:
    """ASGI middleware applying the module doc's rules to HTTP requests."""

    def __init__(self, app, *, allowed_hosts: Iterable[str], api_key: str | None = None,
                 protected_prefix: str = "/v1/"):
        self.app = app
        hosts = [h.strip().lower() for h in allowed_hosts if h and h.strip()]
        self.any_host = "*" in hosts
        self.hosts = {host_name(h) or h for h in hosts if h != "*"}
        self.api_key = api_key.encode() if api_key else None
        self.protected_prefix = protected_prefix

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:
            return await _answer(send_with_headers, *refusal)
        return await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope) -> tuple[int, str, str, list] | None:
        headers = {}
        for name, value in scope.get("headers", []):
            headers.setdefault(name.lower(), value)
        if not self.any_host:
            name = host_name(headers.get(b"host", b"").decode("latin-1"))
            if name is None or not (name in self.hosts or _is_ip_address(name)):
                return 400, "bad_host", "this service does not answer to that Host header", []
        if self.api_key is not None and scope.get("path", "").startswith(self.protected_prefix):
            scheme, _, token = headers.get(b"authorization", b"").partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.api_key):
                return (401, "unauthorized", "this service needs an API key: send 'Authorization: Bearer KEY'",
                        [(b"www-authenticate", b'Bearer realm="genrekit"')])
        return None


async def _answer(send, status: int, code: str, message: str, extra_headers: list) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra_headers]})
    await send({"type": "http.response.body", "body": body})
