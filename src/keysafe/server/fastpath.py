"""The hottest route, ``GET /api/v1/secrets/{path}``, served ahead of FastAPI's router.

FastAPI's route matching and parameter solving cost several times what an audited read
itself costs. This pure ASGI layer answers exactly that route (no ``:verb`` suffix) with
the same authentication, authorisation, audit, reply and problem documents as the
FastAPI route, which stays declared for the OpenAPI document and for everything else.
The seal gate is applied here as well. Vault's KV v2 read, ``GET /v1/secret/data/{path}``,
is served here the same way, in Vault's shapes (``routes.vault_kv``).
"""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qs

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from keysafe.access.models import RequestContext
from keysafe.bounds import MAX_VERSION
from keysafe.errors import (
    InvalidInput,
    KeysafeError,
    NotFound,
    NotInitialized,
    RateLimited,
    Sealed,
    ServerError,
    ValueTooLarge,
)
from keysafe.server import deps
from keysafe.server.clientaddr import client_host
from keysafe.server.monitoring import FAST_READ_ROUTE, RequestMonitor, RequestNote
from keysafe.server.problems import PROBLEM_JSON, rate_limit_headers, vault_error
from keysafe.server.routes.vault_kv_shapes import gone_version, read_data
from keysafe.server.services import Services
from keysafe.server.vaultreply import envelope_doc

log = logging.getLogger("keysafe.server")

_PREFIX = "/api/v1/secrets/"
# Values are secrets: no cache may keep them (as ``routes.sys.json_response``).
_JSON = [(b"content-type", b"application/json"), (b"cache-control", b"no-store")]
_PROBLEM = [(b"content-type", PROBLEM_JSON.encode())]
_VAULT_PREFIX = "/v1/secret/data/"
_VAULT_JSON = [(b"content-type", b"application/json")]
_VAULT_GATED = frozenset((b"x-vault-namespace", b"x-vault-wrap-ttl", b"x-vault-wrap-format"))


class HotReadPath:
    """The outermost layer: serves the hot read itself, everything else goes to ``app``.

    With a ``monitor`` it counts its own answers there (``RequestMonitor.finish``)
    instead of running inside it (see ``keysafe.server.monitoring``)."""

    def __init__(
        self, app: ASGIApp, services: Services, monitor: RequestMonitor | None = None
    ) -> None:
        self.app = app
        self.services = services
        self.monitor = monitor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            url_path: str = scope["path"]
            # ``?label=`` reads (rotation: pending, previous) go to the FastAPI route.
            if (
                url_path.startswith(_PREFIX)
                and ":" not in url_path
                and b"label=" not in scope.get("query_string", b"")
            ):
                token, rid, declared = _headers(scope)
                if not declared:
                    await self._monitored_read(scope, send, url_path, token, rid)
                    return
            elif url_path.startswith(_VAULT_PREFIX) and not _vault_headers(scope):
                # Vault's KV v2 read, the same way (a namespace or wrapping header goes
                # to the router, which refuses it).
                token, rid, declared = _headers(scope)
                if not declared:
                    await self._monitored_read(scope, send, url_path, token, rid)
                    return
                # A GET that declares a body: the body limit and the router judge it.
        await self.app(scope, receive, send)

    async def _monitored_read(
        self, scope: Scope, send: Send, url_path: str, token: str | None, rid: str
    ) -> None:
        monitor = self.monitor
        if monitor is None:
            await self._read(scope, send, url_path, token, rid, None)
            return
        note = RequestNote()
        prefix = _VAULT_PREFIX if url_path.startswith(_VAULT_PREFIX) else _PREFIX
        note.route, note.secret = FAST_READ_ROUTE, url_path[len(prefix) :]
        start = time.perf_counter()
        status = 500  # an exception before the answer started is a 500 to the client
        try:
            status = await self._read(scope, send, url_path, token, rid, note)
        finally:
            monitor.finish(scope, note, status, time.perf_counter() - start)

    async def _read(
        self,
        scope: Scope,
        send: Send,
        url_path: str,
        token: str | None,
        rid: str,
        note: RequestNote | None,
    ) -> int:
        """Answer the read; returns the status sent."""
        svc = self.services
        vault = url_path.startswith(_VAULT_PREFIX)
        try:
            if svc.barrier.sealed:
                if svc.system.seal_config() is None:
                    raise NotInitialized(
                        "the vault is not initialised; run `keysafe operator init`"
                    )
                raise Sealed("the vault is sealed; unseal it with `keysafe operator unseal`")
            source = client_host(scope)
            ctx = await deps.authenticate(svc, token, source, rid, url_path, note)
            version = _version(scope.get("query_string", b""), zero_is_latest=vault)
            if vault:
                status, headers, body = await _vault_read(svc, ctx, url_path, version, rid)
            else:
                value = await svc.secrets.read(ctx, url_path[len(_PREFIX) :], version)
                status, headers, body = 200, _JSON, orjson.dumps(value.as_document())
        except KeysafeError as exc:
            if vault:
                status, body = vault_error(exc)
                await _send(send, status, _VAULT_JSON, body)
                return status
            headers = _PROBLEM
            if isinstance(exc, RateLimited):
                limits = rate_limit_headers(exc).items()
                headers = [*_PROBLEM, *((k.lower().encode(), v.encode()) for k, v in limits)]
            status, body = exc.status, orjson.dumps(exc.to_problem(url_path))
        except Exception:
            log.exception("unexpected error on GET %s", url_path)
            error = ServerError("internal error; see the server log")
            status, headers = 500, _PROBLEM
            body = orjson.dumps(error.to_problem(url_path))
        await _send(send, status, headers, body)
        return status


