"""``/api/v1/docs``: Swagger UI over the OpenAPI document, from files shipped in a
Python package (``swagger-ui-bundle-v2``): no CDN, so the docs work offline and no
third-party script ever runs on the vault's origin. A strict Content-Security-Policy
allows scripts from this origin only, and no inline script (the start-up code is a file).
Readable while sealed, like the document itself (see ``keysafe.server.app``).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response
from swagger_ui_bundle import swagger_ui_path

from keysafe.errors import NotFound

router = APIRouter(prefix="/api/v1/docs", include_in_schema=False)

OPENAPI_URL = "/api/v1/openapi.json"
DOCS_URL = "/api/v1/docs"

# Swagger UI sets inline style attributes, hence 'unsafe-inline' for styles only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
# The only files served, with their media types.
_ASSETS = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
_PAGE = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>keysafe API</title>
<link rel="stylesheet" href="{DOCS_URL}/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{DOCS_URL}/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{DOCS_URL}/assets/swagger-ui-bundle.js"></script>
<script src="{DOCS_URL}/start.js"></script>
</body>
</html>
"""
_START = f"""window.ui = SwaggerUIBundle({{
  url: "{OPENAPI_URL}",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false
}});
"""


@router.get("")
async def docs_page() -> Response:
    return Response(_PAGE, media_type="text/html; charset=utf-8", headers=_HEADERS)


@router.get("/start.js")
async def docs_start() -> Response:
    return Response(_START, media_type="text/javascript; charset=utf-8", headers=_HEADERS)


@router.get("/assets/{name}")
async def docs_asset(name: str) -> Response:
    media = _ASSETS.get(name)
    if media is None:
        raise NotFound(f"no asset {name}")
    data = (swagger_ui_path / name).read_bytes()
    return Response(data, media_type=media, headers=_HEADERS)
