"""The credential-lifetime matrix (issue 11, items 1 and 3), over HTTP in process, on
SQLite and PostgreSQL: a credential is never more alive than its source.

For each credential kind (token, API key, JWT exchanged from a key, a person's session,
a token minted by a key, a JWT, a session or another token) and each ending that applies
(revoke, suspend, expiry, roll, creator revoked, person disabled or deleted, leak
report, incident containment) the next request is refused. Also: the source key's
address allowlist and rate limit bind its JWTs and child tokens; introspection says
``active: false`` once the key is dead; child tokens never outlive their creator.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import update
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn
from keysafe.store.tables import tokens

pytestmark = pytest.mark.anyio

INSIDE = ("10.1.2.3", 4000)
OUTSIDE = ("192.0.2.7", 4000)
SECRET = "/api/v1/secrets/shop/DB_URL"
PASSWORD = "correct horse battery"
SHOP = '[[rule]]\npath = "shop/*"\ncapabilities = ["read", "list"]\n'
MINTER = '[[rule]]\npath = "sys/token"\ncapabilities = ["admin"]\n'
HOUR_US = 3600 * 1_000_000


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


@dataclass
class Cred:
    """A credential under test and the ids of what it came from."""

    secret: str
    refs: dict[str, str] = field(default_factory=dict)


@dataclass
class World:
    vault: Vault
    inside: httpx.AsyncClient
    outside: httpx.AsyncClient
    monkeypatch: pytest.MonkeyPatch

    @property
    def root(self) -> dict[str, str]:
        return bearer(self.vault.root_token)

    async def ok(self, response: Awaitable[httpx.Response], status: int = 200) -> Any:
        done = await response
        assert done.status_code == status, done.text
        return done.json() if done.content else None

    async def key(self, **extra: Any) -> Cred:
        body = {"service": "shop-web", "expires_in": "1d", **extra}
        doc = await self.ok(self.inside.post("/api/v1/keys", json=body, headers=self.root))
        return Cred(doc["key"], {"key": doc["id"], "raw_key": doc["key"]})

    async def jwt(self, key: Cred) -> Cred:
        form = {"grant_type": "client_credentials", "client_secret": key.secret}
        doc = await self.ok(self.inside.post("/api/v1/oauth/token", data=form))
        return Cred(doc["access_token"], dict(key.refs))

    async def token(self, creator: str | None = None, **extra: Any) -> Cred:
        """A policy-bound token minted by ``creator`` (default: the root token)."""
        body = {"policies": ["shop"], "ttl_seconds": 3600, **extra}
        headers = bearer(creator) if creator else self.root
        doc = await self.ok(self.inside.post("/api/v1/tokens", json=body, headers=headers))
        return Cred(doc["token"], {"token": doc["id"], "raw_token": doc["token"]})

    async def child(self, parent: Cred, **extra: Any) -> Cred:
        minted = await self.token(parent.secret, **extra)
        return Cred(minted.secret, {**parent.refs, "child": minted.refs["token"]})

    async def session(self) -> Cred:
        doc = await self.ok(
            self.inside.post("/api/v1/auth/login", json={"name": "ada", "password": PASSWORD})
        )
        return Cred(doc["token"], {"session": doc["session"]["id"], "raw_session": doc["token"]})

    async def status(self, cred: Cred, client: httpx.AsyncClient | None = None) -> int:
        return (await (client or self.inside).get(SECRET, headers=bearer(cred.secret))).status_code

    def shift_clock(self, seconds: int) -> None:
        """Move the server's clock (every service shares it) ``seconds`` ahead."""
        offset = seconds * 1_000_000
        self.monkeypatch.setattr(
            self.vault.svc.clock, "now_us", lambda: time.time_ns() // 1000 + offset
        )


@pytest.fixture
async def world(vault: Vault, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[World]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    inside = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=INSIDE), base_url="http://t"
    )
    outside = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=OUTSIDE), base_url="http://t"
    )
    async with inside, outside:
        w = World(vault, inside, outside, monkeypatch)
        for name, text in (("shop", SHOP), ("minter", MINTER)):
            await w.ok(inside.put(f"/api/v1/policies/{name}", json={"text": text}, headers=w.root))
        service = {"name": "shop-web", "policies": ["shop", "minter"]}
        await w.ok(inside.post("/api/v1/services", json=service, headers=w.root))
        await w.ok(
            inside.put("/api/v1/roles/clerk", json={"policies": ["shop", "minter"]}, headers=w.root)
        )
        person = {"name": "ada", "password": PASSWORD, "roles": ["clerk"]}
        await w.ok(inside.post("/api/v1/users", json=person, headers=w.root))
        await w.ok(inside.put(SECRET, json={"value": "postgres://shop"}, headers=w.root))
        yield w


