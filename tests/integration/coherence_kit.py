"""Two real server processes on one database, and one change of each kind made on the
first and judged on the second: shared by tests/integration/test_coherence.py and
bench/coherence_bench.py."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from server_proc import ServerProc, database_url, init_vault, running

SHOP = '[[rule]]\npath = "shop/*"\ncapabilities = ["read"]\n'
SHOP_DENIED = '[[rule]]\npath = "shop/*"\ndeny = true\n'
SECRET = "/api/v1/secrets/shop/DB_URL"
PASSWORD = "correct horse battery staple"
KINDS = ("token", "key", "suspension", "jwt", "session", "policy", "seal")
# The safety net is set far beyond every wait here: only an announcement can explain a
# refusal seen in time.
ENV = {"KEYSAFE_AUTH_FAILURES_PER_MINUTE": "100000", "KEYSAFE_TOKEN_CACHE_SECONDS": "30"}
REDIS_URL = "redis://127.0.0.1:6379/0"


@dataclass
class Pair:
    """The process changes are made on (``a``) and the one they must reach (``b``)."""

    a: ServerProc
    b: ServerProc


@contextlib.contextmanager
def two_servers(engine: str, tmp: Path, *, redis: bool = False) -> Iterator[Pair]:
    """Two ``keysafe server`` processes (one worker each) on one fresh database."""
    env = dict(ENV)
    if redis:
        env["KEYSAFE_REDIS_URL"] = REDIS_URL
    with database_url(engine, tmp) as url:
        vault = init_vault(engine, tmp, url)
        with running(vault, extra_env=env) as a, running(vault, extra_env=env) as b:
            with a.root() as c:
                assert c.put("/api/v1/policies/shop", json={"text": SHOP}).status_code == 200
                assert c.put(SECRET, json={"value": "postgres://shop"}).status_code == 200
                made = c.post("/api/v1/services", json={"name": "web", "policies": ["shop"]})
                assert made.status_code == 200, made.text
                assert c.put("/api/v1/roles/shop", json={"policies": ["shop"]}).status_code == 200
            yield Pair(a, b)


def read_status(server: ServerProc, credential: str) -> int:
    with server.client(credential) as c:
        return c.get(SECRET).status_code


@dataclass
class Change:
    """A credential live on both processes and the change on ``a`` that must end it."""

    credential: str
    apply: Callable[[], None]
    refused: Callable[[int], bool]


def prepare(pair: Pair, kind: str) -> Change:
    """A fresh credential for ``kind`` and the change to make; never reused."""
    a = pair.a
    name = f"{kind}-{secrets.token_hex(4)}"
    with a.root() as c:
        if kind == "token":
            made = c.post("/api/v1/tokens", json={"policies": ["shop"]}).json()
            return Change(made["token"], _delete(a, f"/api/v1/tokens/{made['id']}"), _is401)
        if kind in ("key", "suspension"):
            made = c.post("/api/v1/keys", json={"service": "web"}).json()
            if kind == "key":
                return Change(made["key"], _delete(a, f"/api/v1/keys/{made['id']}"), _is401)
            url = f"/api/v1/keys/{made['id']}:suspend"
            return Change(made["key"], _post(a, url, {"reason": "bench"}), _is401)
        if kind == "jwt":
            made = c.post("/api/v1/keys", json={"service": "web"}).json()
            with a.client() as anon:
                form = {"grant_type": "client_credentials", "client_secret": made["key"]}
                jwt = anon.post("/api/v1/oauth/token", data=form).json()["access_token"]
            return Change(jwt, _revoke_jwt(a, jwt), _is401)
        if kind == "session":
            body = {"name": name, "password": PASSWORD, "roles": ["shop"]}
            assert c.post("/api/v1/users", json=body).status_code == 200
            with a.client() as anon:
                login = anon.post("/api/v1/auth/login", json={"name": name, "password": PASSWORD})
            assert login.status_code == 200, login.text
            sid = login.json()["session"]["id"]
            url = f"/api/v1/users/{name}/sessions/{sid}"
            return Change(login.json()["token"], _delete(a, url), _is401)
        if kind == "policy":
            # A policy of its own, so that denying it leaves the other kinds alone.
            assert c.put(f"/api/v1/policies/{name}", json={"text": SHOP}).status_code == 200
            made = c.post("/api/v1/tokens", json={"policies": [name]}).json()
            edit = _put(a, f"/api/v1/policies/{name}", {"text": SHOP_DENIED})
            return Change(made["token"], edit, lambda status: status == 403)
        if kind == "seal":
            return Change(a.vault.root_token or "", _post(a, "/api/v1/sys/seal", {}), _is503)
    raise ValueError(kind)


def _is401(status: int) -> bool:
    return status == 401


def _is503(status: int) -> bool:
    return status == 503


def _call(server: ServerProc, method: str, url: str, body: object) -> Callable[[], None]:
    def run() -> None:
        with server.root() as c:
            resp = c.request(method, url, json=body)
        assert resp.status_code in (200, 204), resp.text

    return run


def _revoke_jwt(server: ServerProc, jwt: str) -> Callable[[], None]:
    def run() -> None:
        with server.client() as c:
            assert c.post("/api/v1/oauth/revoke", data={"token": jwt}).status_code == 200

    return run


def _delete(server: ServerProc, url: str) -> Callable[[], None]:
    return _call(server, "DELETE", url, None)


def _post(server: ServerProc, url: str, body: object) -> Callable[[], None]:
    return _call(server, "POST", url, body)


def _put(server: ServerProc, url: str, body: object) -> Callable[[], None]:
    return _call(server, "PUT", url, body)


def propagation(pair: Pair, change: Change, limit: float = 2.0) -> float:
    """Seconds from the end of the change on ``a`` until ``b`` refuses the credential
    (polled on one kept-alive connection); raises AssertionError after ``limit``."""
    with pair.b.client(change.credential) as c:
        # A policy made just before must reach b too: wait (bounded) until b serves.
        deadline = time.perf_counter() + limit + 1.0
        while (warm := c.get(SECRET).status_code) != 200 and time.perf_counter() < deadline:
            time.sleep(0.01)
        assert warm == 200, f"not live on b before the change: {warm}"
        change.apply()
        done = time.perf_counter()
        while True:
            status = c.get(SECRET).status_code
            elapsed = time.perf_counter() - done
            if change.refused(status):
                return elapsed
            if elapsed > limit:
                raise AssertionError(f"still {status} on b {elapsed:.2f}s after the change")


def unseal_again(pair: Pair) -> None:
    """After a ``seal`` change: unseal the first process; the second follows."""
    with pair.a.client() as c:
        assert c.post("/api/v1/sys/unseal", json={"key": pair.a.vault.unseal_key}).is_success
    for server in (pair.a, pair.b):
        with server.client() as c:
            deadline = time.monotonic() + 10
            while c.get("/api/v1/sys/health").status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("the vault did not unseal again")
                time.sleep(0.05)
