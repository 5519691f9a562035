"""A fast path for ``keysafe secret get``: stdlib only, no typer, no httpx.

``secret get`` runs inside scripts and must start in well under 250 ms; typer (which
builds pydantic validators) and httpx each cost more than 100 ms to import. When the
arguments are exactly a plain ``secret get`` this module answers it with ``http.client``;
anything else (``--help``, ``--config``, an unknown option) returns None and goes
through the full Typer app, so behaviour never differs, only speed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from keysafe.errors import ConnectionFailed, ServerError, error_from_problem

if TYPE_CHECKING:
    from http.client import HTTPConnection

    from keysafe.client._config import Connection


@dataclass
class GetArgs:
    path: str
    addr: str | None = None
    cacert: str | None = None
    version: int | None = None
    newline: bool = True
    as_json: bool = False


def parse(argv: Sequence[str]) -> GetArgs | None:
    """The arguments of a plain ``[--addr A] [--cacert C] secret get PATH [opts]``, or None."""
    args = list(argv)
    addr = cacert = None
    while args and args[0].startswith("--"):
        opt, value, args = _take(args)
        if value is None or opt not in {"--addr", "--cacert"}:
            return None
        addr, cacert = (value, cacert) if opt == "--addr" else (addr, value)
    if args[:2] != ["secret", "get"]:
        return None
    args = args[2:]
    out = GetArgs(path="", addr=addr, cacert=cacert)
    positional: list[str] = []
    while args:
        head = args[0]
        if head in {"--no-newline", "-n"}:
            out.newline, args = False, args[1:]
        elif head == "--json":
            out.as_json, args = True, args[1:]
        elif head.startswith("--version") or head == "-v":
            opt, value, args = _take(args, short="-v")
            if opt not in {"--version", "-v"} or value is None or not value.isdigit():
                return None
            out.version = int(value)
        elif head.startswith("-"):
            return None  # --help, "--" and anything unknown: let Typer handle it
        else:
            positional.append(head)
            args = args[1:]
    if len(positional) != 1:
        return None
    out.path = positional[0]
    return out


def _take(args: list[str], short: str = "") -> tuple[str, str | None, list[str]]:
    head = args[0]
    if head.startswith("--") and "=" in head:
        opt, value = head.split("=", 1)
        return opt, value, args[1:]
    if len(args) < 2:
        return head, None, args[1:]
    return head, args[1], args[2:]


def run(args: GetArgs) -> int:
    """Fetch and print the secret; raises a KeysafeError on failure.

    With several addresses (``KEYSAFE_ADDR=a,b``) a GET moves to the next one on any
    transport failure or a 503, as the SDK does (``keysafe.client._failover``)."""
    # Imported here so that parse() stays free for every other command.
    import time

    from keysafe.cli.project import project_addr, secret_path
    from keysafe.client._config import resolve
    from keysafe.client._failover import all_failed, backoff, may_move_on_503, split_addrs
    from keysafe.client._paths import check_path

    # Inside a project (.keysafe.toml) a bare NAME is <prefix>/<env>/NAME.
    args.path = check_path(secret_path(args.path))
    conn = resolve(args.addr or project_addr(args.addr), None, args.cacert)
    if conn.addr is None:
        raise ConnectionFailed("no keysafe server configured: run `keysafe up` or set KEYSAFE_ADDR")
    addrs = split_addrs(conn.addr)
    query = f"?version={args.version}" if args.version is not None else ""
    headers = {"Accept": "application/json", "User-Agent": "keysafe-cli/0.1"}
    if conn.token:
        headers["Authorization"] = f"Bearer {conn.token}"
    errors: list[tuple[str, str]] = []
    refused: tuple[str, int, bytes] | None = None
    for attempt, addr in enumerate(addrs):
        time.sleep(backoff(attempt))
        try:
            status, body = _get(addr, f"/api/v1/secrets/{args.path}{query}", headers, conn.cacert)
        except ConnectionFailed as exc:
            errors.append((addr, str(exc)))
            continue
        if status == 503 and len(addrs) > 1 and may_move_on_503("GET", _code(body)):
            refused = refused or (addr, status, body)
            continue
        break
    else:
        if refused is None:
            raise all_failed(errors)
        addr, status, body = refused
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = None
    if status >= 400:
        raise error_from_problem(doc if isinstance(doc, dict) else {}, status)
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
        raise ServerError(f"unexpected reply from {addr}")
    from keysafe.cli.refs import expand, has_refs

    if has_refs(doc["value"]):
        # ${...} references, read from the same server with the same token.
        doc["value"] = expand(args.path, doc["value"], lambda ref: _value(addr, ref, headers, conn))
    _print(doc, args)
    return 0


def _value(addr: str, path: str, headers: dict[str, str], conn: Connection) -> str:
    from keysafe.client._paths import check_path

    status, body = _get(addr, f"/api/v1/secrets/{check_path(path)}", headers, conn.cacert)
    try:
        doc = json.loads(body) if body else {}
    except ValueError:
        doc = None
    if status >= 400:
        raise error_from_problem(doc if isinstance(doc, dict) else {}, status)
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
        raise ServerError(f"unexpected reply from {addr}")
    return str(doc["value"])


def _get(addr: str, target: str, headers: dict[str, str], cacert: Path | None) -> tuple[int, bytes]:
    """One GET to ``addr``: (status, body); transport failures raise ConnectionFailed."""
    import ssl
    from http.client import HTTPConnection, HTTPException, HTTPSConnection
    from urllib.parse import urlsplit

    url = urlsplit(addr)
    target = url.path.rstrip("/") + target
    try:
        if url.scheme == "https":
            context = ssl.create_default_context(cafile=_ca_file(cacert))
            http: HTTPConnection = HTTPSConnection(url.netloc, timeout=10, context=context)
        else:
            http = HTTPConnection(url.netloc, timeout=10)
        try:
            http.request("GET", target, headers=headers)
            resp = http.getresponse()
            return resp.status, resp.read()
        finally:
            http.close()
    except ssl.SSLCertVerificationError as exc:
        raise ConnectionFailed(
            f"TLS verification of {addr} failed ({exc.verify_message}); "
            "set KEYSAFE_CACERT to the CA that signed the server's certificate"
        ) from exc
    except ssl.SSLError as exc:
        raise ConnectionFailed(f"TLS handshake with {addr} failed: {exc.reason or exc}") from exc
    except ConnectionRefusedError as exc:
        raise ConnectionFailed(
            f"cannot connect to {addr}: connection refused (is the server running?)"
        ) from exc
    except TimeoutError as exc:
        raise ConnectionFailed(f"timed out talking to {addr}") from exc
    except (OSError, HTTPException) as exc:
        raise ConnectionFailed(f"cannot connect to {addr}: {exc}") from exc


def _code(body: bytes) -> object:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    return doc.get("code") if isinstance(doc, dict) else None


def _ca_file(cacert: Path | None) -> str:
    if cacert is not None:
        return str(cacert)
    # Trust what the SDK (httpx) trusts, so that `get` and `list` never disagree.
    import certifi

    return certifi.where()


def _print(doc: dict[str, object], args: GetArgs) -> None:
    if args.as_json:
        keys = ("path", "version", "value", "metadata")
        out = {k: doc.get(k) for k in keys}
        out["metadata"] = out["metadata"] or {}  # same shape as the SDK's Secret
        text = json.dumps(out, indent=2, ensure_ascii=False) + "\n"
    else:
        text = str(doc["value"]) + ("\n" if args.newline else "")
    sys.stdout.write(text)
    sys.stdout.flush()
