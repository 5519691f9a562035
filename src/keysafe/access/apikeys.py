"""Scoped API keys for services: issued once, stored as keyed hashes, verified fast.

A key is ``ks_live_<random><check>`` (see ``keysafe.crypto.keyformat``): the scanner can
recognise it offline and the server rejects look-alikes before touching the database.
The server keeps HMAC-SHA256(token key, key); the token key lives in the keyring.

Each key has an owner (a service), policies (never more than its owner holds), an IP
allowlist, an expiry (always: no key lives forever), a rate limit, a description and
usage fields. Rolling a key issues a successor and lets the old one live for a grace
period; revoking is immediate on the revoking process and reaches the others within
the lookup cache's lifetime.

Suspending is revoking that can be undone: a suspended key is refused exactly like a
revoked one (same 401, same message, same cost, reaching other processes within the
cache's lifetime) until ``resume``. It is what an automatic alert does, so that a false
alarm costs an admin one command instead of a production outage. A suspended key cannot
be rolled (whoever stole it must not swap it for a live one); revocation stays final.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from keysafe.access.models import Principal
from keysafe.access.policy_store import check_held_names, check_policies_exist
from keysafe.bounds import MAX_SECONDS
from keysafe.clock import Clock
from keysafe.crypto import keyformat
from keysafe.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthenticated
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.invalidations import KIND_KEY, UNANNOUNCED, Announcer
from keysafe.store.rawread import RawReader
from keysafe.store.tables import api_keys, services
from keysafe.timefmt import iso_us

KEY_SPACE_KEYSAFE = "keysafe"
_DAY_US = 86_400 * 1_000_000
_UNAUTHENTICATED = "missing, malformed, expired or revoked credential"
SUSPEND_REASON_MAX = 200  # api_keys.suspended_reason

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class VerifiedKey:
    """What verification needs of a stored key (cached per process)."""

    id: str
    owner_id: str
    policies: tuple[str, ...]
    cidrs: tuple[IpNetwork, ...]
    expires_at: int
    revoked_at: int | None
    grace_until: int | None
    suspended_at: int | None


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key: str  # shown once, never stored
    record: dict[str, Any]


def parse_cidrs(values: Iterable[str]) -> tuple[IpNetwork, ...]:
    """CIDRs (IPv4 and IPv6); a bare address means that one host. Raises InvalidInput."""
    out = []
    for value in values:
        try:
            out.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise InvalidInput(f"{value!r} is not an IPv4 or IPv6 network (CIDR)") from exc
    return tuple(out)


def parse_duration(text: str) -> int:
    """``90s``, ``15m``, ``24h``, ``90d`` to seconds, at most ``MAX_SECONDS`` (a
    century). Raises InvalidInput."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    text = text.strip()
    # isdigit() admits other scripts' digits that int() reads; only ASCII is a number here.
    number = text[:-1]
    if len(text) < 2 or text[-1] not in units or not (number.isascii() and number.isdigit()):
        raise InvalidInput(f"{text[:64]!r} is not a duration such as 90s, 15m, 24h or 90d")
    # Compare digit counts first: int() of thousands of digits is itself slow.
    if len(number.lstrip("0")) > 12 or int(number) * units[text[-1]] > MAX_SECONDS:
        raise InvalidInput(f"{text[:64]!r} is longer than {MAX_SECONDS // 86400} days")
    return int(number) * units[text[-1]]


