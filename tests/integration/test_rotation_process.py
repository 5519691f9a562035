"""Rotation across real ``keysafe server`` processes: a rotation killed (SIGKILL) between
its steps resumes or rolls back in the next server run, and two server processes on
one PostgreSQL rotate each due secret exactly once."""

from __future__ import annotations

import os
import signal
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from server_proc import ServerProc, database_url, init_vault, running, start_server
from sqlalchemy import select, update

from keysafe.store.engine import make_engine, read_conn, write_txn
from keysafe.store.tables_rotation import rotation_policies, rotation_runs

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]

# A target driven by files: "accepted-<path>" holds the value it accepts. At the first verify
# it records its pid and hangs, so that the test can kill the server mid-rotation;
# with "fail-verify" present every later verify fails.
SCRIPT = """\
#!/bin/sh
value=$(cat)
acc="{d}/accepted-$(printf %s "$KEYSAFE_ROTATION_PATH" | tr / _)"
echo "$KEYSAFE_ROTATION_PATH $KEYSAFE_ROTATION_STEP $KEYSAFE_ROTATION_ROLLBACK $PPID" >> "{d}/steps"
case "$KEYSAFE_ROTATION_STEP" in
    apply) [ -e "{d}/slow" ] && sleep 1; printf '%s' "$value" > "$acc" ;;
    verify)
        if [ ! -e "{d}/crashed" ] && [ -e "{d}/crash-at-verify" ]; then
            touch "{d}/crashed"; echo $$ > "{d}/at-verify"; sleep 60
        fi
        if [ -e "{d}/fail-verify" ]; then echo "login refused" >&2; exit 5; fi
        [ "$value" = "$(cat "$acc")" ] || exit 4 ;;
    retire) printf '%s' "$value" > "{d}/retired" ;;
esac
"""


