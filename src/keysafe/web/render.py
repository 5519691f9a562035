"""Templates and the console's own static files, all shipped inside the package."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.responses import RedirectResponse, Response

# The files under /ui/static/ and their types: a fixed table, nothing else is served.
_ASSETS = {
    "console.css": "text/css; charset=utf-8",
    "console.js": "text/javascript; charset=utf-8",
}


@dataclass(frozen=True)
class Asset:
    body: bytes
    media_type: str


class Renderer:
    """Built once per application: the template environment and the assets in memory."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("keysafe.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        folder = resources.files("keysafe.web").joinpath("static")
        self.assets = {
            name: Asset(folder.joinpath(name).read_bytes(), media)
            for name, media in _ASSETS.items()
        }

    def page(self, template: str, status: int = 200, **values: Any) -> Response:
        html = self.env.get_template(template).render(**values)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8")


def redirect(url: str) -> Response:
    """303 See Other: after a POST the browser GETs ``url`` (never a value in it)."""
    return RedirectResponse(url, status_code=303)
