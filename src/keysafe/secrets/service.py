"""Versioned, encrypted secrets: read, write, list, history, rollback, delete, destroy.

Every operation is authorised and audited before it answers. Reads run inline (one
indexed query and two AES-GCM opens) and wait for the group-committed audit event;
mutations run in a worker thread and append their audit event in their own
transaction, so a write and its record commit together.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import orjson
from sqlalchemy import Connection, Engine, Row, delete, select, update

from keysafe.access.authorizer import Authorizer
from keysafe.access.models import (
    Decision,
    Deny,
    RequestContext,
    authorize,
    covers,
    denial,
    request_event,
)
from keysafe.audit.models import OUTCOME_DENIED, OUTCOME_ERROR, OUTCOME_OK, AuditEvent
from keysafe.audit.service import AuditLog
from keysafe.bounds import MAX_VERSION, check_text, check_version, check_versions
from keysafe.clock import Clock
from keysafe.crypto.barrier import Barrier
from keysafe.crypto.envelope import DecryptionFailed
from keysafe.crypto.keyring import Envelope
from keysafe.errors import (
    AuditUnavailable,
    CasMismatch,
    Forbidden,
    IntegrityError,
    InvalidInput,
    KeysafeError,
    NotFound,
    ValueTooLarge,
)
from keysafe.secrets.models import SecretValue, WriteResult, context
from keysafe.secrets.paths import validate_path, validate_prefix
from keysafe.store.batcher import WriteBatcher
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.offload import BlockingCalls
from keysafe.store.prefix import starts_with
from keysafe.store.rawread import RawReader
from keysafe.store.tables import secret_versions, secrets
from keysafe.timefmt import iso_us, parse_iso_us

T = TypeVar("T")

_READ_QUERY = (
    select(
        secrets.c.id,
        secrets.c.path,
        secrets.c.current_version,
        secrets.c.max_versions,
        secrets.c.description,
        secrets.c.owner,
        secrets.c.tags,
        secrets.c.expires_at,
        secrets.c.created_at,
        secrets.c.updated_at,
        secret_versions.c.version,
        secret_versions.c.format,
        secret_versions.c.kek_version,
        secret_versions.c.wrapped_dek,
        secret_versions.c.ciphertext,
        secret_versions.c.deleted_at,
        secret_versions.c.destroyed,
    )
    .select_from(secrets)
    .outerjoin(secret_versions, secret_versions.c.secret_id == secrets.c.id)
)


class _VersionRow(NamedTuple):
    id: int
    path: str
    current_version: int
    max_versions: int
    description: str
    owner: str
    tags: str
    expires_at: int | None
    created_at: int
    updated_at: int
    version: int | None
    format: int
    kek_version: int
    wrapped_dek: bytes | None
    ciphertext: bytes | None
    deleted_at: int | None
    destroyed: bool
    version_created_at: int | None = None


# The same columns as _READ_QUERY, for the raw hot path (placeholders rewritten per driver).
_HOT_READ_SQL = (
    "SELECT s.id, s.path, s.current_version, s.max_versions, s.description, s.owner, s.tags,"
    " s.expires_at, s.created_at, s.updated_at, v.version, v.format, v.kek_version,"
    " v.wrapped_dek, v.ciphertext, v.deleted_at, v.destroyed, v.created_at"
    " FROM secrets s JOIN secret_versions v ON v.secret_id = s.id"
    " WHERE s.path = ? AND v.version = {version}"
)


def _metadata(row: Any) -> dict[str, Any]:
    return {
        "description": row.description,
        "owner": row.owner,
        "tags": orjson.loads(row.tags),
        "expires_at": iso_us(row.expires_at),
        "max_versions": row.max_versions,
        "current_version": row.current_version,
        "created_at": iso_us(row.created_at),
        "updated_at": iso_us(row.updated_at),
    }


class SecretsService:
    def __init__(
        self,
        engine: Engine,
        barrier: Barrier,
        audit: AuditLog,
        clock: Clock,
        *,
        max_value_bytes: int = 64 * 1024,
        default_max_versions: int = 20,
        refresh_keyring: Callable[[], None] | None = None,
        authorizer: Authorizer | None = None,
        blocking: BlockingCalls | None = None,
    ) -> None:
        # Reads run inline on SQLite, on a thread with a bounded wait on PostgreSQL.
        self._blocking = blocking or BlockingCalls(engine)
        self._authorizer = authorizer
        self._engine = engine
        self._barrier = barrier
        self._audit = audit
        self._clock = clock
        self._max_value_bytes = max_value_bytes
        self._default_max_versions = default_max_versions
        self._refresh_keyring = refresh_keyring
        self._postgres = engine.dialect.name == "postgresql"
        self._raw = RawReader(engine)
        self._writes = WriteBatcher(engine)
        sql = self._raw.sql
        lock = " FOR UPDATE" if self._postgres else ""
        self._sql_lock_head = sql(
            f"SELECT id, current_version, max_versions FROM secrets WHERE path = ?{lock}"  # noqa: S608
        )
        self._sql_insert_secret = sql(
            "INSERT INTO secrets (path, current_version, max_versions, description, owner,"
            " tags, expires_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (path) DO NOTHING"
        )
        self._sql_insert_version = sql(
            "INSERT INTO secret_versions (secret_id, version, format, kek_version,"
            " wrapped_dek, ciphertext, created_at, created_by, deleted_at, destroyed)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        self._sql_set_current = sql(
            "UPDATE secrets SET current_version = ?, updated_at = ? WHERE id = ?"
        )
        self._sql_prune = sql("DELETE FROM secret_versions WHERE secret_id = ? AND version <= ?")
        self._sql_current = self._raw.sql(_HOT_READ_SQL.format(version="s.current_version"))
        self._sql_version = self._raw.sql(_HOT_READ_SQL.format(version="?"))

    def close(self) -> None:
        """Release the hot path's database connections."""
        self._writes.stop()
        self._raw.close()

    @property
    def writer_alive(self) -> bool:
        """False while the write thread is dead (restarted by the next write)."""
        return self._writes.alive

    def revive_writer(self) -> bool:
        """Restart the write thread if it died; True when it did."""
        return self._writes.revive()

    # -- shared helpers ------------------------------------------------------------------

    def _event(
        self, ctx: RequestContext, op: str, path: str, outcome: str, detail: str = ""
    ) -> AuditEvent:
        return request_event(ctx, self._clock.now_us(), op, path, outcome, detail)

    def _decide(self, ctx: RequestContext, capability: str, path: str) -> Decision:
        if self._authorizer is None:
            return authorize(ctx.principal, capability, path)
        return self._authorizer.decide(ctx.principal, capability, path, ctx.source)

    async def _authorize(self, ctx: RequestContext, capability: str, op: str, path: str) -> None:
        decision = self._decide(ctx, capability, path)
        if isinstance(decision, Deny):
            await self._audit.record(self._event(ctx, op, path, OUTCOME_DENIED, decision.reason))
            raise denial(decision)

    async def _audited(
        self, ctx: RequestContext, op: str, path: str, fn: Callable[..., T], *, thread: bool
    ) -> T:
        """Run ``fn`` and audit its outcome.

        ``thread=True`` marks a mutation: ``fn(conn)`` runs in the group-committed write
        transaction of the batcher and appends its own ok event there.
        """
        try:
            result = await self._writes.run(fn) if thread else await self._blocking.run(fn)
        except AuditUnavailable:
            raise
        except KeysafeError as exc:
            await self._audit.record(self._event(ctx, op, path, OUTCOME_ERROR, exc.code))
            raise
        if not thread:
            await self._audit.record(self._event(ctx, op, path, OUTCOME_OK))
        return result

    def _decrypt(self, path: str, row: Any) -> str:
        envelope = Envelope(
            row.kek_version, bytes(row.wrapped_dek), bytes(row.ciphertext), row.format
        )
        ctx = context(path, row.version)
        keyring = self._barrier.keyring()
        if row.kek_version not in keyring.keks and self._refresh_keyring is not None:
            # Another process rotated the keyring since this one loaded it.
            self._refresh_keyring()
            keyring = self._barrier.keyring()
        try:
            return keyring.decrypt(envelope, ctx).decode()
        except DecryptionFailed:
            raise IntegrityError(
                f"version {row.version} of {path} failed its integrity check: the stored "
                "ciphertext was altered, moved or written under an unknown key"
            ) from None

    # -- reads ---------------------------------------------------------------------------

    async def read(self, ctx: RequestContext, path: str, version: int | None = None) -> SecretValue:
        """The value of ``path`` at ``version`` (default current)."""
        validate_path(path)
        check_version(version)
        await self._authorize(ctx, "read", "secret:read", path)
        return await self._audited(
            ctx, "secret:read", path, lambda: self._read(path, version), thread=False
        )

    def _read(self, path: str, version: int | None) -> SecretValue:
        self._barrier.keyring()
        if version is None:
            raw = self._raw.fetchone(self._sql_current, (path,))
        else:
            raw = self._raw.fetchone(self._sql_version, (path, version))
        if raw is None:
            if version is not None:
                raise NotFound(f"{path} has no version {version} (or no such secret)")
            raise NotFound(f"no secret at {path}")
        row = _VersionRow._make(raw)
        if row.destroyed:
            raise NotFound(f"version {row.version} of {path} was destroyed")
        if row.deleted_at is not None:
            raise NotFound(f"version {row.version} of {path} is deleted (undelete it to read it)")
        return SecretValue(
            path,
            row.current_version if version is None else version,
            self._decrypt(path, row),
            _metadata(row),
            iso_us(row.version_created_at),
        )

    async def list_paths(
        self, ctx: RequestContext, prefix: str, *, recursive: bool = True, values: bool = False
    ) -> list[dict[str, Any]]:
        """Paths under ``prefix`` (never values unless ``values`` and read is allowed)."""
        validate_prefix(prefix)
        await self._authorize_listing(ctx, prefix)
        rows = self._list_rows(prefix, recursive, values)
        items: list[dict[str, Any]] = []
        for row in rows:
            if not self._may_list(ctx, row.path):
                continue
            item: dict[str, Any] = {
                "path": row.path,
                "version": row.current_version,
                "updated_at": iso_us(row.updated_at),
                "state": "destroyed"
                if row.destroyed
                else "deleted"
                if row.deleted_at is not None
                else "active",
            }
            if values:
                if row.version is None or row.destroyed or row.deleted_at is not None:
                    continue
                await self._authorize(ctx, "read", "secret:read", row.path)
                item["value"] = self._decrypt(row.path, row)
            items.append(item)
        if values:
            for item in items:
                await self._audit.record(
                    self._event(ctx, "secret:read", item["path"], OUTCOME_OK, "bulk")
                )
        await self._audit.record(self._event(ctx, "secret:list", prefix, OUTCOME_OK))
        return items

    async def _authorize_listing(self, ctx: RequestContext, prefix: str) -> None:
        """Token modes: the prefix must overlap the token's. Policy-bound keys: a policy
        must grant ``list`` on the prefix itself (``payments/prod/*`` covers the folder
        ``payments/prod/``); the rows are then filtered path by path (``_may_list``)."""
        principal = ctx.principal
        if principal.judged_by_policies:
            await self._authorize(ctx, "list", "secret:list", prefix)
            return
        if not principal.is_root and not (
            covers(principal.prefix, prefix) or covers(prefix, principal.prefix)
        ):
            await self._audit.record(
                self._event(ctx, "secret:list", prefix, OUTCOME_DENIED, "outside token prefix")
            )
            raise Forbidden(f"permission denied: the token is limited to {principal.prefix!r}")
        await self._authorize(
            ctx,
            "list",
            "secret:list",
            prefix if covers(principal.prefix, prefix) else principal.prefix,
        )

    def _may_list(self, ctx: RequestContext, path: str) -> bool:
        principal = ctx.principal
        if principal.judged_by_policies:
            return bool(self._decide(ctx, "list", path))
        return principal.is_root or covers(principal.prefix, path)

    def _list_rows(self, prefix: str, recursive: bool, values: bool) -> list[Any]:
        query = _READ_QUERY.where(
            starts_with(secrets.c.path, prefix),
            secret_versions.c.version == secrets.c.current_version,
        ).order_by(secrets.c.path)
        with read_conn(self._engine) as conn:
            rows = list(conn.execute(query))
        if not recursive:
            rows = [r for r in rows if "/" not in r.path[len(prefix) :]]
        return rows

    async def known_digests(
        self, ctx: RequestContext, prefix: str
    ) -> tuple[bytes, list[dict[str, Any]]]:
        """Keyed digests of the current values under ``prefix`` that the caller may read.

        For ``keysafe scan --known``: the scanner hashes candidate strings with the same
        one-time key and compares, so no plaintext leaves the server and no scanned text
        leaves the scanning machine. Each digest is audited as a read of that secret.
        """
        validate_prefix(prefix)
        await self._authorize_listing(ctx, prefix)
        key = os.urandom(32)
        entries: list[dict[str, Any]] = []
        for row in self._list_rows(prefix, True, True):
            if row.version is None or row.destroyed or row.deleted_at is not None:
                continue
            if not self._decide(ctx, "read", row.path):
                continue
            value = self._decrypt(row.path, row).encode()
            entries.append(
                {
                    "path": row.path,
                    "version": row.current_version,
                    "length": len(value),
                    "digest": hmac.new(key, value, hashlib.sha256).hexdigest(),
                }
            )
        for entry in entries:
            await self._audit.record(self._event(ctx, "secret:digest", entry["path"], OUTCOME_OK))
        return key, entries

    async def history(self, ctx: RequestContext, path: str) -> dict[str, Any]:
        validate_path(path)
        await self._authorize(ctx, "list", "secret:history", path)

        def run() -> dict[str, Any]:
            with read_conn(self._engine) as conn:
                head = conn.execute(select(secrets).where(secrets.c.path == path)).first()
                if head is None:
                    raise NotFound(f"no secret at {path}")
                rows = conn.execute(
                    select(secret_versions)
                    .where(secret_versions.c.secret_id == head.id)
                    .order_by(secret_versions.c.version)
                ).all()
            return {
                "path": path,
                "current_version": head.current_version,
                "versions": [
                    {
                        "version": r.version,
                        "created_at": iso_us(r.created_at),
                        "created_by": r.created_by,
                        "deleted_at": iso_us(r.deleted_at),
                        "destroyed": bool(r.destroyed),
                    }
                    for r in rows
                ],
            }

        return await self._audited(ctx, "secret:history", path, run, thread=False)

    async def metadata(self, ctx: RequestContext, path: str) -> dict[str, Any]:
        validate_path(path)
        await self._authorize(ctx, "list", "secret:metadata", path)

        def run() -> dict[str, Any]:
            with read_conn(self._engine) as conn:
                head = conn.execute(select(secrets).where(secrets.c.path == path)).first()
            if head is None:
                raise NotFound(f"no secret at {path}")
            return {"path": path, **_metadata(head)}

        return await self._audited(ctx, "secret:metadata", path, run, thread=False)

    async def describe(self, ctx: RequestContext, path: str, capability: str) -> dict[str, Any]:
        """The metadata of ``path`` with every kept version's times and state (Vault's
        KV v2 metadata; also what a read of a deleted version reports), for a caller
        holding ``capability`` on it."""
        validate_path(path)
        await self._authorize(ctx, capability, "secret:metadata", path)

        def run() -> dict[str, Any]:
            with read_conn(self._engine) as conn:
                head = conn.execute(select(secrets).where(secrets.c.path == path)).first()
                if head is None:
                    raise NotFound(f"no secret at {path}")
                rows = conn.execute(
                    select(
                        secret_versions.c.version,
                        secret_versions.c.created_at,
                        secret_versions.c.deleted_at,
                        secret_versions.c.destroyed,
                    )
                    .where(secret_versions.c.secret_id == head.id)
                    .order_by(secret_versions.c.version)
                ).all()
            versions = [
                {
                    "version": r.version,
                    "created_at": iso_us(r.created_at),
                    "deleted_at": iso_us(r.deleted_at),
                    "destroyed": bool(r.destroyed),
                }
                for r in rows
            ]
            return {"path": path, **_metadata(head), "versions": versions}

        return await self._audited(ctx, "secret:metadata", path, run, thread=False)

    async def purge(self, ctx: RequestContext, path: str) -> None:
        """Remove ``path`` with every version and its metadata, for good (Vault's
        metadata delete); needs ``destroy`` on it."""
        validate_path(path)
        await self._authorize(ctx, "destroy", "secret:purge", path)

        def run(conn: Connection) -> None:
            head = self._lock_secret(conn, path)
            if head is None:
                raise NotFound(f"no secret at {path}")
            conn.execute(delete(secret_versions).where(secret_versions.c.secret_id == head.id))
            conn.execute(delete(secrets).where(secrets.c.id == head.id))
            detail = f"all versions (through {head.current_version})"
            self._audit.append_in_txn(
                conn, [self._event(ctx, "secret:purge", path, OUTCOME_OK, detail)]
            )

        await self._audited(ctx, "secret:purge", path, run, thread=True)

    # -- writes --------------------------------------------------------------------------

    async def write(
        self, ctx: RequestContext, path: str, value: str, cas: int | None = None
    ) -> WriteResult:
        """Store ``value`` as a new version; with ``cas`` only if the current version is it."""
        validate_path(path)
        size = len(check_text(value, "value").encode())
        if size > self._max_value_bytes:
            raise ValueTooLarge(f"the value is {size} bytes; the limit is {self._max_value_bytes}")
        if cas is not None and not 0 <= cas <= MAX_VERSION:
            raise InvalidInput("cas must be 0 (create only) or a version number")
        await self._authorize(ctx, "write", "secret:write", path)
        return await self._audited(
            ctx,
            "secret:write",
            path,
            lambda conn: self._write(conn, ctx, path, value, cas, "secret:write", ""),
            thread=True,
        )

    def write_in_txn(
        self, conn: Connection, ctx: RequestContext, path: str, value: str, cas: int | None
    ) -> WriteResult:
        """``write`` inside the caller's write transaction (its audit event too), for a
        service whose own rows must change atomically with the secret. The caller has
        authorised ``ctx``; CasMismatch rolls back with the caller's transaction."""
        validate_path(path)
        size = len(check_text(value, "value").encode())
        if size > self._max_value_bytes:
            raise ValueTooLarge(f"the value is {size} bytes; the limit is {self._max_value_bytes}")
        return self._write(conn, ctx, path, value, cas, "secret:write", "")

    def _lock_secret(self, conn: Connection, path: str) -> Row[Any] | None:
        query = select(secrets).where(secrets.c.path == path)
        if self._postgres:
            query = query.with_for_update()
        return conn.execute(query).first()

    def _write(
        self,
        conn: Connection,
        ctx: RequestContext,
        path: str,
        value: str,
        cas: int | None,
        op: str,
        detail: str,
    ) -> WriteResult:
        """One new version inside ``conn``'s transaction, with its audit event.

        Runs on the driver cursor with fixed SQL: SQLAlchemy's statement building cost
        ten times the statements themselves on this path (see the write benchmark).
        """
        keyring = self._barrier.keyring()
        now = self._clock.now_us()
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            head = self._lock_head(cur, path)
            if head is None:
                if cas not in (None, 0):
                    raise CasMismatch(
                        f"check-and-set failed: {path} does not exist (expected version {cas})"
                    )
                cur.execute(
                    self._sql_insert_secret,
                    (path, 0, self._default_max_versions, "", "", "{}", None, now, now),
                )
                head = self._lock_head(cur, path)
                assert head is not None
            secret_id, current, max_versions = head
            if cas is not None and cas != current:
                raise CasMismatch(
                    f"check-and-set failed: {path} is at version {current}, not {cas}",
                    current_version=current,
                )
            version = current + 1
            env = keyring.encrypt(value.encode(), context(path, version))
            cur.execute(
                self._sql_insert_version,
                (
                    secret_id,
                    version,
                    env.format,
                    env.kek_version,
                    env.wrapped_dek,
                    env.ciphertext,
                    now,
                    ctx.principal.token_id,
                    None,
                    False,
                ),
            )
            cur.execute(self._sql_set_current, (version, now, secret_id))
            if version > max_versions:
                cur.execute(self._sql_prune, (secret_id, version - max_versions))
            self._audit.append_with_cursor(
                cur, [self._event(ctx, op, path, OUTCOME_OK, detail or f"version {version}")], conn
            )
        finally:
            cur.close()
        return WriteResult(path, version, iso_us(now))

    def _lock_head(self, cur: Any, path: str) -> tuple[int, int, int] | None:
        cur.execute(self._sql_lock_head, (path,))
        row = cur.fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]))

    async def rollback(self, ctx: RequestContext, path: str, version: int) -> WriteResult:
        """A new version whose value equals ``version``'s."""
        validate_path(path)
        check_version(version)
        await self._authorize(ctx, "write", "secret:rollback", path)

        def run(conn: Connection) -> WriteResult:
            old = self._read(path, version)
            return self._write(
                conn, ctx, path, old.value, None, "secret:rollback", f"from version {version}"
            )

        return await self._audited(ctx, "secret:rollback", path, run, thread=True)

    async def set_metadata(
        self, ctx: RequestContext, path: str, changes: dict[str, Any]
    ) -> dict[str, Any]:
        validate_path(path)
        values: dict[str, Any] = {}
        if (desc := changes.get("description")) is not None:
            values["description"] = check_text(str(desc), "description")[:4096]
        if (owner := changes.get("owner")) is not None:
            values["owner"] = check_text(str(owner), "owner")[:256]
        if (tags := changes.get("tags")) is not None:
            if not isinstance(tags, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in tags.items()
            ):
                raise InvalidInput("tags must be an object of string keys and string values")
            for key, tag in tags.items():
                check_text(key, "tags")
                check_text(tag, "tags")
            values["tags"] = orjson.dumps(tags, option=orjson.OPT_SORT_KEYS).decode()
        if "expires_at" in changes:
            raw = changes["expires_at"]
            try:
                values["expires_at"] = None if raw in (None, "") else parse_iso_us(str(raw))
            except ValueError as exc:
                raise InvalidInput(f"expires_at {raw!r} is not an ISO 8601 date") from exc
        if (maxv := changes.get("max_versions")) is not None:
            if not isinstance(maxv, int) or not 1 <= maxv <= 1000:
                raise InvalidInput("max_versions must be between 1 and 1000")
            values["max_versions"] = maxv
        await self._authorize(ctx, "write", "secret:metadata-write", path)

        def run(conn: Connection) -> dict[str, Any]:
            head = self._lock_secret(conn, path)
            if head is None:
                raise NotFound(f"no secret at {path}")
            if values:
                conn.execute(
                    update(secrets)
                    .where(secrets.c.id == head.id)
                    .values(**values, updated_at=self._clock.now_us())
                )
            if "max_versions" in values:
                conn.execute(
                    delete(secret_versions).where(
                        secret_versions.c.secret_id == head.id,
                        secret_versions.c.version <= head.current_version - values["max_versions"],
                    )
                )
            self._audit.append_in_txn(
                conn,
                [
                    self._event(
                        ctx, "secret:metadata-write", path, OUTCOME_OK, ",".join(sorted(values))
                    )
                ],
            )
            new = conn.execute(select(secrets).where(secrets.c.id == head.id)).first()
            return {"path": path, **_metadata(new)}

        return await self._audited(ctx, "secret:metadata-write", path, run, thread=True)

    async def delete(self, ctx: RequestContext, path: str, versions: list[int] | None) -> None:
        """Soft delete (restorable); the latest version when ``versions`` is empty."""
        await self._mark(ctx, path, versions, "delete", "secret:delete")

    async def undelete(self, ctx: RequestContext, path: str, versions: list[int] | None) -> None:
        await self._mark(ctx, path, versions, "delete", "secret:undelete")

    async def destroy(self, ctx: RequestContext, path: str, versions: list[int]) -> None:
        """Wipe the ciphertext of ``versions`` for good; metadata stays."""
        if not versions:
            raise InvalidInput("name the versions to destroy")
        await self._mark(ctx, path, versions, "destroy", "secret:destroy")

    async def _mark(
        self, ctx: RequestContext, path: str, versions: list[int] | None, capability: str, op: str
    ) -> None:
        validate_path(path)
        check_versions(versions)
        await self._authorize(ctx, capability, op, path)

        def run(conn: Connection) -> None:
            now = self._clock.now_us()
            head = self._lock_secret(conn, path)
            if head is None:
                raise NotFound(f"no secret at {path}")
            targets = versions or [head.current_version]
            existing = {
                r.version
                for r in conn.execute(
                    select(secret_versions.c.version).where(
                        secret_versions.c.secret_id == head.id,
                        secret_versions.c.version.in_(targets),
                    )
                )
            }
            missing = sorted(set(targets) - existing)
            if missing:
                raise NotFound(f"{path} has no version {', '.join(map(str, missing))}")
            where = (
                secret_versions.c.secret_id == head.id,
                secret_versions.c.version.in_(targets),
            )
            if op == "secret:delete":
                change: dict[str, Any] = {"deleted_at": now}
            elif op == "secret:undelete":
                change = {"deleted_at": None}
            else:
                change = {"wrapped_dek": None, "ciphertext": None, "destroyed": True}
            conn.execute(update(secret_versions).where(*where).values(**change))
            detail = "versions " + ",".join(map(str, sorted(targets)))
            self._audit.append_in_txn(conn, [self._event(ctx, op, path, OUTCOME_OK, detail)])

        await self._audited(ctx, op, path, run, thread=True)

    # -- key maintenance -----------------------------------------------------------------

    def rewrap_batch(self, batch: int) -> tuple[int, int, int]:
        """Re-wrap up to ``batch`` data keys under the newest KEK; (done, remaining, total)."""
        keyring = self._barrier.keyring()
        current = keyring.current_version
        live = secret_versions.c.ciphertext.is_not(None)
        with write_txn(self._engine) as conn:
            rows = conn.execute(
                select(secret_versions, secrets.c.path)
                .join(secrets, secrets.c.id == secret_versions.c.secret_id)
                .where(live, secret_versions.c.kek_version < current)
                .limit(batch)
            ).all()
            for r in rows:
                env = Envelope(r.kek_version, bytes(r.wrapped_dek), bytes(r.ciphertext), r.format)
                try:
                    new = keyring.rewrap(env, context(r.path, r.version))
                except DecryptionFailed as exc:
                    raise IntegrityError(
                        f"version {r.version} of {r.path} failed its integrity check"
                    ) from exc
                conn.execute(
                    update(secret_versions)
                    .where(
                        secret_versions.c.secret_id == r.secret_id,
                        secret_versions.c.version == r.version,
                    )
                    .values(kek_version=new.kek_version, wrapped_dek=new.wrapped_dek)
                )
            remaining = self._count(conn, live & (secret_versions.c.kek_version < current))
            total = self._count(conn, live)
        return len(rows), remaining, total

    @staticmethod
    def _count(conn: Connection, where: Any) -> int:
        from sqlalchemy import func

        return int(
            conn.execute(
                select(func.count()).select_from(secret_versions).where(where)
            ).scalar_one()
        )
