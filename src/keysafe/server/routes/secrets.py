"""``/api/v1/secrets``: the native secrets API.

Custom actions use a ``:verb`` suffix on the path (``payments/x:history``); a colon can
never be part of a secret path, so the two never collide.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.bounds import MAX_VERSION
from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.server.params import (
    SecretPath,
    Version,
    VersionList,
    VersionQuery,
    VersionsQuery,
)
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class SecretWrite(BaseModel):
    value: str
    cas: int | None = Field(
        None, ge=0, le=MAX_VERSION, description="write only if the current version is this"
    )


class Rollback(BaseModel):
    version: Version


class Versions(BaseModel):
    versions: VersionList | None = None


class MetadataPatch(BaseModel):
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] | None = None
    expires_at: str | None = None
    max_versions: int | None = Field(None, ge=1, le=1000)


class SecretMetadata(BaseModel):
    description: str
    owner: str
    tags: dict[str, str]
    expires_at: str | None
    max_versions: int
    current_version: int
    created_at: str | None
    updated_at: str | None


class SecretDocument(BaseModel):
    """A secret's value (``GET /api/v1/secrets/{path}``)."""

    path: str
    version: int
    value: str
    metadata: SecretMetadata
    label: str | None = Field(None, description="with ?label=: the label read")


class WriteReply(BaseModel):
    path: str
    version: int
    created_at: str | None


class ListedSecret(BaseModel):
    path: str
    version: int
    updated_at: str | None
    state: str = Field(
        "active", description="the current version's state: active, deleted or destroyed"
    )
    value: str | None = Field(None, description="only with values=true")


class SecretList(BaseModel):
    secrets: list[ListedSecret]


class VersionInfo(BaseModel):
    version: int
    created_at: str | None
    created_by: str
    deleted_at: str | None
    destroyed: bool


class History(BaseModel):
    path: str
    current_version: int
    versions: list[VersionInfo]


class MetadataDocument(SecretMetadata):
    path: str


_SECRET = {"Cache-Control": {"description": "no-store", "schema": {"type": "string"}}}


@router.get(
    "",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": SecretList}},
)
async def list_secrets(
    request: Request,
    prefix: Annotated[str, Query(max_length=512)] = "",
    recursive: bool = True,
    values: bool = False,
) -> Response:
    """Paths under a prefix (values only with ``values=true`` and read access)."""
    ctx = await deps.context(request)
    items = await deps.services(request).secrets.list_paths(
        ctx, prefix, recursive=recursive, values=values
    )
    return json_response({"secrets": items})


# The ``:verb`` routes come first: ``{path:path}`` alone would also match them.


@router.get(
    "/{path:path}:history",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": History}},
)
async def history(request: Request, path: SecretPath) -> Response:
    """Every version's dates and state (never values)."""
    ctx = await deps.context(request)
    return json_response(await deps.services(request).secrets.history(ctx, path))


@router.get(
    "/{path:path}:metadata",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": MetadataDocument}},
)
async def read_metadata(request: Request, path: SecretPath) -> Response:
    ctx = await deps.context(request)
    return json_response(await deps.services(request).secrets.metadata(ctx, path))


@router.patch(
    "/{path:path}:metadata",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": MetadataDocument}},
)
async def patch_metadata(request: Request, path: SecretPath, body: MetadataPatch) -> Response:
    ctx = await deps.context(request)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return json_response(await deps.services(request).secrets.set_metadata(ctx, path, changes))


@router.post(
    "/{path:path}:rollback",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": WriteReply}},
)
async def rollback(request: Request, path: SecretPath, body: Rollback) -> Response:
    """A new version holding the value of ``version``."""
    ctx = await deps.context(request)
    result = await deps.services(request).secrets.rollback(ctx, path, body.version)
    return json_response(result.as_document())


@router.post("/{path:path}:undelete", status_code=204, dependencies=[Depends(deps.authenticated)])
async def undelete(request: Request, path: SecretPath, body: Versions | None = None) -> Response:
    """Restore soft-deleted ``versions`` (default the latest)."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.undelete(ctx, path, body.versions if body else None)
    return Response(status_code=204)


@router.post("/{path:path}:destroy", status_code=204, dependencies=[Depends(deps.authenticated)])
async def destroy(request: Request, path: SecretPath, body: Versions) -> Response:
    """Wipe the ciphertext of ``versions`` for good; metadata stays."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.destroy(ctx, path, body.versions or [])
    return Response(status_code=204)


@router.get(
    "/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": SecretDocument, "headers": _SECRET}},
)
async def read_secret(
    request: Request,
    path: SecretPath,
    version: VersionQuery = None,
    label: Annotated[
        Literal["current", "pending", "previous"] | None,
        Query(description="a rotated secret's current, pending or previous value"),
    ] = None,
) -> Response:
    """The current value (or ``?version=N``, or ``?label=`` of a rotated secret).
    Served by ``keysafe.server.fastpath`` ahead of this route, identically."""
    ctx = await deps.context(request)
    if label is not None:
        if version is not None:
            raise InvalidInput("give ?version or ?label, not both")
        return json_response(await deps.services(request).rotation.read_label(ctx, path, label))
    value = await deps.services(request).secrets.read(ctx, path, version)
    return json_response(value.as_document())


@router.put(
    "/{path:path}",
    dependencies=[Depends(deps.authenticated)],
    responses={200: {"model": WriteReply}},
)
async def write_secret(request: Request, path: SecretPath, body: SecretWrite) -> Response:
    ctx = await deps.context(request)
    result = await deps.services(request).secrets.write(ctx, path, body.value, body.cas)
    return json_response(result.as_document())


@router.delete("/{path:path}", status_code=204, dependencies=[Depends(deps.authenticated)])
async def delete_secret(
    request: Request, path: SecretPath, version: VersionsQuery = None
) -> Response:
    """Soft delete: the latest version, or ``?version=N`` (repeatable)."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.delete(ctx, path, version)
    return Response(status_code=204)


@router.api_route(
    "/{path:path}",
    methods=["POST", "PATCH"],
    include_in_schema=False,
    dependencies=[Depends(deps.authenticated)],
)
async def unknown_action(path: str) -> Response:
    """POST and PATCH exist only with a ``:verb`` (see above)."""
    _, _, verb = path.partition(":")
    raise NotFound(
        f"unknown action :{verb}" if verb else "POST and PATCH need an action such as :rollback"
    )
