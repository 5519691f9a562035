"""``/api/v1/secrets``: the native secrets API.

Custom actions use a ``:verb`` suffix on the path (``payments/x:history``); a colon can
never be part of a secret path, so the two never collide.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.server.params import Counter, Version, VersionList, VersionQuery, VersionsQuery
from keysafe.server.routes.sys import json_response

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class SecretWrite(BaseModel):
    value: str
    cas: Counter | None = Field(None, description="write only if the current version is this")


class Rollback(BaseModel):
    version: Version


class Versions(BaseModel):
    versions: VersionList | None = None


class MetadataPatch(BaseModel):
    description: str | None = None
    owner: str | None = None
    tags: dict[str, str] | None = None
    expires_at: str | None = None
    max_versions: int | None = None


def _split(raw: str) -> tuple[str, str]:
    path, _, verb = raw.partition(":")
    return path, verb


@router.get("", dependencies=[Depends(deps.authenticated)])
async def list_secrets(
    request: Request,
    prefix: str = "",
    recursive: bool = True,
    values: bool = False,
) -> Response:
    """Paths under a prefix (values only with ``values=true`` and read access)."""
    ctx = await deps.context(request)
    items = await deps.services(request).secrets.list_paths(
        ctx, prefix, recursive=recursive, values=values
    )
    return json_response({"secrets": items})


@router.get("/{path:path}", dependencies=[Depends(deps.authenticated)])
async def read_secret(
    request: Request,
    path: str,
    version: VersionQuery = None,
    label: Annotated[str | None, Query(description="current, pending or previous")] = None,
) -> Response:
    """The current value (or ``?version=N``, or ``?label=current|pending|previous`` of
    a rotated secret); ``:history`` and ``:metadata`` views."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    path, verb = _split(path)
    if verb == "" and label is not None:
        if version is not None:
            raise InvalidInput("give ?version or ?label, not both")
        return json_response(await deps.services(request).rotation.read_label(ctx, path, label))
    if verb == "":
        value = await svc.read(ctx, path, version)
        return json_response(value.as_document())
    if verb == "history":
        return json_response(await svc.history(ctx, path))
    if verb == "metadata":
        return json_response(await svc.metadata(ctx, path))
    raise NotFound(f"unknown action :{verb}")


@router.put("/{path:path}", dependencies=[Depends(deps.authenticated)])
async def write_secret(request: Request, path: str, body: SecretWrite) -> Response:
    ctx = await deps.context(request)
    if ":" in path:
        raise InvalidInput("a secret path may not contain ':'")
    result = await deps.services(request).secrets.write(ctx, path, body.value, body.cas)
    return json_response(
        {"path": result.path, "version": result.version, "created_at": result.created_at}
    )


@router.patch("/{path:path}", dependencies=[Depends(deps.authenticated)])
async def patch_metadata(request: Request, path: str, body: MetadataPatch) -> Response:
    ctx = await deps.context(request)
    path, verb = _split(path)
    if verb != "metadata":
        raise NotFound("PATCH is only defined on {path}:metadata")
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return json_response(await deps.services(request).secrets.set_metadata(ctx, path, changes))


@router.post("/{path:path}", dependencies=[Depends(deps.authenticated)])
async def secret_action(request: Request, path: str) -> Response:
    """``:rollback``, ``:undelete`` and ``:destroy``."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    path, verb = _split(path)
    raw = await request.body()
    try:
        if verb == "rollback":
            rb = Rollback.model_validate_json(raw or b"{}")
            result = await svc.rollback(ctx, path, rb.version)
            return json_response(
                {"path": result.path, "version": result.version, "created_at": result.created_at}
            )
        versions = Versions.model_validate_json(raw or b"{}").versions
    except ValueError as exc:
        raise InvalidInput(f"invalid request body: {exc}") from exc
    if verb == "undelete":
        await svc.undelete(ctx, path, versions)
    elif verb == "destroy":
        await svc.destroy(ctx, path, versions or [])
    else:
        raise NotFound(
            f"unknown action :{verb}" if verb else "POST needs an action such as :rollback"
        )
    return Response(status_code=204)


@router.delete("/{path:path}", dependencies=[Depends(deps.authenticated)])
async def delete_secret(request: Request, path: str, version: VersionsQuery = None) -> Response:
    """Soft delete: the latest version, or ``?version=N`` (repeatable)."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.delete(ctx, path, version)
    return Response(status_code=204)
