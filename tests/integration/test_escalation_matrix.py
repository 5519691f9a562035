"""Nobody hands out more than they hold: an escalation matrix over the HTTP API (in
process, both databases).

For each administrative area (``sys/policy``, ``sys/service``, ``sys/key/<service>``,
``sys/token``, ``sys/user`` and ``sys/role``, ``sys/rotation``, ``sys/creds``) a caller
holds only that area plus a narrow data grant (``read`` on ``team/*``) and tries to reach
a capability it does not hold. Every attempt is refused with 403, audited as denied, and
leaves nothing behind; the same caller may still hand out what it does hold (so the
refusals are about the grant, not about the area).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.access.policy_store import set_service_policies
from keysafe.errors import Forbidden
from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn

pytestmark = pytest.mark.anyio

ALL_CAPS = (
    '["read", "list", "write", "delete", "destroy", "rotate", "manage-keys", "read-audit", "admin"]'
)
TEAM_READ = '[[rule]]\npath = "team/*"\ncapabilities = ["read"]\n'
PROD_READ = '[[rule]]\npath = "prod/*"\ncapabilities = ["read"]\n'
EVERYTHING = f'[[rule]]\npath = "**"\ncapabilities = {ALL_CAPS}\n'
PASSWORD = "correct horse battery staple 42"

# What each caller holds besides ``team-read``: one admin area.
AREAS = {
    "policy": '[[rule]]\npath = "sys/policy"\ncapabilities = ["admin"]\n',
    "service": (
        '[[rule]]\npath = "sys/service"\ncapabilities = ["admin"]\n\n'
        '[[rule]]\npath = "sys/key/team-*"\ncapabilities = ["manage-keys"]\n'
    ),
    "key": '[[rule]]\npath = "sys/key/team-*"\ncapabilities = ["manage-keys"]\n',
    "token": '[[rule]]\npath = "sys/token"\ncapabilities = ["admin"]\n',
    "user": (
        '[[rule]]\npath = "sys/user"\ncapabilities = ["admin"]\n\n'
        '[[rule]]\npath = "sys/role"\ncapabilities = ["admin"]\n'
    ),
    "rotation": (
        '[[rule]]\npath = "sys/rotation"\ncapabilities = ["admin"]\n\n'
        '[[rule]]\npath = "team/*"\ncapabilities = ["rotate"]\n'
    ),
    "creds": (
        '[[rule]]\npath = "sys/creds"\ncapabilities = ["admin"]\n\n'
        '[[rule]]\npath = "creds/team-*"\ncapabilities = ["read"]\n'
    ),
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Matrix:
    """The API, the root token, and one key per admin area."""

    def __init__(self, client: httpx.AsyncClient, vault: Vault) -> None:
        self.api = client
        self.vault = vault
        self.root = bearer(vault.root_token)
        self.callers: dict[str, dict[str, str]] = {}

    async def ok(self, method: str, url: str, body: object = None) -> httpx.Response:
        done = await self.api.request(method, url, json=body, headers=self.root)
        assert done.status_code in (200, 201, 204), (url, done.text)
        return done

    async def refused(
        self, area: str, method: str, url: str, body: object, *names: str
    ) -> httpx.Response:
        """``area``'s caller tries; the answer must be 403 naming each of ``names``."""
        answer = await self.api.request(method, url, json=body, headers=self.callers[area])
        assert answer.status_code == 403, (area, url, answer.status_code, answer.text)
        for name in names:
            assert name in answer.json()["detail"], (name, answer.text)
        return answer

    async def allowed(self, area: str, method: str, url: str, body: object) -> httpx.Response:
        answer = await self.api.request(method, url, json=body, headers=self.callers[area])
        assert answer.status_code in (200, 201, 204), (area, url, answer.text)
        return answer

    async def denied_events(self, operation: str) -> list[str]:
        trail = await self.api.get("/api/v1/audit/events", headers=self.root)
        return [
            e["detail"]
            for e in trail.json()["events"]
            if e["operation"] == operation and e["outcome"] == "denied"
        ]


