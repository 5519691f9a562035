"""Generated from _sync_access.py by scripts/gen_async_client.py: do not edit.

The methods of the async client; see that file for what each one does."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from keysafe.client._async_core import AsyncCore
from keysafe.client._durations import Duration, as_text
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


class AsyncAccess(AsyncCore):
    # -- policies, services, API keys (root token) -------------------------------------
    # Plain dicts for now: the documents of docs/api.md, returned as the server sends them.

    async def write_policy(self, name: str, text: str) -> PolicyWritten:
        """Create or replace a policy document (TOML); a syntax error names its line."""
        return cast(
            "PolicyWritten",
            await self._json("PUT", f"{API}/policies/{segment(name)}", json={"text": text}),
        )

    async def read_policy(self, name: str) -> PolicyRecord:
        return cast("PolicyRecord", await self._json("GET", f"{API}/policies/{segment(name)}"))

    async def list_policies(self) -> list[PolicyWritten]:
        doc = await self._json("GET", f"{API}/policies")
        return list(doc.get("policies", []))

    async def delete_policy(self, name: str) -> None:
        await self._request("DELETE", f"{API}/policies/{segment(name)}")

    async def check_policy(
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
        return cast("PolicyCheckReply", await self._json("POST", f"{API}/policy-check", json=body))

    async def create_service(
        self, name: str, policies: Sequence[str], description: str = ""
    ) -> ServiceRecord:
        body = {"name": name, "policies": list(policies), "description": description}
        return cast("ServiceRecord", await self._json("POST", f"{API}/services", json=body))

    async def list_services(self) -> list[ServiceRecord]:
        doc = await self._json("GET", f"{API}/services")
        return list(doc.get("services", []))

    async def create_key(
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
        return cast("KeyIssued", await self._json("POST", f"{API}/keys", json=body))

    async def list_keys(
        self, *, service: str | None = None, unused_for: Duration | None = None
    ) -> list[KeyRecord]:
        unused = as_text(unused_for) if unused_for is not None else None
        params = {k: v for k, v in (("service", service), ("unused_for", unused)) if v}
        doc = await self._json("GET", f"{API}/keys", params=params)
        return list(doc.get("keys", []))

    async def show_key(self, key_id: str) -> KeyRecord:
        return cast("KeyRecord", await self._json("GET", f"{API}/keys/{segment(key_id)}"))

    async def key_usage(self, key_id: str, days: int = 7) -> UsageReport:
        """A key's usage: totals and requests per day, sources, secret paths touched,
        first and last use (``GET /api/v1/keys/{id}/usage``)."""
        return cast(
            "UsageReport",
            await self._json("GET", f"{API}/keys/{segment(key_id)}/usage", params={"days": days}),
        )

    async def usage(self, kind: str, subject: str, days: int = 7) -> UsageReport:
        """Usage of a ``key``, an ``identity`` (token or session id) or a ``secret`` path."""
        params = {"kind": kind, "id": subject, "days": days}
        return cast("UsageReport", await self._json("GET", f"{API}/usage", params=params))

    async def roll_key(self, key_id: str, grace: Duration = "24h") -> KeyIssued:
        # No grace is a valid choice: the old key dies at once (a leak, say).
        body = {"grace": as_text(grace, allow_zero=True)}
        return cast(
            "KeyIssued", await self._json("POST", f"{API}/keys/{segment(key_id)}:roll", json=body)
        )

    async def revoke_key(self, key_id: str) -> None:
        await self._request("DELETE", f"{API}/keys/{segment(key_id)}")

    async def suspend_key(self, key_id: str, reason: str = "") -> KeyRecord:
        """Refuse the key like a revoked one until ``resume_key``; returns its record.
        Raises NotFound, or Conflict when it is revoked, expired or already suspended."""
        path = f"{API}/keys/{segment(key_id)}:suspend"
        return cast("KeyRecord", await self._json("POST", path, json={"reason": reason}))

    async def resume_key(self, key_id: str) -> KeyRecord:
        """Lift a suspension; returns the key's record. Raises NotFound, or Conflict when
        the key is not suspended or is revoked or expired (never brought back)."""
        return cast(
            "KeyRecord", await self._json("POST", f"{API}/keys/{segment(key_id)}:resume", json={})
        )

    # -- people: login, sessions, MFA, users and roles --------------------------------

    async def login(self, name: str, password: str, code: str | None = None) -> LoginReply:
        """A session (``token`` is ``ks_sess_...``, shown once) for a person; ``code`` is a
        TOTP or recovery code once they enrolled. Raises Unauthenticated, AccountLocked."""
        body = {"name": name, "password": password, "code": code}
        return cast("LoginReply", await self._json("POST", f"{API}/auth/login", json=body))

    async def logout(self) -> None:
        """Revoke this client's session."""
        await self._request("POST", f"{API}/auth/logout")

    async def step_up(self, code: str) -> None:
        """Prove the second factor again: the session counts as MFA-proved now."""
        await self._request("POST", f"{API}/auth/mfa", json={"code": code})

    async def begin_totp(self, password: str) -> TotpEnrolment:
        """Start TOTP enrolment: ``otpauth_uri`` and ``secret``, shown once."""
        return cast(
            "TotpEnrolment",
            await self._json("POST", f"{API}/auth/totp", json={"password": password}),
        )

    async def confirm_totp(self, code: str) -> list[str]:
        """Finish enrolment; returns the recovery codes (shown once)."""
        doc = await self._json("POST", f"{API}/auth/totp/confirm", json={"code": code})
        return list(doc.get("recovery_codes", []))

    async def whoami(self) -> WhoAmI:
        return cast("WhoAmI", await self._json("GET", f"{API}/auth/self"))

    async def create_user(self, name: str, password: str, roles: Sequence[str] = ()) -> UserRecord:
        body = {"name": name, "password": password, "roles": list(roles)}
        return cast("UserRecord", await self._json("POST", f"{API}/users", json=body))

    async def list_users(self) -> list[UserRecord]:
        doc = await self._json("GET", f"{API}/users")
        return list(doc.get("users", []))

    async def show_user(self, name: str) -> UserRecord:
        return cast("UserRecord", await self._json("GET", f"{API}/users/{segment(name)}"))

    async def set_user_roles(self, name: str, roles: Sequence[str]) -> UserRecord:
        url = f"{API}/users/{segment(name)}/roles"
        return cast("UserRecord", await self._json("PUT", url, json={"roles": list(roles)}))

    async def user_action(self, name: str, action: str) -> Any:
        """``unlock``, ``disable`` or ``enable`` user ``name``."""
        if action not in ("unlock", "disable", "enable"):
            raise ValueError(f"unknown user action {action!r}")
        return await self._request("POST", f"{API}/users/{segment(name)}/{action}")

    async def delete_user(self, name: str) -> None:
        await self._request("DELETE", f"{API}/users/{segment(name)}")

    async def reset_user_mfa(self, name: str) -> None:
        await self._request("DELETE", f"{API}/users/{segment(name)}/mfa")

    async def user_sessions(self, name: str) -> list[SessionInfo]:
        doc = await self._json("GET", f"{API}/users/{segment(name)}/sessions")
        return list(doc.get("sessions", []))

    async def revoke_user_sessions(self, name: str, session_id: str | None = None) -> None:
        url = f"{API}/users/{segment(name)}/sessions"
        await self._request("DELETE", url + (f"/{segment(session_id)}" if session_id else ""))

    async def write_role(self, name: str, policies: Sequence[str]) -> RoleWritten:
        url = f"{API}/roles/{segment(name)}"
        return cast("RoleWritten", await self._json("PUT", url, json={"policies": list(policies)}))

    async def list_roles(self) -> list[RoleRecord]:
        doc = await self._json("GET", f"{API}/roles")
        return list(doc.get("roles", []))

    async def delete_role(self, name: str) -> None:
        await self._request("DELETE", f"{API}/roles/{segment(name)}")
