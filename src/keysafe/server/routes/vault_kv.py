"""``/v1/secret/``: Vault's KV v2 engine over keysafe's versioned secrets.

A KV v2 value is a JSON object; keysafe stores it as one secret whose value is the
object's JSON text, kept as it came (a plain keysafe value reads back as
``{"value": "..."}``). ``custom_metadata`` is the secret's keysafe tags. Settings keysafe
does not have (``cas_required``, ``delete_version_after``) are refused when asked for,
never ignored.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field
from starlette.responses import Response

from keysafe.bounds import MAX_VERSION
from keysafe.errors import InvalidInput, NotFound
from keysafe.server import deps
from keysafe.server.params import VersionList
from keysafe.server.replies.vault import (
    KvConfig,
    KvMetadata,
    KvRead,
    KvSubkeys,
    KvWritten,
)
from keysafe.server.routes.vault_kv_shapes import (
    as_object,
    gone_version,
    merge_patch,
    metadata_changes,
    read_data,
    subkeys,
    vault_metadata,
)
from keysafe.server.vaultreply import Duration, envelope, not_found

router = APIRouter(prefix="/v1/secret", tags=["vault-compatible"])
_AUTH = [Depends(deps.authenticated)]
ZeroOrVersion = Annotated[
    int, Query(ge=0, le=MAX_VERSION, description="a version number; 0 (default) is the latest")
]
MERGE_PATCH = "application/merge-patch+json"


class KvWrite(BaseModel):
    data: dict[str, Any]
    options: dict[str, Any] = Field(default_factory=dict)


class KvVersions(BaseModel):
    versions: VersionList = Field(min_length=1)


class KvMetadataWrite(BaseModel):
    max_versions: int | None = Field(None, ge=0, le=1000)
    cas_required: bool | None = None
    delete_version_after: Duration | None = None
    custom_metadata: dict[str, str | None] | None = None


def _cas(options: dict[str, Any]) -> int | None:
    cas = options.get("cas")
    if cas is not None and (isinstance(cas, bool) or not isinstance(cas, int)):
        raise InvalidInput("options.cas must be an integer")
    return cas


# -- data ------------------------------------------------------------------------------


@router.get("/data/{path:path}", dependencies=_AUTH, responses={200: {"model": KvRead}})
async def kv_read(request: Request, path: str, version: ZeroOrVersion = 0) -> Response:
    """The value at ``version`` (0: latest). A deleted or destroyed version answers 404
    with its metadata, as Vault does (hvac's ``raise_on_deleted_version=False``)."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    try:
        value = await svc.read(ctx, path, version or None)
    except NotFound:
        return not_found(await gone_version(svc, ctx, path, version))
    return envelope(request, read_data(value))


@router.post(
    "/data/{path:path}",
    operation_id="vault_kv_write",
    dependencies=_AUTH,
    responses={200: {"model": KvWritten}},
)
@router.put(
    "/data/{path:path}",
    operation_id="vault_kv_write_put",
    include_in_schema=False,
    dependencies=_AUTH,
)
async def kv_write(request: Request, path: str, body: KvWrite) -> Response:
    ctx = await deps.context(request)
    text = orjson.dumps(body.data).decode()
    result = await deps.services(request).secrets.write(ctx, path, text, _cas(body.options))
    return envelope(request, _written(result.version, result.created_at))


def _written(version: int, created: str | None, tags: dict[str, str] | None = None) -> Any:
    return {
        "created_time": created,
        "custom_metadata": tags or None,
        "deletion_time": "",
        "destroyed": False,
        "version": version,
    }


@router.patch(
    "/data/{path:path}",
    dependencies=_AUTH,
    responses={
        200: {"model": KvWritten},
        415: {"description": f"the body is not sent as {MERGE_PATCH}"},
    },
)
async def kv_patch(request: Request, path: str, body: KvWrite) -> Response:
    """``vault kv patch``: a JSON merge patch (RFC 7386) of the latest version, written
    as a new version only if nobody wrote in between (check-and-set)."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    try:
        current = await svc.read(ctx, path)  # authorised first: a refusal says no more
    except NotFound:
        return not_found()
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != MERGE_PATCH:
        return Response(
            orjson.dumps({"errors": [f"PATCH requires Content-Type {MERGE_PATCH}"]}),
            status_code=415,
            media_type="application/json",
        )
    cas = _cas(body.options)
    patched = merge_patch(as_object(current.value), body.data)
    text = orjson.dumps(patched).decode()
    result = await svc.write(ctx, path, text, current.version if cas is None else cas)
    return envelope(request, _written(result.version, result.created_at))


@router.delete("/data/{path:path}", status_code=204, dependencies=_AUTH)
async def kv_delete(request: Request, path: str) -> Response:
    """Soft-delete the latest version."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.delete(ctx, path, None)
    return Response(status_code=204)


@router.post("/delete/{path:path}", status_code=204, dependencies=_AUTH)
@router.put("/delete/{path:path}", include_in_schema=False, dependencies=_AUTH)
async def kv_delete_versions(request: Request, path: str, body: KvVersions) -> Response:
    ctx = await deps.context(request)
    await deps.services(request).secrets.delete(ctx, path, body.versions)
    return Response(status_code=204)


@router.post("/undelete/{path:path}", status_code=204, dependencies=_AUTH)
@router.put("/undelete/{path:path}", include_in_schema=False, dependencies=_AUTH)
async def kv_undelete(request: Request, path: str, body: KvVersions) -> Response:
    ctx = await deps.context(request)
    await deps.services(request).secrets.undelete(ctx, path, body.versions)
    return Response(status_code=204)


@router.post("/destroy/{path:path}", status_code=204, dependencies=_AUTH)
@router.put("/destroy/{path:path}", include_in_schema=False, dependencies=_AUTH)
async def kv_destroy(request: Request, path: str, body: KvVersions) -> Response:
    ctx = await deps.context(request)
    await deps.services(request).secrets.destroy(ctx, path, body.versions)
    return Response(status_code=204)


@router.get("/subkeys/{path:path}", dependencies=_AUTH, responses={200: {"model": KvSubkeys}})
async def kv_subkeys(
    request: Request,
    path: str,
    version: ZeroOrVersion = 0,
    depth: Annotated[int, Query(ge=0, le=64)] = 0,
) -> Response:
    """The value's keys with every leaf replaced by null (never a value)."""
    ctx = await deps.context(request)
    try:
        value = await deps.services(request).secrets.read(ctx, path, version or None)
    except NotFound:
        return not_found()
    data = read_data(value)
    return envelope(
        request, {"subkeys": subkeys(data["data"], depth), "metadata": data["metadata"]}
    )


# -- metadata --------------------------------------------------------------------------


@router.get(
    "/metadata/{path:path}",
    operation_id="vault_kv_metadata",
    dependencies=_AUTH,
    responses={200: {"model": KvMetadata}},
)
@router.api_route(
    "/metadata/{path:path}",
    methods=["LIST"],
    operation_id="vault_kv_list",
    include_in_schema=False,
    dependencies=_AUTH,
)
async def kv_metadata(request: Request, path: str = "") -> Response:
    """Vault's metadata of a secret; ``LIST`` (or ``GET ?list=true``): the keys
    directly under a folder."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    if request.method == "GET" and request.query_params.get("list") != "true":
        try:
            doc = await svc.describe(ctx, path, "list")
        except NotFound:
            return not_found()
        return envelope(request, vault_metadata(doc))
    prefix = path.strip("/") + "/" if path.strip("/") else ""
    items = await svc.list_paths(ctx, prefix, recursive=True)
    keys: list[str] = []
    for item in items:
        rest = item["path"][len(prefix) :]
        key = rest.split("/", 1)[0] + ("/" if "/" in rest else "")
        if key not in keys:
            keys.append(key)
    if not keys:
        return not_found()
    return envelope(request, {"keys": keys})


@router.post("/metadata/{path:path}", status_code=204, dependencies=_AUTH)
@router.put("/metadata/{path:path}", include_in_schema=False, dependencies=_AUTH)
@router.patch("/metadata/{path:path}", include_in_schema=False, dependencies=_AUTH)
async def kv_metadata_write(request: Request, path: str, body: KvMetadataWrite) -> Response:
    """``max_versions`` and ``custom_metadata`` (the keysafe tags: replaced by POST,
    merged by PATCH, where a null removes a key)."""
    ctx = await deps.context(request)
    svc = deps.services(request).secrets
    current = None
    if request.method == "PATCH" and body.custom_metadata is not None:
        current = (await svc.describe(ctx, path, "read"))["tags"]
    changes = metadata_changes(body.model_dump(exclude_unset=True), current)
    await svc.set_metadata(ctx, path, changes)
    return Response(status_code=204)


@router.delete("/metadata/{path:path}", status_code=204, dependencies=_AUTH)
async def kv_metadata_delete(request: Request, path: str) -> Response:
    """Remove the secret, every version and its metadata (needs ``destroy``)."""
    ctx = await deps.context(request)
    await deps.services(request).secrets.purge(ctx, path)
    return Response(status_code=204)


# -- engine configuration --------------------------------------------------------------


@router.get("/config", dependencies=_AUTH, responses={200: {"model": KvConfig}})
async def kv_config(request: Request) -> Response:
    return envelope(request, _config(request))


def _config(request: Request) -> dict[str, Any]:
    return {
        "cas_required": False,
        "delete_version_after": "0s",
        "max_versions": deps.services(request).settings.default_max_versions,
    }


@router.post("/config", status_code=204, dependencies=[Depends(deps.needs("sys:kv-config"))])
@router.put("/config", include_in_schema=False, dependencies=[Depends(deps.needs("sys:kv-config"))])
async def kv_configure(request: Request, body: KvMetadataWrite) -> Response:
    """Accepted only when it asks for what the server already does (the default
    ``max_versions`` is a server setting, ``KEYSAFE_DEFAULT_MAX_VERSIONS``)."""
    await deps.needs_context(request, "sys:kv-config")
    wanted = body.model_dump(exclude_unset=True)
    metadata_changes({k: v for k, v in wanted.items() if k != "max_versions"}, None)
    current = _config(request)["max_versions"]
    if wanted.get("max_versions") not in (None, 0, current):
        raise InvalidInput(
            f"max_versions: the server's default is {current}; change it with the"
            " default_max_versions setting, or per secret through its metadata"
        )
    return Response(status_code=204)
