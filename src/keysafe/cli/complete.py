"""Shell completion of secret paths, asked of the server (never values).

Runs inside the shell's completion hook, so it must never hang a prompt or print an
error: one short request (2 s), and on any failure simply no suggestions.
"""

from __future__ import annotations

TIMEOUT_SECONDS = 2.0
MAX_SUGGESTIONS = 200


def secret_paths(incomplete: str) -> list[str]:
    """Paths and folders (ending in ``/``) one level below what has been typed."""
    folder = incomplete.rsplit("/", 1)[0] + "/" if "/" in incomplete else ""
    try:
        from keysafe.cli.context import State
        from keysafe.client import Client

        conn = State().connection()
        with Client(conn.addr, conn.token, conn.cacert, timeout=TIMEOUT_SECONDS) as client:
            entries = client.list_secrets(folder, recursive=True, values=False)
    except Exception:  # a completion hook must stay silent
        return []
    found: set[str] = set()
    for entry in entries:
        rest = entry.path[len(folder) :]
        head, sep, _ = rest.partition("/")
        found.add(folder + head + sep)
    return sorted(p for p in found if p.startswith(incomplete))[:MAX_SUGGESTIONS]