class DeclaredBodyLimit:
    """Refuse a declared ``Content-Length`` over the limit with a problem document.

    FastAPI's own limit still catches streamed bodies, but answers in plain text.
    """

    def __init__(self, app: ASGIApp, max_body_size: int) -> None:
        self.app = app
        self.max_body_size = max_body_size

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for name, value in scope["headers"]:
                if name == b"content-length":
                    if value.isdigit() and int(value) > self.max_body_size:
                        error = ValueTooLarge(
                            f"the request body is larger than {self.max_body_size} bytes"
                        )
                        body = orjson.dumps(error.to_problem(scope["path"]))
                        await _send(send, 413, _PROBLEM, body)
                        return
                    break
        await self.app(scope, receive, send)


def _headers(scope: Scope) -> tuple[str | None, str, bool]:
    """The credential and request id, read from raw ASGI headers as ``deps`` reads them,
    and whether the request declares a body (a non-zero ``Content-Length``, or a
    ``Transfer-Encoding``)."""
    wanted: dict[bytes, str | None] = dict.fromkeys(
        (b"authorization", b"x-vault-token", b"x-request-id")
    )
    declared = False
    for name, value in scope["headers"]:
        if name in wanted:
            wanted[name] = value.decode("latin-1")
        elif name == b"content-length" or name == b"transfer-encoding":
            declared = declared or value != b"0"
    token = deps.credential_from(wanted[b"authorization"], wanted[b"x-vault-token"])
    return token, deps.request_id_from(wanted[b"x-request-id"]), declared


async def _vault_read(
    svc: Services, ctx: RequestContext, url_path: str, version: int | None, rid: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """``GET /v1/secret/data/<path>`` as ``routes.vault_kv.kv_read`` answers it."""
    path = url_path[len(_VAULT_PREFIX) :]
    try:
        value = await svc.secrets.read(ctx, path, version)
    except NotFound:
        gone = await gone_version(svc.secrets, ctx, path, version or 0)
        doc: dict[str, object] = {"errors": []} if gone is None else {"errors": [], "data": gone}
        return 404, _VAULT_JSON, orjson.dumps(doc)
    return 200, _JSON, orjson.dumps(envelope_doc(rid, read_data(value)))


def _vault_headers(scope: Scope) -> bool:
    """Whether the request carries a header the Vault gate judges."""
    return any(name in _VAULT_GATED for name, _ in scope["headers"])


def _version(query: bytes, *, zero_is_latest: bool = False) -> int | None:
    if not query:
        return None
    params = parse_qs(query.decode("latin-1"))
    raw = params.get("version")
    if not raw:
        return None
    text = raw[-1].strip()
    # As FastAPI's route: ASCII digits only, and within the storable range; compare the
    # digit count first, int() of thousands of digits is itself slow.
    if not (text.isascii() and text.lstrip("+-").isdigit()) or len(text) > 20:
        raise InvalidInput("version: must be a positive integer")
    version = int(text)
    if zero_is_latest and version == 0:
        return None  # Vault's "latest"
    if not 1 <= version <= MAX_VERSION:
        raise InvalidInput(f"version: must be between 1 and {MAX_VERSION}")
    return version


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*headers, (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
