"""Usage of API keys, identities and secrets: who called, from where, what, when.

Keys and identities: requests are aggregated in memory per (subject kind, subject,
hour): counts of answers that went through, were denied, were rate limited or failed
otherwise; first and last time; a bounded set of source addresses and of secret paths
touched. A background job merges them into ``usage_buckets``/``usage_items`` with
upserts (counts add up, first is the minimum, last the maximum), so flushes and
processes merge instead of overwrite. Nothing is stored per request, and nothing here
ever holds a secret value or a credential.

Secrets: the audit trail already holds one event per operation on a secret, with its
actor, source and outcome, and is indexed by (path, time); a secret's usage is read from
there. Tracking it again here cost one bucket and two item rows per first read of a
secret in an hour: with many secrets read uniformly, more rows than the audit itself
(a third of the read throughput of a 100,000-secret store went to it).

What one process has not flushed yet (at most one flush interval) is not visible to
queries served by another process; a secret's usage is as current as its audit trail.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, Engine, and_, case, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite

from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_OK
from keysafe.clock import Clock
from keysafe.errors import InvalidInput
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_monitor import usage_buckets, usage_items
from keysafe.timefmt import iso_us

# Subject kinds and item dimensions are persisted: only ever add.
KIND_KEY: Final = "key"
KIND_IDENTITY: Final = "identity"
KIND_SECRET: Final = "secret"  # noqa: S105 (a subject kind, not a password)
KINDS: Final = (KIND_KEY, KIND_IDENTITY, KIND_SECRET)
DIM_SOURCE: Final = "source"
DIM_PATH: Final = "path"
DIM_ACTOR: Final = "actor"

# At most this many distinct values per subject, hour and dimension (memory and rows
# stay small under a spray of addresses or paths; the counts stay exact).
MAX_ITEMS: Final[dict[str, int]] = {DIM_SOURCE: 32, DIM_PATH: 64, DIM_ACTOR: 32}
MAX_DAYS = 90
_HOUR_US = 3_600_000_000
_DAY_US = 86_400_000_000
_MAX_VALUE = 512
_MAX_PENDING = 50_000  # buckets held between flushes before new subjects are dropped
_LOG_BOUND = 8192  # requests logged before the request path counts them into buckets
# Audit operations that are not a request on the secret (the rotation engine's own
# steps are audited under the ``system:`` actors) are left out of a secret's counts.
_SYSTEM_ACTORS = "system:"


@dataclass(slots=True)
class _Bucket:
    first: int
    last: int
    ok: int = 0
    denied: int = 0
    limited: int = 0
    errors: int = 0
    items: dict[str, set[str]] = field(default_factory=dict)

    def count(self, status: int) -> None:
        if status < 400:
            self.ok += 1
        elif status in (401, 403):
            self.denied += 1
        elif status == 429:
            self.limited += 1
        else:
            self.errors += 1

    def add(self, dim: str, value: str) -> None:
        values = self.items.get(dim)
        if values is None:
            self.items[dim] = {value[:_MAX_VALUE]}
        elif len(values) < MAX_ITEMS[dim]:
            values.add(value[:_MAX_VALUE])

    def merge(self, other: _Bucket) -> None:
        self.first = min(self.first, other.first)
        self.last = max(self.last, other.last)
        self.ok += other.ok
        self.denied += other.denied
        self.limited += other.limited
        self.errors += other.errors
        for dim, values in other.items.items():
            for value in values:
                self.add(dim, value)


_Key = tuple[str, str, int]  # kind, subject, hour (unix seconds)
_ItemKey = tuple[str, str, int, str]  # kind, subject, hour, dim
_LOOKUP_CHUNK = 200
_FLUSH_CHUNK = 250


class UsageTracker:
    """In-memory aggregation on the request path, merged into the database by ``flush``."""

    def __init__(
        self,
        engine: Engine,
        clock: Clock,
        *,
        retention_days: int = MAX_DAYS,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._postgres = engine.dialect.name == "postgresql"
        self.retention_days = retention_days
        self._pending: dict[_Key, _Bucket] = {}
        # Item values known to be stored (this hour and the last), so that steady
        # traffic does not look them up again at every flush. Touched by flush only.
        self._stored: dict[_ItemKey, set[str]] = {}
        # Requests noted and not yet counted into ``_pending`` (see ``note``).
        self._log: deque[tuple[str, str, str, int, str | None, int]] = deque()
        self._lock = threading.Lock()
        self._flushing = threading.Lock()

    # -- the request path ---------------------------------------------------------------

    def note(
        self,
        kind: str,
        actor: str,
        source: str,
        status: int,
        secret_path: str | None = None,
    ) -> None:
        """Count one answered request of ``actor`` (a key or identity id) from ``source``;
        ``secret_path`` is the secret it addressed, if any (one of the actor's paths; the
        secret's own usage is its audit trail).

        One tuple appended to a log (``deque.append`` is atomic: no lock): counting it
        into its bucket at once cost an audited read about 1.5% in the server (a lock, two
        set lookups, the bucket's fields, run with cold caches on every request). ``flush``
        (or a full log) adds the log up in one tight loop."""
        self._log.append((kind, actor, source, status, secret_path, self._clock.now_us()))
        if len(self._log) >= _LOG_BOUND:
            self._absorb()

    def _absorb(self) -> None:
        """Count the logged requests into their buckets (any thread; each entry once)."""
        log, popleft = self._log, self._log.popleft
        with self._lock:
            for _ in range(len(log)):
                try:
                    kind, actor, source, status, secret_path, now = popleft()
                except IndexError:  # another thread took the rest
                    break
                bucket = self._bucket((kind, actor, now // _HOUR_US * 3600), now)
                if bucket is not None:
                    bucket.count(status)
                    bucket.add(DIM_SOURCE, source)
                    if secret_path is not None:
                        bucket.add(DIM_PATH, secret_path)

    def _bucket(self, key: _Key, now: int) -> _Bucket | None:
        bucket = self._pending.get(key)
        if bucket is None:
            if len(self._pending) >= _MAX_PENDING:
                return None  # the database is not keeping up; counts resume after a flush
            bucket = self._pending[key] = _Bucket(now, now)
        elif now > bucket.last:  # threads may log a little out of order
            bucket.last = now
        elif now < bucket.first:
            bucket.first = now
        return bucket

    # -- flushing -----------------------------------------------------------------------

    def flush(self) -> int:
        """Merge the pending counts into the database; returns the buckets written.

        Written in transactions of at most ``_FLUSH_CHUNK`` buckets, so that the audit
        writer (which shares SQLite's one write lock) waits for a short one at most.
        On a database error the unwritten counts are kept for the next flush and the
        error raised.
        """
        with self._flushing:  # the poll loop's flush and a query's flush, one at a time
            return self._flush()

    def _flush(self) -> int:
        self._absorb()
        with self._lock:
            pending, self._pending = self._pending, {}
        if not pending:
            return 0
        keys = sorted(pending)  # concurrent flushes lock rows in the same order
        current = max(hour for _, _, hour in keys)
        self._stored = {g: v for g, v in self._stored.items() if g[2] >= current - 3600}
        for start in range(0, len(keys), _FLUSH_CHUNK):
            chunk = {key: pending[key] for key in keys[start : start + _FLUSH_CHUNK]}
            try:
                with write_txn(self._engine) as conn:
                    learned = self._write(conn, chunk)
            except BaseException:
                self._keep({key: pending[key] for key in keys[start:]})
                raise
            # Only after the commit: what is known stored (this hour and the last).
            for group, values in learned.items():
                self._stored.setdefault(group, set()).update(values)
        return len(pending)

    def _keep(self, unwritten: dict[_Key, _Bucket]) -> None:
        with self._lock:
            for key, bucket in unwritten.items():
                mine = self._pending.get(key)
                if mine is None:
                    self._pending[key] = bucket
                else:
                    mine.merge(bucket)

    def _write(self, conn: Connection, pending: dict[_Key, _Bucket]) -> dict[_ItemKey, set[str]]:
        dialect_insert = postgresql.insert if self._postgres else sqlite.insert
        stmt = dialect_insert(usage_buckets)
        new, old = stmt.excluded, usage_buckets.c
        upsert = stmt.on_conflict_do_update(
            index_elements=[old.kind, old.subject, old.hour],
            set_={
                "ok": old.ok + new.ok,
                "denied": old.denied + new.denied,
                "limited": old.limited + new.limited,
                "errors": old.errors + new.errors,
                "first_at": case((new.first_at < old.first_at, new.first_at), else_=old.first_at),
                "last_at": case((new.last_at > old.last_at, new.last_at), else_=old.last_at),
            },
        )
        keys = sorted(pending)
        conn.execute(
            upsert,
            [
                {
                    "kind": kind,
                    "subject": subject,
                    "hour": hour,
                    "ok": pending[(kind, subject, hour)].ok,
                    "denied": pending[(kind, subject, hour)].denied,
                    "limited": pending[(kind, subject, hour)].limited,
                    "errors": pending[(kind, subject, hour)].errors,
                    "first_at": pending[(kind, subject, hour)].first,
                    "last_at": pending[(kind, subject, hour)].last,
                }
                for kind, subject, hour in keys
            ],
        )
        return self._write_items(conn, dialect_insert, pending)

    def _write_items(
        self, conn: Connection, dialect_insert: Any, pending: dict[_Key, _Bucket]
    ) -> dict[_ItemKey, set[str]]:
        """Insert the values not stored yet, as many as each dimension's bound leaves
        room for; returns what is now known stored. Values this process already knows
        are stored cost nothing, so a steady flush asks the database nothing here; the
        others are looked up in a few batched queries (two processes flushing at once
        may each fill the room: a small overshoot)."""
        wanted: dict[_ItemKey, set[str]] = {}
        for (kind, subject, hour), bucket in pending.items():
            for dim, values in bucket.items.items():
                group = (kind, subject, hour, dim)
                known = self._stored.get(group, set())
                if len(known) < MAX_ITEMS[dim] and values - known:
                    wanted[group] = values - known
        if not wanted:
            return {}
        stored: dict[_ItemKey, set[str]] = {group: set() for group in wanted}
        groups = sorted(wanted)
        # Looked up as kind = ? AND hour = ? AND subject IN (...): a seek on the primary
        # key. (A row-value IN over the four columns made SQLite scan the whole table:
        # about 100 ms per 200 groups at 400,000 rows, under the write lock.)
        subjects: dict[tuple[str, int], set[str]] = defaultdict(set)
        for kind, subject, hour, _ in groups:
            subjects[(kind, hour)].add(subject)
        i = usage_items.c
        for (kind, hour), names in sorted(subjects.items()):
            ordered = sorted(names)
            for chunk in range(0, len(ordered), _LOOKUP_CHUNK):
                rows = conn.execute(
                    select(i.subject, i.dim, i.value).where(
                        i.kind == kind,
                        i.hour == hour,
                        i.subject.in_(ordered[chunk : chunk + _LOOKUP_CHUNK]),
                    )
                )
                for subject, dim, value in rows:
                    found = stored.get((kind, subject, hour, dim))
                    if found is not None:
                        found.add(value)
        inserts: list[dict[str, Any]] = []
        for group in groups:
            kind, subject, hour, dim = group
            room = MAX_ITEMS[dim] - len(stored[group])
            fresh = sorted(wanted[group] - stored[group])[: max(room, 0)]
            stored[group].update(fresh)
            inserts.extend(
                {"kind": kind, "subject": subject, "hour": hour, "dim": dim, "value": value}
                for value in fresh
            )
        if inserts:
            conn.execute(dialect_insert(usage_items).on_conflict_do_nothing(), inserts)
        return stored

    def prune(self) -> int:
        """Delete buckets older than the retention; returns the bucket rows deleted."""
        cutoff = self._clock.now_us() // 1_000_000 - self.retention_days * 86_400
        with write_txn(self._engine) as conn:
            conn.execute(delete(usage_items).where(usage_items.c.hour < cutoff))
            return conn.execute(delete(usage_buckets).where(usage_buckets.c.hour < cutoff)).rowcount

    # -- queries ------------------------------------------------------------------------

    def usage(self, kind: str, subject: str, days: int = 7) -> dict[str, Any]:
        """The usage of one subject: totals and one row per UTC day over the last
        ``days`` days (today included), the sources, paths and actors seen, and the
        first and last use within the retention. Raises InvalidInput for a bad kind or
        day count."""
        if kind not in KINDS:
            raise InvalidInput(f"kind must be one of {', '.join(KINDS)}")
        if not 1 <= days <= self.retention_days:
            raise InvalidInput(f"days must be between 1 and {self.retention_days}")
        today = self._clock.now_us() // 1_000_000 // 86_400
        since = (today - days + 1) * 86_400
        per_day: dict[int, dict[str, int]] = defaultdict(
            lambda: {"requests": 0, "ok": 0, "denied": 0, "limited": 0, "errors": 0}
        )
        seen: dict[str, set[str]] = {DIM_SOURCE: set(), DIM_PATH: set(), DIM_ACTOR: set()}
        if kind == KIND_SECRET:
            span = self._secret_usage(subject, since, per_day, seen)
        else:
            self.flush()
            span = self._bucket_usage(kind, subject, since, per_day, seen)
        totals = {"requests": 0, "ok": 0, "denied": 0, "limited": 0, "errors": 0}
        for day in per_day.values():
            day["requests"] = day["ok"] + day["denied"] + day["limited"] + day["errors"]
            for name, value in day.items():
                totals[name] += value
        return {
            "kind": kind,
            "id": subject,
            "days": days,
            "first_used_at": iso_us(span[0]),
            "last_used_at": iso_us(span[1]),
            "totals": totals,
            "per_day": [
                {
                    "date": dt.datetime.fromtimestamp(day * 86_400, dt.UTC).date().isoformat(),
                    **counts,
                }
                for day, counts in sorted(per_day.items())
            ],
            "sources": sorted(seen[DIM_SOURCE]),
            "paths": sorted(seen[DIM_PATH]),
            "actors": sorted(seen[DIM_ACTOR]),
            # Each hour keeps a bounded number of values per dimension (MAX_ITEMS); a
            # secret's come from its audit trail, bounded the same way over the period.
            "item_limits": dict(MAX_ITEMS),
        }

    def _bucket_usage(
        self,
        kind: str,
        subject: str,
        since: int,
        per_day: dict[int, dict[str, int]],
        seen: dict[str, set[str]],
    ) -> tuple[int | None, int | None]:
        """A key's or identity's counts and items from the buckets (into ``per_day``
        and ``seen``); returns its first and last use."""
        b = usage_buckets.c
        mine = and_(b.kind == kind, b.subject == subject)
        with read_conn(self._engine) as conn:
            span = conn.execute(select(func.min(b.first_at), func.max(b.last_at)).where(mine)).one()
            rows = conn.execute(
                select(b.hour, b.ok, b.denied, b.limited, b.errors)
                .where(mine, b.hour >= since)
                .order_by(b.hour)
            ).all()
            items = conn.execute(
                select(usage_items.c.dim, usage_items.c.value).where(
                    usage_items.c.kind == kind,
                    usage_items.c.subject == subject,
                    usage_items.c.hour >= since,
                )
            ).all()
        for row in rows:
            day = per_day[row.hour // 86_400]
            for name in ("ok", "denied", "limited", "errors"):
                day[name] += getattr(row, name)
        for dim, value in items:
            seen.setdefault(dim, set()).add(value)
        return span[0], span[1]

    def _secret_usage(
        self,
        path: str,
        since: int,
        per_day: dict[int, dict[str, int]],
        seen: dict[str, set[str]],
    ) -> tuple[int | None, int | None]:
        """A secret's counts, sources and actors from its audit events (one per
        operation; a burst of rate-limited requests is one ``ratelimit:hit``), the
        engine's own ``system:`` steps left out; returns its first and last use."""
        a = audit_events.c
        mine = and_(a.path == path, a.actor.not_like(f"{_SYSTEM_ACTORS}%"))
        recent = and_(mine, a.ts >= since * 1_000_000)
        day = a.ts // _DAY_US
        with read_conn(self._engine) as conn:
            span = conn.execute(select(func.min(a.ts), func.max(a.ts)).where(mine)).one()
            counts = conn.execute(
                select(day, a.operation, a.outcome, func.count())
                .where(recent)
                .group_by(day, a.operation, a.outcome)
            ).all()
            for dim, column in ((DIM_SOURCE, a.source), (DIM_ACTOR, a.actor)):
                values = conn.execute(
                    select(column).where(recent).distinct().limit(MAX_ITEMS[dim])
                ).scalars()
                seen[dim].update(values)
        for number, operation, outcome, n in counts:
            if operation == "ratelimit:hit":
                name = "limited"
            else:
                name = {OUTCOME_OK: "ok", OUTCOME_DENIED: "denied"}.get(outcome, "errors")
            per_day[int(number)][name] += n
        return span[0], span[1]
