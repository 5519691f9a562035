"""``/v1`` on the wire, as Vault's Go client sends it (the vault CLI, Vault Agent,
consul-template, ESO, Terraform): no ``Content-Type``, ``X-Vault-Request: true``, the
``LIST`` verb, the mount detection calls, ESO's token check. Written from those
clients' documented behaviour (no Go toolchain here), against a real server process
over HTTPS; also the abuse cases of the Vault-compatible routes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from server_proc import ServerProc, database_url, init_vault, running

ENVELOPE = {
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
}


def uid() -> str:
    return uuid.uuid4().hex[:10]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("vault-wire")
    with database_url("sqlite", tmp) as url:
        vault = init_vault("sqlite", tmp, url)
        with running(vault) as proc:
            yield proc


def go(server: ServerProc, token: str | None = None) -> httpx.Client:
    """A client that sends what Go's net/http and Vault's api package send."""
    headers = {"X-Vault-Request": "true", "User-Agent": "Go-http-client/1.1"}
    if token is not None:
        headers["X-Vault-Token"] = token
    client = server.client()
    client.headers.clear()
    client.headers.update(headers)
    return client


def send(c: httpx.Client, method: str, path: str, body: Any = None, **kw: Any) -> httpx.Response:
    """``body`` JSON-encoded with no Content-Type, as the Go client does."""
    content = None if body is None else orjson.dumps(body)
    resp = c.request(method, path, content=content, **kw)
    assert "content-type" not in {k.lower() for k in resp.request.headers if k != "Host"} or (
        body is None
    )
    return resp


def root_token(server: ServerProc) -> str:
    assert server.vault.root_token is not None
    return str(server.vault.root_token)


def test_go_client_kv_round_trip(server: ServerProc) -> None:
    folder = f"go{uid()}"
    with go(server, root_token(server)) as c:
        # vault kv put: mount detection, then a write without a Content-Type.
        mount = send(c, "GET", f"/v1/sys/internal/ui/mounts/secret/{folder}/db")
        assert mount.status_code == 200, mount.text
        assert set(mount.json()) >= ENVELOPE
        assert mount.json()["data"]["options"] == {"version": "2"}
        assert mount.json()["data"]["path"] == "secret/"
        put = send(c, "PUT", f"/v1/secret/data/{folder}/db", {"data": {"u": "a", "p": "1"}})
        assert put.status_code == 200, put.text
        assert set(put.json()) >= ENVELOPE
        assert put.json()["data"]["version"] == 1
        # cas: a stale one is Vault's 400.
        stale = send(c, "PUT", f"/v1/secret/data/{folder}/db", {"data": {}, "options": {"cas": 0}})
        assert stale.status_code == 400, stale.text
        assert stale.json()["errors"]
        # vault kv patch: JSON merge patch.
        patch = c.patch(
            f"/v1/secret/data/{folder}/db",
            content=orjson.dumps({"data": {"p": "2", "u": None, "n": {"x": 1}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert patch.status_code == 200, patch.text
        assert patch.json()["data"]["version"] == 2
        plain_patch = send(c, "PATCH", f"/v1/secret/data/{folder}/db", {"data": {}})
        assert plain_patch.status_code == 415
        got = send(c, "GET", f"/v1/secret/data/{folder}/db")
        assert got.status_code == 200
        doc = got.json()
        assert set(doc) >= ENVELOPE
        assert doc["data"]["data"] == {"p": "2", "n": {"x": 1}}
        assert doc["data"]["metadata"]["version"] == 2
        first = send(c, "GET", f"/v1/secret/data/{folder}/db", params={"version": "1"}).json()
        latest = send(c, "GET", f"/v1/secret/data/{folder}/db", params={"version": "0"}).json()
        assert latest["data"]["metadata"]["version"] == 2
        assert (
            first["data"]["metadata"]["created_time"] <= latest["data"]["metadata"]["created_time"]
        )
        assert first["data"]["data"] == {"u": "a", "p": "1"}
        # vault kv list: the LIST verb.
        send(c, "PUT", f"/v1/secret/data/{folder}/sub/x", {"data": {"k": "v"}})
        listed = send(c, "LIST", f"/v1/secret/metadata/{folder}")
        assert listed.status_code == 200, listed.text
        assert sorted(listed.json()["data"]["keys"]) == ["db", "sub/"]
        # Per-version delete, the 404 with metadata, undelete, destroy.
        assert (
            send(c, "PUT", f"/v1/secret/delete/{folder}/db", {"versions": [1]}).status_code == 204
        )
        gone = send(c, "GET", f"/v1/secret/data/{folder}/db", params={"version": "1"})
        assert gone.status_code == 404
        assert gone.json()["data"]["metadata"]["deletion_time"] != ""
        assert gone.json()["data"]["data"] is None
        assert (
            send(c, "PUT", f"/v1/secret/undelete/{folder}/db", {"versions": [1]}).status_code == 204
        )
        assert send(c, "GET", f"/v1/secret/data/{folder}/db?version=1").status_code == 200
        assert (
            send(c, "PUT", f"/v1/secret/destroy/{folder}/db", {"versions": [1]}).status_code == 204
        )
        destroyed = send(c, "GET", f"/v1/secret/data/{folder}/db?version=1")
        assert destroyed.status_code == 404
        assert destroyed.json()["data"]["metadata"]["destroyed"] is True
        # Metadata in Vault's shape; custom_metadata is the keysafe tags.
        meta_w = send(
            c,
            "PUT",
            f"/v1/secret/metadata/{folder}/db",
            {"max_versions": 5, "custom_metadata": {"team": "pay"}},
        )
        assert meta_w.status_code == 204, meta_w.text
        meta = send(c, "GET", f"/v1/secret/metadata/{folder}/db").json()["data"]
        assert meta["current_version"] == 2
        assert meta["oldest_version"] == 1
        assert meta["max_versions"] == 5
        assert meta["custom_metadata"] == {"team": "pay"}
        assert meta["cas_required"] is False
        assert meta["delete_version_after"] == "0s"
        assert set(meta["versions"]) == {"1", "2"}
        assert meta["versions"]["1"]["destroyed"] is True
        assert {"created_time", "updated_time"} <= set(meta)
        with server.root() as native:
            tags = native.get(f"/api/v1/secrets/{folder}/db").json()["metadata"]["tags"]
            assert tags == {"team": "pay"}
        refused = send(c, "POST", f"/v1/secret/metadata/{folder}/db", {"cas_required": True})
        assert refused.status_code == 400
        # Metadata delete removes the path entirely.
        assert send(c, "DELETE", f"/v1/secret/metadata/{folder}/db").status_code == 204
        assert send(c, "GET", f"/v1/secret/metadata/{folder}/db").status_code == 404
        assert send(c, "GET", f"/v1/secret/data/{folder}/db").json() == {"errors": []}
        config = send(c, "GET", "/v1/secret/config")
        assert config.json()["data"]["cas_required"] is False


def test_go_client_auth_and_sys_calls(server: ServerProc) -> None:
    folder = f"ap{uid()}"
    policy = f'[[rule]]\npath = "{folder}/*"\ncapabilities = ["read", "list"]\n'
    with server.root() as native:
        assert native.put(f"/api/v1/policies/{folder}", json={"text": policy}).status_code == 200
        assert native.post("/api/v1/services", json={"name": folder, "policies": [folder]})
        key = native.post("/api/v1/keys", json={"service": folder}).json()
        native.put(f"/api/v1/secrets/{folder}/db", json={"value": '{"pw": "p"}'})
    with go(server) as anon:
        login = send(
            anon, "PUT", "/v1/auth/approle/login", {"role_id": key["id"], "secret_id": key["key"]}
        )
        assert login.status_code == 200, login.text
        assert set(login.json()) >= ENVELOPE
        token = login.json()["auth"]["client_token"]
        health = anon.get("/v1/sys/health", params={"standbyok": "true", "sealedcode": "299"})
        assert health.status_code == 200
        assert anon.head("/v1/sys/health").status_code == 200
        assert anon.get("/v1/sys/init").json() == {"initialized": True}
        seal = anon.get("/v1/sys/seal-status").json()
        assert seal["sealed"] is False
        assert seal["type"] == "shamir"
        # A bad or missing token: Vault's 403.
        assert send(anon, "GET", "/v1/auth/token/lookup-self").status_code == 403
        anon.headers["X-Vault-Token"] = "s.nonsense"
        bad = send(anon, "GET", "/v1/auth/token/lookup-self")
        assert bad.status_code == 403
        assert bad.json() == {"errors": ["permission denied"]}
    with go(server, token) as c:
        # ESO's token check: type and a numeric ttl.
        me = send(c, "GET", "/v1/auth/token/lookup-self").json()["data"]
        assert me["type"] == "service"
        assert isinstance(me["ttl"], int)
        assert 0 < me["ttl"] <= 900
        assert me["policies"] == [folder]
        assert send(c, "GET", f"/v1/secret/data/{folder}/db").json()["data"]["data"] == {"pw": "p"}
        renewed = send(c, "PUT", "/v1/auth/token/renew-self", {})
        assert renewed.status_code == 200
        assert renewed.json()["warnings"]
        assert send(c, "PUT", "/v1/auth/token/revoke-self").status_code == 204
        assert send(c, "GET", "/v1/auth/token/lookup-self").status_code == 403
    with go(server, root_token(server)) as c:
        mounts = send(c, "GET", "/v1/sys/mounts").json()
        assert mounts["secret/"]["options"]["version"] == "2"
        assert mounts["data"]["secret/"]["type"] == "kv"
        # An unknown path: Vault's 404 with no messages.
        unknown = send(c, "GET", "/v1/pki/issue/x")
        assert unknown.status_code == 404
        assert unknown.json() == {"errors": []}


def test_bodies_without_content_type_on_both_apis(server: ServerProc) -> None:
    folder = f"ct{uid()}"
    with server.client() as c:
        headers = {"Authorization": f"Bearer {root_token(server)}"}
        # curl -d sends a form type; the Go client none at all.
        r = c.put(
            f"/api/v1/secrets/{folder}/a",
            content=b'{"value": "v"}',
            headers={**headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert r.status_code == 200, r.text
        r = c.put(f"/api/v1/secrets/{folder}/b", content=b'{"value": "v"}', headers=headers)
        assert r.status_code == 200, r.text
        bad = c.put(f"/api/v1/secrets/{folder}/c", content=b"value=v", headers=headers)
        assert bad.status_code == 400
        assert "not valid JSON" in bad.json()["detail"]
        bad = c.put(
            f"/v1/secret/data/{folder}/c",
            content=b"not json",
            headers={"X-Vault-Token": root_token(server)},
        )
        assert bad.status_code == 400
        assert "not valid JSON" in bad.json()["errors"][0]


def test_headers_vault_clients_send(server: ServerProc) -> None:
    folder = f"hd{uid()}"
    with go(server, root_token(server)) as c:
        send(c, "PUT", f"/v1/secret/data/{folder}/x", {"data": {"k": "v"}})
        # A proxy's Basic credentials do not hide X-Vault-Token.
        basic = c.get(
            f"/v1/secret/data/{folder}/x", headers={"Authorization": "Basic Zm9vOmJhcg=="}
        )
        assert basic.status_code == 200, basic.text
        # A namespace keysafe does not have: refused, never the root space.
        ns = c.get(f"/v1/secret/data/{folder}/x", headers={"X-Vault-Namespace": "team-a/"})
        assert ns.status_code == 400
        assert "namespace" in ns.json()["errors"][0]
        ns_write = send(
            c,
            "PUT",
            f"/v1/secret/data/{folder}/x",
            {"data": {"k": "other"}},
            headers={"X-Vault-Namespace": "team-a"},
        )
        assert ns_write.status_code == 400
        assert c.get(f"/v1/secret/data/{folder}/x", headers={"X-Vault-Namespace": "root"}).json()[
            "data"
        ]["data"] == {"k": "v"}
        # Response wrapping is refused, never answered in plaintext.
        wrapped = c.get(f"/v1/secret/data/{folder}/x", headers={"X-Vault-Wrap-TTL": "60s"})
        assert wrapped.status_code == 400
        assert b'"k"' not in wrapped.content


# -- abuse -----------------------------------------------------------------------------


def _service(server: ServerProc, name: str, caps: str) -> dict[str, Any]:
    policy = f'[[rule]]\npath = "{name}/*"\ncapabilities = [{caps}]\n'
    with server.root() as native:
        assert native.put(f"/api/v1/policies/{name}", json={"text": policy}).status_code == 200
        assert native.post("/api/v1/services", json={"name": name, "policies": [name]})
        key: dict[str, Any] = native.post("/api/v1/keys", json={"service": name}).json()
        native.put(f"/api/v1/secrets/{name}/db", json={"value": '{"pw": "p"}'})
    return key


def test_token_create_cannot_exceed_the_caller(server: ServerProc) -> None:
    name = f"tc{uid()}"
    key = _service(server, name, '"read"')
    with go(server, key["key"]) as c:
        # A service key without the right to mint tokens cannot mint any.
        denied = send(c, "POST", "/v1/auth/token/create", {"policies": [name]})
        assert denied.status_code == 403, denied.text
    with go(server, root_token(server)) as c:
        made = send(c, "POST", "/v1/auth/token/create", {"policies": [name], "ttl": "10m"})
        assert made.status_code == 200, made.text
        auth = made.json()["auth"]
        assert auth["policies"] == [name]
        assert 0 < auth["lease_duration"] <= 600
        child = auth["client_token"]
        # Orphans and use-limited tokens would outlive or out-count the creator: refused.
        for extra in ({"no_parent": True}, {"num_uses": 3}):
            refused = send(c, "POST", "/v1/auth/token/create", {"policies": [name], **extra})
            assert refused.status_code == 400, refused.text
        looked = send(c, "POST", "/v1/auth/token/lookup", {"token": child}).json()["data"]
        assert looked["policies"] == [name]
        assert looked["accessor"] == auth["accessor"]
        by_accessor = send(
            c, "POST", "/v1/auth/token/lookup-accessor", {"accessor": auth["accessor"]}
        )
        assert by_accessor.json()["data"]["policies"] == [name]
    with go(server, child) as c:
        # The child may read what its policy allows, not more, and cannot mint a token
        # with a policy it does not hold.
        assert send(c, "GET", f"/v1/secret/data/{name}/db").status_code == 200
        assert send(c, "PUT", f"/v1/secret/data/{name}/db", {"data": {}}).status_code == 403
        more = send(c, "POST", "/v1/auth/token/create", {"policies": ["admin"]})
        assert more.status_code in (403, 404), more.text
        # Someone else's token cannot be looked up without the right to list tokens.
        assert (
            send(c, "POST", "/v1/auth/token/lookup", {"token": root_token(server)}).status_code
            == 403
        )
    with go(server, root_token(server)) as c:
        assert (
            send(c, "POST", "/v1/auth/token/revoke-accessor", {"accessor": auth["accessor"]})
        ).status_code == 204
    with go(server, child) as c:
        assert send(c, "GET", f"/v1/secret/data/{name}/db").status_code == 403


def test_metadata_delete_and_versions_need_their_capability(server: ServerProc) -> None:
    name = f"md{uid()}"
    key = _service(server, name, '"read", "list", "write", "delete"')
    with go(server, key["key"]) as c:
        assert send(c, "DELETE", f"/v1/secret/metadata/{name}/db").status_code == 403
        assert send(c, "PUT", f"/v1/secret/destroy/{name}/db", {"versions": [1]}).status_code == 403
        assert send(c, "GET", f"/v1/secret/data/{name}/db").status_code == 200
        # Nor outside its folder.
        assert send(c, "GET", "/v1/secret/metadata/other/db").status_code == 403
        assert send(c, "POST", "/v1/secret/config", {"max_versions": 3}).status_code == 403
        assert send(c, "GET", "/v1/sys/mounts").status_code == 403  # admin on sys/mounts
        assert send(c, "GET", f"/v1/sys/internal/ui/mounts/secret/{name}").status_code == 200


def test_bad_input_answers_in_vaults_shape(server: ServerProc, tmp_path: Path) -> None:
    with go(server, root_token(server)) as c:
        cases = [
            ("PUT", "/v1/secret/data/x/y", {"data": "no"}),
            ("PUT", "/v1/secret/data/x/y", {"data": {}, "options": {"cas": "one"}}),
            ("PUT", "/v1/secret/delete/x/y", {"versions": []}),
            ("POST", "/v1/auth/token/create", {"policies": ["x"], "ttl": "forever"}),
            ("GET", "/v1/secret/data/x/y?version=-1", None),
            ("PUT", "/v1/secret/metadata/x/y", {"delete_version_after": "1h"}),
        ]
        for method, path, body in cases:
            r = send(c, method, path, body)
            assert r.status_code == 400, (path, r.status_code, r.text)
            assert isinstance(r.json()["errors"], list), r.text
            assert r.json()["errors"], r.text