@pytest.fixture
async def matrix(vault: Vault) -> AsyncIterator[Matrix]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    transport = httpx.ASGITransport(app=app, client=("10.4.5.6", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        m = Matrix(client, vault)
        for name, text in (
            ("team-read", TEAM_READ),
            ("team-read-copy", TEAM_READ),  # another name, the same grants
            ("prod-read", PROD_READ),
            ("everything", EVERYTHING),
        ):
            await m.ok("PUT", f"/api/v1/policies/{name}", {"text": text})
        for secret in ("team/DB", "prod/DB", "team/DB_URL", "prod/DB_URL"):
            await m.ok("PUT", f"/api/v1/secrets/{secret}", {"value": f"value of {secret}"})
        await m.ok("POST", "/api/v1/services", {"name": "team-prod", "policies": ["prod-read"]})
        await m.ok("POST", "/api/v1/services", {"name": "team-app", "policies": ["team-read"]})
        for area, text in AREAS.items():
            await m.ok("PUT", f"/api/v1/policies/area-{area}", {"text": text})
            service = {"name": f"caller-{area}", "policies": [f"area-{area}", "team-read"]}
            await m.ok("POST", "/api/v1/services", service)
            key = (await m.ok("POST", "/api/v1/keys", {"service": f"caller-{area}"})).json()
            m.callers[area] = bearer(key["key"])
        yield m


async def test_sys_policy_cannot_widen_its_own_policy_or_write_a_broader_one(
    matrix: Matrix,
) -> None:
    m = matrix
    # The live attack: rewrite its own policy to every capability on every path.
    grab = {"text": EVERYTHING}
    await m.refused("policy", "PUT", "/api/v1/policies/area-policy", grab, "'**'")
    await m.refused("policy", "PUT", "/api/v1/policies/team-read", grab, "'**'")
    await m.refused("policy", "PUT", "/api/v1/policies/fresh", {"text": PROD_READ}, "prod/*")
    wider = {"text": '[[rule]]\npath = "sys/*"\ncapabilities = ["admin"]\n'}
    await m.refused("policy", "PUT", "/api/v1/policies/area-policy", wider, "sys/*")
    # Nothing half-written: the texts are unchanged, the new policy does not exist.
    own = (await m.ok("GET", "/api/v1/policies/area-policy")).json()
    assert own["text"] == AREAS["policy"]
    assert (await m.ok("GET", "/api/v1/policies/team-read")).json()["text"] == TEAM_READ
    missing = await m.api.get("/api/v1/policies/fresh", headers=m.root)
    assert missing.status_code == 404
    assert (
        await m.api.get("/api/v1/secrets/prod/DB", headers=m.callers["policy"])
    ).status_code == 403
    assert len(await m.denied_events("policy:write")) == 4
    # What it holds it may write: a narrower policy, or its own made narrower.
    narrow = {"text": '[[rule]]\npath = "team/DB"\ncapabilities = ["read"]\n'}
    await m.allowed("policy", "PUT", "/api/v1/policies/team-db", narrow)
    await m.allowed("policy", "PUT", "/api/v1/policies/area-policy", {"text": AREAS["policy"]})


async def test_sys_service_cannot_create_a_broader_service_and_key_it(matrix: Matrix) -> None:
    m = matrix
    body = {"name": "team-grab", "policies": ["prod-read"]}
    await m.refused("service", "POST", "/api/v1/services", body, "read", "prod/*")
    body = {"name": "team-grab", "policies": ["team-read", "everything"]}
    await m.refused("service", "POST", "/api/v1/services", body, "policy everything")
    names = [s["name"] for s in (await m.ok("GET", "/api/v1/services")).json()["services"]]
    assert "team-grab" not in names
    # An existing service with more than the caller holds: no key for it either.
    await m.refused("service", "POST", "/api/v1/keys", {"service": "team-prod"}, "prod/*")
    keys = (await m.ok("GET", "/api/v1/keys?service=team-prod")).json()["keys"]
    assert keys == []
    # Its own grants: a service and a key, which reads what the caller reads.
    await m.allowed(
        "service", "POST", "/api/v1/services", {"name": "team-mine", "policies": ["team-read"]}
    )
    key = (await m.allowed("service", "POST", "/api/v1/keys", {"service": "team-mine"})).json()
    assert (
        await m.api.get("/api/v1/secrets/team/DB", headers=bearer(key["key"]))
    ).status_code == 200
    assert (
        await m.api.get("/api/v1/secrets/prod/DB", headers=bearer(key["key"]))
    ).status_code == 403


async def test_sys_key_cannot_issue_or_roll_keys_of_a_broader_service(matrix: Matrix) -> None:
    m = matrix
    await m.refused("key", "POST", "/api/v1/keys", {"service": "team-prod"}, "prod/*")
    made = (await m.ok("POST", "/api/v1/keys", {"service": "team-prod"})).json()
    # Rolling is issuing a successor: refused too, and the key is not marked rolled.
    await m.refused("key", "POST", f"/api/v1/keys/{made['id']}:roll", {"grace": "0"}, "prod/*")
    shown = (await m.ok("GET", f"/api/v1/keys/{made['id']}")).json()
    assert shown.get("replaced_by") in (None, "")
    listed = (await m.ok("GET", "/api/v1/keys?service=team-prod")).json()["keys"]
    assert [k["id"] for k in listed] == [made["id"]]
    assert await m.denied_events("key:create")
    assert await m.denied_events("key:roll")
    # Revoking takes away only: allowed. A service whose policies it holds: keys allowed.
    await m.allowed("key", "DELETE", f"/api/v1/keys/{made['id']}", None)
    issued = (await m.allowed("key", "POST", "/api/v1/keys", {"service": "team-app"})).json()
    await m.allowed("key", "POST", f"/api/v1/keys/{issued['id']}:roll", {"grace": "0"})


async def test_sys_token_cannot_mint_a_broader_token(matrix: Matrix) -> None:
    m = matrix
    before = len((await m.ok("GET", "/api/v1/tokens")).json()["tokens"])
    await m.refused("token", "POST", "/api/v1/tokens", {"policies": ["prod-read"]}, "prod/*")
    await m.refused("token", "POST", "/api/v1/tokens", {"policies": ["everything"]}, "'**'")
    await m.refused("token", "POST", "/api/v1/tokens", {"prefix": "", "mode": "write"})
    assert len((await m.ok("GET", "/api/v1/tokens")).json()["tokens"]) == before
    # Grants are compared, not names: a policy it does not hold by name, with the same
    # grants as one it holds, may be bound.
    copy = await m.allowed("token", "POST", "/api/v1/tokens", {"policies": ["team-read-copy"]})
    token = bearer(copy.json()["token"])
    assert (await m.api.get("/api/v1/secrets/team/DB", headers=token)).status_code == 200
    # Names must still exist.
    missing = await m.api.post(
        "/api/v1/tokens", json={"policies": ["nope"]}, headers=m.callers["token"]
    )
    assert missing.status_code == 400


async def test_sys_user_cannot_give_a_person_a_broader_role(matrix: Matrix) -> None:
    m = matrix
    await m.ok("PUT", "/api/v1/roles/prod", {"policies": ["prod-read"]})
    await m.ok("PUT", "/api/v1/roles/team", {"policies": ["team-read-copy"]})
    await m.ok("POST", "/api/v1/users", {"name": "sam", "password": PASSWORD, "roles": ["team"]})
    # A role with more than it holds; the built-in admin role; people given either.
    await m.refused("user", "PUT", "/api/v1/roles/grab", {"policies": ["prod-read"]}, "prod/*")
    await m.refused("user", "PUT", "/api/v1/roles/team", {"policies": ["everything"]}, "'**'")
    for roles in (["prod"], ["admin"], ["team", "prod"]):
        body = {"name": "eve", "password": PASSWORD, "roles": roles}
        await m.refused("user", "POST", "/api/v1/users", body)
        await m.refused("user", "PUT", "/api/v1/users/sam/roles", {"roles": roles})
    # Nothing half-written: no role grab, team unchanged, no eve, sam keeps team only.
    roles_now = {
        r["name"]: r["policies"] for r in (await m.ok("GET", "/api/v1/roles")).json()["roles"]
    }
    assert "grab" not in roles_now
    assert roles_now["team"] == ["team-read-copy"]
    assert (await m.api.get("/api/v1/users/eve", headers=m.root)).status_code == 404
    assert (await m.ok("GET", "/api/v1/users/sam")).json()["roles"] == ["team"]
    # What it holds (by grants, under another policy name) it may give.
    await m.allowed("user", "PUT", "/api/v1/roles/team2", {"policies": ["team-read-copy"]})
    body = {"name": "ann", "password": PASSWORD, "roles": ["team2"]}
    await m.allowed("user", "POST", "/api/v1/users", body)


async def test_sys_rotation_cannot_rotate_or_name_secrets_it_does_not_hold(
    matrix: Matrix,
) -> None:
    m = matrix
    plain = {"rotator": "random", "every_seconds": 86400}
    await m.refused("rotation", "PUT", "/api/v1/rotation/policies/prod/DB", plain, "rotate")
    hook = {
        "rotator": "webhook",
        "every_seconds": 86400,
        "options": {"url": "https://example.org/h", "signing-secret": "prod/DB_URL"},
    }
    await m.refused("rotation", "PUT", "/api/v1/rotation/policies/team/DB", hook, "prod/DB_URL")
    for path in ("prod/DB", "team/DB"):
        gone = await m.api.get(f"/api/v1/rotation/policies/{path}", headers=m.root)
        assert gone.status_code == 404, gone.text
    await m.allowed("rotation", "PUT", "/api/v1/rotation/policies/team/DB", plain)


async def test_sys_creds_cannot_define_logins_it_could_not_use(matrix: Matrix) -> None:
    m = matrix
    # The connection secret must be readable, and issuing from the role held.
    body = {"connection_secret": "prod/DB_URL", "grants": []}
    await m.refused("creds", "PUT", "/api/v1/creds/roles/team-db", body, "prod/DB_URL")
    body = {"connection_secret": "team/DB_URL", "grants": []}
    await m.refused("creds", "PUT", "/api/v1/creds/roles/prod-db", body, "creds/prod-db")
    for name in ("team-db", "prod-db"):
        gone = await m.api.get(f"/api/v1/creds/roles/{name}", headers=m.root)
        assert gone.status_code == 404, gone.text
    assert len(await m.denied_events("creds:role-write")) == 2
    await m.allowed("creds", "PUT", "/api/v1/creds/roles/team-db", body)


async def test_every_area_is_refused_the_other_areas(matrix: Matrix) -> None:
    """Holding one area gives none of the others (the areas are disjoint paths)."""
    m = matrix
    attempts = {
        "policy": ("PUT", "/api/v1/policies/x", {"text": TEAM_READ}),
        "service": ("POST", "/api/v1/services", {"name": "x", "policies": []}),
        "token": ("POST", "/api/v1/tokens", {"policies": ["team-read"]}),
        "user": ("PUT", "/api/v1/roles/x", {"policies": ["team-read"]}),
        "creds": ("PUT", "/api/v1/creds/roles/team-x", {"connection_secret": "team/DB_URL"}),
    }
    for holder in AREAS:
        for area, (method, url, body) in attempts.items():
            if area == holder:
                continue
            await m.refused(holder, method, url, body)


async def test_attaching_a_policy_to_a_service_is_granting_it(matrix: Matrix) -> None:
    """The attach primitive (no route uses it yet): attaching needs the grants held,
    detaching does not; a refusal leaves the service as it was."""
    m = matrix
    svc = m.vault.svc
    services = {s["name"]: s for s in (await m.ok("GET", "/api/v1/services")).json()["services"]}
    app = services["team-app"]
    holder = ("area-service", "team-read")
    with pytest.raises(Forbidden, match="prod/\\*"), write_txn(svc.engine) as conn:
        set_service_policies(conn, app["id"], ["team-read", "prod-read"], holder=holder)
    with write_txn(svc.engine) as conn:
        set_service_policies(conn, app["id"], ["team-read-copy"], holder=holder)
    with write_txn(svc.engine) as conn:
        set_service_policies(conn, app["id"], [], holder=("nothing-held",))
    after = {s["name"]: s for s in (await m.ok("GET", "/api/v1/services")).json()["services"]}
    assert after["team-app"]["policies"] == []
