"""The compliance report: an inventory of secrets and credentials and what is at risk.

Secrets: age, last change, expiry, rotation schedule (last run, next due, overdue).
API keys: expiry, address limits, wildcard policies, use. Tokens without expiry.
People without a confirmed second factor (when the users capability is present).

The report holds paths, ids, names, times and flags; never a value. It reads the
rotation tables (persisted names) directly, so it works whether or not rotation
policies exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, select

from keysafe.access.apikeys import KeyService
from keysafe.access.policy_glob import literal_head
from keysafe.access.policy_parse import parse_policy
from keysafe.access.policy_store import PolicyStore
from keysafe.errors import InvalidInput, KeysafeError
from keysafe.store.engine import read_conn
from keysafe.store.tables import secret_versions, secrets, tokens
from keysafe.store.tables_rotation import rotation_policies
from keysafe.timefmt import iso_us, parse_iso_us

DAY_US = 86_400 * 1_000_000

# Risk flags on keys and tokens (persisted in JSON reports): only ever add.
NO_EXPIRY = "no_expiry"
LONG_EXPIRY = "expiry_over_a_year"
NO_ADDRESS_LIMIT = "no_address_limit"
WILDCARD_POLICY = "wildcard_policy"
UNUSED = "unused"

# Secret-age histogram buckets (days, upper bounds; the last is open).
AGE_BUCKETS = ((30, "< 30 d"), (90, "30-90 d"), (180, "90-180 d"), (365, "180-365 d"))
AGE_OVER = "> 365 d"

# Lists people's accounts as the users capability shows them ({"name", "mfa",
# "disabled", ...}); None when this keysafe has no user accounts.
ListPeople = Callable[[], list[dict[str, Any]]]


@dataclass(slots=True)
class Compliance:
    generated_at: int
    unused_days: int
    expiring_days: int
    secrets: list[dict[str, Any]] = field(default_factory=list)
    keys: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    wildcard_policies: list[str] = field(default_factory=list)
    people_without_mfa: list[dict[str, Any]] | None = None  # None: no users capability

    def summary(self) -> dict[str, int]:
        keys = self.keys
        return {
            "secrets": len(self.secrets),
            "secrets_expired": sum(1 for s in self.secrets if s["expired"]),
            "secrets_expiring": sum(1 for s in self.secrets if s["expiring"]),
            "rotations_overdue": sum(1 for s in self.secrets if s["rotation_overdue"]),
            "secrets_without_rotation": sum(1 for s in self.secrets if s["rotation"] is None),
            "keys": len(keys),
            "keys_without_expiry": sum(1 for k in keys if NO_EXPIRY in k["risks"]),
            "keys_without_address_limit": sum(1 for k in keys if NO_ADDRESS_LIMIT in k["risks"]),
            "keys_with_wildcard_policy": sum(1 for k in keys if WILDCARD_POLICY in k["risks"]),
            "keys_unused": sum(1 for k in keys if UNUSED in k["risks"]),
            "keys_expiring": sum(1 for k in keys if k["expiring"]),
            "tokens_without_expiry": len(self.tokens),
            "people_without_mfa": len(self.people_without_mfa or []),
        }

    def age_histogram(self) -> list[tuple[str, int]]:
        counts = {label: 0 for _, label in AGE_BUCKETS} | {AGE_OVER: 0}
        for s in self.secrets:
            days = s["days_since_change"]
            label = next((lbl for bound, lbl in AGE_BUCKETS if days < bound), AGE_OVER)
            counts[label] += 1
        return list(counts.items())

    def keys_by_risk(self) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for k in self.keys:
            n = len(k["risks"])
            label = "no risk flag" if n == 0 else f"{n} flag{'s' if n > 1 else ''}"
            counts[label] = counts.get(label, 0) + 1
        return sorted(counts.items(), key=lambda kv: (kv[0] != "no risk flag", kv[0]))

    def as_json(self) -> dict[str, Any]:
        return {
            "generated_at": iso_us(self.generated_at),
            "unused_days": self.unused_days,
            "expiring_days": self.expiring_days,
            "summary": self.summary(),
            "secrets": self.secrets,
            "keys": self.keys,
            "tokens_without_expiry": self.tokens,
            "wildcard_policies": self.wildcard_policies,
            "people_without_mfa": self.people_without_mfa,
            "charts": {
                "secret_age_days": dict(self.age_histogram()),
                "keys_by_risk": dict(self.keys_by_risk()),
            },
        }


class ComplianceService:
    def __init__(
        self,
        engine: Engine,
        keys: KeyService,
        policies: PolicyStore,
        *,
        list_people: ListPeople | None = None,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._policies = policies
        self._list_people = list_people

    def build(self, now: int, *, unused_days: int = 30, expiring_days: int = 30) -> Compliance:
        """The report as of ``now`` (unix microseconds). Raises InvalidInput for a
        negative or absurd window."""
        for name, value in (("unused days", unused_days), ("expiring days", expiring_days)):
            if not 0 < value <= 3650:
                raise InvalidInput(f"{name} is between 1 and 3650")
        report = Compliance(now, unused_days, expiring_days)
        report.secrets = self._secrets(now, expiring_days)
        report.wildcard_policies = self._wildcards()
        report.keys = self._key_rows(now, unused_days, expiring_days, set(report.wildcard_policies))
        report.tokens = self._tokens_without_expiry()
        if self._list_people is not None:
            report.people_without_mfa = [
                {
                    "name": p["name"],
                    "roles": p.get("roles", []),
                    "last_login_at": p.get("last_login_at"),
                }
                for p in self._list_people()
                if not p.get("mfa") and not p.get("disabled")
            ]
        return report

    def _secrets(self, now: int, expiring_days: int) -> list[dict[str, Any]]:
        query = (
            select(
                secrets.c.path,
                secrets.c.current_version,
                secrets.c.created_at,
                secrets.c.expires_at,
                secret_versions.c.created_at.label("changed_at"),
            )
            .select_from(secrets)
            .outerjoin(
                secret_versions,
                (secret_versions.c.secret_id == secrets.c.id)
                & (secret_versions.c.version == secrets.c.current_version),
            )
            .order_by(secrets.c.path)
        )
        with read_conn(self._engine) as conn:
            rows = conn.execute(query).all()
            schedules = {r.path: r for r in conn.execute(select(rotation_policies)).all()}
        out = []
        for r in rows:
            changed = int(r.changed_at if r.changed_at is not None else r.created_at)
            policy = schedules.get(r.path)
            rotation = None
            if policy is not None:
                rotation = {
                    "rotator": policy.rotator,
                    "every_days": round(policy.every_seconds / 86_400, 2),
                    "last_run_at": iso_us(policy.last_run_at),
                    "last_outcome": policy.last_outcome,
                    "next_due": iso_us(policy.next_due),
                }
            expires = r.expires_at
            out.append(
                {
                    "path": r.path,
                    "version": r.current_version,
                    "created_at": iso_us(r.created_at),
                    "age_days": (now - int(r.created_at)) // DAY_US,
                    "last_changed_at": iso_us(changed),
                    "days_since_change": (now - changed) // DAY_US,
                    "expires_at": iso_us(expires),
                    "expired": expires is not None and expires <= now,
                    "expiring": expires is not None
                    and now < expires <= now + expiring_days * DAY_US,
                    "rotation": rotation,
                    "rotation_overdue": policy is not None and int(policy.next_due) < now,
                }
            )
        return out

    def _wildcards(self) -> list[str]:
        """Policies with an allow rule whose path starts with a wildcard (``*``, ``**``):
        they grant across every folder."""
        found = []
        for entry in self._policies.list_policies():
            try:
                policy = parse_policy(entry["name"], self._policies.get(entry["name"])["text"])
            except KeysafeError:
                continue
            if any(not r.deny and literal_head(r.path) is None for r in policy.rules):
                found.append(entry["name"])
        return found

    def _key_rows(
        self, now: int, unused_days: int, expiring_days: int, wildcard: set[str]
    ) -> list[dict[str, Any]]:
        names = {s["id"]: s["name"] for s in self._keys.list_services()}
        cutoff = now - unused_days * DAY_US
        out = []
        for key in self._keys.list_keys():
            if key["revoked"]:
                continue
            expires = parse_iso_us(key["expires_at"]) if key["expires_at"] else None
            if expires is not None and expires <= now:
                continue  # dead already: not a live risk
            last = key["last_used_at"] or key["created_at"]
            risks = []
            if expires is None:
                risks.append(NO_EXPIRY)
            elif expires > now + 365 * DAY_US:
                risks.append(LONG_EXPIRY)
            if not key["cidrs"]:
                risks.append(NO_ADDRESS_LIMIT)
            if wildcard & set(key["policies"]):
                risks.append(WILDCARD_POLICY)
            if parse_iso_us(last) < cutoff:
                risks.append(UNUSED)
            out.append(
                {
                    "id": key["id"],
                    "prefix": key["prefix"],
                    "service": names.get(key["service_id"], key["service_id"]),
                    "created_at": key["created_at"],
                    "expires_at": key["expires_at"],
                    "last_used_at": key["last_used_at"],
                    "policies": key["policies"],
                    "cidrs": key["cidrs"],
                    "risks": risks,
                    "expiring": expires is not None and expires <= now + expiring_days * DAY_US,
                }
            )
        return out

    def _tokens_without_expiry(self) -> list[dict[str, Any]]:
        query = (
            select(tokens.c.id, tokens.c.kind, tokens.c.mode, tokens.c.prefix, tokens.c.created_at)
            .where(tokens.c.expires_at.is_(None), tokens.c.revoked_at.is_(None))
            .order_by(tokens.c.created_at)
        )
        with read_conn(self._engine) as conn:
            rows = conn.execute(query).all()
        return [
            {
                "id": r.id,
                "kind": r.kind,
                "mode": r.mode,
                "prefix": r.prefix,
                "created_at": iso_us(r.created_at),
            }
            for r in rows
        ]
