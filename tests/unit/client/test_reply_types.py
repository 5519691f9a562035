"""The SDK's reply types are the server's reply models, regenerated: they cannot drift."""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

from keysafe.client import Client, types

ROOT = Path(__file__).resolve().parents[3]


def test_reply_types_match_the_server_models() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_sdk_types.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_admin_methods_return_typed_replies() -> None:
    # Every method but a handful of documented exceptions names its reply's shape.
    untyped = {"secret_label", "open_incident"}  # label: a secret; incident: plan or record
    loose = []
    for name in dir(Client):
        member = getattr(Client, name)
        if name.startswith("_") or name in untyped or not callable(member):
            continue
        hints = typing.get_type_hints(member, localns=vars(types))
        ret = str(hints.get("return", ""))
        if "dict[str, typing.Any]" in ret:
            loose.append(name)
    assert loose == []
