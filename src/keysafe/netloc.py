"""Where keysafe may send things: loopback hosts and outbound webhook URLs."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from keysafe.errors import InvalidInput


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ``::1``, ``[::1]``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_webhook_url(url: str) -> str:
    """``url`` if keysafe may post to it: HTTPS, or plain HTTP to a loopback address
    only (what keysafe sends, alerts or new values, must not cross a network in clear).
    Raises InvalidInput."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https" and host:
        return url
    if parts.scheme == "http" and is_loopback(host):
        return url
    raise InvalidInput("a webhook URL must be https:// (plain http only to a loopback address)")
