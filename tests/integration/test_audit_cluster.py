"""Three real ``keysafe server`` nodes on one PostgreSQL database audit concurrently:
each appends to its own chains without waiting on the others, the whole trail verifies,
and each node's audit file verifies on its own (from any node, by name)."""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from server_proc import ServerProc, database_url, init_vault, running

pytestmark = pytest.mark.postgres

NODES = 3
OPS = 20  # per client; two clients per node


def _work(server: ServerProc, client: int) -> int:
    done = 0
    with server.root() as c:
        for i in range(OPS):
            path = f"/api/v1/secrets/cluster/n{server.port}-c{client}-{i % 4}"
            assert c.put(path, json={"value": f"v{i}"}).status_code == 200
            assert c.get(path).status_code == 200
            done += 2
    return done


@pytest.mark.timeout(300)
def test_three_nodes_audit_concurrently_and_every_trail_verifies(tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        url = stack.enter_context(database_url("postgres", tmp_path))
        vault = init_vault("postgres", tmp_path, url)
        files = [tmp_path / "audit" / f"node-{i}.jsonl" for i in range(NODES)]
        files[0].parent.mkdir()
        servers = [
            stack.enter_context(running(vault, extra_env={"KEYSAFE_AUDIT_FILE": str(f)}))
            for f in files
        ]
        with ThreadPoolExecutor(2 * NODES) as pool:
            jobs = [pool.submit(_work, s, k) for s in servers for k in range(2)]
            assert sum(j.result() for j in jobs) == 2 * NODES * 2 * OPS

        with servers[0].root() as c:
            doc = c.post("/api/v1/audit/verify").json()
        assert doc["ok"] is True, doc
        writers = [ch for ch in doc["chains"] if ch["chain"] != "root"]
        assert len({ch["node"] for ch in writers}) == NODES
        assert all(ch["ok"] for ch in doc["chains"])
        assert sum(ch["events"] for ch in writers) >= 2 * NODES * 2 * OPS
        # Stitched by time: the writer chains in the order of their first events.
        firsts = [ch["first"]["ts"] for ch in writers if ch["first"]]
        assert firsts == sorted(firsts)

        for server, path in zip(servers, files, strict=True):
            with server.root() as c:
                own = c.post("/api/v1/audit/verify", params={"source": "file"}).json()
            assert own["ok"] is True, own
            mine = [ch for ch in own["chains"] if ch["chain"] != "root"]
            assert mine
            assert {ch["node"] for ch in mine} == {mine[0]["node"]}  # this node's only
            # Any node verifies another's file by its name in the audit directory.
            with servers[0].root() as c:
                named = c.post(
                    "/api/v1/audit/verify", params={"source": "file", "file": path.name}
                ).json()
            assert named["ok"] is True, named
