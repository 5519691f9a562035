"""The client's address, the one every guard sees (audit, allowlists, limits, throttle).

Behind a load balancer the TCP peer is the balancer. ``KEYSAFE_TRUSTED_PROXIES`` names the
balancers; a request from one of them is attributed to the address its
``X-Forwarded-For`` names (``keysafe.netloc.forwarded_client``: the rightmost hop that
is not itself a trusted proxy). From any other peer the header is ignored: a client may
not choose its own address. uvicorn's ``proxy_headers`` stays off (its rules differ
between versions); this middleware, outermost, rewrites the ASGI scope's ``client``
once, and ``client_host`` reads it everywhere.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from keysafe.netloc import Network, forwarded_client

_XFF = b"x-forwarded-for"


def client_host(scope: Scope) -> str:
    """The request's client address (after ``TrustedProxies``), or ``unknown``."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class TrustedProxies:
    """Pure ASGI middleware: take the client from a trusted proxy's ``X-Forwarded-For``."""

    def __init__(self, app: ASGIApp, networks: tuple[Network, ...]) -> None:
        self.app = app
        self.networks = networks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] in ("http", "websocket") and client:
            hops = [v.decode("latin-1") for k, v in scope["headers"] if k == _XFF]
            if hops:
                host = forwarded_client(str(client[0]), hops, self.networks)
                if host != client[0]:
                    scope = {**scope, "client": (host, 0)}
        await self.app(scope, receive, send)