def _script(tmp: Path) -> Path:
    script = tmp / "target.sh"
    script.write_text(SCRIPT.format(d=tmp))
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def _eventually(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _policy_doc(server: ServerProc, path: str) -> dict[str, Any]:
    with server.root() as c:
        doc: dict[str, Any] = c.get(f"/api/v1/rotation/policies/{path}").json()
        return doc


def _steps(tmp: Path) -> list[tuple[str, str]]:
    lines = (tmp / "steps").read_text().splitlines()
    return [(line.split()[1], line.split()[2]) for line in lines]


@pytest.mark.timeout(150)
@pytest.mark.parametrize(
    ("engine_name", "ending"),
    [
        ("sqlite", "resume"),
        ("sqlite", "rollback"),
        pytest.param(*("postgres", "resume"), marks=pytest.mark.postgres),
    ],
)
def test_rotation_killed_between_steps_recovers_on_restart(
    engine_name: str, ending: str, tmp_path: Path
) -> None:
    path = "payments/prod/DB_PASSWORD"
    work = tmp_path / "target"
    work.mkdir()
    script = _script(work)
    (work / "crash-at-verify").write_text("")
    with database_url(engine_name, tmp_path) as url:
        vault = init_vault(engine_name, tmp_path, url)
        server = start_server(vault)
        try:
            with server.root() as c:
                assert c.put(f"/api/v1/secrets/{path}", json={"value": "old-pw"}).status_code == 200
                (work / "accepted-payments_prod_DB_PASSWORD").write_text("old-pw")
                body = {
                    "rotator": "command",
                    "options": {"command": str(script)},
                    "every_seconds": 30 * 86400,
                    "grace_seconds": 3600,
                }
                assert c.put(f"/api/v1/rotation/policies/{path}", json=body).status_code == 200

            def rotate() -> None:
                with server.root() as c, pytest.raises(httpx.TransportError):
                    c.post(f"/api/v1/rotation/rotate/{path}")

            caller = threading.Thread(target=rotate)
            caller.start()
            _eventually(lambda: (work / "at-verify").exists(), 30, "the verify step")
            server.kill9()  # the real thing: the server dies between apply and verify
            caller.join(10)
        finally:
            server.stop()
        os.kill(int((work / "at-verify").read_text()), signal.SIGKILL)  # the hung script
        pending_value = (work / "accepted-payments_prod_DB_PASSWORD").read_text()
        assert pending_value != "old-pw"
        engine = make_engine(vault.db_url)
        try:
            with read_conn(engine) as conn:
                run = conn.execute(select(rotation_runs)).one()
            assert run.step == "applied"  # recorded before the crash
            assert run.pending_value is not None
            assert pending_value.encode() not in bytes(run.pending_value)  # sealed
        finally:
            engine.dispose()

        if ending == "rollback":
            (work / "fail-verify").write_text("")
        with running(vault) as again:
            with again.root() as c:
                # While the dead process's claim lasts, the value is pending, not current.
                now = c.get(f"/api/v1/secrets/{path}").json()
                pending = c.get(f"/api/v1/secrets/{path}", params={"label": "pending"})
                if pending.status_code == 200:
                    assert pending.json()["value"] == pending_value
                    assert now["value"] == "old-pw"
            want = "ok" if ending == "resume" else "rolled_back"
            doc = _eventually(
                lambda: (d := _policy_doc(again, path))["last_outcome"] == want and d,
                60,
                f"the rotation to end {want}",
            )
            assert doc["in_flight_run"] is None
            with again.root() as c:
                current = c.get(f"/api/v1/secrets/{path}").json()
                if ending == "resume":
                    assert (current["version"], current["value"]) == (2, pending_value)
                    previous = c.get(f"/api/v1/secrets/{path}", params={"label": "previous"})
                    assert previous.json()["value"] == "old-pw"
                else:
                    assert (current["version"], current["value"]) == (1, "old-pw")
                    assert "login refused" in doc["last_error"]
                    assert pending_value not in doc["last_error"]
        steps = _steps(work)
        if ending == "resume":
            # apply is not repeated: its step was recorded before the crash.
            assert steps == [("apply", "0"), ("verify", "0"), ("verify", "0")]
        else:
            assert steps == [("apply", "0"), ("verify", "0"), ("verify", "0"), ("apply", "1")]
            assert (
                work / "accepted-payments_prod_DB_PASSWORD"
            ).read_text() == "old-pw"  # restored on the target


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_two_servers_on_one_postgres_rotate_each_due_secret_once(tmp_path: Path) -> None:
    count = 80
    work = tmp_path / "target"
    work.mkdir()
    script = _script(work)
    (work / "slow").write_text("")  # a pass outlasts the other process's poll interval
    with database_url("postgres", tmp_path) as url:
        vault = init_vault("postgres", tmp_path, url)
        with running(vault) as one, running(vault) as two:
            paths = [f"fleet/S{i:02d}" for i in range(count)]
            with one.root() as c:
                for path in paths:
                    assert c.put(f"/api/v1/secrets/{path}", json={"value": "v1"}).status_code == 200
                    body = {
                        "rotator": "command",
                        "options": {"command": str(script)},
                        "every_seconds": 86400,
                        "grace_seconds": 3600,
                    }
                    resp = c.put(f"/api/v1/rotation/policies/{path}", json=body)
                    assert resp.status_code == 200, resp.text
            engine = make_engine(vault.db_url)
            try:
                with write_txn(engine) as conn:  # all due at once: both schedulers race
                    conn.execute(update(rotation_policies).values(next_due=0))

                def done() -> bool:
                    with two.root() as c:
                        items = c.get("/api/v1/rotation/policies").json()["policies"]
                    return sum(p["last_outcome"] == "ok" for p in items) == count

                try:
                    _eventually(done, 120, "every policy rotated")
                except AssertionError:
                    with two.root() as c:
                        print(c.get("/api/v1/rotation/policies").json())
                    raise AssertionError(f"{one.log()}\n{two.log()}") from None
                with read_conn(engine) as conn:
                    runs = conn.execute(select(rotation_runs.c.path, rotation_runs.c.step)).all()
            finally:
                engine.dispose()
            with two.root() as c:
                versions = {p: c.get(f"/api/v1/secrets/{p}").json()["version"] for p in paths}
    assert Counter(r.path for r in runs) == dict.fromkeys(paths, 1)
    assert set(versions.values()) == {2}
    lines = [line.split() for line in (work / "steps").read_text().splitlines()]
    applies = Counter(line[0] for line in lines if line[1] == "apply")
    assert applies == dict.fromkeys(paths, 1)  # exactly one apply per secret, fleet-wide
    by_process = Counter(line[3] for line in lines if line[1] == "apply")
    print(f"applies per server process: {dict(by_process)}")
    # 80 applies of 1 s, 32 at a time, outlast the 2 s poll: both processes take some.
    assert len(by_process) == 2
