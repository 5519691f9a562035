"""Temporary database logins against the real PostgreSQL of this machine.

The lease bookkeeping runs on both store engines (the ``vault`` fixture); the target is
always the real PostgreSQL server, in a fresh schema per test. Every role a test makes
carries a random slug and is dropped afterwards whatever happened.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
from sqlalchemy import func, select, update
from vaultkit import Vault

from keysafe.access.models import Principal
from keysafe.errors import Conflict, Forbidden, InvalidInput, NotFound, RotationFailed
from keysafe.rotation.leases import LeaseService
from keysafe.rotation.targets import make_target
from keysafe.server.app import create_app
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_leases import leases
from pgtest import PG_BASE, pg_schema_url

pytestmark = pytest.mark.anyio

DOWN_URL = "postgresql://postgres:not-the-password@127.0.0.1:1/test"


@dataclass
class Target:
    url: str  # the admin URL (search_path = a fresh schema)
    slug: str  # every role name of the test starts with it

    def role_exists(self, username: str) -> bool:
        with psycopg.connect(PG_BASE) as conn:
            row = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (username,))
            return row.fetchone() is not None

    def login_url(self, username: str, password: str) -> str:
        return f"postgresql://{username}:{password}@127.0.0.1:5432/test"

    def can_connect(self, username: str, password: str) -> bool:
        try:
            with psycopg.connect(self.login_url(username, password), connect_timeout=3) as c:
                c.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True


@pytest.fixture
def target() -> Iterator[Target]:
    slug = "lt" + os.urandom(4).hex()
    with pg_schema_url("ks_lt_") as url:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE reports (id int)")
            conn.execute("INSERT INTO reports VALUES (1), (2)")
        try:
            yield Target(url, slug)
        finally:
            with psycopg.connect(PG_BASE, autocommit=True) as conn:
                names = [
                    r[0]
                    for r in conn.execute(
                        "SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"ks_{slug}%",)
                    )
                ]
                for name in names:
                    conn.execute(f'DROP OWNED BY "{name}"')
                    conn.execute(f'DROP ROLE "{name}"')


GRANTS = [
    "GRANT USAGE ON SCHEMA SCHEMA TO {{name}}",
    "GRANT SELECT ON ALL TABLES IN SCHEMA SCHEMA TO {{name}}",
]


async def _approve_targets(vault: Vault) -> None:
    """Reaching the network is an admin decision: the test database (and the closed
    port of DOWN_URL) approved as rotation targets for any login."""
    for port in (5432, 1):
        target = make_target("postgres", "127.0.0.1", port, "test")
        await vault.svc.rotation.targets.approve(vault.root, target)


async def _setup(vault: Vault, target: Target, role: str, **opts: object) -> LeaseService:
    """The admin URL as a secret and role ``<slug>/<role>`` reading the test's schema."""
    svc = vault.svc
    await _approve_targets(vault)
    await svc.secrets.write(vault.root, "db/admin", target.url)
    schema = target.url.rsplit("%3D", 1)[1]
    values = {
        "connection_secret": "db/admin",
        "grants": [g.replace("SCHEMA SCHEMA", f"SCHEMA {schema}") for g in GRANTS],
        "default_ttl": 60,
        "max_ttl": 120,
        **opts,
    }
    from keysafe.rotation import lease_models as m

    config = m.RoleConfig.checked(f"{target.slug}/{role}", **values)  # type: ignore[arg-type]
    with write_txn(svc.engine) as conn:
        m.write_role(conn, config, "test", svc.clock.now_us())
    return svc.leases


def _state(vault: Vault, lease_id: str) -> str:
    with read_conn(vault.svc.engine) as conn:
        return str(conn.execute(select(leases.c.state).where(leases.c.id == lease_id)).scalar())


