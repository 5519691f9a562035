"""The SDK's public surface is exactly what was meant (httpx's habit)."""

from __future__ import annotations

import keysafe.client

EXPECTED = {
    "AsyncClient",
    "AuditReport",
    "Client",
    "Health",
    "InitResult",
    "IssuedToken",
    "RewrapProgress",
    "SealStatus",
    "Secret",
    "SecretEntry",
    "SecretHistory",
    "SecretMetadata",
    "SecretVersion",
    "TokenInfo",
}


def test_all_is_exactly_the_public_surface() -> None:
    assert set(keysafe.client.__all__) == EXPECTED
    assert len(keysafe.client.__all__) == len(EXPECTED)


def test_every_exported_name_resolves_to_a_public_class() -> None:
    for name in keysafe.client.__all__:
        member = getattr(keysafe.client, name)
        assert member.__name__ == name
        assert member.__module__.startswith("keysafe.client.")


def test_dir_lists_only_the_public_names() -> None:
    public = {name for name in dir(keysafe.client) if not name.startswith("_")}
    assert public == EXPECTED


def test_sdk_imports_nothing_server_side() -> None:
    import subprocess
    import sys

    code = (
        "import sys, keysafe.client as c; c.Client; "
        "bad = [m for m in sys.modules if m.split('.')[:2] in (['keysafe', 'server'], "
        "['keysafe', 'cli']) or m.split('.')[0] in ('fastapi', 'sqlalchemy', 'uvicorn')]; "
        "print(bad); sys.exit(bool(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
