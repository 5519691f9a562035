"""Mount the console on the server's application."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from keysafe.errors import NotFound
from keysafe.web import admin_pages, secrets_pages, signin
from keysafe.web.caller import renderer
from keysafe.web.render import Renderer
from keysafe.web.security import UI_PREFIX, ConsoleHeaders

_static = APIRouter(prefix=UI_PREFIX, include_in_schema=False)


@_static.get("/static/{name}")
async def static_file(request: Request, name: str) -> Response:
    """The console's own files, from the package (a fixed list; nothing else)."""
    asset = renderer(request).assets.get(name)
    if asset is None:
        raise NotFound(f"no file {name}")
    return Response(asset.body, media_type=asset.media_type)


def install_console(app: FastAPI) -> None:
    """Add the ``/ui`` pages and their security headers to ``app``. Call after the
    other middleware so that the headers layer is outermost (sealed answers too)."""
    app.state.console = Renderer()
    for router in (_static, signin.router, secrets_pages.router, admin_pages.router):
        app.include_router(router)
    app.add_middleware(ConsoleHeaders)
