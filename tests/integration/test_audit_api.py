"""``/api/v1/audit`` in process (ASGI): reads are audited, truncation is reported, and a
trail that cannot be written answers a generic 503."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete, select, update
from vaultkit import Vault

from keysafe.server.app import create_app, with_fast_paths
from keysafe.store.engine import write_txn
from keysafe.store.tables import audit_chains, audit_events

pytestmark = pytest.mark.anyio


@pytest.fixture
async def api(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    app = with_fast_paths(create_app(vault.svc.settings, services=vault.svc))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://t",
        headers={"Authorization": f"Bearer {vault.root_token}"},
    ) as client:
        yield client


async def _operations(api: httpx.AsyncClient) -> list[tuple[str, str, str]]:
    events = (await api.get("/api/v1/audit/events", params={"limit": 1000})).json()["events"]
    # Chain openings (root-chain bookkeeping) left out.
    return [
        (e["operation"], e["outcome"], e["detail"])
        for e in events
        if e["operation"] != "audit:chain-open"
    ]


async def test_reading_and_verifying_the_trail_is_audited(
    api: httpx.AsyncClient, vault: Vault
) -> None:
    await api.put("/api/v1/secrets/app/KEY", json={"value": "never-in-the-trail"})
    verify = (await api.post("/api/v1/audit/verify")).json()
    # The write, and its chain opening in the root chain; then the verify itself.
    assert (verify["ok"], verify["events"]) == (True, 2)
    root, writes = verify["chains"]
    assert (root["chain"], root["events"], root["ok"]) == ("root", 1, True)
    assert (writes["node"], writes["events"], writes["ok"]) == (vault.svc.audit._node, 1, True)
    assert writes["chain"].startswith(writes["node"] + "/")
    assert writes["first"] == writes["last"]
    assert writes["first"]["seq"] == 2
    ops = await _operations(api)
    assert ops[1:] == [("audit:verify", "ok", "source=db: intact")]
    assert all("never-in-the-trail" not in str(op) for op in ops)
    assert (await api.post("/api/v1/audit/verify", params={"source": "file"})).json()["ok"]
    ops = await _operations(api)
    # The listing above is recorded, then the second verify, then (unseen yet) this one.
    assert ops[2:] == [
        ("audit:events", "ok", "after=0 limit=1000"),
        ("audit:verify", "ok", "source=file: intact"),
    ]


async def test_truncation_is_reported_by_the_api(
    api: httpx.AsyncClient, vault: Vault, tmp_path: Path
) -> None:
    for i in range(5):
        await api.put(f"/api/v1/secrets/app/K{i}", json={"value": "v"})
    path = tmp_path / "audit.jsonl"
    whole = path.read_bytes()
    path.write_bytes(b"".join(whole.splitlines(keepends=True)[:2]))
    cut = (await api.post("/api/v1/audit/verify", params={"source": "file"})).json()
    assert cut["ok"] is False
    assert "the database head records event 5 (events removed from the end)" in cut["reason"]
    (bad,) = [c for c in cut["chains"] if not c["ok"]]
    assert (bad["chain"], bad["events"], bad["first_bad"]) == (cut["chain"], 1, 2)
    path.write_bytes(whole)
    with write_txn(vault.svc.engine) as conn:
        rows = conn.execute(
            select(audit_events)
            .where(audit_events.c.chain == cut["chain"])
            .order_by(audit_events.c.chain_seq)
        ).all()
        conn.execute(
            delete(audit_events).where(
                audit_events.c.chain == cut["chain"], audit_events.c.chain_seq > 3
            )
        )
        conn.execute(
            update(audit_chains)
            .where(audit_chains.c.chain == cut["chain"])
            .values(seq=3, hash=rows[2].hash)
        )
    doc = (await api.post("/api/v1/audit/verify")).json()
    assert doc["ok"] is False
    assert "moved back" in doc["reason"]
    assert doc["chain"] == cut["chain"]


async def test_another_nodes_file_is_named_in_the_audit_directory(
    api: httpx.AsyncClient, tmp_path: Path
) -> None:
    await api.put("/api/v1/secrets/app/KEY", json={"value": "v"})
    (tmp_path / "node-b.jsonl").write_bytes((tmp_path / "audit.jsonl").read_bytes())
    doc = (
        await api.post("/api/v1/audit/verify", params={"source": "file", "file": "node-b.jsonl"})
    ).json()
    assert doc["ok"] is True, doc
    for name, status in (("../etc/passwd", 400), ("/etc/passwd", 400), ("nope.jsonl", 404)):
        resp = await api.post("/api/v1/audit/verify", params={"source": "file", "file": name})
        assert resp.status_code == status, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")


async def test_unwritable_trail_answers_a_generic_503(
    api: httpx.AsyncClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    sink = tmp_path / "audit.jsonl"
    sink.unlink(missing_ok=True)
    sink.mkdir()  # the sink can no longer be opened: the OS error names its path
    caplog.set_level(logging.ERROR, logger="keysafe.audit")
    for request in (
        api.put("/api/v1/secrets/app/KEY", json={"value": "v"}),
        api.get("/api/v1/secrets/app/KEY"),
    ):
        resp = await request
        assert resp.status_code == 503
        doc = resp.json()
        assert doc["code"] == "audit_unavailable"
        assert str(tmp_path) not in resp.text
        assert "Errno" not in resp.text
        assert doc["detail"] == "the audit trail cannot be written; operation refused"
    assert any(str(tmp_path) in r.getMessage() for r in caplog.records)
