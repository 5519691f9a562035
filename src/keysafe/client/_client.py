"""The keysafe Python SDK: one ``Client`` over one keep-alive ``httpx`` connection pool."""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from keysafe.client._config import normalise_addr, resolve
from keysafe.client._models import (
    AuditReport,
    Health,
    InitResult,
    IssuedToken,
    RewrapProgress,
    SealStatus,
    Secret,
    SecretEntry,
    SecretHistory,
    SecretMetadata,
    TokenInfo,
)
from keysafe.client._paths import check_path
from keysafe.errors import ConnectionFailed, KeysafeError, ServerError, error_from_problem

API = "/api/v1"
USER_AGENT = "keysafe-sdk/0.1"


class Client:
    """A connection to a keysafe server.

    Missing arguments come from ``KEYSAFE_ADDR``/``KEYSAFE_TOKEN``/``KEYSAFE_CACERT``, then
    from the profile in ``$KEYSAFE_HOME/profile.toml``. Every method raises a
    ``keysafe.errors.KeysafeError``: the server's problem documents become the same
    classes the server raised, and network or TLS failures become ``ConnectionFailed``.
    """

    def __init__(
        self,
        addr: str | None = None,
        token: str | None = None,
        cacert: str | Path | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        conn = resolve(addr, token, cacert)
        if conn.addr is None:
            raise ConnectionFailed(
                "no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR"
            )
        self.addr = normalise_addr(conn.addr)
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if conn.token:
            headers["Authorization"] = f"Bearer {conn.token}"
        self._http = httpx.Client(
            base_url=self.addr,
            headers=headers,
            timeout=timeout,
            verify=_tls_context(self.addr, conn.cacert),
            transport=transport,
            follow_redirects=False,  # a redirect must never carry the token elsewhere
        )

    # -- lifecycle ---------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(addr={self.addr!r})"

    # -- secrets -----------------------------------------------------------------------

    def get_secret(self, path: str, version: int | None = None) -> Secret:
        """The current (or the given) version of ``path``. Raises NotFound, Forbidden..."""
        # One funnel for secret reads: a TTL value cache with refetch-on-auth-failure
        # (issue 4) plugs in here without changing any public signature.
        return self._fetch_secret(check_path(path), version)

    def get(self, path: str) -> str:
        """Just the current value of ``path``."""
        return self.get_secret(path).value

    def put_secret(self, path: str, value: str, cas: int | None = None) -> int:
        """Write a new version and return its number; ``cas`` raises CasMismatch on a race."""
        body: dict[str, Any] = {"value": value}
        if cas is not None:
            body["cas"] = cas
        doc = self._json("PUT", _secret_url(path), json=body)
        return int(doc["version"])

    def list_secrets(
        self, prefix: str = "", recursive: bool = True, values: bool = False
    ) -> list[SecretEntry]:
        """Secrets under ``prefix``; values only when ``values`` (needs read on each)."""
        params = {
            "prefix": prefix,
            "recursive": _flag(recursive),
            "values": _flag(values),
        }
        doc = self._json("GET", f"{API}/secrets", params=params)
        return [SecretEntry.from_json(item) for item in doc.get("secrets", [])]

    def history(self, path: str) -> SecretHistory:
        return SecretHistory.from_json(self._json("GET", _secret_url(path, ":history")))

    def rollback(self, path: str, version: int) -> int:
        """Make ``version`` current again (as a new version, whose number is returned)."""
        doc = self._json("POST", _secret_url(path, ":rollback"), json={"version": version})
        return int(doc["version"])

    def delete(self, path: str, version: int | None = None) -> None:
        """Soft-delete the latest (or the given) version; ``undelete`` brings it back."""
        params = {"version": str(version)} if version is not None else None
        self._request("DELETE", _secret_url(path), params=params)

    def undelete(self, path: str, versions: Sequence[int] | None = None) -> None:
        body = {"versions": list(versions)} if versions else {}
        self._request("POST", _secret_url(path, ":undelete"), json=body)

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        """Wipe the ciphertext of ``versions`` for good; metadata stays."""
        self._request("POST", _secret_url(path, ":destroy"), json={"versions": list(versions)})

    def metadata(self, path: str) -> SecretMetadata:
        return SecretMetadata.from_json(self._json("GET", _secret_url(path, ":metadata")))

    def set_metadata(
        self,
        path: str,
        *,
        description: str | None = None,
        owner: str | None = None,
        tags: Mapping[str, str] | None = None,
        expires_at: str | None = None,
        max_versions: int | None = None,
    ) -> SecretMetadata:
        """Change the given fields only; ``tags`` replaces the whole tag map."""
        fields: dict[str, Any] = {
            "description": description,
            "owner": owner,
            "tags": dict(tags) if tags is not None else None,
            "expires_at": expires_at,
            "max_versions": max_versions,
        }
        body = {k: v for k, v in fields.items() if v is not None}
        return SecretMetadata.from_json(
            self._json("PATCH", _secret_url(path, ":metadata"), json=body)
        )

    # -- tokens ------------------------------------------------------------------------

    def create_token(
        self,
        prefix: str,
        mode: str = "read",
        ttl_seconds: int | None = None,
        description: str = "",
    ) -> IssuedToken:
        """A new scoped token; ``IssuedToken.token`` is shown by the server this once."""
        body: dict[str, Any] = {"prefix": prefix, "mode": mode, "description": description}
        if ttl_seconds is not None:
            body["ttl_seconds"] = ttl_seconds
        return IssuedToken.from_json(self._json("POST", f"{API}/tokens", json=body))

    def revoke_token(self, token_id: str) -> None:
        self._request("DELETE", f"{API}/tokens/{_segment(token_id)}")

    def list_tokens(self) -> list[TokenInfo]:
        doc = self._json("GET", f"{API}/tokens")
        return [TokenInfo.from_json(item) for item in doc.get("tokens", [])]

    def token_self(self) -> TokenInfo:
        doc = self._json("GET", f"{API}/tokens/self")
        return TokenInfo.from_json({"id": "", **doc})

    # -- system ------------------------------------------------------------------------

    def health(self) -> Health:
        """Liveness and seal state; a sealed server (503) is an answer, not an error."""
        resp = self._send("GET", f"{API}/sys/health")
        if resp.status_code in (200, 503):
            try:
                return Health.from_json(resp.json())
            except ValueError:
                pass
        raise _error_from_response(resp)

    def seal_status(self) -> SealStatus:
        return SealStatus.from_json(self._json("GET", f"{API}/sys/seal-status"))

    def init(self, shares: int = 5, threshold: int = 3) -> InitResult:
        """Initialise a new vault; raises AlreadyInitialized after the first time."""
        body = {"shares": shares, "threshold": threshold}
        return InitResult.from_json(self._json("POST", f"{API}/sys/init", json=body))

    def unseal(self, share: str | None = None, *, reset: bool = False) -> SealStatus:
        """Submit one unseal share (or reset the progress)."""
        body: dict[str, Any] = {"reset": True} if reset else {"share": share}
        return SealStatus.from_json(self._json("POST", f"{API}/sys/unseal", json=body))

    def seal(self) -> SealStatus:
        return SealStatus.from_json(self._json("POST", f"{API}/sys/seal"))

    def rotate_key(self) -> int:
        """Start a new keyring version; returns its number. ``rewrap`` moves old data."""
        return int(self._json("POST", f"{API}/sys/rotate-key")["keyring_version"])

    def rewrap(self, batch: int = 500) -> RewrapProgress:
        """Re-encrypt one batch under the newest key; call until ``remaining`` is 0."""
        return RewrapProgress.from_json(
            self._json("POST", f"{API}/sys/rewrap", json={"batch": batch})
        )

    # -- audit -------------------------------------------------------------------------

    def audit_verify(self) -> AuditReport:
        return AuditReport.from_json(self._json("POST", f"{API}/audit/verify"))

    def audit_events(self, after: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        params = {"after": str(after), "limit": str(limit)}
        doc = self._json("GET", f"{API}/audit/events", params=params)
        return list(doc.get("events", []))

    # -- policies, services, API keys (root token) -------------------------------------
    # Plain dicts for now: the documents of docs/api.md, returned as the server sends them.

    def write_policy(self, name: str, text: str) -> dict[str, Any]:
        """Create or replace a policy document (TOML); a syntax error names its line."""
        return self._json("PUT", f"{API}/policies/{_segment(name)}", json={"text": text})

    def read_policy(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/policies/{_segment(name)}")

    def list_policies(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/policies").get("policies", []))

    def delete_policy(self, name: str) -> None:
        self._request("DELETE", f"{API}/policies/{_segment(name)}")

    def check_policy(
        self,
        path: str,
        capability: str = "read",
        *,
        key_id: str | None = None,
        policies: Sequence[str] | None = None,
        source: str = "127.0.0.1",
    ) -> dict[str, Any]:
        """Explain the decision for a key (or policies) on a path: the deciding rule."""
        body: dict[str, Any] = {"path": path, "capability": capability, "source": source}
        if key_id is not None:
            body["key_id"] = key_id
        if policies is not None:
            body["policies"] = list(policies)
        return self._json("POST", f"{API}/policy-check", json=body)

    def create_service(
        self, name: str, policies: Sequence[str], description: str = ""
    ) -> dict[str, Any]:
        body = {"name": name, "policies": list(policies), "description": description}
        return self._json("POST", f"{API}/services", json=body)

    def list_services(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/services").get("services", []))

    def create_key(
        self,
        service: str,
        *,
        policies: Sequence[str] | None = None,
        cidrs: Sequence[str] = (),
        expires_in: str | None = None,
        rate_limit: str | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """Issue an API key; the reply's ``key`` is the only time it is shown."""
        body: dict[str, Any] = {
            "service": service,
            "policies": list(policies) if policies is not None else None,
            "cidrs": list(cidrs),
            "expires_in": expires_in,
            "rate_limit": rate_limit,
            "description": description,
        }
        return self._json("POST", f"{API}/keys", json=body)

    def list_keys(
        self, *, service: str | None = None, unused_for: str | None = None
    ) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("service", service), ("unused_for", unused_for)) if v}
        return list(self._json("GET", f"{API}/keys", params=params).get("keys", []))

    def show_key(self, key_id: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/keys/{_segment(key_id)}")

    def roll_key(self, key_id: str, grace: str = "24h") -> dict[str, Any]:
        return self._json("POST", f"{API}/keys/{_segment(key_id)}:roll", json={"grace": grace})

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"{API}/keys/{_segment(key_id)}")

    def generate_root(self, material: Sequence[str]) -> str:
        """A new root token from the unseal key or a threshold of shares (no token needed)."""
        items = [m.strip() for m in material if m.strip()]
        body: dict[str, Any] = (
            {"key": items[0]}
            if len(items) == 1 and items[0].startswith("ksu1_")
            else {"shares": items}
        )
        return str(self._json("POST", f"{API}/sys/generate-root", json=body)["root_token"])

    # -- leaks -------------------------------------------------------------------------

    def report_leaks(self, credentials: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """Report ``(credential, location)`` pairs seen in the wild; live ones are revoked.

        Needs no token: the report carries the credentials themselves.
        """
        body = {"credentials": [{"credential": c, "location": loc} for c, loc in credentials]}
        doc = self._json("POST", f"{API}/leaks", json=body)
        return list(doc.get("results", []))

    def known_digests(self, prefix: str = "") -> dict[str, Any]:
        """One-time-keyed digests of the stored values this token may read."""
        return self._json("POST", f"{API}/scan/known-digests", json={"prefix": prefix})

    # -- plumbing ----------------------------------------------------------------------

    def _fetch_secret(self, path: str, version: int | None) -> Secret:
        params = {"version": str(version)} if version is not None else None
        return Secret.from_json(self._json("GET", _secret_url(path), params=params))

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        doc = self._request(method, url, **kwargs)
        if not isinstance(doc, dict):
            raise ServerError(f"unexpected reply from {self.addr}{url}")
        return doc

    def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        resp = self._send(method, url, **kwargs)
        if resp.status_code >= 400:
            raise _error_from_response(resp)
        if resp.status_code == 204 or not resp.content:
            return None
        try:
            return resp.json()
        except ValueError as exc:
            raise ServerError(f"reply from {self.addr}{url} is not JSON") from exc

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise ConnectionFailed(f"timed out talking to {self.addr}") from exc
        except httpx.TransportError as exc:
            raise ConnectionFailed(_describe_transport_error(self.addr, exc)) from exc


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _segment(text: str) -> str:
    # Token ids are opaque; quote them so one can never add a path segment or a query.
    from urllib.parse import quote

    return quote(text, safe="")


def _secret_url(path: str, action: str = "") -> str:
    return f"{API}/secrets/{check_path(path)}{action}"


def _tls_context(addr: str, cacert: Path | None) -> ssl.SSLContext | bool:
    if not addr.startswith("https://"):
        return False  # plain HTTP: skip loading a CA store nobody will use
    if cacert is None:
        return True
    try:
        return ssl.create_default_context(cafile=str(cacert))
    except (OSError, ssl.SSLError) as exc:
        raise ConnectionFailed(f"cannot load CA bundle {cacert}: {exc}") from exc


def _describe_transport_error(addr: str, exc: httpx.TransportError) -> str:
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
        cause = cause.__cause__ or cause.__context__
    text = str(exc) or type(exc).__name__
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return f"TLS verification of {addr} failed; set KEYSAFE_CACERT to the server's CA"
    if "Connection refused" in text or "Errno 111" in text:
        return f"cannot connect to {addr}: connection refused (is the server running?)"
    return f"cannot connect to {addr}: {text}"


def _error_from_response(resp: httpx.Response) -> KeysafeError:
    doc: dict[str, Any] = {}
    try:
        parsed = resp.json()
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        doc = parsed
    return error_from_problem(doc, resp.status_code)
