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


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma- or space-separated CIDRs (a bare address is a /32 or /128).

    Raises InvalidInput for anything that is not an address or a network."""
    nets: list[Network] = []
    for part in text.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError as exc:
            raise InvalidInput(f"{part!r} is not an address or CIDR network") from exc
    return tuple(nets)


def _trusted(host: str, networks: tuple[Network, ...]) -> bool | None:
    """True/False for an address inside/outside ``networks``; None when not an address."""
    try:
        addr = ipaddress.ip_address(host.strip().strip("[]"))
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return any(addr in net for net in networks)


def forwarded_client(peer: str, forwarded_for: list[str], networks: tuple[Network, ...]) -> str:
    """The client address of a request whose TCP peer is ``peer``.

    Only a trusted proxy's ``X-Forwarded-For`` counts: when ``peer`` is inside
    ``networks``, the hops (every header value, in order) are read from the right and the
    first one that is not itself a trusted proxy is the client (those further left were
    written by the client and prove nothing). A hop that is not an address stops the
    walk at the last trusted hop. With every hop trusted, the leftmost one is the client.
    Otherwise ``peer``, whatever the header says."""
    if not networks or not forwarded_for or _trusted(peer, networks) is not True:
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        trusted = _trusted(hop, networks)
        if trusted is None:
            return client
        client = str(ipaddress.ip_address(hop.strip("[]")))
        if not trusted:
            return client
    return client