# -- credentials --------------------------------------------------------------------------


async def make_token(w: World) -> Cred:
    return await w.token()


async def make_key(w: World) -> Cred:
    return await w.key()


async def make_jwt(w: World) -> Cred:
    return await w.jwt(await w.key())


async def make_session(w: World) -> Cred:
    return await w.session()


async def make_key_child(w: World) -> Cred:
    return await w.child(await w.key())


async def make_jwt_child(w: World) -> Cred:
    return await w.child(await w.jwt(await w.key()))


async def make_session_child(w: World) -> Cred:
    return await w.child(await w.session())


async def make_token_child(w: World) -> Cred:
    """A token minted by a token that root minted with the right to mint."""
    parent = await w.token(policies=["shop", "minter"])
    return await w.child(parent)


async def make_key_grandchild(w: World) -> Cred:
    """key -> token (may mint) -> token."""
    key = await w.key()
    middle = await w.token(key.secret, policies=["shop", "minter"])
    return await w.child(Cred(middle.secret, {**key.refs, **middle.refs}))


# -- endings ------------------------------------------------------------------------------


async def revoke_token(w: World, c: Cred) -> None:
    await w.ok(w.inside.delete(f"/api/v1/tokens/{c.refs['token']}", headers=w.root), 204)


async def revoke_key(w: World, c: Cred) -> None:
    await w.ok(w.inside.delete(f"/api/v1/keys/{c.refs['key']}", headers=w.root), 204)


async def suspend_key(w: World, c: Cred) -> None:
    url = f"/api/v1/keys/{c.refs['key']}:suspend"
    await w.ok(w.inside.post(url, json={"reason": "test"}, headers=w.root))


async def roll_key(w: World, c: Cred) -> None:
    url = f"/api/v1/keys/{c.refs['key']}:roll"
    await w.ok(w.inside.post(url, json={"grace": "0s"}, headers=w.root))


async def expire_in_a_day(w: World, c: Cred) -> None:
    w.shift_clock(2 * 86400)


async def expire_in_two_hours(w: World, c: Cred) -> None:
    w.shift_clock(2 * 3600)


async def expire_session(w: World, c: Cred) -> None:
    w.shift_clock(13 * 3600)  # past the default 12 h absolute lifetime


async def leak_key(w: World, c: Cred) -> None:
    """Report the key (for a JWT or a child token: the key it came from)."""
    await _leak(w, c.refs["raw_key"])


async def leak_token(w: World, c: Cred) -> None:
    await _leak(w, c.refs["raw_token"])


async def _leak(w: World, raw: str) -> None:
    body = {"credentials": [{"credential": raw, "location": "https://paste.example/1"}]}
    doc = await w.ok(w.inside.post("/api/v1/leaks", json=body))
    assert doc["results"][0]["status"] == "revoked", doc


async def contain_key(w: World, c: Cred) -> None:
    doc = await w.ok(
        w.inside.post("/api/v1/incidents", json={"keys": [c.refs["key"]]}, headers=w.root), 201
    )
    verify = next(s for s in doc["steps"] if s["phase"] == "verify")
    assert verify["outcome"] == "done", verify
    # The verify step also presented a freshly minted JWT of the key.
    assert "access token (JWT) of the key was presented and refused" in verify["detail"]


async def contain_token(w: World, c: Cred) -> None:
    body = {"tokens": [c.refs["token"]]}
    doc = await w.ok(w.inside.post("/api/v1/incidents", json=body, headers=w.root), 201)
    assert not [s for s in doc["steps"] if s["outcome"] == "failed"], doc["steps"]


async def revoke_jwt(w: World, c: Cred) -> None:
    await w.ok(w.inside.post("/api/v1/oauth/revoke", data={"token": c.secret}))


async def logout(w: World, c: Cred) -> None:
    await w.ok(w.inside.post("/api/v1/auth/logout", headers=bearer(c.refs["raw_session"])), 204)


