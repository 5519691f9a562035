"""node-vault (from the npm registry, run with the machine's Node), unchanged, against a
real keysafe server over HTTPS: KV v2, token create/lookup/renew/revoke, AppRole login.

``.ci/run`` installs it into ``tests/node`` (``npm install --prefix tests/node``); a
machine without Node or the package skips this test, CI never does."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from server_proc import ServerProc, database_url, init_vault, running

NODE_DIR = Path(__file__).resolve().parent.parent / "node"
SCRIPT = NODE_DIR / "node_vault_client.js"


def _node() -> str:
    node = shutil.which("node")
    installed = (NODE_DIR / "node_modules" / "node-vault" / "package.json").is_file()
    if node is None or not installed:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must run node-vault: `npm ci --prefix tests/node` (see .ci/run)")
        pytest.skip("node or node-vault absent (npm install --prefix tests/node)")
    return node


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp("vault-node")
    with database_url("sqlite", tmp) as url:
        vault = init_vault("sqlite", tmp, url)
        with running(vault) as proc:
            yield proc


@pytest.mark.timeout(90)
def test_node_vault_kv_tokens_and_approle(server: ServerProc) -> None:
    node = _node()
    name = f"nv{uuid.uuid4().hex[:10]}"
    policy = f'[[rule]]\npath = "{name}/*"\ncapabilities = ["read", "list"]\n'
    with server.root() as native:
        assert native.put(f"/api/v1/policies/{name}", json={"text": policy}).status_code == 200
        assert native.post("/api/v1/services", json={"name": name, "policies": [name]})
        key = native.post("/api/v1/keys", json={"service": name}).json()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KS_ADDR": server.base_url,
        "KS_CA": str(server.vault.tls.ca_cert),
        "KS_ROOT": str(server.vault.root_token),
        "KS_FOLDER": name,
        "KS_POLICY": name,
        "KS_ROLE_ID": key["id"],
        "KS_SECRET_ID": key["key"],
    }
    done = subprocess.run(
        [node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["health"]["sealed"] is False
    assert out["initialized"]["initialized"] is True
    assert out["status"]["sealed"] is False
    assert out["write"]["data"]["version"] == 1
    assert out["read"]["data"]["data"] == {"user": "app", "pw": "1"}
    assert out["list"]["data"]["keys"] == ["db"]
    assert out["mounts"]["secret/"]["options"]["version"] == "2"
    assert out["created"]["auth"]["policies"] == [name]
    assert out["childSelf"]["data"]["policies"] == [name]
    assert out["childSelf"]["data"]["type"] == "service"
    assert out["childRead"]["data"]["data"]["pw"] == "1"
    assert out["childWrite"] == 403
    assert out["renewed"]["auth"]["renewable"] is False
    assert out["afterRevoke"] == 403
    assert out["login"]["auth"]["policies"] == [name]
    assert out["appRead"]["data"]["data"]["user"] == "app"
    assert out["afterDelete"] == 404