async def test_login_lives_with_its_lease_and_dies_on_revoke(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "reporting")
    issued = await service.issue(vault.root, f"{target.slug}/reporting")
    assert issued.username.startswith(f"ks_{target.slug}_reporting_")
    assert target.role_exists(issued.username)
    with psycopg.connect(target.login_url(issued.username, issued.password)) as conn:
        schema = target.url.rsplit("%3D", 1)[1]
        rows = conn.execute(f"SELECT count(*) FROM {schema}.reports").fetchone()  # noqa: S608
        assert rows == (2,)  # the grants ran
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(f"DELETE FROM {schema}.reports")  # noqa: S608
    assert issued.expires_at - vault.svc.clock.now_us() <= 60_000_000

    done = await service.revoke(vault.root, issued.lease_id)
    assert (done["state"], done["already"]) == ("revoked", False)
    assert not target.role_exists(issued.username)
    assert not target.can_connect(issued.username, issued.password)
    again = await service.revoke(vault.root, issued.lease_id)
    assert (again["state"], again["already"]) == ("revoked", True)
    with pytest.raises(Conflict, match="revoked"):
        await service.renew(vault.root, issued.lease_id)


async def test_revoke_ends_open_sessions(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "sessions")
    issued = await service.issue(vault.root, f"{target.slug}/sessions")
    conn = psycopg.connect(target.login_url(issued.username, issued.password))
    conn.execute("SELECT 1")  # an open transaction holding a lock
    await service.revoke(vault.root, issued.lease_id)
    assert not target.role_exists(issued.username)
    with pytest.raises(psycopg.OperationalError):
        conn.execute("SELECT 1")
    conn.close()


async def test_expiry_sweep_drops_the_login(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "short")
    issued = await service.issue(vault.root, f"{target.slug}/short", ttl=1)
    keep = await service.issue(vault.root, f"{target.slug}/short", ttl=60)
    assert target.can_connect(issued.username, issued.password)
    assert (await service.sweep()).revoked == 0  # nothing is due yet
    await asyncio.sleep(1.1)
    result = await service.sweep()
    assert (result.revoked, result.failed) == (1, 0)
    assert _state(vault, issued.lease_id) == "expired"
    assert not target.role_exists(issued.username)
    assert not target.can_connect(issued.username, issued.password)
    assert target.role_exists(keep.username)  # an unexpired lease is untouched
    with read_conn(vault.svc.engine) as conn:
        expired = conn.execute(
            select(func.count()).where(audit_events.c.operation == "lease:expire")
        ).scalar_one()
    assert expired == 1


async def test_revoke_by_prefix_drops_every_login_under_it(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "team/a")
    await _setup(vault, target, "team/b")
    await _setup(vault, target, "other")
    inside = [
        await service.issue(vault.root, f"{target.slug}/team/a"),
        await service.issue(vault.root, f"{target.slug}/team/a"),
        await service.issue(vault.root, f"{target.slug}/team/b"),
    ]
    outside = await service.issue(vault.root, f"{target.slug}/other")
    result = await service.revoke_prefix(vault.root, f"{target.slug}/team/")
    assert (result["revoked"], result["failed"]) == (3, 0)
    for issued in inside:
        assert not target.role_exists(issued.username)
        assert _state(vault, issued.lease_id) == "revoked"
    assert target.role_exists(outside.username)
    assert _state(vault, outside.lease_id) == "active"
    with pytest.raises(InvalidInput):
        await service.revoke_prefix(vault.root, "  ")


async def test_renewal_is_capped_at_the_maximum(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "renew")
    issued = await service.issue(vault.root, f"{target.slug}/renew", ttl=30)
    small = await service.renew(vault.root, issued.lease_id, 45)
    assert (small["capped"], small["warnings"]) == (False, [])
    big = await service.renew(vault.root, issued.lease_id, 3600)
    assert big["capped"] is True
    assert big["expires_at"] == big["max_expires_at"]
    assert "maximum TTL" in big["warnings"][0]
    with psycopg.connect(PG_BASE) as conn:
        until = conn.execute(
            "SELECT extract(epoch FROM rolvaliduntil) FROM pg_roles WHERE rolname = %s",
            (issued.username,),
        ).fetchone()
    assert until is not None
    assert abs(float(until[0]) * 1e6 - issued.max_expires_at) < 2_000_000
    with pytest.raises(InvalidInput):
        await service.renew(vault.root, issued.lease_id, 0)
    # Asking for more than the max at issue is capped too, and says so.
    long = await service.issue(vault.root, f"{target.slug}/renew", ttl=10_000)
    assert long.ttl == 120
    assert "capped" in long.warnings[0]


