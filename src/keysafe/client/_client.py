"""The keysafe Python SDK: one ``Client`` over one keep-alive ``httpx`` connection pool."""

from __future__ import annotations

import contextlib
import hmac
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx

from keysafe.client._cache import SecretCache
from keysafe.client._config import resolve
from keysafe.client._failover import (
    Addresses,
    all_failed,
    backoff,
    may_move_after_sending,
    may_move_on_503,
    split_addrs,
)
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
from keysafe.errors import (
    ConnectionFailed,
    InvalidInput,
    KeysafeError,
    ServerError,
    error_from_problem,
)

API = "/api/v1"
USER_AGENT = "keysafe-sdk/0.1"
DEFAULT_CACHE_TTL = 30.0
T = TypeVar("T")


class Client:
    """A connection to a keysafe server.

    Missing arguments come from ``KEYSAFE_ADDR``/``KEYSAFE_TOKEN``/``KEYSAFE_CACERT``, then
    from the profile in ``$KEYSAFE_HOME/profile.toml``. ``addr`` may name several nodes
    of one cluster (a list, or comma-separated): requests stay on the one that last
    answered and move to the next only when that is safe (``keysafe.client._failover``).
    Every method raises a
    ``keysafe.errors.KeysafeError``: the server's problem documents become the same
    classes the server raised, and network or TLS failures become ``ConnectionFailed``.

    ``get``/``get_secret`` keep each current value for ``cache_ttl`` seconds (0 turns
    the cache off); ``refresh`` and ``invalidate`` bypass or empty it, and ``using``
    refetches by itself when the credential it handed out was refused. Writes through
    this client drop the path from its cache. A client may be shared between threads.
    """

    def __init__(
        self,
        addr: str | Sequence[str] | None = None,
        token: str | None = None,
        cacert: str | Path | None = None,
        timeout: float = 10.0,
        *,
        transport: httpx.BaseTransport | None = None,
        cache_ttl: float = DEFAULT_CACHE_TTL,
    ) -> None:
        if not cache_ttl >= 0:  # also refuses NaN
            raise InvalidInput(f"cache_ttl must be 0 (no cache) or more seconds, not {cache_ttl}")
        self._cache = SecretCache(cache_ttl)
        if addr is not None and not isinstance(addr, str):
            addr = ",".join(addr)
        conn = resolve(addr, token, cacert)
        if conn.addr is None:
            raise ConnectionFailed(
                "no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR"
            )
        # Several addresses are nodes of one cluster: the same token and CA for each.
        self._addrs = Addresses(split_addrs(conn.addr))
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if conn.token:
            headers["Authorization"] = f"Bearer {conn.token}"
        any_https = next((a for a in self._addrs.all if a.startswith("https://")), "")
        self._http = httpx.Client(
            headers=headers,
            timeout=timeout,
            verify=_tls_context(any_https, conn.cacert),
            transport=transport,
            follow_redirects=False,  # a redirect must never carry the token elsewhere
        )

    @property
    def addr(self) -> str:
        """The address requests go to first: the one that last answered."""
        return self._addrs.current

    @property
    def addrs(self) -> tuple[str, ...]:
        """Every address this client may use, in the order given."""
        return self._addrs.all

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
        """The current (or the given) version of ``path``. Raises NotFound, Forbidden...

        The current version comes from the cache while it is younger than ``cache_ttl``;
        a given ``version`` is always fetched (old versions are rare reads)."""
        path = check_path(path)
        if version is not None:
            return self._fetch_secret(path, version)
        cached = self._cache.get(path)
        if cached is not None:
            return cached
        sent = self._cache.now()
        secret = self._fetch_secret(path, None)
        self._cache.put(secret, sent)
        return secret

    def get(self, path: str) -> str:
        """Just the current value of ``path`` (cached, see ``get_secret``)."""
        return self.get_secret(path).value

    def refresh(self, path: str) -> str:
        """The current value of ``path`` fetched now, bypassing and then refilling the
        cache. Raises what ``get`` raises."""
        path = check_path(path)
        sent = self._cache.now()
        secret = self._fetch_secret(path, None)
        self._cache.put(secret, sent, force=True)
        return secret.value

    def invalidate(self, path: str | None = None) -> None:
        """Forget the cached value of ``path`` (of every path when None)."""
        self._cache.drop(None if path is None else check_path(path))

    def using(
        self,
        path: str,
        fn: Callable[[str], T],
        *,
        retry_on: type[BaseException] | tuple[type[BaseException], ...],
    ) -> T:
        """``fn(value)`` with the value of ``path``; when ``fn`` raises one of
        ``retry_on`` (the target's *authentication* error, say
        ``psycopg.OperationalError``), refetch the value bypassing the cache and, if it
        changed, call ``fn`` once more with the new one.

        This is how a rotation lands between two requests without an error: the cached
        credential stops working, the retry uses the rotated one. When the refetched
        value is the same, retrying could only fail again, so the first error is raised;
        a second failure is raised as it is. Name only errors that a new credential can
        cure: anything in ``retry_on`` costs a request to keysafe each time it happens.
        """
        value = self.get(path)
        try:
            return fn(value)
        except retry_on:
            fresh = self.refresh(path)
            # Constant time: the comparison must not leak how much of a value matched.
            if hmac.compare_digest(fresh.encode(), value.encode()):
                raise
        return fn(fresh)

    def put_secret(self, path: str, value: str, cas: int | None = None) -> int:
        """Write a new version and return its number; ``cas`` raises CasMismatch on a race."""
        body: dict[str, Any] = {"value": value}
        if cas is not None:
            body["cas"] = cas
        self._cache.drop(check_path(path))
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
        self._cache.drop(check_path(path))
        doc = self._json("POST", _secret_url(path, ":rollback"), json={"version": version})
        return int(doc["version"])

    def delete(self, path: str, version: int | None = None) -> None:
        """Soft-delete the latest (or the given) version; ``undelete`` brings it back."""
        params = {"version": str(version)} if version is not None else None
        self._cache.drop(check_path(path))
        self._request("DELETE", _secret_url(path), params=params)

    def undelete(self, path: str, versions: Sequence[int] | None = None) -> None:
        body = {"versions": list(versions)} if versions else {}
        self._cache.drop(check_path(path))
        self._request("POST", _secret_url(path, ":undelete"), json=body)

    def destroy(self, path: str, versions: Sequence[int]) -> None:
        """Wipe the ciphertext of ``versions`` for good; metadata stays."""
        self._cache.drop(check_path(path))
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
        prefix: str = "",
        mode: str = "read",
        ttl_seconds: int | None = None,
        description: str = "",
        *,
        policies: list[str] | None = None,
    ) -> IssuedToken:
        """A new scoped token, bound to ``policies`` (never more than the caller holds)
        or, with the root token only, to ``mode`` under ``prefix``.
        ``IssuedToken.token`` is shown by the server this once."""
        body: dict[str, Any] = {"prefix": prefix, "mode": mode, "description": description}
        if policies:
            body["policies"] = list(policies)
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

    def exchange_token(self, api_key: str, expires_in: int = 900) -> dict[str, Any]:
        """Trade an API key for a signed short-lived access token (OAuth 2.0 client
        credentials): ``{"access_token", "token_type", "expires_in"}``. Other services
        verify it offline against ``/.well-known/jwks.json``. Raises Unauthenticated
        when the server refuses the key."""
        from keysafe.errors import Unauthenticated

        response = self._send(
            "POST",
            "/api/v1/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_secret": api_key,
                "expires_in": str(expires_in),
            },
            headers={"Authorization": ""},  # the key in the form is the only credential
        )
        if response.status_code != 200:
            try:
                doc = response.json()
                reason = str(doc.get("error_description") or doc.get("error"))
            except ValueError:
                reason = f"HTTP {response.status_code}"
            raise Unauthenticated(f"token exchange refused: {reason}")
        result: dict[str, Any] = response.json()
        return result

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

    def init(
        self, shares: int = 5, threshold: int = 3, *, init_token: str | None = None
    ) -> InitResult:
        """Initialise a new vault; raises AlreadyInitialized after the first time, and
        Unauthenticated without the server's one-time ``init_token`` when it has one."""
        body = {"shares": shares, "threshold": threshold}
        headers = {"X-Keysafe-Init-Token": init_token} if init_token else None
        return InitResult.from_json(
            self._json("POST", f"{API}/sys/init", json=body, headers=headers)
        )

    def unseal(
        self, share: str | None = None, *, reset: bool = False, nonce: str | None = None
    ) -> SealStatus:
        """Submit one unseal share (or reset the progress). The reply's ``nonce`` names
        the unseal attempt the first share started: pass it with the further shares and
        a reset (Conflict otherwise)."""
        body: dict[str, Any] = {"reset": True} if reset else {"share": share}
        if nonce:
            body["nonce"] = nonce
        return SealStatus.from_json(self._json("POST", f"{API}/sys/unseal", json=body))

    def seal(self) -> SealStatus:
        return SealStatus.from_json(self._json("POST", f"{API}/sys/seal"))

    def members(self) -> list[dict[str, Any]]:
        """The cluster's nodes as the server lists them (``GET /api/v1/sys/members``):
        ``id``, ``address``, ``version``, ``pid``, ``sealed``, ``status`` (``up`` or
        ``down``), ``started_at`` and ``heartbeat_at`` (unix microseconds)."""
        found = self._json("GET", f"{API}/sys/members")["members"]
        return [dict(m) for m in found]

    def rotate_key(self) -> int:
        """Start a new keyring version; returns its number. ``rewrap`` moves old data."""
        return int(self._json("POST", f"{API}/sys/rotate-key")["keyring_version"])

    def rewrap(self, batch: int = 500) -> RewrapProgress:
        """Re-encrypt one batch under the newest key; call until ``remaining`` is 0."""
        return RewrapProgress.from_json(
            self._json("POST", f"{API}/sys/rewrap", json={"batch": batch})
        )

    @contextlib.contextmanager
    def backup_stream(self, read_timeout: float = 120.0) -> Iterator[Iterator[bytes]]:
        """The server's backup file as chunks of bytes (needs the root token or
        ``admin`` on ``sys/backup``), from the current address only. A stream cut short
        raises ConnectionFailed; the file's own checksum finds anything else."""
        addr = self.addr
        timeout = httpx.Timeout(self._http.timeout.connect, read=read_timeout)

        def chunks(resp: httpx.Response) -> Iterator[bytes]:
            try:
                yield from resp.iter_bytes()
            except httpx.TransportError as exc:
                why = _why(addr, exc)
                raise ConnectionFailed(f"backup stream from {addr} broke: {why}") from exc

        try:
            with self._http.stream("GET", f"{addr}{API}/sys/backup", timeout=timeout) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error_from_response(resp)
                yield chunks(resp)
        except httpx.TransportError as exc:
            raise ConnectionFailed(_why(addr, exc)) from exc

    # -- audit -------------------------------------------------------------------------

    def audit_verify(self, source: str = "db", file: str | None = None) -> AuditReport:
        """Verify the trail kept in the database (``db``) or a node's audit file: the
        server's own, or ``file`` in its audit directory."""
        params = {"source": source} if file is None else {"source": source, "file": file}
        return AuditReport.from_json(self._json("POST", f"{API}/audit/verify", params=params))

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

    def key_usage(self, key_id: str, days: int = 7) -> dict[str, Any]:
        """A key's usage: totals and requests per day, sources, secret paths touched,
        first and last use (``GET /api/v1/keys/{id}/usage``)."""
        return self._json("GET", f"{API}/keys/{_segment(key_id)}/usage", params={"days": days})

    def usage(self, kind: str, subject: str, days: int = 7) -> dict[str, Any]:
        """Usage of a ``key``, an ``identity`` (token or session id) or a ``secret`` path."""
        params = {"kind": kind, "id": subject, "days": days}
        return self._json("GET", f"{API}/usage", params=params)

    def roll_key(self, key_id: str, grace: str = "24h") -> dict[str, Any]:
        return self._json("POST", f"{API}/keys/{_segment(key_id)}:roll", json={"grace": grace})

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"{API}/keys/{_segment(key_id)}")

    def suspend_key(self, key_id: str, reason: str = "") -> dict[str, Any]:
        """Refuse the key like a revoked one until ``resume_key``; returns its record.
        Raises NotFound, or Conflict when it is revoked, expired or already suspended."""
        path = f"{API}/keys/{_segment(key_id)}:suspend"
        return self._json("POST", path, json={"reason": reason})

    def resume_key(self, key_id: str) -> dict[str, Any]:
        """Lift a suspension; returns the key's record. Raises NotFound, or Conflict when
        the key is not suspended or is revoked or expired (never brought back)."""
        return self._json("POST", f"{API}/keys/{_segment(key_id)}:resume", json={})

    def unseal_migrate(
        self, to: str, shares: Sequence[str], new_shares: int = 5, new_threshold: int = 3
    ) -> InitResult:
        """Move the vault to ``to`` ("shamir" or "source") with a threshold of its
        current (recovery) shares; returns the new shares (``root_token`` empty)."""
        body = {
            "to": to,
            "shares": [s.strip() for s in shares if s.strip()],
            "new_shares": new_shares,
            "new_threshold": new_threshold,
        }
        return InitResult.from_json(self._json("POST", f"{API}/sys/unseal-migrate", json=body))

    def generate_root(self, material: Sequence[str]) -> str:
        """A new root token from the unseal key or a threshold of shares (no token needed)."""
        items = [m.strip() for m in material if m.strip()]
        body: dict[str, Any] = (
            {"key": items[0]}
            if len(items) == 1 and items[0].startswith("ksu1_")
            else {"shares": items}
        )
        return str(self._json("POST", f"{API}/sys/generate-root", json=body)["root_token"])

    # -- people: login, sessions, MFA, users and roles --------------------------------

    def login(self, name: str, password: str, code: str | None = None) -> dict[str, Any]:
        """A session (``token`` is ``ks_sess_...``, shown once) for a person; ``code`` is a
        TOTP or recovery code once they enrolled. Raises Unauthenticated, AccountLocked."""
        body = {"name": name, "password": password, "code": code}
        return self._json("POST", f"{API}/auth/login", json=body)

    def logout(self) -> None:
        """Revoke this client's session."""
        self._request("POST", f"{API}/auth/logout")

    def step_up(self, code: str) -> None:
        """Prove the second factor again: the session counts as MFA-proved now."""
        self._request("POST", f"{API}/auth/mfa", json={"code": code})

    def begin_totp(self, password: str) -> dict[str, Any]:
        """Start TOTP enrolment: ``otpauth_uri`` and ``secret``, shown once."""
        return self._json("POST", f"{API}/auth/totp", json={"password": password})

    def confirm_totp(self, code: str) -> list[str]:
        """Finish enrolment; returns the recovery codes (shown once)."""
        doc = self._json("POST", f"{API}/auth/totp/confirm", json={"code": code})
        return list(doc.get("recovery_codes", []))

    def whoami(self) -> dict[str, Any]:
        return self._json("GET", f"{API}/auth/self")

    def create_user(self, name: str, password: str, roles: Sequence[str] = ()) -> dict[str, Any]:
        body = {"name": name, "password": password, "roles": list(roles)}
        return self._json("POST", f"{API}/users", json=body)

    def list_users(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/users").get("users", []))

    def show_user(self, name: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/users/{_segment(name)}")

    def set_user_roles(self, name: str, roles: Sequence[str]) -> dict[str, Any]:
        url = f"{API}/users/{_segment(name)}/roles"
        return self._json("PUT", url, json={"roles": list(roles)})

    def user_action(self, name: str, action: str) -> Any:
        """``unlock``, ``disable`` or ``enable`` user ``name``."""
        if action not in ("unlock", "disable", "enable"):
            raise ValueError(f"unknown user action {action!r}")
        return self._request("POST", f"{API}/users/{_segment(name)}/{action}")

    def delete_user(self, name: str) -> None:
        self._request("DELETE", f"{API}/users/{_segment(name)}")

    def reset_user_mfa(self, name: str) -> None:
        self._request("DELETE", f"{API}/users/{_segment(name)}/mfa")

    def user_sessions(self, name: str) -> list[dict[str, Any]]:
        doc = self._json("GET", f"{API}/users/{_segment(name)}/sessions")
        return list(doc.get("sessions", []))

    def revoke_user_sessions(self, name: str, session_id: str | None = None) -> None:
        url = f"{API}/users/{_segment(name)}/sessions"
        self._request("DELETE", url + (f"/{_segment(session_id)}" if session_id else ""))

    def write_role(self, name: str, policies: Sequence[str]) -> dict[str, Any]:
        url = f"{API}/roles/{_segment(name)}"
        return self._json("PUT", url, json={"policies": list(policies)})

    def list_roles(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/roles").get("roles", []))

    def delete_role(self, name: str) -> None:
        self._request("DELETE", f"{API}/roles/{_segment(name)}")

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

    # -- incidents and the compliance report --------------------------------------------

    def open_incident(
        self,
        *,
        keys: Sequence[str] = (),
        tokens: Sequence[str] = (),
        secrets: Sequence[str] = (),
        leases: Sequence[str] = (),
        findings: Sequence[Mapping[str, Any]] = (),
        title: str = "",
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Open an incident and run its playbook (contain, eradicate, verify, record,
        report); with ``dry_run`` only the plan. ``findings`` are scan findings
        (``{"secret", "rule", "file", "line"}``): the leaked text is sent, never stored."""
        body = {
            "title": title,
            "keys": list(keys),
            "tokens": list(tokens),
            "secrets": list(secrets),
            "leases": list(leases),
            "findings": [dict(f) for f in findings],
            "dry_run": dry_run,
        }
        return self._json("POST", f"{API}/incidents", json=body)

    def list_incidents(self, status: str | None = None) -> list[dict[str, Any]]:
        params = {"status": status} if status else None
        return list(self._json("GET", f"{API}/incidents", params=params)["incidents"])

    def show_incident(self, incident_id: str) -> dict[str, Any]:
        """The incident, its steps and its timeline."""
        return self._json("GET", f"{API}/incidents/{_segment(incident_id)}")

    def close_incident(self, incident_id: str) -> dict[str, Any]:
        return self._json("POST", f"{API}/incidents/{_segment(incident_id)}/close")

    def incident_report(self, incident_id: str, fmt: str = "md") -> str:
        """The incident report as Markdown (``md``) or JSON text (``json``)."""
        url = f"{API}/incidents/{_segment(incident_id)}/report"
        return self._text(url, {"format": fmt})

    def compliance_report(
        self, fmt: str = "json", *, unused_days: int = 30, expiring_days: int = 30
    ) -> str:
        """The compliance report as JSON text, Markdown (``md``) or an HTML page."""
        params = {
            "format": fmt,
            "unused_days": str(unused_days),
            "expiring_days": str(expiring_days),
        }
        return self._text(f"{API}/report", params)

    def _text(self, url: str, params: Mapping[str, str]) -> str:
        resp = self._send("GET", url, params=dict(params))
        if resp.status_code >= 400:
            raise _error_from_response(resp)
        return resp.text

    # -- temporary database credentials -----------------------------------------------

    def creds(self, name: str, ttl: int | None = None) -> dict[str, Any]:
        """A new database login for role ``name`` (needs read on ``creds/<name>``):
        ``{username, password, lease_id, expires_at, max_expires_at, ttl, warnings}``.
        The password is shown this once; revoke the lease when done."""
        return self._json("POST", f"{API}/creds/{_role_path(name)}", json={"ttl": ttl})

    def revoke_lease(self, lease_id: str) -> dict[str, Any]:
        """Drop the lease's login now; an already ended lease answers ``already: true``."""
        return self._json("DELETE", f"{API}/leases/{_segment(lease_id)}")

    def renew_lease(self, lease_id: str, increment: int | None = None) -> dict[str, Any]:
        """Extend a lease (seconds from now), capped at its maximum (``capped``)."""
        body = {"increment": increment}
        return self._json("POST", f"{API}/leases/{_segment(lease_id)}/renew", json=body)

    def list_leases(self, prefix: str = "", state: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("prefix", prefix), ("state", state)) if v}
        return list(self._json("GET", f"{API}/leases", params=params).get("leases", []))

    def revoke_lease_prefix(self, prefix: str) -> dict[str, Any]:
        """Revoke every live lease of the roles under ``prefix`` (incident response)."""
        return self._json("POST", f"{API}/leases/revoke-prefix", json={"prefix": prefix})

    def write_creds_role(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create or replace a role: ``connection_secret``, ``grants``, ``ttl``, ``max_ttl``."""
        return self._json("PUT", f"{API}/creds/roles/{_role_path(name)}", json=dict(config))

    def list_creds_roles(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/creds/roles").get("roles", []))

    def delete_creds_role(self, name: str) -> None:
        self._request("DELETE", f"{API}/creds/roles/{_role_path(name)}")

    # -- alerts (anomaly detection) ----------------------------------------------------

    def list_alerts(
        self, since: str | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Alerts whose last finding is after ``since`` (``24h`` or an RFC 3339 time)."""
        params = {k: v for k, v in (("since", since), ("status", status)) if v}
        return list(self._json("GET", f"{API}/alerts", params=params).get("alerts", []))

    def ack_alert(self, alert_id: str) -> dict[str, Any]:
        return self._json("POST", f"{API}/alerts/{_segment(alert_id)}/ack")

    def add_alert_hook(
        self,
        *,
        url: str | None = None,
        secret: str | None = None,
        email: str | None = None,
        description: str = "",
    ) -> dict[str, Any]:
        """A signed webhook (``url`` and its signing ``secret``) or an e-mail address."""
        body = {"url": url, "secret": secret, "email": email, "description": description}
        return self._json("POST", f"{API}/alerts/hooks", json=body)

    def list_alert_hooks(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/alerts/hooks").get("hooks", []))

    def remove_alert_hook(self, hook_id: str) -> None:
        self._request("DELETE", f"{API}/alerts/hooks/{_segment(hook_id)}")

    def alert_dead_letters(self) -> list[dict[str, Any]]:
        return list(self._json("GET", f"{API}/alerts/dead-letters").get("dead_letters", []))

    # -- rotation ----------------------------------------------------------------------
    # Plain dicts: the documents of docs/api.md ("Rotation"), as the server sends them.

    def secret_label(self, path: str, label: str) -> dict[str, Any]:
        """``current``, ``previous`` (the value the last rotation replaced) or ``pending``
        (a rotation's unproven value; needs ``rotate``): ``{path, version, value, ...}``."""
        return self._json("GET", _secret_url(path), params={"label": label})

    def set_rotation_policy(
        self,
        path: str,
        rotator: str,
        *,
        every_seconds: int,
        grace_seconds: int = 0,
        options: dict[str, str] | None = None,
        approve_targets: bool = False,
    ) -> dict[str, Any]:
        """Create or replace the rotation policy of ``path`` (``approve_targets``: an
        admin of ``sys/rotation`` approves its network targets at once)."""
        body: dict[str, Any] = {
            "rotator": rotator,
            "options": dict(options or {}),
            "every_seconds": every_seconds,
            "grace_seconds": grace_seconds,
        }
        if approve_targets:
            body["approve_targets"] = True
        return self._json("PUT", f"{API}/rotation/policies/{check_path(path)}", json=body)

    def rotation_policy(self, path: str) -> dict[str, Any]:
        return self._json("GET", f"{API}/rotation/policies/{check_path(path)}")

    def rotation_status(self, prefix: str = "") -> list[dict[str, Any]]:
        """Every policy under ``prefix``: next due, last run, outcome, error."""
        doc = self._json("GET", f"{API}/rotation/policies", params={"prefix": prefix})
        return list(doc.get("policies", []))

    def delete_rotation_policy(self, path: str) -> None:
        self._request("DELETE", f"{API}/rotation/policies/{check_path(path)}")

    def rotate(self, path: str) -> dict[str, Any]:
        """Rotate ``path`` now; raises Conflict (one is running) or RotationFailed."""
        return self._json("POST", f"{API}/rotation/rotate/{check_path(path)}")

    def rotation_targets(self) -> list[dict[str, Any]]:
        """The network targets an admin approved for rotators (needs ``admin`` on
        ``sys/rotation``)."""
        return list(self._json("GET", f"{API}/rotation/targets").get("targets", []))

    def add_rotation_target(
        self,
        kind: str,
        host: str,
        *,
        port: int | None = None,
        database: str = "",
        roles: list[str] | None = None,
    ) -> dict[str, Any]:
        """Approve a network target for rotators (or replace its roles)."""
        body = {"kind": kind, "host": host, "port": port, "database": database}
        return self._json(
            "POST", f"{API}/rotation/targets", json={**body, "roles": list(roles or [])}
        )

    def remove_rotation_target(self, target_id: str) -> None:
        """Withdraw the approval of a network target."""
        self._request("DELETE", f"{API}/rotation/targets/{_segment(target_id)}")

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
        """Send to the current address, moving on to the next ones only when that is
        safe (see ``keysafe.client._failover``); the address that answers stays current.

        Raises ConnectionFailed when no address answered."""
        errors: list[tuple[str, str]] = []
        refused: httpx.Response | None = None
        last: httpx.TransportError | None = None
        several = len(self._addrs.all) > 1
        for attempt, (index, addr) in enumerate(self._addrs.order()):
            time.sleep(backoff(attempt))
            try:
                resp = self._http.request(method, addr + url, **kwargs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                last = exc  # nothing was sent: any request may go elsewhere
                errors.append((addr, _why(addr, exc)))
                continue
            except httpx.TransportError as exc:
                if not may_move_after_sending(method):
                    # The server may have acted on it: resending could do it twice.
                    raise ConnectionFailed(_why(addr, exc)) from exc
                last = exc
                errors.append((addr, _why(addr, exc)))
                continue
            if several and resp.status_code == 503 and may_move_on_503(method, _problem_code(resp)):
                refused = refused or resp
                continue
            self._addrs.worked(index)
            return resp
        if refused is not None:
            return refused  # a node's own answer says more than a refused connection
        raise all_failed(errors) from last


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _segment(text: str) -> str:
    # Token ids are opaque; quote them so one can never add a path segment or a query.
    from urllib.parse import quote

    return quote(text, safe="")


def _role_path(name: str) -> str:
    # Role names are '/'-separated (postgres/reporting): quote each segment on its own.
    return "/".join(_segment(part) for part in name.split("/"))


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


def _why(addr: str, exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out talking to {addr}"
    return _describe_transport_error(addr, exc)


def _problem_code(resp: httpx.Response) -> object:
    try:
        doc = resp.json()
    except ValueError:
        return None
    return doc.get("code") if isinstance(doc, dict) else None


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
