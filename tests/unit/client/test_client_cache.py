"""The SDK's value cache and its refetch-on-failure helper, over an in-memory transport."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from keysafe import errors
from keysafe.client import Client, Secret
from keysafe.client._cache import SecretCache


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEYSAFE_HOME", str(tmp_path))
    for var in ("KEYSAFE_ADDR", "KEYSAFE_TOKEN", "KEYSAFE_CACERT"):
        monkeypatch.delenv(var, raising=False)


@dataclass
class FakeVault:
    """A tiny server: current values by path, a count of reads per path."""

    values: dict[str, str] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    reads: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, path: str, value: str) -> None:
        with self.lock:
            self.values[path] = value
            self.versions[path] = self.versions.get(path, 0) + 1

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/api/v1/secrets/")
        if request.method == "PUT":
            import json

            self.set(path, json.loads(request.content)["value"])
            return httpx.Response(200, json={"path": path, "version": self.versions[path]})
        if request.method == "DELETE":
            return httpx.Response(204)
        with self.lock:
            self.reads[path] = self.reads.get(path, 0) + 1
            if path not in self.values:
                doc = {"code": "not_found", "detail": "no such secret", "status": 404}
                return httpx.Response(404, json=doc)
            doc = {"path": path, "version": self.versions[path], "value": self.values[path]}
        return httpx.Response(200, json=doc)


@pytest.fixture
def vault() -> FakeVault:
    fake = FakeVault()
    fake.set("db/app/URL", "v1")
    return fake


@pytest.fixture
def client(vault: FakeVault) -> Iterator[Client]:
    with Client("https://vault.test", "tok", transport=httpx.MockTransport(vault.handler)) as c:
        yield c


def make(vault: FakeVault, ttl: float) -> Client:
    transport = httpx.MockTransport(vault.handler)
    return Client("https://vault.test", "tok", transport=transport, cache_ttl=ttl)


class AuthError(Exception):
    """Stands for a target's authentication failure (psycopg.OperationalError...)."""


# -- the cache ------------------------------------------------------------------------


def test_get_is_served_from_the_cache(vault: FakeVault, client: Client) -> None:
    assert client.get("db/app/URL") == "v1"
    vault.set("db/app/URL", "v2")
    assert client.get("db/app/URL") == "v1"
    assert client.get_secret("db/app/URL").version == 1
    assert vault.reads["db/app/URL"] == 1


def test_values_expire_after_the_ttl(vault: FakeVault) -> None:
    with make(vault, 0.05) as client:
        assert client.get("db/app/URL") == "v1"
        vault.set("db/app/URL", "v2")
        time.sleep(0.1)
        assert client.get("db/app/URL") == "v2"
    assert vault.reads["db/app/URL"] == 2


def test_ttl_zero_turns_the_cache_off(vault: FakeVault) -> None:
    with make(vault, 0) as client:
        client.get("db/app/URL")
        client.get("db/app/URL")
    assert vault.reads["db/app/URL"] == 2


@pytest.mark.parametrize("ttl", [-1.0, math.nan])
def test_a_negative_ttl_is_refused(vault: FakeVault, ttl: float) -> None:
    with pytest.raises(errors.InvalidInput, match="cache_ttl"):
        make(vault, ttl)


def test_a_given_version_is_always_fetched(vault: FakeVault, client: Client) -> None:
    client.get("db/app/URL")
    client.get_secret("db/app/URL", version=1)
    assert vault.reads["db/app/URL"] == 2


def test_refresh_bypasses_and_refills_the_cache(vault: FakeVault, client: Client) -> None:
    client.get("db/app/URL")
    vault.set("db/app/URL", "v2")
    assert client.refresh("db/app/URL") == "v2"
    assert client.get("db/app/URL") == "v2"
    assert vault.reads["db/app/URL"] == 2


def test_invalidate_one_path_or_all(vault: FakeVault, client: Client) -> None:
    vault.set("db/app/OTHER", "o1")
    client.get("db/app/URL")
    client.get("db/app/OTHER")
    vault.set("db/app/URL", "v2")
    vault.set("db/app/OTHER", "o2")
    client.invalidate("db/app/URL")
    assert (client.get("db/app/URL"), client.get("db/app/OTHER")) == ("v2", "o1")
    client.invalidate()
    assert client.get("db/app/OTHER") == "o2"


def test_invalidate_checks_the_path(client: Client) -> None:
    with pytest.raises(errors.InvalidInput):
        client.invalidate("a/../b")


def test_writes_through_the_client_drop_the_path(vault: FakeVault, client: Client) -> None:
    client.get("db/app/URL")
    client.put_secret("db/app/URL", "v2")
    assert client.get("db/app/URL") == "v2"
    client.delete("db/app/URL")
    client.get("db/app/URL")
    assert vault.reads["db/app/URL"] == 3


