"""The LIST request-line rewrite for Vault clients."""

from __future__ import annotations

import pytest

from keysafe.server.protocol import rewrite_list


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            b"LIST /v1/secret/metadata/app HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /v1/secret/metadata/app?list=true HTTP/1.1\r\nHost: x\r\n\r\n",
        ),
        (b"LIST /v1/x?a=1 HTTP/1.1\r\n\r\n", b"GET /v1/x?a=1&list=true HTTP/1.1\r\n\r\n"),
        (b"GET /v1/x HTTP/1.1\r\n\r\n", b"GET /v1/x HTTP/1.1\r\n\r\n"),
        (b"LIST /v1/x", b"LIST /v1/x"),  # incomplete request line: left to the parser
        (b"LIST a b c\r\n", b"LIST a b c\r\n"),
    ],
)
def test_rewrite(raw: bytes, expected: bytes) -> None:
    assert rewrite_list(raw) == expected