class KeyService:
    def __init__(
        self,
        engine: Engine,
        token_key: Callable[[], bytes],
        clock: Clock,
        *,
        default_ttl_days: int = 90,
        max_ttl_days: int = 365,
        cache_seconds: float = 1.0,
    ) -> None:
        self._engine = engine
        self._token_key = token_key
        self._clock = clock
        self._default_ttl_days = default_ttl_days
        self._max_ttl_days = max_ttl_days
        self._cache_seconds = cache_seconds
        self._cache: dict[bytes, tuple[float, VerifiedKey | None]] = {}
        # The same records by key id, for credentials derived from a key (JWTs, child
        # tokens) that are checked against it at every request; same expiry.
        self._by_id: dict[str, tuple[float, VerifiedKey | None]] = {}
        self._ip_cache: dict[str, IpAddress | None] = {}
        # Tells the other processes to drop a changed key (set by the server).
        self.announcer: Announcer = UNANNOUNCED
        self._lock = threading.Lock()
        # Usage is counted in memory and flushed in batches: one UPDATE per key per
        # flush instead of one write per request.
        self._usage: dict[str, list[Any]] = {}
        self._postgres = engine.dialect.name == "postgresql"
        self._raw = RawReader(engine)
        self._sql_load = self._raw.sql(
            "SELECT id, key_hash, owner_id, policies, cidrs, expires_at, revoked_at, grace_until,"
            " suspended_at FROM api_keys WHERE key_hash = ?"
        )
        self._sql_load_id = self._raw.sql(
            "SELECT id, key_hash, owner_id, policies, cidrs, expires_at, revoked_at, grace_until,"
            " suspended_at FROM api_keys WHERE id = ?"
        )

    def hash(self, key: str) -> bytes:
        return hmac.digest(self._token_key(), key.encode(), "sha256")

    # -- services ------------------------------------------------------------------------

    def create_service(
        self,
        conn: Connection,
        name: str,
        policy_names: list[str],
        description: str,
        creator: str,
        *,
        holder: tuple[str, ...] | None,
    ) -> dict[str, Any]:
        """Create a service holding ``policy_names``. Raises InvalidInput, and Forbidden
        unless ``holder`` (the creator's policy names; None for the root token) holds
        everything those policies grant: a service's policies are what its keys get."""
        if not name or len(name) > 128 or not all(c.isalnum() or c in "-_." for c in name):
            raise InvalidInput("a service name holds letters, digits, '-', '_' and '.'")
        self._check_policies_exist(conn, policy_names)
        check_held_names(conn, holder, sorted(set(policy_names)))
        if conn.execute(select(services.c.id).where(services.c.name == name)).first():
            raise InvalidInput(f"a service named {name!r} exists already")
        record = {
            "id": "svc_" + secrets.token_hex(8),
            "name": name,
            "description": description,
            "policies": orjson.dumps(sorted(set(policy_names))).decode(),
            "created_at": self._clock.now_us(),
            "created_by": creator,
            "disabled_at": None,
        }
        conn.execute(insert(services).values(**record))
        return _public_service(record)

    def _check_policies_exist(self, conn: Connection, names: list[str]) -> None:
        check_policies_exist(conn, names)

    def _service(self, conn: Connection, name_or_id: str) -> Any:
        row = conn.execute(
            select(services).where((services.c.name == name_or_id) | (services.c.id == name_or_id))
        ).first()
        if row is None:
            raise NotFound(f"no service {name_or_id!r}")
        return row

    def service_of(self, key_id: str) -> str:
        """The name of the service that owns ``key_id`` (NotFound if no such key)."""
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(services.c.name)
                .join(api_keys, api_keys.c.owner_id == services.c.id)
                .where(api_keys.c.id == key_id)
            ).first()
        if row is None:
            raise NotFound(f"no key {key_id}")
        return str(row.name)

    def list_services(self) -> list[dict[str, Any]]:
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(services).order_by(services.c.name)).mappings().all()
        return [_public_service(dict(r)) for r in rows]

    # -- keys ----------------------------------------------------------------------------

    def create(
        self,
        conn: Connection,
        *,
        service: str,
        policy_names: list[str] | None,
        cidrs: list[str],
        expires_in_seconds: int | None,
        rate_limit: str | None,
        description: str,
        creator: str,
        holder: tuple[str, ...] | None,
    ) -> IssuedKey:
        """Issue a key for ``service``; its policies must be a subset of the service's,
        and ``holder`` (the issuer's policy names; None for the root token) must hold
        everything they grant (Forbidden otherwise)."""
        owner = self._service(conn, service)
        if owner.disabled_at is not None:
            raise InvalidInput(f"service {owner.name!r} is disabled")
        held = set(orjson.loads(owner.policies))
        wanted = set(policy_names) if policy_names else held
        extra = sorted(wanted - held)
        if extra:
            raise Forbidden(
                f"a key may not hold more than its service: {owner.name!r} does not have "
                f"{', '.join(extra)}"
            )
        check_held_names(conn, holder, sorted(wanted))
        networks = parse_cidrs(cidrs)
        ttl = (
            expires_in_seconds if expires_in_seconds is not None else self._default_ttl_days * 86400
        )
        if not 0 < ttl <= self._max_ttl_days * 86400:
            raise InvalidInput(f"a key expires after at most {self._max_ttl_days} days")
        if rate_limit is not None:
            _check_rate(rate_limit)
        now = self._clock.now_us()
        return self._insert(
            conn,
            owner_id=owner.id,
            policy_names=sorted(wanted),
            networks=networks,
            expires_at=now + ttl * 1_000_000,
            rate_limit=rate_limit,
            description=description,
            creator=creator,
        )

    def _insert(
        self,
        conn: Connection,
        *,
        owner_id: str,
        policy_names: list[str],
        networks: tuple[IpNetwork, ...],
        expires_at: int,
        rate_limit: str | None,
        description: str,
        creator: str,
    ) -> IssuedKey:
        key = keyformat.generate(keyformat.KIND_LIVE_KEY)
        record = {
            "id": "key_" + secrets.token_hex(8),
            "key_hash": self.hash(key),
            "display_prefix": key[:12],
            "key_space": KEY_SPACE_KEYSAFE,
            "owner_type": "service",
            "owner_id": owner_id,
            "description": description[:1024],
            "policies": orjson.dumps(policy_names).decode(),
            "cidrs": orjson.dumps([str(n) for n in networks]).decode(),
            "rate_limit": rate_limit,
            "created_at": self._clock.now_us(),
            "created_by": creator,
            "expires_at": expires_at,
            "revoked_at": None,
            "grace_until": None,
            "replaced_by": None,
            "last_used_at": None,
            "last_used_from": None,
            "use_count": 0,
            "suspended_at": None,
            "suspended_reason": None,
        }
        conn.execute(insert(api_keys).values(**record))
        return IssuedKey(key, public_key_record(record))

    def roll(
        self,
        conn: Connection,
        key_id: str,
        grace_seconds: int,
        creator: str,
        *,
        holder: tuple[str, ...] | None,
    ) -> IssuedKey:
        """A successor with the same owner, policies and limits; the old key keeps
        working for ``grace_seconds`` and then dies. A person or key rolling it passes
        its policy names as ``holder`` and must hold everything the key's policies grant
        (Forbidden otherwise): a successor is a new live key. None: the root token, or
        the scheduler acting for a rotation policy that was checked when it was set."""
        if not 0 <= grace_seconds <= 30 * 86400:
            raise InvalidInput("the grace period is between 0 and 30 days")
        old = self._row(conn, key_id)
        if old.revoked_at is not None or old.replaced_by is not None:
            raise InvalidInput(f"key {key_id} is revoked or already rolled")
        if old.suspended_at is not None:
            # A successor would be a live key in the hands of whoever holds this one.
            raise Conflict(
                f"key {key_id} is suspended: resume it first (keysafe key resume {key_id}), "
                "or revoke it and issue a new key"
            )
        now = self._clock.now_us()
        if old.expires_at <= now:
            # Rolling would revive it: a dead key stays dead (issue a new one instead).
            raise InvalidInput(f"key {key_id} has expired: issue a new key instead")
        check_held_names(conn, holder, orjson.loads(old.policies))
        remaining = max(old.expires_at - old.created_at, 0)
        issued = self._insert(
            conn,
            owner_id=old.owner_id,
            policy_names=orjson.loads(old.policies),
            networks=parse_cidrs(orjson.loads(old.cidrs)),
            expires_at=now + remaining,
            rate_limit=old.rate_limit,
            description=old.description,
            creator=creator,
        )
        conn.execute(
            update(api_keys)
            .where(api_keys.c.id == key_id)
            .values(grace_until=now + grace_seconds * 1_000_000, replaced_by=issued.record["id"])
        )
        self.forget(key_id)
        self.announcer.announce(conn, KIND_KEY, key_id)
        return issued

    def revoke(self, conn: Connection, key_id: str) -> None:
        """Revoke ``key_id`` for good (suspended or not; idempotent). Raises NotFound."""
        row = self._row(conn, key_id)
        if row.revoked_at is None:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.id == key_id)
                .values(revoked_at=self._clock.now_us())
            )
        self.forget(key_id)
        self.announcer.announce(conn, KIND_KEY, key_id)

    def suspend(self, conn: Connection, key_id: str, reason: str) -> dict[str, Any]:
        """Refuse ``key_id`` like a revoked key until ``resume``; returns its record.
        Raises NotFound, or Conflict when it is revoked, dead (expired or past its
        grace period) or already suspended."""
        row = self._row(conn, key_id)
        dead = self._dead(row)
        if dead is not None:
            raise Conflict(f"key {key_id} {dead}: there is nothing to suspend")
        if row.suspended_at is not None:
            raise Conflict(f"key {key_id} is already suspended")
        now = self._clock.now_us()
        done = conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.revoked_at.is_(None),
                api_keys.c.suspended_at.is_(None),
            )
            .values(suspended_at=now, suspended_reason=reason[:SUSPEND_REASON_MAX])
        )
        if not done.rowcount:
            raise Conflict(f"key {key_id} is already suspended or revoked")
        self.forget(key_id)
        self.announcer.announce(conn, KIND_KEY, key_id)
        return self._public(conn, key_id)

    def resume(self, conn: Connection, key_id: str) -> dict[str, Any]:
        """Lift the suspension of ``key_id``; returns its record. Raises NotFound, or
        Conflict when it is not suspended, or revoked, expired or past its grace period
        (resuming never brings a dead key back)."""
        row = self._row(conn, key_id)
        dead = self._dead(row)
        if dead is not None:
            raise Conflict(f"key {key_id} {dead}: it cannot be resumed; issue a new key")
        done = conn.execute(
            update(api_keys)
            .where(
                api_keys.c.id == key_id,
                api_keys.c.revoked_at.is_(None),
                api_keys.c.suspended_at.is_not(None),
            )
            .values(suspended_at=None, suspended_reason=None)
        )
        if not done.rowcount:
            raise Conflict(f"key {key_id} is not suspended")
        self.forget(key_id)
        self.announcer.announce(conn, KIND_KEY, key_id)
        return self._public(conn, key_id)

    def _dead(self, row: Any) -> str | None:
        """Why the key ``row`` can never verify again, or None if it still could."""
        now = self._clock.now_us()
        if row.revoked_at is not None:
            return "is revoked"
        if row.expires_at <= now:
            return "has expired"
        if row.grace_until is not None and row.grace_until < now:
            return "was rolled and its grace period is over"
        return None

    def _public(self, conn: Connection, key_id: str) -> dict[str, Any]:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().one()
        return public_key_record(dict(row))

    def find(self, key: str, conn: Connection) -> dict[str, Any] | None:
        """The stored record of ``key`` (revoked or not), or None; no cache."""
        if keyformat.parse(key) != keyformat.KIND_LIVE_KEY:
            return None
        digest = self.hash(key)
        row = conn.execute(select(api_keys).where(api_keys.c.key_hash == digest)).mappings().first()
        if row is None or not hmac.compare_digest(bytes(row["key_hash"]), digest):
            return None
        return dict(row)

    def _row(self, conn: Connection, key_id: str) -> Any:
        row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).first()
        if row is None:
            raise NotFound(f"no key {key_id}")
        return row

    def show(self, key_id: str) -> dict[str, Any]:
        self.flush_usage()
        with read_conn(self._engine) as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.id == key_id)).mappings().first()
        if row is None:
            raise NotFound(f"no key {key_id}")
        return public_key_record(dict(row))

    def list_keys(
        self, *, service: str | None = None, unused_for_seconds: int | None = None
    ) -> list[dict[str, Any]]:
        """Keys, optionally of one service, optionally only those unused for a while
        (never used counts from creation)."""
        self.flush_usage()
        query = select(api_keys).order_by(api_keys.c.created_at)
        with read_conn(self._engine) as conn:
            if service is not None:
                query = query.where(api_keys.c.owner_id == self._service(conn, service).id)
            rows = [dict(r) for r in conn.execute(query).mappings()]
        if unused_for_seconds is not None:
            cutoff = self._clock.now_us() - unused_for_seconds * 1_000_000
            rows = [
                r
                for r in rows
                if r["revoked_at"] is None and (r["last_used_at"] or r["created_at"]) < cutoff
            ]
        return [public_key_record(r) for r in rows]

    def revoke_unused(self, conn: Connection, days: int) -> list[str]:
        """Revoke live keys unused for ``days`` (never used: counted from creation);
        returns their ids. The caller flushes usage first (``flush_usage``, which needs
        its own transaction) and audits the revocations in this one."""
        cutoff = self._clock.now_us() - days * _DAY_US
        stale = [
            r.id
            for r in conn.execute(
                select(api_keys.c.id, api_keys.c.last_used_at, api_keys.c.created_at).where(
                    api_keys.c.revoked_at.is_(None)
                )
            )
            if (r.last_used_at or r.created_at) < cutoff
        ]
        for key_id in stale:
            self.revoke(conn, key_id)
        return stale

    # -- verification --------------------------------------------------------------------

    def verify(self, key: str, source: str) -> Principal:
        """The principal behind ``key`` presented from ``source``.

        Raises Unauthenticated (one vague message) for anything malformed, unknown,
        expired, revoked, suspended or past its grace period, and Forbidden when the source address
        is outside the key's allowlist (the caller proved possession of a live key).
        """
        digest = self.hash(key)
        now_mono = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and now_mono - cached[0] < self._cache_seconds:
            # Only a well-formed key can have been cached under its digest.
            record = cached[1]
        else:
            # Look-alikes and typos are refused before the database is asked.
            if keyformat.parse(key) != keyformat.KIND_LIVE_KEY:
                raise Unauthenticated(_UNAUTHENTICATED)
            record = self._load(digest)
            with self._lock:
                if len(self._cache) > 100_000:
                    self._cache.clear()
                self._cache[digest] = (now_mono, record)
        now = self._clock.now_us()
        record = self._check(record, source, now)
        self._note_use(record.id, source, now)
        return Principal(
            token_id=record.id,
            kind="key",
            mode="policy",
            prefix="",
            expires_at=record.expires_at,
            policies=record.policies,
            source_key=record.id,
        )

    def check_id(self, key_id: str, source: str | None) -> VerifiedKey:
        """The live key ``key_id``, for a credential derived from it (an exchanged JWT,
        a token it minted) at each of that credential's requests: the same cache, the
        same checks as ``verify``. Raises Unauthenticated when the key is unknown,
        expired, revoked, suspended or past its grace period, and Forbidden when
        ``source`` is outside its allowlist (``source`` None: no request to judge, as
        in introspection; the allowlist is then not checked)."""
        now_mono = time.monotonic()
        cached = self._by_id.get(key_id)
        if cached is not None and now_mono - cached[0] < self._cache_seconds:
            record = cached[1]
        else:
            record = self._record(self._raw.fetchone(self._sql_load_id, (key_id,)))
            with self._lock:
                if len(self._by_id) > 100_000:
                    self._by_id.clear()
                self._by_id[key_id] = (now_mono, record)
        return self._check(record, source, self._clock.now_us())

    def _check(self, record: VerifiedKey | None, source: str | None, now: int) -> VerifiedKey:
        """``record`` if it is live and (unless ``source`` is None) may be used from
        ``source``; raises Unauthenticated or Forbidden."""
        if (
            record is None
            or record.revoked_at is not None
            or record.suspended_at is not None
            or record.expires_at <= now
            or (record.grace_until is not None and record.grace_until < now)
        ):
            raise Unauthenticated(_UNAUTHENTICATED)
        if record.cidrs and source is not None:
            address = self._address(source)
            if address is None or not any(address in net for net in record.cidrs):
                raise Forbidden("this key may not be used from this address")
        return record

    def _address(self, source: str) -> IpAddress | None:
        if source in self._ip_cache:
            return self._ip_cache[source]
        try:
            address: IpAddress | None = ipaddress.ip_address(source)
        except ValueError:
            address = None
        if len(self._ip_cache) > 10_000:
            self._ip_cache.clear()
        self._ip_cache[source] = address
        return address

    def _load(self, digest: bytes) -> VerifiedKey | None:
        row = self._raw.fetchone(self._sql_load, (digest,))
        if row is None or not hmac.compare_digest(bytes(row[1]), digest):
            return None
        return self._record(row)

    @staticmethod
    def _record(row: Any) -> VerifiedKey | None:
        if row is None:
            return None
        key_id, _, owner_id, names, cidrs, expires_at, revoked_at, grace_until, suspended_at = row
        return VerifiedKey(
            id=key_id,
            owner_id=owner_id,
            policies=tuple(orjson.loads(names)),
            cidrs=parse_cidrs(orjson.loads(cidrs)),
            expires_at=expires_at,
            revoked_at=revoked_at,
            grace_until=grace_until,
            suspended_at=suspended_at,
        )

    def forget_all(self) -> None:
        """Drop every cached key (announcements may have been missed)."""
        with self._lock:
            self._by_id.clear()
            self._cache.clear()

    def forget(self, key_id: str) -> None:
        """Drop ``key_id`` from this process's caches (after a change to it), so that
        the key and every credential derived from it are judged afresh."""
        with self._lock:
            self._by_id.pop(key_id, None)
            for digest, (_, record) in list(self._cache.items()):
                if record is not None and record.id == key_id:
                    del self._cache[digest]

    # -- usage ---------------------------------------------------------------------------

    def _note_use(self, key_id: str, source: str, now: int) -> None:
        entry = self._usage.get(key_id)
        if entry is None:
            self._usage[key_id] = [1, now, source]
        else:
            entry[0] += 1
            entry[1] = now
            entry[2] = source

    def flush_usage(self) -> None:
        """Write the counted uses (called periodically and before usage is read)."""
        with self._lock:
            usage, self._usage = self._usage, {}
        if not usage:
            return
        with write_txn(self._engine) as conn:
            for key_id, (count, last_at, last_from) in usage.items():
                conn.execute(
                    update(api_keys)
                    .where(api_keys.c.id == key_id)
                    .values(
                        use_count=api_keys.c.use_count + count,
                        last_used_at=last_at,
                        last_used_from=last_from[:64],
                    )
                )

    def write_txn(self) -> Any:
        return write_txn(self._engine)

    def close(self) -> None:
        """Release the lookup path's database connections."""
        self._raw.close()