def test_errors_are_not_cached(vault: FakeVault, client: Client) -> None:
    with pytest.raises(errors.NotFound):
        client.get("db/app/NEW")
    vault.set("db/app/NEW", "n1")
    assert client.get("db/app/NEW") == "n1"


def test_clients_do_not_share_a_cache(vault: FakeVault) -> None:
    with make(vault, 30) as one, make(vault, 30) as two:
        one.get("db/app/URL")
        two.get("db/app/URL")
    assert vault.reads["db/app/URL"] == 2


def test_the_cache_is_safe_across_threads(vault: FakeVault) -> None:
    failures: list[BaseException] = []
    client = make(vault, 0.01)

    def reader() -> None:
        try:
            for _ in range(200):
                assert client.get("db/app/URL").startswith("v")
        except BaseException as exc:
            failures.append(exc)

    def writer() -> None:
        for n in range(50):
            vault.set("db/app/URL", f"v{n + 2}")
            client.invalidate("db/app/URL" if n % 2 else None)

    threads = [threading.Thread(target=reader) for _ in range(6)]
    threads.append(threading.Thread(target=writer))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    assert client.refresh("db/app/URL") == vault.values["db/app/URL"]
    client.close()


# -- SecretCache itself ----------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def secret(version: int, value: str = "x") -> Secret:
    return Secret(path="a/b", version=version, value=value)


def test_an_entry_lives_ttl_seconds_from_when_the_request_was_sent() -> None:
    clock = Clock()
    cache = SecretCache(10, clock)
    cache.put(secret(1), fetched_at=95.0)  # the reply took 5 s
    clock.now = 104.9
    assert cache.get("a/b") == secret(1)
    clock.now = 105.0
    assert cache.get("a/b") is None


def test_an_older_version_does_not_replace_a_newer_one_unless_forced() -> None:
    cache = SecretCache(10, Clock())
    cache.put(secret(2, "new"))
    cache.put(secret(1, "old"))  # a slow fetch that started before the rotation
    assert cache.get("a/b") == secret(2, "new")
    cache.put(secret(1, "old"), force=True)  # a refresh after the latest was deleted
    assert cache.get("a/b") == secret(1, "old")


# -- using: refetch once on the caller's authentication error --------------------------


def test_using_passes_the_value_and_returns_the_result(client: Client) -> None:
    assert client.using("db/app/URL", lambda v: v.upper(), retry_on=AuthError) == "V1"


def test_using_refetches_and_retries_once_after_a_rotation(
    vault: FakeVault, client: Client
) -> None:
    client.get("db/app/URL")  # cached v1
    vault.set("db/app/URL", "v2")  # rotated: v1 no longer accepted
    seen: list[str] = []

    def connect(value: str) -> str:
        seen.append(value)
        if value != "v2":
            raise AuthError("password authentication failed")
        return "connected"

    assert client.using("db/app/URL", connect, retry_on=(AuthError,)) == "connected"
    assert seen == ["v1", "v2"]
    assert client.get("db/app/URL") == "v2"  # the cache holds the new value


def test_using_raises_the_first_error_when_the_value_did_not_change(
    vault: FakeVault, client: Client
) -> None:
    calls: list[str] = []

    def refuse(value: str) -> None:
        calls.append(value)
        raise AuthError("wrong password")

    with pytest.raises(AuthError, match="wrong password"):
        client.using("db/app/URL", refuse, retry_on=AuthError)
    assert calls == ["v1"]
    assert vault.reads["db/app/URL"] == 2  # one get, one refetch: no loop


def test_using_raises_a_second_failure_as_it_is(vault: FakeVault, client: Client) -> None:
    client.get("db/app/URL")
    vault.set("db/app/URL", "v2")

    def refuse(value: str) -> None:
        raise AuthError(f"refused {value}")

    with pytest.raises(AuthError, match="refused v2"):
        client.using("db/app/URL", refuse, retry_on=AuthError)


def test_using_does_not_retry_other_errors(vault: FakeVault, client: Client) -> None:
    def broken(_value: str) -> None:
        raise ValueError("a bug, not a credential problem")

    with pytest.raises(ValueError, match="a bug"):
        client.using("db/app/URL", broken, retry_on=AuthError)
    assert vault.reads["db/app/URL"] == 1


def test_using_reports_a_failed_refetch(vault: FakeVault, client: Client) -> None:
    client.get("db/app/URL")
    del vault.values["db/app/URL"]

    def refuse(_value: str) -> None:
        raise AuthError("refused")

    with pytest.raises(errors.NotFound) as info:
        client.using("db/app/URL", refuse, retry_on=AuthError)
    assert isinstance(info.value.__context__, AuthError)
