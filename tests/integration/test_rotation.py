"""The rotation protocol on a real database (SQLite and PostgreSQL), in process.

Test rotators stand in for targets that fail, refuse, or "crash" at a chosen step; the
crash of a real server process (SIGKILL) is in test_rotation_process.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select, update
from vaultkit import Vault

from keysafe.access.models import Principal
from keysafe.errors import Conflict, Forbidden, InvalidInput, NotFound, RotationFailed
from keysafe.rotation.models import STEP_APPLIED, STEP_ROLLING_BACK
from keysafe.rotation.rotators.base import RotationContext, Rotator
from keysafe.rotation.rotators.registry import Registry, RotatorDeps
from keysafe.rotation.service import RotationService
from keysafe.rotation.state import LostClaim
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables import audit_events
from keysafe.store.tables_rotation import rotation_policies, rotation_runs

pytestmark = pytest.mark.anyio

DAY = 86400


class Crash(BaseException):
    """Stands for the process dying at a step (nothing after it runs in that call)."""


@dataclass
class FakeTarget:
    """A target that holds the values it accepts, and fails on demand."""

    accepted: set[str] = field(default_factory=set)
    retired: list[str] = field(default_factory=list)
    fail_apply: int = 0  # fail this many apply calls
    fail_verify: bool = False
    fail_restore: int = 0  # fail this many rollback applies
    crash_at: str | None = None
    calls: list[str] = field(default_factory=list)


class FakeRotator:
    name = "fake"

    def __init__(self, target: FakeTarget) -> None:
        self.t = target
        self.counter = 0

    def check_options(self, options: Mapping[str, str]) -> None:
        if "bad" in options:
            raise InvalidInput("bad option")

    def generate(self, ctx: RotationContext) -> str:
        self.counter += 1
        return f"value-{self.counter}-{ctx.path}"

    def apply(self, ctx: RotationContext, new: str) -> None:
        step = ctx.extra["step"]
        self.t.calls.append(step)
        if step == "rollback" and self.t.fail_restore:
            self.t.fail_restore -= 1
            raise RotationFailed("target down during restore")
        if step == "apply" and self.t.crash_at == "apply":
            self.t.accepted.add(new)
            self.t.crash_at = None
            raise Crash
        if step == "apply" and self.t.fail_apply:
            self.t.fail_apply -= 1
            raise RotationFailed("target refused the change")
        self.t.accepted.add(new)

    def verify(self, ctx: RotationContext, new: str) -> None:
        self.t.calls.append("verify")
        if self.t.crash_at == "verify":
            self.t.crash_at = None
            raise Crash
        if self.t.fail_verify or new not in self.t.accepted:
            raise RotationFailed("login with the new value failed")

    def retire(self, ctx: RotationContext, old: str) -> None:
        self.t.calls.append("retire")
        self.t.accepted.discard(old)
        self.t.retired.append(old)


def service(vault: Vault, target: FakeTarget, claim_seconds: float = 15.0) -> RotationService:
    svc = vault.svc
    fake = FakeRotator(target)

    def build(_: RotatorDeps) -> Rotator:
        return fake

    registry = Registry(
        RotatorDeps(engine=svc.engine, clock=svc.clock, keys=svc.keys), {"fake": build}
    )
    return RotationService(
        svc.engine,
        svc.barrier,
        svc.secrets,
        svc.audit,
        svc.clock,
        svc.authorizer,
        registry,
        claim_seconds=claim_seconds,
    )


async def _policy(rot: RotationService, vault: Vault, path: str, grace: int = 3600) -> None:
    await rot.set_policy(
        vault.root, path, rotator="fake", options={}, every_seconds=DAY, grace_seconds=grace
    )


def _ops(vault: Vault, path: str) -> list[tuple[str, str]]:
    with read_conn(vault.svc.engine) as conn:
        rows = conn.execute(
            select(audit_events.c.operation, audit_events.c.outcome)
            .where(audit_events.c.path == path, audit_events.c.operation.like("rotation:%"))
            .order_by(audit_events.c.seq)
        )
        return [(r.operation, r.outcome) for r in rows]


async def test_random_rotation_end_to_end_with_labels(vault: Vault) -> None:
    rot = vault.svc.rotation
    path = "payments/prod/WEBHOOK_SECRET"
    await vault.svc.secrets.write(vault.root, path, "the-first-value")
    await rot.set_policy(
        vault.root,
        path,
        rotator="random",
        options={"length": "48", "alphabet": "hex", "format": "whsec_{value}"},
        every_seconds=7 * DAY,
        grace_seconds=3600,
    )
    run = await rot.rotate(vault.root, path)
    assert run["outcome"] == "ok"
    assert run["new_version"] == 2
    assert run["previous_version"] == 1
    current = await rot.read_label(vault.root, path, "current")
    assert current["version"] == 2
    assert current["value"].startswith("whsec_")
    assert len(current["value"]) == len("whsec_") + 48
    previous = await rot.read_label(vault.root, path, "previous")
    assert (previous["version"], previous["value"]) == (1, "the-first-value")
    with pytest.raises(NotFound, match="no pending"):
        await rot.read_label(vault.root, path, "pending")
    with pytest.raises(InvalidInput):
        await rot.read_label(vault.root, path, "next")
    [status] = await rot.status(vault.root, "payments/")
    assert status["last_outcome"] == "ok"
    assert status["failures"] == 0
    assert status["retire_at"] is not None
    assert not status["due"]
    assert _ops(vault, path) == [
        ("rotation:set", "ok"),
        ("rotation:start", "ok"),  # random: no apply or verify, one transaction
        ("rotation:promote", "ok"),
        ("rotation:read-pending", "error"),  # the label read above, audited
    ]


async def test_first_rotation_of_a_new_secret_and_grace_zero_retires(vault: Vault) -> None:
    target = FakeTarget()
    rot = service(vault, target)
    await _policy(rot, vault, "a/NEW", grace=0)
    run = await rot.rotate(vault.root, "a/NEW")
    assert run["new_version"] == 1
    assert run["previous_version"] is None
    await rot.rotate(vault.root, "a/NEW")
    assert target.retired == ["value-1-a/NEW"]  # grace 0: retired at once
    assert (await vault.svc.secrets.read(vault.root, "a/NEW")).value == "value-2-a/NEW"


async def test_failed_verify_never_promotes_and_restores(vault: Vault) -> None:
    target = FakeTarget(fail_verify=True)
    rot = service(vault, target)
    await vault.svc.secrets.write(vault.root, "a/DB", "old")
    target.accepted.add("old")
    await _policy(rot, vault, "a/DB")
    with pytest.raises(RotationFailed, match="login with the new value failed"):
        await rot.rotate(vault.root, "a/DB")
    value = await vault.svc.secrets.read(vault.root, "a/DB")
    assert (value.version, value.value) == (1, "old")
    assert target.calls == ["apply", "verify", "rollback"]
    [status] = await rot.status(vault.root, "a/")
    assert status["last_outcome"] == "rolled_back"
    assert status["failures"] == 1
    assert status["in_flight_run"] is None
    assert "value-" not in (status["last_error"] or "")
    assert ("rotation:fail", "error") in _ops(vault, "a/DB")
    with read_conn(vault.svc.engine) as conn:
        run = conn.execute(select(rotation_runs)).one()
    assert run.pending_value is None
    assert run.outcome == "rolled_back"
    # Backoff: the failed policy is not retried by the very next pass, but 30 s later.
    assert (await rot.run_due()).claimed == 0
    with read_conn(vault.svc.engine) as conn:
        next_due = conn.execute(select(rotation_policies.c.next_due)).scalar_one()
    assert 25e6 < next_due - vault.svc.clock.now_us() <= 30e6


async def test_target_down_then_restore_fails_keeps_pending_until_restored(vault: Vault) -> None:
    alerts: list[tuple[str, str]] = []
    target = FakeTarget(fail_apply=1, fail_restore=1)
    rot = service(vault, target)
    rot.set_alert(lambda path, message: alerts.append((path, message)))
    await vault.svc.secrets.write(vault.root, "a/DB", "old")
    await _policy(rot, vault, "a/DB")
    with pytest.raises(RotationFailed, match="restoring the previous value failed"):
        await rot.rotate(vault.root, "a/DB")
    assert alerts
    assert alerts[0][0] == "a/DB"
    policy = (await rot.status(vault.root, "a/"))[0]
    assert policy["last_outcome"] == STEP_ROLLING_BACK
    assert policy["in_flight_run"]
    # The unproven value is kept (no secret lost) and readable with `rotate` only.
    pending = await rot.read_label(vault.root, "a/DB", "pending")
    assert pending["value"] == "value-1-a/DB"
    assert pending["version"] is None
    assert (await vault.svc.secrets.read(vault.root, "a/DB")).value == "old"
    # The retry (manual here) restores the old value and ends the run.
    with pytest.raises(RotationFailed):
        await rot.rotate(vault.root, "a/DB")
    policy = (await rot.status(vault.root, "a/"))[0]
    assert policy["in_flight_run"] is None
    assert policy["last_outcome"] == "rolled_back"
    assert target.calls[-1] == "rollback"


async def test_crash_after_apply_resumes_on_the_next_pass(vault: Vault) -> None:
    target = FakeTarget(crash_at="verify")
    rot = service(vault, target, claim_seconds=0.2)
    await vault.svc.secrets.write(vault.root, "a/DB", "old")
    await _policy(rot, vault, "a/DB")
    with pytest.raises(BaseException) as info:  # noqa: PT011 - the simulated death
        await rot.rotate(vault.root, "a/DB")
    assert info.group_contains(Crash) if isinstance(info.value, BaseExceptionGroup) else True
    with read_conn(vault.svc.engine) as conn:
        run = conn.execute(select(rotation_runs)).one()
    assert run.step == STEP_APPLIED
    assert run.pending_value is not None
    assert (await vault.svc.secrets.read(vault.root, "a/DB")).value == "old"
    # A fresh process (another service object, another claim owner) resumes it.
    other = service(vault, target, claim_seconds=0.2)
    done = await other.run_due()
    assert done.promoted == 1
    value = await vault.svc.secrets.read(vault.root, "a/DB")
    assert (value.version, value.value) == (2, "value-1-a/DB")
    assert target.calls == ["apply", "verify", "verify"]  # apply not repeated


async def test_crash_after_promote_write_is_recognised(vault: Vault) -> None:
    target = FakeTarget()
    rot = service(vault, target)
    await vault.svc.secrets.write(vault.root, "a/DB", "old")
    await _policy(rot, vault, "a/DB")
    await rot.rotate(vault.root, "a/DB")
    # Pretend the process died after writing version 2 but before recording it.
    with write_txn(vault.svc.engine) as conn:
        run_id = conn.execute(select(rotation_runs.c.id)).scalar_one()
        sealed = rot._driver.seal_pending("a/DB", run_id, "value-1-a/DB")
        conn.execute(
            update(rotation_runs)
            .where(rotation_runs.c.id == run_id)
            .values(step="verified", outcome=None, new_version=None, **sealed)
        )
        conn.execute(
            update(rotation_policies).values(active_run=run_id, retire_run=None, next_due=0)
        )
    done = await rot.run_due()
    assert done.promoted == 1
    history = await vault.svc.secrets.history(vault.root, "a/DB")
    assert history["current_version"] == 2  # not written twice


async def test_two_rotations_at_once_conflict(vault: Vault) -> None:
    target = FakeTarget()
    rot = service(vault, target)
    await _policy(rot, vault, "a/DB")
    assert await rot._store.claim("a/DB")
    with pytest.raises(Conflict, match="already running"):
        await rot.rotate(vault.root, "a/DB")
    with pytest.raises(Conflict):
        await rot.delete_policy(vault.root, "a/DB")


async def test_policy_validation_and_capabilities(vault: Vault) -> None:
    rot = vault.svc.rotation
    root = vault.root
    with pytest.raises(InvalidInput, match="unknown rotator"):
        await rot.set_policy(
            root, "a/X", rotator="nope", options={}, every_seconds=DAY, grace_seconds=0
        )
    with pytest.raises(InvalidInput, match="interval"):
        await rot.set_policy(
            root, "a/X", rotator="random", options={}, every_seconds=5, grace_seconds=0
        )
    with pytest.raises(InvalidInput, match="grace"):
        await rot.set_policy(
            root, "a/X", rotator="random", options={}, every_seconds=DAY, grace_seconds=DAY
        )
    with pytest.raises(InvalidInput, match="length"):
        await rot.set_policy(
            root,
            "a/X",
            rotator="random",
            options={"length": "3"},
            every_seconds=DAY,
            grace_seconds=0,
        )
    with pytest.raises(NotFound):
        await rot.rotate(root, "a/NOPOLICY")
    reader = vault.context_for(Principal("tok_r", "scoped", "write", "a/", None))
    with pytest.raises(Forbidden):  # write on a/ does not grant rotate
        await rot.set_policy(
            reader, "a/X", rotator="random", options={}, every_seconds=DAY, grace_seconds=0
        )
    await rot.set_policy(
        root, "a/X", rotator="random", options={}, every_seconds=DAY, grace_seconds=0
    )
    with pytest.raises(Forbidden):
        await rot.rotate(reader, "a/X")
    with pytest.raises(Forbidden):
        await rot.read_label(reader, "a/X", "pending")
    await rot.delete_policy(root, "a/X")
    with pytest.raises(NotFound):
        await rot.get_policy(root, "a/X")


async def test_the_scheduler_rotates_due_policies_once(vault: Vault) -> None:
    target = FakeTarget()
    one, two = service(vault, target), service(vault, target)
    for i in range(20):
        await _policy(one, vault, f"due/S{i}")
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(rotation_policies).values(next_due=0))
    import anyio

    results = []

    async def pass_of(rot: RotationService) -> None:
        results.append(await rot.run_due(concurrency=4))

    async with anyio.create_task_group() as group:
        group.start_soon(pass_of, one)
        group.start_soon(pass_of, two)
    assert sum(r.promoted for r in results) == 20
    with read_conn(vault.svc.engine) as conn:
        runs = conn.execute(select(rotation_runs.c.path)).all()
    assert len(runs) == 20
    assert len({r.path for r in runs}) == 20
    assert (await one.run_due()).claimed == 0  # nothing due any more


async def test_the_server_job_starts_one_pass_at_a_time(vault: Vault) -> None:
    target = FakeTarget()
    rot = service(vault, target)
    await _policy(rot, vault, "due/ONE")
    with write_txn(vault.svc.engine) as conn:
        conn.execute(update(rotation_policies).values(next_due=0))
    assert rot.kick()
    assert not rot.kick()  # the first pass is still running: no second one
    assert rot._pass is not None
    result = await rot._pass
    assert result.promoted == 1
    assert rot.kick()  # done: the next poll starts a new (empty) pass
    assert rot._pass is not None
    assert (await rot._pass).claimed == 0


class Racing:
    """An internal rotator (``external = False``) during whose ``generate`` someone
    else writes the secret."""

    name = "racing"
    external = False

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self.current: list[str | None] = []

    def check_options(self, options: Mapping[str, str]) -> None:
        return None

    def generate(self, ctx: RotationContext) -> str:
        self.current.append(ctx.current)
        with write_txn(self.vault.svc.engine) as conn:
            self.vault.svc.secrets.write_in_txn(conn, self.vault.root, ctx.path, "theirs", None)
        return "ours"

    def apply(self, ctx: RotationContext, new: str) -> None:
        raise AssertionError("an internal rotator is never applied")

    verify = retire = apply


async def test_internal_rotation_lands_on_top_of_a_racing_write(vault: Vault) -> None:
    svc = vault.svc
    racing = Racing(vault)
    registry = Registry(
        RotatorDeps(engine=svc.engine, clock=svc.clock, keys=svc.keys),
        {"racing": lambda _: racing},
    )
    rot = RotationService(
        svc.engine, svc.barrier, svc.secrets, svc.audit, svc.clock, svc.authorizer, registry
    )
    await svc.secrets.write(vault.root, "a/RACE", "first")
    await rot.set_policy(
        vault.root, "a/RACE", rotator="racing", options={}, every_seconds=DAY, grace_seconds=60
    )
    run = await rot.rotate(vault.root, "a/RACE")
    assert racing.current == [None]  # internal rotators are given no current value
    # No target to keep in step: the rotation is the version after the racing write.
    assert (run["previous_version"], run["new_version"]) == (2, 3)
    value = await svc.secrets.read(vault.root, "a/RACE")
    assert (value.version, value.value) == (3, "ours")
    previous = await rot.read_label(vault.root, "a/RACE", "previous")
    assert (previous["version"], previous["value"]) == (2, "theirs")


async def test_internal_rotation_that_lost_its_claim_writes_nothing(vault: Vault) -> None:
    rot = vault.svc.rotation
    await vault.svc.secrets.write(vault.root, "a/LOST", "first")
    await rot.set_policy(
        vault.root, "a/LOST", rotator="random", options={}, every_seconds=DAY, grace_seconds=60
    )
    policy = await rot._store.claim("a/LOST")
    assert policy is not None
    with write_txn(vault.svc.engine) as conn:  # another process took the claim over
        conn.execute(update(rotation_policies).values(claimed_by="someone-else"))
    with pytest.raises(LostClaim):
        await rot._driver.start(policy, vault.root, "manual")
    value = await vault.svc.secrets.read(vault.root, "a/LOST")
    assert (value.version, value.value) == (1, "first")
    with read_conn(vault.svc.engine) as conn:
        assert conn.execute(select(rotation_runs)).first() is None
    assert _ops(vault, "a/LOST") == [("rotation:set", "ok")]  # the start rolled back too


async def test_random_with_no_grace_retires_in_keysafe_only(vault: Vault) -> None:
    rot = vault.svc.rotation
    await vault.svc.secrets.write(vault.root, "a/TOKEN", "first")
    await rot.set_policy(
        vault.root, "a/TOKEN", rotator="random", options={}, every_seconds=DAY, grace_seconds=0
    )
    run = await rot.rotate(vault.root, "a/TOKEN")
    assert (run["new_version"], run["previous_version"]) == (2, 1)
    [status] = await rot.status(vault.root, "a/")
    assert status["retire_at"] is None
    with read_conn(vault.svc.engine) as conn:
        step = conn.execute(select(rotation_runs.c.step)).scalar_one()
        reads = conn.execute(
            select(audit_events.c.seq).where(
                audit_events.c.operation == "secret:read",
                audit_events.c.actor == "system:rotation",
            )
        ).all()
    assert step == "retired"
    assert reads == []  # an internal rotator's values are never read to rotate or retire
    assert _ops(vault, "a/TOKEN")[-2:] == [("rotation:promote", "ok"), ("rotation:retire", "ok")]
