"""Client methods for policies, services, API keys, people and roles.

The async client's are generated from this file: ``python scripts/gen_async_client.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from keysafe.client._durations import Duration, as_text
from keysafe.client._sync_core import SyncCore
from keysafe.client._wire import API, segment

if TYPE_CHECKING:
    from keysafe.client.types import (
        KeyIssued,
        KeyRecord,
        LoginReply,
        PolicyCheckReply,
        PolicyRecord,
        PolicyWritten,
        RoleRecord,
        RoleWritten,
        ServiceRecord,
        SessionInfo,
        TotpEnrolment,
        UsageReport,
        UserRecord,
        WhoAmI,
    )


class SyncAccess(SyncCore):
    # -- policies, services, API keys (root token) -------------------------------------
    # Plain dicts for now: the documents of docs/api.md, returned as the server sends them.

    def write_policy(self, name: str, text: str) -> PolicyWritten:
        """Create or replace a policy document (TOML); a syntax error names its line."""
        return cast(
            "PolicyWritten",
            self._json("PUT", f"{API}/policies/{segment(name)}", json={"text": text}),
        )

    def read_policy(self, name: str) -> PolicyRecord:
        return cast("PolicyRecord", self._json("GET", f"{API}/policies/{segment(name)}"))

    def list_policies(self) -> list[PolicyWritten]:
        doc = self._json("GET", f"{API}/policies")
        return list(doc.get("policies", []))

    def delete_policy(self, name: str) -> None:
        self._request("DELETE", f"{API}/policies/{segment(name)}")

    def check_policy(
        self,
        path: str,
        capability: str = "read",
        *,
        key_id: str | None = None,
        policies: Sequence[str] | None = None,
        source: str = "127.0.0.1",
    ) -> PolicyCheckReply:
        """Explain the decision for a key (or policies) on a path: the deciding rule."""
        body: dict[str, Any] = {"path": path, "capability": capability, "source": source}
        if key_id is not None:
            body["key_id"] = key_id
        if policies is not None:
            body["policies"] = list(policies)
        return cast("PolicyCheckReply", self._json("POST", f"{API}/policy-check", json=body))

    def create_service(
        self, name: str, policies: Sequence[str], description: str = ""
    ) -> ServiceRecord:
        body = {"name": name, "policies": list(policies), "description": description}
        return cast("ServiceRecord", self._json("POST", f"{API}/services", json=body))

    def list_services(self) -> list[ServiceRecord]:
        doc = self._json("GET", f"{API}/services")
        return list(doc.get("services", []))

    def create_key(
        self,
        service: str,
        *,
        policies: Sequence[str] | None = None,
        cidrs: Sequence[str] = (),
        expires_in: Duration | None = None,
        rate_limit: str | None = None,
        description: str = "",
    ) -> KeyIssued:
        """Issue an API key; the reply's ``key`` is the only time it is shown."""
        body: dict[str, Any] = {
            "service": service,
            "policies": list(policies) if policies is not None else None,
            "cidrs": list(cidrs),
            "expires_in": as_text(expires_in) if expires_in is not None else None,
            "rate_limit": rate_limit,
            "description": description,
        }
        return cast("KeyIssued", self._json("POST", f"{API}/keys", json=body))

    def list_keys(
        self, *, service: str | None = None, unused_for: Duration | None = None
    ) -> list[KeyRecord]:
        unused = as_text(unused_for) if unused_for is not None else None
        params = {k: v for k, v in (("service", service), ("unused_for", unused)) if v}
        doc = self._json("GET", f"{API}/keys", params=params)
        return list(doc.get("keys", []))

    def show_key(self, key_id: str) -> KeyRecord:
        return cast("KeyRecord", self._json("GET", f"{API}/keys/{segment(key_id)}"))

    def key_usage(self, key_id: str, days: int = 7) -> UsageReport:
        """A key's usage: totals and requests per day, sources, secret paths touched,
        first and last use (``GET /api/v1/keys/{id}/usage``)."""
        return cast(
            "UsageReport",
            self._json("GET", f"{API}/keys/{segment(key_id)}/usage", params={"days": days}),
        )

    def usage(self, kind: str, subject: str, days: int = 7) -> UsageReport:
        """Usage of a ``key``, an ``identity`` (token or session id) or a ``secret`` path."""
        params = {"kind": kind, "id": subject, "days": days}
        return cast("UsageReport", self._json("GET", f"{API}/usage", params=params))

    def roll_key(self, key_id: str, grace: Duration = "24h") -> KeyIssued:
        # No grace is a valid choice: the old key dies at once (a leak, say).
        body = {"grace": as_text(grace, allow_zero=True)}
        return cast(
            "KeyIssued", self._json("POST", f"{API}/keys/{segment(key_id)}:roll", json=body)
        )

    def revoke_key(self, key_id: str) -> None:
        self._request("DELETE", f"{API}/keys/{segment(key_id)}")

    def suspend_key(self, key_id: str, reason: str = "") -> KeyRecord:
        """Refuse the key like a revoked one until ``resume_key``; returns its record.
        Raises NotFound, or Conflict when it is revoked, expired or already suspended."""
        path = f"{API}/keys/{segment(key_id)}:suspend"
        return cast("KeyRecord", self._json("POST", path, json={"reason": reason}))

    def resume_key(self, key_id: str) -> KeyRecord:
        """Lift a suspension; returns the key's record. Raises NotFound, or Conflict when
        the key is not suspended or is revoked or expired (never brought back)."""
        return cast(
            "KeyRecord", self._json("POST", f"{API}/keys/{segment(key_id)}:resume", json={})
        )

    # -- people: login, sessions, MFA, users and roles --------------------------------

    def login(self, name: str, password: str, code: str | None = None) -> LoginReply:
        """A session (``token`` is ``ks_sess_...``, shown once) for a person; ``code`` is a
        TOTP or recovery code once they enrolled. Raises Unauthenticated, AccountLocked."""
        body = {"name": name, "password": password, "code": code}
        return cast("LoginReply", self._json("POST", f"{API}/auth/login", json=body))

    def logout(self) -> None:
        """Revoke this client's session."""
        self._request("POST", f"{API}/auth/logout")

    def step_up(self, code: str) -> None:
        """Prove the second factor again: the session counts as MFA-proved now."""
        self._request("POST", f"{API}/auth/mfa", json={"code": code})

    def begin_totp(self, password: str) -> TotpEnrolment:
        """Start TOTP enrolment: ``otpauth_uri`` and ``secret``, shown once."""
        return cast(
            "TotpEnrolment", self._json("POST", f"{API}/auth/totp", json={"password": password})
        )

    def confirm_totp(self, code: str) -> list[str]:
        """Finish enrolment; returns the recovery codes (shown once)."""
        doc = self._json("POST", f"{API}/auth/totp/confirm", json={"code": code})
        return list(doc.get("recovery_codes", []))

    def whoami(self) -> WhoAmI:
        return cast("WhoAmI", self._json("GET", f"{API}/auth/self"))

    def create_user(self, name: str, password: str, roles: Sequence[str] = ()) -> UserRecord:
        body = {"name": name, "password": password, "roles": list(roles)}
        return cast("UserRecord", self._json("POST", f"{API}/users", json=body))

    def list_users(self) -> list[UserRecord]:
        doc = self._json("GET", f"{API}/users")
        return list(doc.get("users", []))

    def show_user(self, name: str) -> UserRecord:
        return cast("UserRecord", self._json("GET", f"{API}/users/{segment(name)}"))

    def set_user_roles(self, name: str, roles: Sequence[str]) -> UserRecord:
        url = f"{API}/users/{segment(name)}/roles"
        return cast("UserRecord", self._json("PUT", url, json={"roles": list(roles)}))

    def user_action(self, name: str, action: str) -> Any:
        """``unlock``, ``disable`` or ``enable`` user ``name``."""
        if action not in ("unlock", "disable", "enable"):
            raise ValueError(f"unknown user action {action!r}")
        return self._request("POST", f"{API}/users/{segment(name)}/{action}")

    def delete_user(self, name: str) -> None:
        self._request("DELETE", f"{API}/users/{segment(name)}")

    def reset_user_mfa(self, name: str) -> None:
        self._request("DELETE", f"{API}/users/{segment(name)}/mfa")

    def user_sessions(self, name: str) -> list[SessionInfo]:
        doc = self._json("GET", f"{API}/users/{segment(name)}/sessions")
        return list(doc.get("sessions", []))

    def revoke_user_sessions(self, name: str, session_id: str | None = None) -> None:
        url = f"{API}/users/{segment(name)}/sessions"
        self._request("DELETE", url + (f"/{segment(session_id)}" if session_id else ""))

    def write_role(self, name: str, policies: Sequence[str]) -> RoleWritten:
        url = f"{API}/roles/{segment(name)}"
        return cast("RoleWritten", self._json("PUT", url, json={"policies": list(policies)}))

    def list_roles(self) -> list[RoleRecord]:
        doc = self._json("GET", f"{API}/roles")
        return list(doc.get("roles", []))

    def delete_role(self, name: str) -> None:
        self._request("DELETE", f"{API}/roles/{segment(name)}")