async def test_target_down_keeps_revoke_failed_and_retries(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "flaky")
    issued = await service.issue(vault.root, f"{target.slug}/flaky")
    await vault.svc.secrets.write(vault.root, "db/admin", DOWN_URL)
    with pytest.raises(RotationFailed, match="cannot connect") as caught:
        await service.revoke(vault.root, issued.lease_id)
    assert "not-the-password" not in str(caught.value)
    [row] = service.list_leases(target.slug)
    assert (row.state, row.attempts) == ("revoke_failed", 1)
    assert "cannot connect" in str(row.revoke_error)
    assert "not-the-password" not in row.revoke_error
    assert target.role_exists(issued.username)  # still there: nothing pretends otherwise
    # The sweep waits for the retry time, then tries again.
    await vault.svc.secrets.write(vault.root, "db/admin", target.url)
    assert (await service.sweep()).revoked == 0
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(leases).values(claimed_until=1))  # the retry time has come
    result = await service.sweep()
    assert (result.revoked, result.failed) == (1, 0)
    assert not target.role_exists(issued.username)
    assert _state(vault, issued.lease_id) == "revoked"  # ended before its expiry


async def test_wrong_admin_secret_and_bad_grants_leave_nothing(
    vault: Vault, target: Target
) -> None:
    service = await _setup(vault, target, "wrong")
    name = f"{target.slug}/wrong"
    await vault.svc.secrets.write(
        vault.root, "db/admin", "postgresql://no_such_admin:s3cret-pw@127.0.0.1:5432/test"
    )
    with pytest.raises(RotationFailed, match="no_such_admin") as caught:
        await service.issue(vault.root, name)
    assert "s3cret-pw" not in str(caught.value)
    await vault.svc.secrets.write(vault.root, "db/admin", "not a url = s3cret-pw")
    with pytest.raises(RotationFailed, match="not a PostgreSQL URL"):
        await service.issue(vault.root, name)
    await _setup(vault, target, "wrong", grants=["GRANT SELECT ON no_such_table TO {{name}}"])
    with pytest.raises(RotationFailed, match="grant statement 1"):
        await service.issue(vault.root, name)
    assert service.list_leases(target.slug) == []
    with psycopg.connect(PG_BASE) as conn:
        left = conn.execute(
            "SELECT count(*) FROM pg_roles WHERE rolname LIKE %s", (f"ks_{target.slug}%",)
        ).fetchone()
    assert left == (0,)
    with pytest.raises(NotFound):
        await service.issue(vault.root, f"{target.slug}/missing")


async def test_issuing_needs_read_on_the_creds_path(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "scoped")
    name = f"{target.slug}/scoped"
    allowed = vault.context_for(Principal("tok_a", "scoped", "read", f"creds/{target.slug}/", None))
    other = vault.context_for(Principal("tok_b", "scoped", "read", "creds/elsewhere/", None))
    with pytest.raises(Forbidden):
        await service.issue(other, name)
    issued = await service.issue(allowed, name)
    with pytest.raises(Forbidden):  # someone else's lease: neither renew nor revoke
        await service.revoke(other, issued.lease_id)
    with pytest.raises(Forbidden):  # unknown ids are not revealed to non-admins
        await service.renew(other, "lease_nope")
    await service.renew(allowed, issued.lease_id, 30)
    await service.revoke(allowed, issued.lease_id)
    assert not target.role_exists(issued.username)


