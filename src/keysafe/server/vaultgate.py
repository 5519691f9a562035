"""Request headers that Vault clients send, settled before any route runs.

- A body without ``Content-Type`` (Vault's Go client, so the vault CLI, Vault Agent,
  ESO and Terraform) is JSON, on ``/v1`` and on ``/api/v1``; so is ``curl -d``'s
  ``application/x-www-form-urlencoded`` everywhere but the OAuth routes, which really
  take forms (RFC 6749).
- ``X-Vault-Namespace`` other than the root namespace is refused: keysafe has one
  space, and answering from it would silently read or write the wrong secrets.
- ``X-Vault-Wrap-TTL``/``X-Vault-Wrap-Format`` (response wrapping) is refused, never
  ignored: ignoring it would hand the plaintext to a client that expects a wrapping
  token.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keysafe.errors import InvalidInput
from keysafe.server import problems

_FORM = b"application/x-www-form-urlencoded"
_JSON = (b"content-type", b"application/json")
# Routes that accept form-encoded bodies (the OAuth token, introspect and revoke routes).
_FORM_ROUTES = ("/api/v1/oauth/",)
_ROOT_NAMESPACES = frozenset({"", "root", "root/", "/"})


class VaultGate:
    """Pure ASGI middleware in front of the JSON gate (see module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        vault = path.startswith("/v1/")
        if vault:
            error = _refusal(scope)
            if error is not None:
                status, headers, body = problems.raw_reply(path, error)
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        native = path.startswith("/api/v1/") and not path.startswith(_FORM_ROUTES)
        if (vault or native) and scope["method"] not in ("GET", "HEAD"):
            scope = _as_json(scope)
        await self.app(scope, receive, send)


def _refusal(scope: Scope) -> InvalidInput | None:
    for name, value in scope["headers"]:
        if name == b"x-vault-namespace":
            if value.decode("latin-1").strip() not in _ROOT_NAMESPACES:
                return InvalidInput(
                    "namespaces are not supported: keysafe serves only the root namespace"
                    " (drop X-Vault-Namespace / VAULT_NAMESPACE)"
                )
        elif name in (b"x-vault-wrap-ttl", b"x-vault-wrap-format"):
            return InvalidInput(
                "response wrapping (X-Vault-Wrap-TTL) is not supported by this server;"
                " refusing rather than answering in plaintext"
            )
    return None


def _as_json(scope: Scope) -> Scope:
    """``scope`` with ``Content-Type: application/json`` when it had none or a form
    type (``curl -d``)."""
    headers: list[tuple[bytes, bytes]] = list(scope["headers"])
    for i, (name, value) in enumerate(headers):
        if name == b"content-type":
            if value.split(b";", 1)[0].strip().lower() == _FORM:
                headers[i] = _JSON
                return {**scope, "headers": headers}
            return scope
    headers.append(_JSON)
    return {**scope, "headers": headers}
