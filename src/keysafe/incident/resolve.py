"""Turn what an operator or a scanner names into incident items.

Ids and paths are checked against the store. Scan findings carry the leaked text
itself: a keysafe credential is looked up by its keyed hash, and any value is compared
with the stored secrets the caller may read through ``SecretsService.known_digests``
(one-time-keyed digests, each audited as ``secret:digest``), so that a leaked database
password found in a repository names the secret to rotate. Leaked values stay in memory
for the verify step and are never stored.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select

from keysafe.access.apikeys import KeyService
from keysafe.access.models import RequestContext
from keysafe.access.service import TokenService
from keysafe.crypto import keyformat
from keysafe.errors import Forbidden, InvalidInput, NotFound
from keysafe.incident.models import (
    KIND_KEY,
    KIND_LEASE,
    KIND_SECRET,
    KIND_TOKEN,
    MANUAL,
    Exposure,
    Item,
)
from keysafe.secrets.service import SecretsService
from keysafe.store.engine import read_conn
from keysafe.store.tables import api_keys, secrets, tokens

MAX_ITEMS = 200


@dataclass(frozen=True, slots=True)
class Finding:
    """One scan finding as ``keysafe scan --format json --show-secrets`` writes it."""

    secret: str
    rule: str = ""
    file: str = ""
    line: int = 0

    def where(self) -> str:
        place = f"{self.file}:{self.line}" if self.file else "a scan finding"
        return f"{self.rule} at {place}" if self.rule else place


@dataclass(frozen=True, slots=True)
class Named:
    """What an incident is opened for, before resolution."""

    keys: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    secrets: tuple[str, ...] = ()
    leases: tuple[str, ...] = ()
    findings: tuple[Finding, ...] = ()


class Resolver:
    def __init__(
        self,
        engine: Engine,
        keys: KeyService,
        tokens_: TokenService,
        secrets_: SecretsService,
        *,
        lease_exists: Callable[[str], bool] | None = None,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._tokens = tokens_
        self._secrets = secrets_
        self._lease_exists = lease_exists

    async def resolve(self, named: Named, ctx: RequestContext | None) -> Exposure:
        """Items for ``named``; raises NotFound for an unknown id or path and
        InvalidInput for nothing at all or too much. Findings that match nothing are
        kept as notes (the report says so) rather than refused."""
        count = (
            len(named.keys)
            + len(named.tokens)
            + len(named.secrets)
            + len(named.leases)
            + len(named.findings)
        )
        if count == 0:
            raise InvalidInput("name at least one key, token, secret, lease or finding")
        if count > MAX_ITEMS:
            raise InvalidInput(f"an incident covers at most {MAX_ITEMS} items")
        items: dict[tuple[str, str], Item] = {}
        raw: dict[tuple[str, str], str] = {}
        notes: list[tuple[str, str, str]] = []

        def add(item: Item) -> None:
            items.setdefault((item.kind, item.ref), item)

        with read_conn(self._engine) as conn:
            for kind, table, ids in (
                (KIND_KEY, api_keys, named.keys),
                (KIND_TOKEN, tokens, named.tokens),
            ):
                for ref in ids:
                    if conn.execute(select(table.c.id).where(table.c.id == ref)).first() is None:
                        raise NotFound(f"no {kind} {ref}")
                    add(Item(kind, ref, "named by the operator"))
            for path in named.secrets:
                found = conn.execute(select(secrets.c.id).where(secrets.c.path == path)).first()
                if found is None:
                    raise NotFound(f"no secret at {path}")
                add(Item(KIND_SECRET, path, "named by the operator"))
            unmatched: list[Finding] = []
            for finding in named.findings:
                item = self._credential(finding, conn)
                if item is None:
                    unmatched.append(finding)
                    continue
                add(item)
                raw[(item.kind, item.ref)] = finding.secret
        for lease in named.leases:
            if self._lease_exists is not None and not self._lease_exists(lease):
                raise NotFound(f"no lease {lease}")
            add(Item(KIND_LEASE, lease, "named by the operator"))
        # Every finding's value may also be stored (a key kept as a secret, a database
        # password): match them all against the stored values.
        try:
            matched = await self._stored(named.findings, ctx)
        except Forbidden:
            # known_digests needs ``list`` on every path (it audited the denial): the
            # operator may run incidents without reading every secret.
            matched = {}
            notes.append(
                (
                    "stored secrets",
                    MANUAL,
                    "leaked values were not compared with stored secrets: the caller may"
                    " not list every path; name the secrets with --secret",
                )
            )
        for finding in named.findings:
            paths = matched.get(finding.secret, [])
            for path in paths:
                add(Item(KIND_SECRET, path, f"its value leaked: {finding.where()}"))
            if not paths and finding in unmatched:
                notes.append(
                    (
                        finding.where(),
                        MANUAL,
                        "not a known keysafe credential nor the current value of a secret"
                        " the caller may read: rotate it at its source",
                    )
                )
        return Exposure(tuple(items.values()), raw, tuple(notes))

    def _credential(self, finding: Finding, conn: Connection) -> Item | None:
        kind = keyformat.parse(finding.secret)
        if kind is None:
            return None
        if kind == keyformat.KIND_LIVE_KEY:
            record = self._keys.find(finding.secret, conn)
            item_kind = KIND_KEY
        else:
            record = self._tokens.find(finding.secret, conn)
            item_kind = KIND_TOKEN
        if record is None:
            return None
        return Item(item_kind, str(record["id"]), f"leaked: {finding.where()}")

    async def _stored(
        self, findings: tuple[Finding, ...], ctx: RequestContext | None
    ) -> dict[str, list[str]]:
        """Leaked value -> paths of stored secrets whose current value it is."""
        values = {f.secret for f in findings if f.secret}
        if not values or ctx is None:
            return {}
        key, entries = await self._secrets.known_digests(ctx, "")
        by_digest: dict[str, list[str]] = {}
        for entry in entries:
            by_digest.setdefault(entry["digest"], []).append(entry["path"])
        out: dict[str, list[str]] = {}
        for value in values:
            digest = hmac.new(key, value.encode(), hashlib.sha256).hexdigest()
            for stored, paths in by_digest.items():
                if hmac.compare_digest(stored, digest):
                    out[value] = sorted(paths)
        return out