async def test_two_processes_sweeping_drop_each_login_once(vault: Vault, target: Target) -> None:
    first = await _setup(vault, target, "race")
    svc = vault.svc
    second = LeaseService(svc.engine, svc.secrets, svc.audit, svc.clock, svc.authorizer)
    issued = [await first.issue(vault.root, f"{target.slug}/race", ttl=1) for _ in range(6)]
    await asyncio.sleep(1.1)
    a, b = await asyncio.gather(first.sweep(batch=2), second.sweep(batch=2))
    assert (a.revoked + b.revoked, a.failed + b.failed) == (6, 0)
    with read_conn(svc.engine) as conn:
        events = conn.execute(
            select(func.count()).where(audit_events.c.operation == "lease:expire")
        ).scalar_one()
    assert events == 6
    assert not any(target.role_exists(i.username) for i in issued)


async def test_http_routes(vault: Vault, target: Target) -> None:
    await vault.svc.secrets.write(vault.root, "db/admin", target.url)
    await _approve_targets(vault)
    app = create_app(vault.svc.settings, services=vault.svc)
    transport = httpx.ASGITransport(app=app)
    root = {"Authorization": f"Bearer {vault.root_token}"}
    name = f"{target.slug}/http"
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=root) as c:
        role = {"connection_secret": "db/admin", "grants": [], "ttl": 60, "max_ttl": 600}
        assert (await c.put(f"/api/v1/creds/roles/{name}", json=role)).status_code == 200
        bad = await c.put(f"/api/v1/creds/roles/{name}", json={**role, "grants": ["{{password}}"]})
        assert bad.status_code == 400
        assert "password" in bad.json()["detail"]
        assert (await c.get(f"/api/v1/creds/roles/{name}")).json()["max_ttl"] == 600
        issued = await c.post(f"/api/v1/creds/{name}", json={"ttl": 30})
        assert issued.status_code == 201, issued.text
        doc = issued.json()
        assert {"username", "password", "lease_id", "expires_at", "max_expires_at"} <= set(doc)
        # Where the login works (for PGHOST & co.), never the admin's login.
        assert (doc["host"], doc["port"], doc["database"]) == ("127.0.0.1", 5432, "test")
        assert "postgres" not in json.dumps(doc)
        listed = (await c.get("/api/v1/leases", params={"prefix": target.slug})).json()
        assert [x["lease_id"] for x in listed["leases"]] == [doc["lease_id"]]
        assert doc["password"] not in str(listed)
        busy = await c.delete(f"/api/v1/creds/roles/{name}")
        assert busy.status_code == 409
        renewed = await c.post(f"/api/v1/leases/{doc['lease_id']}/renew", json={"increment": 9999})
        assert renewed.json()["capped"] is True
        assert (await c.delete(f"/api/v1/leases/{doc['lease_id']}")).json()["state"] == "revoked"
        assert (await c.delete(f"/api/v1/creds/roles/{name}")).status_code == 204
    assert not target.role_exists(doc["username"])
    with read_conn(vault.svc.engine) as conn:
        details = " ".join(r.detail for r in conn.execute(select(audit_events.c.detail)).all())
    assert doc["password"] not in details


async def test_an_unapproved_target_is_never_reached(vault: Vault, target: Target) -> None:
    service = await _setup(vault, target, "unapproved")
    name = f"{target.slug}/unapproved"
    await vault.svc.secrets.write(
        vault.root, "db/admin", target.url.replace("127.0.0.1:5432", "localhost:5432")
    )
    with pytest.raises(RotationFailed, match="not an approved rotation target"):
        await service.issue(vault.root, name)
    # An approval limited to named logins does not cover made-up temporary ones.
    await vault.svc.rotation.targets.approve(
        vault.root, make_target("postgres", "localhost", 5432, "test"), ["app"]
    )
    with pytest.raises(RotationFailed, match="approved only for the logins app"):
        await service.issue(vault.root, name)
    hostaddr = target.url + "&hostaddr=10.0.0.1"
    await vault.svc.secrets.write(vault.root, "db/admin", hostaddr)
    with pytest.raises(RotationFailed, match="'hostaddr' is not allowed"):
        await service.issue(vault.root, name)
    assert service.list_leases(target.slug) == []
