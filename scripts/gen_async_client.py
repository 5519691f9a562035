"""Write the async client's API methods from the blocking client's (unasync).

Each ``src/keysafe/client/_sync_<area>.py`` becomes ``_async_<area>.py``: methods turn
into coroutines and every call of the client's plumbing is awaited. Request building and
reply parsing therefore exist once, in the blocking source. Run after changing a
``_sync_*.py`` file; ``--check`` exits 1 when a generated file is out of date
(tests/unit/client/test_async_generated.py runs it).

Usage: python scripts/gen_async_client.py [--check]
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

CLIENT = Path(__file__).resolve().parent.parent / "src" / "keysafe" / "client"
AREAS = ("secrets", "system", "access", "ops")
# The plumbing and API methods that do I/O: awaited in the async client.
AWAITED = ("_json", "_request", "_send", "_text", "_fetch_secret", "get_secret", "refresh", "get")
_CALL = re.compile(r"(?<!await )\bself\.(" + "|".join(AWAITED) + r")\(")
_DEF = re.compile(r"^    def ", re.M)
_DOC = re.compile(r'\A"""(.*?)"""', re.S)


def convert(source: str, area: str) -> str:
    """The async module for the blocking module ``source`` of ``area``."""
    doc = (
        f'"""Generated from _sync_{area}.py by scripts/gen_async_client.py: do not edit.\n\n'
        f'The methods of the async client; see that file for what each one does."""'
    )
    out = _DOC.sub(lambda _m: doc, source, count=1)
    out = out.replace(
        "from keysafe.client._sync_core import SyncCore",
        "from keysafe.client._async_core import AsyncCore",
    )
    out = re.sub(r"class Sync(\w+)\(SyncCore\)", r"class Async\1(AsyncCore)", out)
    out = _DEF.sub("    async def ", out)
    return _CALL.sub(r"await self.\1(", out)


def formatted(text: str) -> str:
    """``text`` with imports sorted and formatted by ruff (as the rest of the code)."""
    ruff = [sys.executable, "-m", "ruff"]
    for step in (["check", "--fix", "--select", "I", "--quiet"], ["format"]):
        done = subprocess.run(
            [*ruff, *step, "--stdin-filename", str(CLIENT / "generated.py"), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
        )
        text = done.stdout
    return text


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for area in AREAS:
        source = (CLIENT / f"_sync_{area}.py").read_text(encoding="utf-8")
        target = CLIENT / f"_async_{area}.py"
        text = formatted(convert(source, area))
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if text != current:
            stale.append(target.name)
            if not check:
                target.write_text(text, encoding="utf-8")
    if check and stale:
        print(f"out of date: {', '.join(stale)}; run python scripts/gen_async_client.py")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
