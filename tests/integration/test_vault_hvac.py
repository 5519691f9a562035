"""hvac, unchanged, against a real keysafe server process over HTTPS: every KV v2,
token and sys call issue 13 names, with the error paths a user hits."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from server_proc import ServerProc, database_url, init_vault, running

hvac = pytest.importorskip("hvac")
from hvac import exceptions as hvac_errors  # noqa: E402


def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("vault-hvac")
    with database_url("sqlite", tmp) as url:
        vault = init_vault("sqlite", tmp, url)
        with running(vault) as proc:
            yield proc


@pytest.fixture
def client(server: ServerProc) -> Iterator[Any]:
    c = hvac.Client(
        url=server.base_url, token=server.vault.root_token, verify=str(server.vault.tls.ca_cert)
    )
    try:
        yield c
    finally:
        c.adapter.close()


# hvac's own ``patch`` reads without ``raise_on_deleted_version`` (its deprecation notice).
@pytest.mark.filterwarnings("ignore:The raise_on_deleted_version:DeprecationWarning")
def test_hvac_kv_v2_versions_and_metadata(client: Any) -> None:
    kv = client.secrets.kv.v2
    path = f"hv{uid()}/db"
    kv.create_or_update_secret(path=path, secret={"user": "app", "pw": "1"})
    kv.create_or_update_secret(path=path, secret={"user": "app", "pw": "2"}, cas=1)
    with pytest.raises(hvac_errors.InvalidRequest):  # a stale cas: Vault's 400
        kv.create_or_update_secret(path=path, secret={"pw": "x"}, cas=1)
    kv.patch(path=path, secret={"pw": "3"})
    latest = kv.read_secret_version(path=path, version=0, raise_on_deleted_version=True)
    assert latest["data"]["data"] == {"user": "app", "pw": "3"}
    assert latest["data"]["metadata"]["version"] == 3
    times = [
        kv.read_secret_version(path=path, version=v, raise_on_deleted_version=True)["data"][
            "metadata"
        ]["created_time"]
        for v in (1, 2, 3)
    ]
    assert times == sorted(times)
    assert len(set(times)) == 3  # each version its own write time

    kv.delete_secret_versions(path=path, versions=[1])
    with pytest.raises(hvac_errors.InvalidPath):
        kv.read_secret_version(path=path, version=1, raise_on_deleted_version=True)
    gone = kv.read_secret_version(path=path, version=1, raise_on_deleted_version=False)
    assert gone["data"]["data"] is None
    assert gone["data"]["metadata"]["deletion_time"]
    kv.undelete_secret_versions(path=path, versions=[1])
    assert kv.read_secret_version(path=path, version=1, raise_on_deleted_version=True)["data"][
        "data"
    ] == {"user": "app", "pw": "1"}
    kv.destroy_secret_versions(path=path, versions=[1])
    kv.delete_latest_version_of_secret(path=path)

    kv.update_metadata(path=path, max_versions=7, custom_metadata={"owner": "payments"})
    meta = kv.read_secret_metadata(path=path)["data"]
    assert meta["max_versions"] == 7
    assert meta["custom_metadata"] == {"owner": "payments"}
    assert meta["current_version"] == 3
    assert meta["oldest_version"] == 1
    assert meta["versions"]["1"]["destroyed"] is True
    assert meta["versions"]["3"]["deletion_time"]
    assert meta["cas_required"] is False
    assert meta["delete_version_after"] == "0s"
    assert meta["created_time"] <= meta["updated_time"]

    kv.delete_metadata_and_all_versions(path=path)
    with pytest.raises(hvac_errors.InvalidPath):
        kv.read_secret_metadata(path=path)

    config = kv.read_configuration()["data"]
    assert config["cas_required"] is False
    kv.configure(max_versions=config["max_versions"])
    with pytest.raises(hvac_errors.InvalidRequest):
        kv.configure(cas_required=True)


def test_hvac_tokens(client: Any, server: ServerProc) -> None:
    name = f"tk{uid()}"
    policy = f'[[rule]]\npath = "{name}/*"\ncapabilities = ["read"]\n'
    with server.root() as native:
        assert native.put(f"/api/v1/policies/{name}", json={"text": policy}).status_code == 200
    made = client.auth.token.create(policies=[name], ttl="15m")
    token = made["auth"]["client_token"]
    assert made["auth"]["policies"] == [name]
    looked = client.auth.token.lookup(token)["data"]
    assert looked["policies"] == [name]
    assert 0 < looked["ttl"] <= 900

    child = hvac.Client(url=server.base_url, token=token, verify=str(server.vault.tls.ca_cert))
    try:
        assert child.is_authenticated()
        me = child.auth.token.lookup_self()["data"]
        assert me["type"] == "service"
        assert me["accessor"] == made["auth"]["accessor"]
        assert {"ttl", "creation_ttl", "issue_time", "expire_time", "policies"} <= set(me)
        renewed = child.auth.token.renew_self()
        assert renewed["auth"]["renewable"] is False
        child.auth.token.revoke_self()
        assert not child.is_authenticated()
    finally:
        child.adapter.close()


def test_hvac_sys_calls_and_bad_tokens(client: Any, server: ServerProc) -> None:
    assert client.sys.is_initialized() is True
    assert client.sys.read_seal_status()["sealed"] is False
    assert client.sys.read_health_status(method="HEAD").status_code == 200
    health = client.sys.read_health_status(method="GET", standby_ok=True)
    assert health["initialized"] is True
    mounts = client.sys.list_mounted_secrets_engines()
    assert mounts["data"]["secret/"]["options"]["version"] == "2"
    assert client.is_authenticated()
    stranger = hvac.Client(
        url=server.base_url, token="s.not-a-token", verify=str(server.vault.tls.ca_cert)
    )
    try:
        assert stranger.is_authenticated() is False  # Vault's 403, not an exception
        with pytest.raises(hvac_errors.Forbidden):
            stranger.secrets.kv.v2.read_secret_version(path="a/b", raise_on_deleted_version=True)
    finally:
        stranger.adapter.close()