async def revoke_session(w: World, c: Cred) -> None:
    url = f"/api/v1/users/ada/sessions/{c.refs['session']}"
    await w.ok(w.inside.delete(url, headers=w.root), 204)


async def disable_person(w: World, c: Cred) -> None:
    await w.ok(w.inside.post("/api/v1/users/ada/disable", headers=w.root))


async def delete_person(w: World, c: Cred) -> None:
    done = await w.inside.delete("/api/v1/users/ada", headers=w.root)
    assert done.status_code in (200, 204), done.text


Maker = Callable[[World], Awaitable[Cred]]
Ending = Callable[[World, Cred], Awaitable[None]]


MATRIX: list[tuple[str, Maker, Ending]] = [
    ("token-revoke", make_token, revoke_token),
    ("token-expiry", make_token, expire_in_two_hours),
    ("token-leak", make_token, leak_token),
    ("token-incident", make_token, contain_token),
    ("key-revoke", make_key, revoke_key),
    ("key-suspend", make_key, suspend_key),
    ("key-expiry", make_key, expire_in_a_day),
    ("key-roll", make_key, roll_key),
    ("key-leak", make_key, leak_key),
    ("key-incident", make_key, contain_key),
    ("jwt-revoke", make_jwt, revoke_jwt),
    ("jwt-key-revoke", make_jwt, revoke_key),
    ("jwt-key-suspend", make_jwt, suspend_key),
    ("jwt-key-expiry", make_jwt, expire_in_a_day),
    ("jwt-key-roll", make_jwt, roll_key),
    ("jwt-key-leak", make_jwt, leak_key),
    ("jwt-key-incident", make_jwt, contain_key),
    ("session-logout", make_session, logout),
    ("session-revoke", make_session, revoke_session),
    ("session-expiry", make_session, expire_session),
    ("session-person-disabled", make_session, disable_person),
    ("session-person-deleted", make_session, delete_person),
    ("key-child-creator-revoke", make_key_child, revoke_key),
    ("key-child-creator-suspend", make_key_child, suspend_key),
    ("key-child-creator-expiry", make_key_child, expire_in_a_day),
    ("key-child-creator-roll", make_key_child, roll_key),
    ("key-child-creator-leak", make_key_child, leak_key),
    ("key-child-creator-incident", make_key_child, contain_key),
    ("jwt-child-key-revoke", make_jwt_child, revoke_key),
    ("jwt-child-key-suspend", make_jwt_child, suspend_key),
    ("session-child-logout", make_session_child, logout),
    ("session-child-session-revoke", make_session_child, revoke_session),
    ("session-child-person-disabled", make_session_child, disable_person),
    ("session-child-person-deleted", make_session_child, delete_person),
    ("token-child-creator-revoke", make_token_child, revoke_token),
    ("token-child-creator-leak", make_token_child, leak_token),
    ("token-child-creator-incident", make_token_child, contain_token),
    ("token-child-creator-expiry", make_token_child, expire_in_two_hours),
    ("key-grandchild-key-revoke", make_key_grandchild, revoke_key),
    ("key-grandchild-key-suspend", make_key_grandchild, suspend_key),
    ("key-grandchild-middle-revoke", make_key_grandchild, revoke_token),
]


@pytest.mark.parametrize(
    ("make", "end"), [(m, e) for _, m, e in MATRIX], ids=[n for n, *_ in MATRIX]
)
async def test_credential_is_refused_on_the_next_request_after_its_ending(
    world: World, make: Maker, end: Ending
) -> None:
    cred = await make(world)
    assert await world.status(cred) == 200
    await end(world, cred)
    assert await world.status(cred) == 401
    # ... and stays refused (nothing cached brings it back).
    assert await world.status(cred) == 401


# -- the source key's allowlist and rate ------------------------------------------------


async def test_jwts_and_child_tokens_keep_their_keys_address_allowlist(world: World) -> None:
    key = await world.key(cidrs=["10.0.0.0/8"])
    jwt = await world.jwt(key)
    child = await world.child(key)
    grandchild = await world.child(await world.child(key, policies=["shop", "minter"]))
    jwt_child = await world.child(jwt)
    for cred in (key, jwt, child, grandchild, jwt_child):
        assert await world.status(cred) == 200
        refused = await world.outside.get(SECRET, headers=bearer(cred.secret))
        assert refused.status_code == 403, refused.text
        assert "address" in refused.json()["detail"]
    # A token minted by root has no key behind it: no allowlist.
    assert await world.status(await world.token(), world.outside) == 200


