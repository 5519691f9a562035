"""Secrets in the console: folders, a secret's page, reveal, edit, history actions.

Every page and action calls ``SecretsService`` with the caller's request context, like
``/api/v1/secrets``: the same policy decisions, the same audit events (a reveal is a
``secret:read``). Values appear only in the answer to a "reveal" POST (never in a URL,
never in a page before that); every answer is ``no-store``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from keysafe.bounds import MAX_VERSION
from keysafe.errors import CasMismatch, Forbidden, InvalidInput, NotFound
from keysafe.secrets.paths import folder_prefix
from keysafe.server import deps
from keysafe.server.services import Services
from keysafe.web.caller import Caller, act, common, may, renderer, show
from keysafe.web.render import redirect
from keysafe.web.security import UI_PREFIX

router = APIRouter(prefix=UI_PREFIX, include_in_schema=False)

PAGE_SIZE = 50


def secret_url(path: str, note: str = "") -> str:
    url = f"{UI_PREFIX}/secret?path={quote(path, safe='/')}"
    return url + (f"&note={quote(note)}" if note else "")


def folder_url(prefix: str) -> str:
    return f"{UI_PREFIX}/secrets?folder={quote(prefix, safe='/')}"


def _version(raw: str | None, what: str = "version") -> int:
    text = (raw or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_VERSION:
        raise InvalidInput(f"{what} must be a version number")
    return int(text)


def _breadcrumbs(prefix: str) -> list[tuple[str, str]]:
    crumbs = [("all secrets", "")]
    parts = [p for p in prefix.split("/") if p]
    for i, part in enumerate(parts):
        crumbs.append((part, "/".join(parts[: i + 1]) + "/"))
    return crumbs


def _entries(prefix: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The folder's direct children: sub-folders (with how many secrets) first."""
    folders: dict[str, int] = {}
    leaves: list[dict[str, Any]] = []
    for item in items:
        rest = item["path"][len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            folders[head] = folders.get(head, 0) + 1
        else:
            leaves.append(
                {
                    **item,
                    "name": rest,
                    "kind": "secret",
                    "owner": "",
                    "tags": {},
                    "expires_at": None,
                }
            )
    found: list[dict[str, Any]] = [
        {"name": name + "/", "path": prefix + name + "/", "count": count, "kind": "folder"}
        for name, count in sorted(folders.items())
    ]
    return found + leaves


async def _with_metadata(caller: Caller, svc: Services, entries: list[dict[str, Any]]) -> None:
    """Owner and tags of the page's secrets (each read like ``GET ...:metadata``, so
    audited and decided by the caller's policies; a refused one shows none)."""

    async def one(entry: dict[str, Any]) -> None:
        try:
            meta = await svc.secrets.metadata(caller.ctx, entry["path"])
        except (Forbidden, NotFound):
            return
        entry["owner"] = meta["owner"]
        entry["tags"] = meta["tags"]
        entry["expires_at"] = meta["expires_at"]

    await asyncio.gather(*(one(e) for e in entries if e["kind"] == "secret"))


@router.get("/secrets")
async def folder(request: Request, folder: str = "", page: int = 1) -> Response:
    svc = deps.services(request)

    async def build(caller: Caller) -> Response:
        prefix = folder_prefix(folder[:512])
        status, error, entries = 200, "", []
        try:
            items = await svc.secrets.list_paths(caller.ctx, prefix, recursive=True)
            entries = _entries(prefix, items)
        except Forbidden as exc:
            status, error = exc.status, exc.detail
        pages = max(1, -(-len(entries) // PAGE_SIZE))
        current = min(max(1, page), pages)
        shown = entries[(current - 1) * PAGE_SIZE : current * PAGE_SIZE]
        await _with_metadata(caller, svc, shown)
        return renderer(request).page(
            "folder.html",
            status,
            **common(svc, caller),
            title=prefix or "All secrets",
            prefix=prefix,
            crumbs=_breadcrumbs(prefix),
            entries=shown,
            total=len(entries),
            page=current,
            pages=pages,
            error=error,
            can_create=may(svc, caller, "write", prefix + "NEW"),
            folder_url=folder_url,
            secret_url=secret_url,
        )

    return await show(request, build)


async def _secret_view(
    request: Request,
    caller: Caller,
    path: str,
    *,
    status: int = 200,
    note: str = "",
    error: str = "",
    revealed: dict[str, Any] | None = None,
    draft: str | None = None,
) -> Response:
    svc = deps.services(request)
    meta = await svc.secrets.metadata(caller.ctx, path)
    history = await svc.secrets.history(caller.ctx, path)
    prefix = path.rsplit("/", 1)[0] + "/" if "/" in path else ""
    return renderer(request).page(
        "secret.html",
        status,
        **common(svc, caller),
        title=path,
        path=path,
        crumbs=_breadcrumbs(prefix),
        meta=meta,
        versions=list(reversed(history["versions"])),
        current=history["current_version"],
        note=note,
        error=error,
        revealed=revealed,
        draft=draft,
        can={
            "read": may(svc, caller, "read", path),
            "write": may(svc, caller, "write", path),
            "delete": may(svc, caller, "delete", path),
            "destroy": may(svc, caller, "destroy", path),
        },
        folder_url=folder_url,
    )


_NOTES = {
    "saved": "Saved as a new version.",
    "rolled-back": "Rolled back: a new version holds the old value.",
    "deleted": "The latest version was deleted (it can be undeleted).",
    "undeleted": "The latest version was restored.",
    "destroyed": "The version was destroyed for good.",
}


@router.get("/secret")
async def secret_page(request: Request, path: str = "", note: str = "") -> Response:
    async def build(caller: Caller) -> Response:
        return await _secret_view(request, caller, path[:1024], note=_NOTES.get(note, ""))

    return await show(request, build)


@router.post("/secret/reveal")
async def reveal(request: Request) -> Response:
    """The value, read (and audited) now; shown in this answer only."""
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = form.get("path", "")
        version = _version(form["version"]) if form.get("version") else None
        value = await svc.secrets.read(caller.ctx, path, version)
        if request.headers.get("accept") == "application/json":  # "copy", from the script
            return Response(orjson.dumps({"value": value.value}), media_type="application/json")
        shown = {"version": value.version, "value": value.value}
        return await _secret_view(request, caller, path, revealed=shown)

    return await act(request, action)


@router.post("/secret/write")
async def write(request: Request) -> Response:
    """A new version; ``cas`` (the version the editor started from, 0 to create) makes
    a concurrent save fail instead of silently overwriting."""
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = (form.get("folder", "") + form.get("path", "")).strip()
        # Browsers send a textarea's line breaks as CRLF: store what was typed.
        value = form.get("value", "").replace("\r\n", "\n")
        raw_cas = form.get("cas", "").strip()
        if not raw_cas.isdigit():
            raise InvalidInput("cas must be the version the edit started from (0 to create)")
        try:
            await svc.secrets.write(caller.ctx, path, value, int(raw_cas))
        except CasMismatch:
            if raw_cas == "0":
                raise InvalidInput(f"{path} already exists: open it to edit") from None
            return await _secret_view(
                request,
                caller,
                path,
                status=409,
                error=(
                    f"Not saved: someone saved a newer version since you opened version "
                    f"{raw_cas}. Your text is kept below; compare, then save again."
                ),
                draft=value,
            )
        return redirect(secret_url(path, "saved"))

    return await act(request, action)


@router.post("/secret/rollback")
async def rollback(request: Request) -> Response:
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = form.get("path", "")
        await svc.secrets.rollback(caller.ctx, path, _version(form.get("version")))
        return redirect(secret_url(path, "rolled-back"))

    return await act(request, action)


@router.post("/secret/delete")
async def delete(request: Request) -> Response:
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = form.get("path", "")
        await svc.secrets.delete(caller.ctx, path, None)
        return redirect(secret_url(path, "deleted"))

    return await act(request, action)


@router.post("/secret/undelete")
async def undelete(request: Request) -> Response:
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = form.get("path", "")
        await svc.secrets.undelete(caller.ctx, path, None)
        return redirect(secret_url(path, "undeleted"))

    return await act(request, action)


@router.post("/secret/destroy")
async def destroy(request: Request) -> Response:
    """Wipe one version for good; the secret's path must be typed to confirm."""
    svc = deps.services(request)

    async def action(caller: Caller, form: dict[str, str]) -> Response:
        path = form.get("path", "")
        version = _version(form.get("version"))
        if form.get("confirm", "") != path:
            raise InvalidInput("type the secret's path exactly to confirm destroying it")
        await svc.secrets.destroy(caller.ctx, path, [version])
        return redirect(secret_url(path, "destroyed"))

    return await act(request, action)
