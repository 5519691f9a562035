"""The client address behind trusted proxies (``keysafe.netloc.forwarded_client``)."""

from __future__ import annotations

import pytest

from keysafe.errors import InvalidInput
from keysafe.netloc import forwarded_client, parse_networks

LB = parse_networks("127.0.0.1, 10.0.0.0/24")


def test_a_trusted_peer_names_the_rightmost_untrusted_hop() -> None:
    # The client wrote 6.6.6.6 itself; the balancer appended what it saw: 203.0.113.9.
    assert forwarded_client("127.0.0.1", ["6.6.6.6, 203.0.113.9"], LB) == "203.0.113.9"
    # Several trusted hops are skipped, across several header lines.
    assert forwarded_client("10.0.0.5", ["6.6.6.6", "203.0.113.9, 10.0.0.7"], LB) == "203.0.113.9"


def test_an_untrusted_peer_is_the_client_whatever_the_header_says() -> None:
    assert forwarded_client("198.51.100.4", ["10.9.8.7"], LB) == "198.51.100.4"
    assert forwarded_client("127.0.0.1", ["10.9.8.7"], ()) == "127.0.0.1"  # none trusted


def test_garbage_stops_at_the_last_trusted_hop_and_all_trusted_is_the_leftmost() -> None:
    assert forwarded_client("127.0.0.1", ["1.2.3.4, not-an-ip"], LB) == "127.0.0.1"
    assert forwarded_client("127.0.0.1", ["junk, 10.0.0.9, 10.0.0.8"], LB) == "10.0.0.9"
    assert forwarded_client("127.0.0.1", ["10.0.0.2, 10.0.0.3"], LB) == "10.0.0.2"
    assert forwarded_client("127.0.0.1", ["[2001:db8::1]"], LB) == "2001:db8::1"
    assert forwarded_client("::ffff:127.0.0.1", ["192.0.2.8"], LB) == "192.0.2.8"


def test_networks_must_be_addresses_or_cidrs() -> None:
    assert len(parse_networks("10.0.0.0/8 ,2001:db8::/32 192.0.2.1")) == 3
    assert parse_networks("") == ()
    with pytest.raises(InvalidInput):
        parse_networks("10.0.0.0/8,balancer.internal")
