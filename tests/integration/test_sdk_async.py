"""AsyncClient, and Client over http.client, against a real ``keysafe server`` process.

One server (SQLite, HTTPS with its own CA) for the module; each test uses its own paths.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
import typing
from collections.abc import Iterator

import pytest
from server_proc import ServerProc, free_port, init_vault, running

from keysafe import errors
from keysafe.client import AsyncClient, Client

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("sdk-async")
    db = tmp / "db"
    db.mkdir()
    vault = init_vault("sqlite", tmp, f"sqlite:///{db / 'keysafe.db'}")
    with running(vault) as proc:
        yield proc


def aclient(server: ServerProc, token: str | None = None, **kw: float) -> AsyncClient:
    root = server.vault.root_token
    return AsyncClient(server.base_url, token or root, server.vault.tls.ca_cert, **kw)


def folder() -> str:
    return f"sdk/async{secrets.token_hex(3)}"


async def test_async_round_trip_of_secrets_and_tokens(server: ServerProc) -> None:
    base = folder()
    async with aclient(server) as ks:
        assert await ks.put_secret(f"{base}/DB_PASSWORD", "v1") == 1
        assert await ks.put_secret(f"{base}/DB_PASSWORD", "v2", cas=1) == 2
        with pytest.raises(errors.CasMismatch):
            await ks.put_secret(f"{base}/DB_PASSWORD", "v3", cas=1)
        assert await ks.get(f"{base}/DB_PASSWORD") == "v2"
        old = await ks.get_secret(f"{base}/DB_PASSWORD", version=1)
        assert (old.version, old.value) == (1, "v1")
        listed = await ks.list_secrets(base + "/", values=True)
        assert [(e.path, e.value) for e in listed] == [(f"{base}/DB_PASSWORD", "v2")]
        history = await ks.history(f"{base}/DB_PASSWORD")
        assert [v.version for v in history.versions] == [1, 2]
        await ks.delete(f"{base}/DB_PASSWORD")
        with pytest.raises(errors.NotFound):
            await ks.refresh(f"{base}/DB_PASSWORD")
        await ks.undelete(f"{base}/DB_PASSWORD", [2])
        assert await ks.refresh(f"{base}/DB_PASSWORD") == "v2"
        meta = await ks.set_metadata(f"{base}/DB_PASSWORD", owner="team-payments")
        assert meta.owner == "team-payments"
        issued = await ks.create_token(prefix=base, mode="read", ttl_seconds=600)
        assert any(t.id == issued.id for t in await ks.list_tokens())
        health = await ks.health()
        assert health.sealed is False


async def test_async_errors_are_keysafe_errors(server: ServerProc) -> None:
    base = folder()
    async with aclient(server) as root:
        await root.put_secret(f"{base}/OPEN", "x")
        await root.put_secret(f"other{secrets.token_hex(3)}/CLOSED", "y")
        narrow = await root.create_token(prefix=base, mode="read", ttl_seconds=600)
    async with aclient(server, narrow.token) as ks:
        assert await ks.get(f"{base}/OPEN") == "x"
        with pytest.raises(errors.Forbidden):
            await ks.put_secret(f"{base}/OPEN", "nope")
        with pytest.raises(errors.NotFound):
            await ks.get(f"{base}/MISSING")
        with pytest.raises(errors.InvalidInput):
            await ks.get("../etc/passwd")
    dead = f"https://127.0.0.1:{free_port()}"
    async with AsyncClient(dead, "t", server.vault.tls.ca_cert) as nobody:
        with pytest.raises(errors.ConnectionFailed, match="connection refused"):
            await nobody.get(f"{base}/OPEN")


async def test_async_failover_and_concurrent_tasks(server: ServerProc) -> None:
    base = folder()
    dead = f"https://127.0.0.1:{free_port()}"
    async with aclient(server) as root:
        await root.put_secret(f"{base}/A", "alpha")
    ca, token = server.vault.tls.ca_cert, server.vault.root_token
    async with AsyncClient([dead, server.base_url], token, ca, cache_ttl=0) as ks:
        values = await asyncio.gather(*(ks.get(f"{base}/A") for _ in range(8)))
        assert values == ["alpha"] * 8
        assert ks.addr == server.base_url  # sticky on the node that answered


async def test_async_cache_and_using(server: ServerProc) -> None:
    base = folder()
    path = f"{base}/CRED"
    async with aclient(server) as writer, aclient(server) as ks:
        await writer.put_secret(path, "old")
        assert await ks.get(path) == "old"
        await writer.put_secret(path, "new")
        assert await ks.get(path) == "old"  # cached for cache_ttl
        seen: list[str] = []

        async def connect(value: str) -> str:
            seen.append(value)
            if value == "old":
                raise PermissionError("password authentication failed")
            return f"connected with {value}"

        assert await ks.using(path, connect, retry_on=PermissionError) == "connected with new"
        assert seen == ["old", "new"]
        ks.invalidate(path)
        assert await ks.get(path) == "new"


def test_stdlib_transport_speaks_the_same_api(server: ServerProc) -> None:
    base = folder()
    ca, token = server.vault.tls.ca_cert, server.vault.root_token
    dead = f"https://127.0.0.1:{free_port()}"
    with Client([dead, server.base_url], token, ca, http="stdlib", cache_ttl=0) as ks:
        assert ks.put_secret(f"{base}/K", "value with spaces & é") == 1
        for _ in range(3):  # the kept-alive connection is reused
            assert ks.get(f"{base}/K") == "value with spaces & é"
        assert [e.path for e in ks.list_secrets(base + "/")] == [f"{base}/K"]
        with pytest.raises(errors.NotFound):
            ks.get(f"{base}/MISSING")
        with pytest.raises(errors.Unauthenticated):
            ks.exchange_token("ks_key_not_a_real_key")
    untrusted = Client(server.base_url, token, None, http="stdlib")  # no CA given
    with untrusted, pytest.raises(errors.ConnectionFailed, match="KEYSAFE_CACERT"):
        untrusted.get(f"{base}/K")


def test_async_client_has_every_method_of_client() -> None:
    def public(cls: type) -> dict[str, object]:
        return {n: getattr(cls, n) for n in dir(cls) if not n.startswith("_")}

    sync, aio = public(Client), public(AsyncClient)
    # AsyncClient.aclose, like httpx; a backup streams to a file from the blocking
    # client only (`keysafe operator backup`), not worth an async twin.
    sync_only = {"close", "backup_stream"}
    missing = set(sync) - set(aio) - sync_only
    assert missing == set()
    assert "aclose" in aio
    for name, method in sync.items():
        if name in {"addr", "addrs", "invalidate"} | sync_only:
            continue
        assert inspect.iscoroutinefunction(aio[name]), name
        assert inspect.signature(method).parameters.keys() == (
            inspect.signature(aio[name]).parameters.keys()  # type: ignore[arg-type]
        ), name


async def test_typed_replies_carry_their_fields(server: ServerProc) -> None:
    from keysafe.client import types

    async with aclient(server) as ks:
        await ks.write_policy(
            f"p{secrets.token_hex(3)}", '[[rule]]\npath = "a/*"\ncapabilities = ["read"]\n'
        )
        service = await ks.create_service(f"svc{secrets.token_hex(3)}", [])
        key = await ks.create_key(service["name"], expires_in="90d")
        checks: list[tuple[object, type]] = [
            ((await ks.list_policies())[0], types.PolicyWritten),
            (service, types.ServiceRecord),
            (key, types.KeyIssued),
            (await ks.show_key(key["id"]), types.KeyRecord),
            (await ks.whoami(), types.WhoAmI),
            (await ks.rotation_targets(), list),
        ]
    for doc, shape in checks:
        if shape is list:
            assert isinstance(doc, list)
            continue
        assert isinstance(doc, dict)
        hints = typing.get_type_hints(shape, include_extras=True)
        required = {k for k, v in hints.items() if typing.get_origin(v) is not typing.NotRequired}
        missing = required - set(doc)
        assert missing == set(), (shape.__name__, missing)
