"""What the sync and async clients share: requests as values, replies, error mapping.

Nothing here does I/O. A transport (``_transport``, ``_async_transport``) sends a
:class:`Request` to one address and returns a :class:`Reply`, or raises
:class:`TransportFailure` saying whether the request may have reached the server; the
clients decide from that (and ``_failover``) whether another node may be tried.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from keysafe.client._paths import check_path
from keysafe.errors import ConnectionFailed, KeysafeError, ServerError, error_from_problem

API = "/api/v1"
USER_AGENT = "keysafe-sdk/0.1"
NO_SERVER = "no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR"


@dataclass(frozen=True, slots=True)
class Request:
    """One API call, independent of the address it goes to.

    ``headers`` adds to (or, with an empty value, removes) the client's own headers."""

    method: str
    url: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None

    def target(self) -> str:
        """The path and query string."""
        if not self.params:
            return self.url
        return f"{self.url}?{urlencode({k: str(v) for k, v in self.params.items()})}"

    def body(self) -> tuple[bytes | None, str | None]:
        """The encoded body and its content type (None, None without one)."""
        if self.data is not None:
            return urlencode(dict(self.data)).encode(), "application/x-www-form-urlencoded"
        if self.json is not None:
            return json.dumps(self.json).encode(), "application/json"
        return None, None

    def merged_headers(self, base: Mapping[str, str]) -> dict[str, str]:
        out = dict(base)
        for name, value in (self.headers or {}).items():
            if value:
                out[name] = value
            else:
                out.pop(name, None)  # e.g. no Authorization when a form carries the key
        return out


@dataclass(frozen=True, slots=True)
class Reply:
    """A server's answer: status, body and (lower-cased) headers."""

    status: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as JSON; raises ValueError when it is not."""
        return json.loads(self.content)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class TransportFailure(Exception):
    """No reply from one address. ``sent`` is False when the request surely never
    reached the server (connection refused, TLS handshake, connect timeout)."""

    def __init__(self, reason: str, *, sent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


def base_headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def problem_code(reply: Reply) -> object:
    try:
        doc = reply.json()
    except ValueError:
        return None
    return doc.get("code") if isinstance(doc, dict) else None


def error_from_reply(reply: Reply) -> KeysafeError:
    """The keysafe error a non-2xx reply stands for (its problem document's class)."""
    try:
        parsed = reply.json()
    except ValueError:
        parsed = None
    return error_from_problem(parsed if isinstance(parsed, dict) else {}, reply.status)


def decode(reply: Reply, where: str) -> Any:
    """The JSON of a successful reply (None for an empty one); raises its error otherwise."""
    if reply.status >= 400:
        raise error_from_reply(reply)
    if reply.status == 204 or not reply.content:
        return None
    try:
        return reply.json()
    except ValueError as exc:
        raise ServerError(f"reply from {where} is not JSON") from exc


def as_dict(doc: Any, where: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ServerError(f"unexpected reply from {where}")
    return doc


def tls_context(addrs: tuple[str, ...], cacert: Path | None) -> ssl.SSLContext | None:
    """The TLS context for the client's HTTPS addresses (None when all are plain HTTP).

    Without ``cacert`` the system's and certifi's roots are trusted, as httpx does."""
    if not any(a.startswith("https://") for a in addrs):
        return None  # plain HTTP: skip loading a CA store nobody will use
    try:
        if cacert is not None:
            return ssl.create_default_context(cafile=str(cacert))
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionFailed(f"cannot load CA bundle {cacert}: {exc}") from exc


def describe(addr: str, exc: BaseException) -> str:
    """One line saying why ``addr`` could not be reached, naming the fix when known."""
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (
                f"TLS verification of {addr} failed ({cause.verify_message}); "
                "set KEYSAFE_CACERT to the CA that signed the server's certificate"
            )
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {addr} failed: {cause.reason or cause}"
        if isinstance(cause, ConnectionRefusedError):
            return f"cannot connect to {addr}: connection refused (is the server running?)"
        if isinstance(cause, TimeoutError):
            return f"timed out talking to {addr}"
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS verification of {addr} failed; set KEYSAFE_CACERT to the server's CA"
    if "Connection refused" in text or "Errno 111" in text:
        return f"cannot connect to {addr}: connection refused (is the server running?)"
    return f"cannot connect to {addr}: {text}"


def flag(value: bool) -> str:
    return "true" if value else "false"


def segment(text: str) -> str:
    # Ids are opaque; quote them so one can never add a path segment or a query.
    return quote(text, safe="")


def role_path(name: str) -> str:
    # Role names are '/'-separated (postgres/reporting): quote each segment on its own.
    return "/".join(segment(part) for part in name.split("/"))


def secret_url(path: str, action: str = "") -> str:
    return f"{API}/secrets/{check_path(path)}{action}"
