"""Generated from _sync_ops.py by scripts/gen_async_client.py: do not edit.

The methods of the async client; see that file for what each one does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from keysafe.client._async_core import AsyncCore
from keysafe.client._durations import Duration, as_text, seconds
from keysafe.client._paths import check_path
from keysafe.client._wire import API, role_path, segment

if TYPE_CHECKING:
    from keysafe.client.types import (
        AlertRecord,
        CredsRole,
        DeadLetter,
        HookRecord,
        IssuedLogin,
        LeaseRecord,
        LeaseRenewed,
        LeaseRevoked,
        PrefixRevoked,
        RotationPolicyDetail,
        RotationPolicyStatus,
        RotationRun,
        RotationTarget,
    )


class AsyncOps(AsyncCore):
    # -- temporary database credentials -----------------------------------------------

    async def creds(self, name: str, ttl: Duration | None = None) -> IssuedLogin:
        """A new database login for role ``name`` (needs read on ``creds/<name>``):
        ``{username, password, lease_id, expires_at, max_expires_at, ttl, warnings}``.
        The password is shown this once; revoke the lease when done."""
        return cast(
            "IssuedLogin",
            await self._json(
                "POST", f"{API}/creds/{role_path(name)}", json={"ttl": _opt_seconds(ttl)}
            ),
        )

    async def revoke_lease(self, lease_id: str) -> LeaseRevoked:
        """Drop the lease's login now; an already ended lease answers ``already: true``."""
        return cast("LeaseRevoked", await self._json("DELETE", f"{API}/leases/{segment(lease_id)}"))

    async def renew_lease(self, lease_id: str, increment: Duration | None = None) -> LeaseRenewed:
        """Extend a lease (seconds from now), capped at its maximum (``capped``)."""
        body = {"increment": _opt_seconds(increment)}
        return cast(
            "LeaseRenewed",
            await self._json("POST", f"{API}/leases/{segment(lease_id)}/renew", json=body),
        )

    async def list_leases(self, prefix: str = "", state: str | None = None) -> list[LeaseRecord]:
        params = {k: v for k, v in (("prefix", prefix), ("state", state)) if v}
        doc = await self._json("GET", f"{API}/leases", params=params)
        return list(doc.get("leases", []))

    async def revoke_lease_prefix(self, prefix: str) -> PrefixRevoked:
        """Revoke every live lease of the roles under ``prefix`` (incident response)."""
        return cast(
            "PrefixRevoked",
            await self._json("POST", f"{API}/leases/revoke-prefix", json={"prefix": prefix}),
        )

    async def write_creds_role(self, name: str, config: Mapping[str, Any]) -> CredsRole:
        """Create or replace a role: ``connection_secret``, ``grants``, ``ttl``, ``max_ttl``."""
        return cast(
            "CredsRole",
            await self._json("PUT", f"{API}/creds/roles/{role_path(name)}", json=dict(config)),
        )

    async def list_creds_roles(self) -> list[CredsRole]:
        doc = await self._json("GET", f"{API}/creds/roles")
        return list(doc.get("roles", []))

    async def delete_creds_role(self, name: str) -> None:
        await self._request("DELETE", f"{API}/creds/roles/{role_path(name)}")

    # -- alerts (anomaly detection) ----------------------------------------------------

    async def list_alerts(
        self, since: Duration | None = None, status: str | None = None
    ) -> list[AlertRecord]:
        """Alerts whose last finding is after ``since`` (``24h`` or an RFC 3339 time)."""
        # A str may be an RFC 3339 time as well as a duration: sent as it is.
        after = since if isinstance(since, str) or since is None else as_text(since)
        params = {k: v for k, v in (("since", after), ("status", status)) if v}
        doc = await self._json("GET", f"{API}/alerts", params=params)
        return list(doc.get("alerts", []))

    async def ack_alert(self, alert_id: str) -> AlertRecord:
        return cast(
            "AlertRecord", await self._json("POST", f"{API}/alerts/{segment(alert_id)}/ack")
        )

    async def add_alert_hook(
        self,
        *,
        url: str | None = None,
        secret: str | None = None,
        email: str | None = None,
        description: str = "",
    ) -> HookRecord:
        """A signed webhook (``url`` and its signing ``secret``) or an e-mail address."""
        body = {"url": url, "secret": secret, "email": email, "description": description}
        return cast("HookRecord", await self._json("POST", f"{API}/alerts/hooks", json=body))

    async def list_alert_hooks(self) -> list[HookRecord]:
        doc = await self._json("GET", f"{API}/alerts/hooks")
        return list(doc.get("hooks", []))

    async def remove_alert_hook(self, hook_id: str) -> None:
        await self._request("DELETE", f"{API}/alerts/hooks/{segment(hook_id)}")

    async def alert_dead_letters(self) -> list[DeadLetter]:
        doc = await self._json("GET", f"{API}/alerts/dead-letters")
        return list(doc.get("dead_letters", []))

    # -- rotation ----------------------------------------------------------------------
    # Plain dicts: the documents of docs/api.md ("Rotation"), as the server sends them.

    async def set_rotation_policy(
        self,
        path: str,
        rotator: str,
        *,
        every_seconds: Duration,
        grace_seconds: Duration = 0,
        options: dict[str, str] | None = None,
        approve_targets: bool = False,
    ) -> RotationPolicyDetail:
        """Create or replace the rotation policy of ``path`` (``approve_targets``: an
        admin of ``sys/rotation`` approves its network targets at once)."""
        body: dict[str, Any] = {
            "rotator": rotator,
            "options": dict(options or {}),
            "every_seconds": seconds(every_seconds),
            "grace_seconds": seconds(grace_seconds, allow_zero=True),
        }
        if approve_targets:
            body["approve_targets"] = True
        return cast(
            "RotationPolicyDetail",
            await self._json("PUT", f"{API}/rotation/policies/{check_path(path)}", json=body),
        )

    async def rotation_policy(self, path: str) -> RotationPolicyDetail:
        return cast(
            "RotationPolicyDetail",
            await self._json("GET", f"{API}/rotation/policies/{check_path(path)}"),
        )

    async def rotation_status(self, prefix: str = "") -> list[RotationPolicyStatus]:
        """Every policy under ``prefix``: next due, last run, outcome, error."""
        doc = await self._json("GET", f"{API}/rotation/policies", params={"prefix": prefix})
        return list(doc.get("policies", []))

    async def delete_rotation_policy(self, path: str) -> None:
        await self._request("DELETE", f"{API}/rotation/policies/{check_path(path)}")

    async def rotate(self, path: str) -> RotationRun:
        """Rotate ``path`` now; raises Conflict (one is running) or RotationFailed."""
        return cast(
            "RotationRun", await self._json("POST", f"{API}/rotation/rotate/{check_path(path)}")
        )

    async def rotation_targets(self) -> list[RotationTarget]:
        """The network targets an admin approved for rotators (needs ``admin`` on
        ``sys/rotation``)."""
        doc = await self._json("GET", f"{API}/rotation/targets")
        return list(doc.get("targets", []))

    async def add_rotation_target(
        self,
        kind: str,
        host: str,
        *,
        port: int | None = None,
        database: str = "",
        roles: list[str] | None = None,
    ) -> RotationTarget:
        """Approve a network target for rotators (or replace its roles)."""
        body = {"kind": kind, "host": host, "port": port, "database": database}
        return cast(
            "RotationTarget",
            await self._json(
                "POST", f"{API}/rotation/targets", json={**body, "roles": list(roles or [])}
            ),
        )

    async def remove_rotation_target(self, target_id: str) -> None:
        """Withdraw the approval of a network target."""
        await self._request("DELETE", f"{API}/rotation/targets/{segment(target_id)}")


def _opt_seconds(value: Duration | None) -> int | None:
    return None if value is None else seconds(value)
