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
from keysafe.store.tables import audit_events, audit_head

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
    return [(e["operation"], e["outcome"], e["detail"]) for e in events]


async def test_reading_and_verifying_the_trail_is_audited(api: httpx.AsyncClient) -> None:
    await api.put("/api/v1/secrets/app/KEY", json={"value": "never-in-the-trail"})
    verify = await api.post("/api/v1/audit/verify")
    assert verify.json() == {"ok": True, "events": 1}  # the write; then the verify itself
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
    with write_txn(vault.svc.engine) as conn:
        kept = conn.execute(select(audit_events.c.hash).where(audit_events.c.seq == 3)).scalar()
        conn.execute(delete(audit_events).where(audit_events.c.seq > 3))
        conn.execute(update(audit_head).values(seq=3, hash=kept))
    doc = (await api.post("/api/v1/audit/verify")).json()
    assert doc["ok"] is False
    assert "moved back" in doc["reason"]
    lines = (tmp_path / "audit.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "audit.jsonl").write_bytes(b"".join(lines[:2]))
    cut = (await api.post("/api/v1/audit/verify", params={"source": "file"})).json()
    assert cut["ok"] is False
    assert "the database head records event 5 (events removed from the end)" in cut["reason"]


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
