"""``/v1/transit``: Vault's transit encrypt/decrypt, enough for one vault to auto-unseal
another (``KEYSAFE_SEAL=transit``) and for Vault's transit clients.

Who may call: a credential holding ``write`` (encrypt), ``read`` (decrypt) or ``admin``
(create a key) on ``transit/keys/<name>``; every call is audited (``transit:encrypt``,
``transit:decrypt``, ``transit:create-key``) before it answers. The keys never leave
the keyring.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.audit.models import OUTCOME_OK
from keysafe.server import deps
from keysafe.server.routes.sys import json_response
from keysafe.transit.service import TransitService, check_key_name

router = APIRouter(prefix="/v1/transit", tags=["vault-compatible"])


class CreateKey(BaseModel):
    type: str = Field("aes256-gcm96", max_length=32)


class EncryptRequest(BaseModel):
    plaintext: str = Field(max_length=64 * 1024)


class DecryptRequest(BaseModel):
    ciphertext: str = Field(max_length=64 * 1024)


class EncryptData(BaseModel):
    ciphertext: str
    key_version: int


class EncryptReply(BaseModel):
    data: EncryptData


class DecryptData(BaseModel):
    plaintext: str


class DecryptReply(BaseModel):
    data: DecryptData


def _service(request: Request) -> TransitService:
    svc = deps.services(request)
    return TransitService(svc.barrier.keyring, svc.system.change_keyring)


def _may(capability: str, operation: str) -> Callable[[Request], Awaitable[None]]:
    """Dependency: the caller holds ``capability`` on ``transit/keys/<name>`` (401, or
    an audited 403), checked before the body is read."""

    async def dependency(request: Request) -> None:
        name = str(request.path_params.get("name", ""))
        ctx = await deps.context(request)
        svc = deps.services(request)
        await svc.authorizer.enforce(svc.audit, ctx, capability, operation, _path(name))

    setattr(dependency, deps.NEEDS_MARK, operation)  # the OpenAPI document reads it
    return dependency


def _path(name: str) -> str:
    """The key's policy path; raises InvalidInput for a malformed name."""
    return f"transit/keys/{check_key_name(name)}"


async def _audit(request: Request, operation: str, path: str, detail: str = "") -> None:
    ctx = await deps.context(request)
    await deps.record_as(
        deps.services(request),
        ctx,
        operation,
        path=path,
        outcome=OUTCOME_OK,
        detail=detail,
    )


@router.post(
    "/keys/{name}",
    status_code=204,
    dependencies=[Depends(_may("admin", "transit:create-key"))],
)
async def create_key(request: Request, name: str, body: CreateKey | None = None) -> Response:
    """Create an ``aes256-gcm96`` key (nothing happens when it exists)."""
    path = _path(name)
    if body is not None and body.type != "aes256-gcm96":
        from keysafe.errors import InvalidInput

        raise InvalidInput("keysafe's transit keys are aes256-gcm96")
    created = await anyio.to_thread.run_sync(_service(request).create, name)
    await _audit(request, "transit:create-key", path, "created" if created else "exists")
    return Response(status_code=204)


@router.post(
    "/encrypt/{name}",
    dependencies=[Depends(_may("write", "transit:encrypt"))],
    responses={200: {"model": EncryptReply}},
)
async def encrypt(request: Request, name: str, body: EncryptRequest) -> Response:
    path = _path(name)
    ciphertext, version = _service(request).encrypt(name, body.plaintext)
    await _audit(request, "transit:encrypt", path, f"key version {version}")
    return json_response({"data": {"ciphertext": ciphertext, "key_version": version}})


@router.post(
    "/decrypt/{name}",
    dependencies=[Depends(_may("read", "transit:decrypt"))],
    responses={200: {"model": DecryptReply}},
)
async def decrypt(request: Request, name: str, body: DecryptRequest) -> Response:
    path = _path(name)
    plaintext = _service(request).decrypt(name, body.ciphertext)
    await _audit(request, "transit:decrypt", path)
    return json_response({"data": {"plaintext": plaintext}})