async def test_jwts_and_child_tokens_share_their_keys_rate_limit(world: World) -> None:
    key = await world.key(rate_limit="5/min")
    jwt = await world.jwt(key)  # 1: the exchange presents the key
    child = await world.child(key)  # 2
    assert await world.status(jwt) == 200  # 3
    assert await world.status(child) == 200  # 4
    assert await world.status(key) == 200  # 5
    for cred in (jwt, child, key):
        limited = await world.inside.get(SECRET, headers=bearer(cred.secret))
        assert limited.status_code == 429, limited.text
        assert limited.json()["code"] == "rate_limited"


# -- introspection --------------------------------------------------------------------


async def test_introspection_says_inactive_once_the_key_is_dead(world: World) -> None:
    key = await world.key(cidrs=["10.0.0.0/8"])
    jwt = await world.jwt(key)

    async def active() -> bool:
        doc = await world.ok(
            world.outside.post(
                "/api/v1/oauth/introspect", data={"token": jwt.secret}, headers=world.root
            )
        )
        return bool(doc["active"])

    # The introspecting party is not the holder: the key's allowlist does not apply.
    assert await active()
    await suspend_key(world, key)
    assert not await active()
    await world.ok(world.inside.post(f"/api/v1/keys/{key.refs['key']}:resume", headers=world.root))
    assert await active()
    await revoke_key(world, key)
    assert not await active()


# -- a child token never outlives its creator -------------------------------------------


async def test_child_token_lifetimes_are_bounded_by_creator_and_server(world: World) -> None:
    key = await world.key(expires_in="30m")
    key_expiry = world.vault.svc.keys.show(key.refs["key"])["expires_at"]
    # No TTL given (null): the default hour, here cut to the key's remaining half hour.
    unbounded = await world.ok(
        world.inside.post(
            "/api/v1/tokens",
            json={"policies": ["shop"], "ttl_seconds": None},
            headers=bearer(key.secret),
        )
    )
    assert unbounded["expires_at"] == key_expiry
    session = await world.session()
    defaulted = await world.ok(
        world.inside.post(
            "/api/v1/tokens",
            json={"policies": ["shop"], "ttl_seconds": None},
            headers=bearer(session.secret),
        )
    )
    left = _seconds_until(defaulted["expires_at"])
    assert 3500 < left <= 3600
    # Beyond the server's maximum for tokens minted by anyone but root: refused.
    too_long = await world.inside.post(
        "/api/v1/tokens",
        json={"policies": ["shop"], "ttl_seconds": 40 * 86400},
        headers=bearer(session.secret),
    )
    assert too_long.status_code == 400, too_long.text
    # The root token may still mint a token that never expires.
    forever = await world.ok(
        world.inside.post(
            "/api/v1/tokens", json={"policies": ["shop"], "ttl_seconds": None}, headers=world.root
        )
    )
    assert forever["expires_at"] is None


async def test_token_chains_are_bounded_in_depth(world: World) -> None:
    parent = await world.token(policies=["shop", "minter"])
    refused = None
    for _ in range(10):
        minted = await world.inside.post(
            "/api/v1/tokens",
            json={"policies": ["shop", "minter"], "ttl_seconds": 600},
            headers=bearer(parent.secret),
        )
        if minted.status_code != 200:
            refused = minted
            break
        parent = Cred(minted.json()["token"])
    assert refused is not None
    assert refused.status_code == 403, refused.text
    assert "deep" in refused.json()["detail"]
    assert await world.status(parent) == 200


def _seconds_until(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - time.time()


async def test_a_person_s_token_from_before_lineage_follows_the_person(world: World) -> None:
    """Tokens a person minted before sessions were recorded name the person (the
    migration's ``user`` parent): disabling the person ends them."""
    child = await world.child(await world.session())
    svc = world.vault.svc
    user_id = svc.users.accounts.show("ada")["id"]
    with write_txn(svc.engine) as conn:
        conn.execute(
            update(tokens)
            .where(tokens.c.id == child.refs["child"])
            .values(parent_kind="user", parent_id=user_id)
        )
    svc.tokens.forget(child.refs["child"])
    # Logging out no longer matters to it; the person does.
    await logout(world, child)
    assert await world.status(child) == 200
    await disable_person(world, child)
    assert await world.status(child) == 401
