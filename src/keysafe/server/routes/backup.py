"""``GET /api/v1/sys/backup``: a consistent snapshot of the whole store, streamed.

Like Vault's ``sys/storage/raft/snapshot``: only the root token, or a policy granting
``admin`` on ``sys/backup``, may take one (values and keys stay encrypted, but the file
holds every hash, policy and audit event). Taking it is audited before the first byte
is sent. The stream is bounded: one backup at a time per process, every database step
and every send waits a bounded time, and a client that stops reading is dropped, which
ends the snapshot's transaction.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Final

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from fastapi import APIRouter, Depends, Request
from sqlalchemy import Engine
from starlette.responses import StreamingResponse
from starlette.types import Message, Receive, Scope, Send

from keysafe.audit.models import OUTCOME_OK
from keysafe.errors import Conflict, StorageUnavailable
from keysafe.server import deps
from keysafe.server.routes.sys import NO_STORE
from keysafe.store.backup import Snapshot, chunked
from keysafe.store.backup_format import Header
from keysafe.store.offload import wait_bound

router = APIRouter(prefix="/api/v1/sys", tags=["sys"])

MEDIA_TYPE: Final = "application/x-keysafe-backup"
# The longest one chunk may take to leave (a client that stopped reading) or to be read
# from the database when no statement bound applies (SQLite).
SEND_TIMEOUT_SECONDS: Final = 60.0


class _Producer:
    """Reads the snapshot on its own thread, which owns the database connection from
    opening to closing, and hands chunks over a queue of two. When the reader goes
    away (the client stopped, an error), the thread's next hand-over fails and it closes
    the snapshot; the gate opens only then, so two snapshots never overlap."""

    def __init__(self, engine: Engine, gate: threading.Lock) -> None:
        self._engine = engine
        self._gate = gate
        self._send: MemoryObjectSendStream[object]
        self.receive: MemoryObjectReceiveStream[object]
        self._send, self.receive = anyio.create_memory_object_stream[object](2)
        self._token = anyio.lowlevel.current_token()

    def start(self) -> None:
        threading.Thread(target=self._run, name="ks-backup", daemon=True).start()

    def _put(self, item: object) -> None:
        anyio.from_thread.run(self._send.send, item, token=self._token)

    def _run(self) -> None:
        try:
            with Snapshot(self._engine) as snap:
                self._put(snap.header)
                for chunk in chunked(snap.lines()):
                    self._put(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, RuntimeError):
            pass  # the reader is gone (or the event loop ended): just close
        except Exception as exc:  # handed to the reader, which answers or drops
            with contextlib.suppress(Exception):
                self._put(exc)
        finally:
            self._gate.release()
            with contextlib.suppress(Exception):
                anyio.from_thread.run_sync(self._send.close, token=self._token)


class _BackupStream(StreamingResponse):
    """The producer's chunks; every send must finish within ``SEND_TIMEOUT_SECONDS``
    and every chunk arrive within ``wait``, else the connection is dropped (the client
    sees a truncated file, which it refuses)."""

    def __init__(self, producer: _Producer, wait: float, headers: dict[str, str]) -> None:
        self._producer = producer
        self._wait = wait
        super().__init__(self._chunks(), media_type=MEDIA_TYPE, headers=headers)

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            with anyio.fail_after(self._wait):
                try:
                    item = await self._producer.receive.receive()
                except anyio.EndOfStream:
                    return
            if not isinstance(item, bytes):
                return  # a failure mid-stream: end short, the missing footer says so
            yield item

    async def stream_response(self, send: Send) -> None:
        async def bounded(message: Message) -> None:
            with anyio.fail_after(SEND_TIMEOUT_SECONDS):
                await send(message)

        with contextlib.suppress(TimeoutError):
            await super().stream_response(bounded)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._producer.receive.close()


@router.get(
    "/backup",
    dependencies=[Depends(deps.needs("sys:backup"))],
    response_class=StreamingResponse,  # the file alone is documented, not a JSON body
    responses={
        200: {
            "content": {MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
            "description": "The backup file (JSON lines; see keysafe.store.backup_format)",
        },
        409: {"description": "A backup is already running on this node"},
    },
)
async def backup(request: Request) -> StreamingResponse:
    """The whole store as one backup file (``keysafe operator backup``)."""
    ctx = await deps.needs_context(request, "sys:backup")
    svc = deps.services(request)
    gate = _gate(request)
    if not gate.acquire(blocking=False):
        raise Conflict("a backup is already running on this node; try again when it ends")
    producer = _Producer(svc.engine, gate)
    try:
        producer.start()
    except BaseException:
        gate.release()
        raise
    wait = wait_bound(svc.engine) or SEND_TIMEOUT_SECONDS
    try:
        with anyio.fail_after(wait):
            first = await producer.receive.receive()
        if isinstance(first, BaseException):
            raise first
        assert isinstance(first, Header)
        await deps.record_as(
            svc,
            ctx,
            "sys:backup",
            path="sys/backup",
            outcome=OUTCOME_OK,
            detail=f"{first.total_rows} rows, schema revision {first.schema_revision}",
        )
    except TimeoutError:
        producer.receive.close()
        raise StorageUnavailable(f"the database did not answer within {wait:g} s") from None
    except BaseException:
        producer.receive.close()
        raise
    headers = {**NO_STORE, "Content-Disposition": 'attachment; filename="keysafe.backup"'}
    return _BackupStream(producer, wait, headers)


def _gate(request: Request) -> threading.Lock:
    """One backup at a time per process (kept on the application, not the module)."""
    state = request.app.state
    gate = getattr(state, "backup_gate", None)
    if gate is None:
        gate = state.backup_gate = threading.Lock()
    return gate