def _check_rate(text: str) -> None:
    count, _, per = text.partition("/")
    if not count.isdigit() or int(count) < 1 or per not in ("s", "sec", "min", "h", "hour", "day"):
        raise InvalidInput(f"{text!r} is not a rate such as 600/min, 10/s or 5000/hour")


def public_key_record(record: dict[str, Any]) -> dict[str, Any]:
    """A key record without its hash; times as ISO strings."""
    return {
        "id": record["id"],
        "prefix": record["display_prefix"],
        "key_space": record["key_space"],
        "service_id": record["owner_id"],
        "description": record["description"],
        "policies": orjson.loads(record["policies"]),
        "cidrs": orjson.loads(record["cidrs"]),
        "rate_limit": record["rate_limit"],
        "created_at": iso_us(record["created_at"]),
        "created_by": record["created_by"],
        "expires_at": iso_us(record["expires_at"]),
        "revoked": record["revoked_at"] is not None,
        "suspended": record.get("suspended_at") is not None,
        "suspended_at": iso_us(record.get("suspended_at")),
        "suspended_reason": record.get("suspended_reason"),
        "grace_until": iso_us(record["grace_until"]),
        "replaced_by": record["replaced_by"],
        "last_used_at": iso_us(record["last_used_at"]),
        "last_used_from": record["last_used_from"],
        "use_count": record["use_count"],
    }


def _public_service(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": record["id"],
        "name": record["name"],
        "description": record["description"],
        "policies": orjson.loads(record["policies"]),
        "created_at": iso_us(record["created_at"]),
        "disabled": record["disabled_at"] is not None,
    }
