"""Adapters from the playbook's small protocols to the other capabilities' services.

The playbook runs in a worker thread started by anyio (the routes use
``anyio.to_thread.run_sync``); the lease and rotation services are async, so their
calls are carried back to the event loop with ``anyio.from_thread.run``. They run with
the context the playbook hands them (the operator's own, so their rights apply and
their id is in every audit event the other capability writes).
"""

from __future__ import annotations

import anyio.from_thread
from sqlalchemy import Engine, select

from keysafe.access.models import RequestContext
from keysafe.errors import NotFound
from keysafe.rotation import lease_models
from keysafe.rotation.leases import LeaseService
from keysafe.rotation.service import RotationService
from keysafe.store.engine import read_conn
from keysafe.store.tables_leases import leases
from keysafe.store.tables_rotation import rotation_policies


class Leases:
    """``LeaseRevocation`` over :class:`LeaseService`."""

    def __init__(self, engine: Engine, service: LeaseService) -> None:
        self._engine = engine
        self._service = service

    def revoke_lease(self, lease_id: str, ctx: RequestContext) -> bool:
        result = anyio.from_thread.run(self._service.revoke, ctx, lease_id)
        return not bool(result.get("already"))

    def _state(self, lease_id: str) -> str:
        with read_conn(self._engine) as conn:
            row = conn.execute(select(leases.c.state).where(leases.c.id == lease_id)).first()
        if row is None:
            raise NotFound(f"no lease {lease_id}")
        return str(row.state)

    def is_revoked(self, lease_id: str) -> bool:
        return self._state(lease_id) not in lease_models.LIVE_STATES

    def exists(self, lease_id: str) -> bool:
        try:
            self._state(lease_id)
        except NotFound:
            return False
        return True


class Rotations:
    """``SecretRotation`` over :class:`RotationService`."""

    def __init__(self, engine: Engine, service: RotationService) -> None:
        self._engine = engine
        self._service = service

    def has_policy(self, path: str) -> bool:
        with read_conn(self._engine) as conn:
            query = select(rotation_policies.c.path).where(rotation_policies.c.path == path)
            return conn.execute(query).first() is not None

    def rotate_now(self, path: str, ctx: RequestContext) -> str:
        run = anyio.from_thread.run(self._service.rotate, ctx, path)
        return (
            f"rotated by {run.get('rotator')} (run {run.get('id')}): version "
            f"{run.get('new_version')} replaces {run.get('previous_version')}"
        )
