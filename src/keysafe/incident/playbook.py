"""The incident playbook: contain, eradicate, verify, record, report.

Every step is written to ``incident_steps`` together with its audit event
(``incident:<phase>``) in one transaction, so the incident's own record and the audit
trail never disagree. Containment of a key or token happens in that same transaction.

Dry run: :meth:`Playbook.plan` reads the current state and says what each step would
do (outcome ``planned``); it changes nothing.

Rotation and leases belong to other capabilities; the playbook reaches them through
the small protocols below so that it runs (and says ``unavailable``) without them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlalchemy import Connection, Engine, select

from keysafe.access.apikeys import KeyService
from keysafe.access.models import RequestContext
from keysafe.access.oauth import TokenExchange
from keysafe.access.service import TokenService
from keysafe.audit.service import AuditLog
from keysafe.clock import Clock
from keysafe.errors import Forbidden, KeysafeError, NotFound, Unauthenticated
from keysafe.incident.models import (
    ALREADY,
    DONE,
    FAILED,
    KIND_KEY,
    KIND_LEASE,
    KIND_SECRET,
    KIND_TOKEN,
    MANUAL,
    PHASE_CONTAIN,
    PHASE_ERADICATE,
    PHASE_RECORD,
    PHASE_REPORT,
    PHASE_VERIFY,
    PLANNED,
    UNAVAILABLE,
    Exposure,
    Item,
    Step,
)
from keysafe.incident.steps import StepRecorder, system_context
from keysafe.store.engine import read_conn
from keysafe.store.tables import api_keys, secrets, tokens

VERIFY_SOURCE = "incident-verify"


class SecretRotation(Protocol):
    """What the playbook needs of the rotation capability."""

    def has_policy(self, path: str) -> bool:
        """True when a rotation policy (and so a rotator) exists for ``path``."""
        ...

    def rotate_now(self, path: str, ctx: RequestContext) -> str:
        """Rotate ``path`` now through its rotator, with ``ctx``'s rights (audited by
        rotation); returns a short description. Raises RotationFailed, Forbidden..."""
        ...


class LeaseRevocation(Protocol):
    """What the playbook needs of the leases capability."""

    def revoke_lease(self, lease_id: str, ctx: RequestContext) -> bool:
        """Revoke one lease with ``ctx``'s rights; False when it was already revoked.
        NotFound if unknown, Forbidden if ``ctx`` may not."""
        ...

    def is_revoked(self, lease_id: str) -> bool:
        """True when the lease no longer grants anything. NotFound if unknown."""
        ...


class Playbook:
    def __init__(
        self,
        engine: Engine,
        keys: KeyService,
        tokens_: TokenService,
        audit: AuditLog,
        clock: Clock,
        *,
        oauth: TokenExchange | None = None,
        rotation: Callable[[], SecretRotation | None] = lambda: None,
        leases: Callable[[], LeaseRevocation | None] = lambda: None,
    ) -> None:
        self._engine = engine
        self._keys = keys
        self._tokens = tokens_
        self._audit = audit
        self._clock = clock
        self._oauth = oauth
        self._rotation = rotation
        self._leases = leases

    # -- dry run --------------------------------------------------------------------------

    def plan(self, exposure: Exposure, actor: str) -> list[Step]:
        """The steps :meth:`run` would take, from the current state; changes nothing."""
        now = self._clock.now_us()
        steps: list[Step] = []

        def add(phase: str, action: str, target: str, detail: str) -> None:
            steps.append(Step(now, phase, action, target, actor, PLANNED, detail))

        rotation, leases = self._rotation(), self._leases()
        for item in exposure.items:
            if item.kind in (KIND_KEY, KIND_TOKEN):
                state = "already revoked: nothing to do" if self._revoked(item) else "revoke it"
                add(PHASE_CONTAIN, f"revoke-{item.kind}", item.ref, state)
            elif item.kind == KIND_LEASE:
                add(PHASE_CONTAIN, "revoke-lease", item.ref, _lease_plan(leases))
        for item in exposure.items:
            if item.kind in (KIND_KEY, KIND_TOKEN):
                add(PHASE_ERADICATE, f"replace-{item.kind}", item.ref, _replace_hint(item))
            elif item.kind == KIND_SECRET:
                if rotation is not None and rotation.has_policy(item.ref):
                    add(PHASE_ERADICATE, "rotate-secret", item.ref, "rotate through its rotator")
                else:
                    add(PHASE_ERADICATE, "rotate-secret", item.ref, _manual_rotation(rotation))
        for item in exposure.items:
            add(PHASE_VERIFY, f"verify-{item.kind}", item.ref, "check the old credential fails")
        add(PHASE_RECORD, "build-timeline", "", "steps and audit events touching the items")
        add(PHASE_REPORT, "report-ready", "", "Markdown and JSON")
        return steps

    # -- the run ------------------------------------------------------------------------

    def run(
        self,
        incident_id: str,
        exposure: Exposure,
        actor: str,
        source: str,
        request_id: str,
        ctx: RequestContext | None = None,
    ) -> None:
        """Contain, eradicate and verify every item, then record and report; each step
        is stored and audited as it completes. A step that fails is recorded as failed
        and the playbook goes on (one stuck rotation must not leave keys live).

        Rotation and lease revocation run with ``ctx``'s own rights (the operator's
        context; a step they may not take is recorded as failed); without ``ctx``
        (leak reports, which name keys and tokens only) with the playbook's own."""
        rec = StepRecorder(
            self._engine, self._audit, self._clock, incident_id, actor, source, request_id
        )
        rec.ctx = ctx or system_context(actor, source, request_id)
        before = {i.ref: self._version(i.ref) for i in exposure.items if i.kind == KIND_SECRET}
        rotated: set[str] = set()
        for item in exposure.items:
            self._contain(rec, item)
        for item in exposure.items:
            if self._eradicate(rec, item):
                rotated.add(item.ref)
        for item in exposure.items:
            self._verify(rec, item, exposure.raw.get((item.kind, item.ref)), before, rotated)

    def _contain(self, rec: StepRecorder, item: Item) -> None:
        if item.kind in (KIND_KEY, KIND_TOKEN):
            action = f"revoke-{item.kind}"

            def revoke(conn: Connection) -> tuple[str, str]:
                if self._revoked(item, conn):
                    return ALREADY, "already revoked: nothing to do"
                if item.kind == KIND_KEY:
                    self._keys.revoke(conn, item.ref)
                else:
                    self._tokens.revoke(item.ref, conn)
                return DONE, "revoked"

            rec.step_with(PHASE_CONTAIN, action, item.ref, revoke)
        elif item.kind == KIND_LEASE:
            leases = self._leases()
            if leases is None:
                rec.step(PHASE_CONTAIN, "revoke-lease", item.ref, UNAVAILABLE, _NO_LEASES)
                return
            rec.attempt(
                PHASE_CONTAIN,
                "revoke-lease",
                item.ref,
                lambda: (
                    (DONE, "revoked")
                    if leases.revoke_lease(item.ref, rec.ctx)
                    else (ALREADY, "already revoked: nothing to do")
                ),
            )

    def _eradicate(self, rec: StepRecorder, item: Item) -> bool:
        """True when the secret was rotated."""
        if item.kind in (KIND_KEY, KIND_TOKEN):
            rec.step(PHASE_ERADICATE, f"replace-{item.kind}", item.ref, MANUAL, _replace_hint(item))
            return False
        if item.kind != KIND_SECRET:
            return False
        rotation = self._rotation()
        if rotation is None or not rotation.has_policy(item.ref):
            rec.step(PHASE_ERADICATE, "rotate-secret", item.ref, MANUAL, _manual_rotation(rotation))
            return False
        outcome = rec.attempt(
            PHASE_ERADICATE,
            "rotate-secret",
            item.ref,
            lambda: (DONE, rotation.rotate_now(item.ref, rec.ctx)),
        )
        return outcome == DONE

    def _verify(
        self,
        rec: StepRecorder,
        item: Item,
        raw: str | None,
        before: dict[str, int | None],
        rotated: set[str],
    ) -> None:
        action = f"verify-{item.kind}"
        if item.kind in (KIND_KEY, KIND_TOKEN):
            outcome, detail = self._verify_credential(item, raw)
            if item.kind == KIND_KEY and outcome == DONE:
                outcome, detail = self._verify_jwt(item, detail)
        elif item.kind == KIND_SECRET:
            now = self._version(item.ref)
            was = before.get(item.ref)
            if item.ref in rotated and now is not None and was is not None and now > was:
                outcome, detail = DONE, f"version {now} is current; the leaked version {was} is not"
            else:
                outcome, detail = MANUAL, f"not verified: version {was} is still current"
        else:
            leases = self._leases()
            if leases is None:
                outcome, detail = UNAVAILABLE, _NO_LEASES
            else:
                try:
                    revoked = leases.is_revoked(item.ref)
                except NotFound:
                    revoked = False
                outcome, detail = (
                    (DONE, "the lease grants nothing")
                    if revoked
                    else (FAILED, "the lease is still live")
                )
        rec.step(PHASE_VERIFY, action, item.ref, outcome, detail)

    def _verify_credential(self, item: Item, raw: str | None) -> tuple[str, str]:
        """Present the leaked credential to the real verification when we hold it;
        otherwise check the stored record (and say so)."""
        if raw is None:
            if self._revoked(item):
                return DONE, "revoked (record checked; the raw credential was not given)"
            return FAILED, "the record is not revoked"
        try:
            if item.kind == KIND_KEY:
                self._keys.forget(item.ref)
                self._keys.verify(raw, VERIFY_SOURCE)
            else:
                self._tokens.forget(item.ref)
                self._tokens.authenticate(raw, VERIFY_SOURCE)
        except Unauthenticated:
            return DONE, "the leaked credential was presented and refused"
        except Forbidden:
            return FAILED, "the leaked credential is live (refused only by its address list)"
        return FAILED, "the leaked credential still verifies"

    def _verify_jwt(self, item: Item, detail: str) -> tuple[str, str]:
        """A key's access tokens must die with it: mint one for the key as the OAuth
        exchange would and present it; a failure if it is still accepted."""
        if self._oauth is None:
            return DONE, detail
        try:
            self._oauth.probe(item.ref, VERIFY_SOURCE)
        except Unauthenticated:
            return DONE, f"{detail}; an access token (JWT) of the key was presented and refused"
        except Forbidden:
            return (
                FAILED,
                "an access token (JWT) of the key is live (refused only by its address list)",
            )
        except KeysafeError as exc:  # no token could be minted: not verified, say so
            return FAILED, f"{detail}; no access token could be presented ({exc.code})"
        return FAILED, "an access token (JWT) exchanged from the key still verifies"

    # -- state --------------------------------------------------------------------------

    def _revoked(self, item: Item, conn: Connection | None = None) -> bool:
        table = api_keys if item.kind == KIND_KEY else tokens
        query = select(table.c.revoked_at).where(table.c.id == item.ref)
        if conn is None:
            with read_conn(self._engine) as own:
                row = own.execute(query).first()
        else:
            row = conn.execute(query).first()
        if row is None:
            raise NotFound(f"no {item.kind} {item.ref}")
        return row.revoked_at is not None

    def _version(self, path: str) -> int | None:
        with read_conn(self._engine) as conn:
            row = conn.execute(
                select(secrets.c.current_version).where(secrets.c.path == path)
            ).first()
        return None if row is None else int(row.current_version)

    def record_step(
        self,
        incident_id: str,
        phase: str,
        action: str,
        target: str,
        outcome: str,
        detail: str,
        *,
        actor: str,
        source: str,
        request_id: str,
    ) -> Step:
        """Store and audit one step outside the main playbook (open, record, close)."""
        rec = StepRecorder(
            self._engine, self._audit, self._clock, incident_id, actor, source, request_id
        )
        return rec.step(phase, action, target, outcome, detail)


_NO_LEASES = "this keysafe has no lease capability"


def _replace_hint(item: Item) -> str:
    if item.kind == KIND_KEY:
        return "issue a replacement with `keysafe key create --service <its service>`"
    return "issue a replacement with `keysafe token create`"


def _manual_rotation(rotation: SecretRotation | None) -> str:
    why = "no rotation capability" if rotation is None else "no rotation policy for it"
    return f"manual rotation required ({why}): change it at its source, then `keysafe secret set`"


def _lease_plan(leases: LeaseRevocation | None) -> str:
    return _NO_LEASES if leases is None else "revoke it"
