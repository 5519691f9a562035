"""uvicorn's fast HTTP protocol, taught Vault's ``LIST`` verb.

Vault clients (hvac, the vault CLI) list with the non-standard method ``LIST``; Vault
treats it exactly like ``GET ...?list=true``. The httptools parser rejects unknown
methods before any routing, so the request line is rewritten to that GET form before
parsing. (The pure-Python h11 parser accepts LIST but costs about 40% of read throughput.)
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


def rewrite_list(data: bytes) -> bytes:
    """``LIST /p?q HTTP/1.1...`` as ``GET /p?q&list=true HTTP/1.1...``; other data as is."""
    if not data.startswith(b"LIST "):
        return data
    end = data.find(b"\r\n")
    if end < 0:
        return data
    parts = data[:end].split(b" ")
    if len(parts) != 3:
        return data
    target = parts[1] + (b"&list=true" if b"?" in parts[1] else b"?list=true")
    return b"GET " + target + b" " + parts[2] + data[end:]


class VaultListProtocol(HttpToolsProtocol):
    def data_received(self, data: bytes) -> None:
        # A request line starts the first chunk of each request on a keep-alive
        # connection (clients such as hvac do not pipeline).
        super().data_received(rewrite_list(data) if data[:5] == b"LIST " else data)
