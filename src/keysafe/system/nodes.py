"""The cluster's members: who this node is, its heartbeat, and the list of nodes.

A node is one ``keysafe server``: its main process, its workers and its job process
share one id, chosen when the server starts (the host name and a random suffix, so that
two servers on one host, or one server restarted, are told apart) and handed to its
child processes in the environment, like the settings. Exactly one process per node
keeps the node's row fresh (see ``keysafe.server.jobs``). A row not heard from for
``DOWN_AFTER_US`` is shown as down; one silent for a day is removed.
"""

from __future__ import annotations

import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Final

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from keysafe.clock import Clock
from keysafe.store.engine import read_conn, write_txn
from keysafe.store.tables_nodes import nodes

# Where ``run_server`` puts the node's identity for its child processes.
NODE_ENV: Final = "KEYSAFE_INTERNAL_NODE"
HEARTBEAT_SECONDS: Final = 5.0
# Several missed heartbeats (a busy database, a long GC pause) before a node is "down".
DOWN_AFTER_US: Final = 30_000_000
PRUNE_AFTER_US: Final = 86_400_000_000

STATUS_UP: Final = "up"
STATUS_DOWN: Final = "down"


@dataclass(frozen=True, slots=True)
class NodeIdentity:
    """Who this node is: ``id`` names it in the registry and in every audit event."""

    id: str
    address: str
    version: str
    started_at: int  # unix microseconds

    @classmethod
    def new(cls, address: str, started_at: int) -> NodeIdentity:
        """A fresh identity for a server starting now on this host."""
        from keysafe import __version__

        host = socket.gethostname().split(".", 1)[0] or "node"
        # Leaves room for the suffix within the 64 characters the column (and the audit
        # trail) keep.
        return cls(f"{host[:48]}-{secrets.token_hex(4)}", address[:255], __version__, started_at)

    def to_env(self) -> str:
        return orjson.dumps(
            {
                "id": self.id,
                "address": self.address,
                "version": self.version,
                "started_at": self.started_at,
            }
        ).decode()

    @classmethod
    def from_env(cls, clock: Clock) -> NodeIdentity:
        """The identity ``run_server`` gave this process group, or a new one for a
        process that was not started by it (an application built in-process)."""
        raw = os.environ.get(NODE_ENV)
        if raw:
            doc: dict[str, Any] = orjson.loads(raw)
            return cls(
                str(doc["id"]), str(doc["address"]), str(doc["version"]), int(doc["started_at"])
            )
        return cls.new("", clock.now_us())


@dataclass(frozen=True, slots=True)
class Member:
    """One row of ``operator members``."""

    id: str
    address: str
    version: str
    pid: int
    sealed: bool
    status: str  # "up" or "down"
    started_at: int
    heartbeat_at: int

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "address": self.address,
            "version": self.version,
            "pid": self.pid,
            "sealed": self.sealed,
            "status": self.status,
            "started_at": self.started_at,
            "heartbeat_at": self.heartbeat_at,
        }


class NodeRegistry:
    """Registers this node, keeps its heartbeat, lists every node."""

    def __init__(self, engine: Engine, clock: Clock, identity: NodeIdentity) -> None:
        self._engine = engine
        self._clock = clock
        self.identity = identity

    def heartbeat(self, sealed: bool) -> None:
        """Register this node or refresh its row, and forget nodes silent for a day.

        Raises StorageUnavailable when the database cannot be reached."""
        me = self.identity
        now = self._clock.now_us()
        values = {"sealed": sealed, "heartbeat_at": now, "pid": os.getpid()}
        with write_txn(self._engine) as conn:
            found = conn.execute(update(nodes).where(nodes.c.id == me.id).values(**values))
            if found.rowcount == 0:
                conn.execute(
                    insert(nodes).values(
                        id=me.id,
                        address=me.address,
                        version=me.version,
                        started_at=me.started_at,
                        **values,
                    )
                )
            conn.execute(delete(nodes).where(nodes.c.heartbeat_at < now - PRUNE_AFTER_US))

    def members(self) -> list[Member]:
        """Every registered node, oldest first; raises StorageUnavailable."""
        now = self._clock.now_us()
        with read_conn(self._engine) as conn:
            rows = conn.execute(select(nodes).order_by(nodes.c.started_at, nodes.c.id)).all()
        return [
            Member(
                id=r.id,
                address=r.address,
                version=r.version,
                pid=int(r.pid),
                sealed=bool(r.sealed),
                status=STATUS_UP if now - int(r.heartbeat_at) <= DOWN_AFTER_US else STATUS_DOWN,
                started_at=int(r.started_at),
                heartbeat_at=int(r.heartbeat_at),
            )
            for r in rows
        ]
