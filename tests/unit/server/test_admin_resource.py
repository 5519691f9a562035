"""Which capability on which ``sys/`` path each administrative operation needs."""

from __future__ import annotations

import pytest

from keysafe.server.deps import admin_resource


@pytest.mark.parametrize(
    ("operation", "capability", "path"),
    [
        ("key:create", "manage-keys", "sys/key"),
        ("key:revoke", "manage-keys", "sys/key"),
        ("audit:read", "read-audit", "sys/audit"),
        ("audit:verify", "read-audit", "sys/audit"),
        ("alert:list", "read-audit", "sys/alert"),
        # Changing what alerts do is administration, even in a read-audit area.
        ("alert:hook-add", "admin", "sys/alert"),
        ("incident:open", "admin", "sys/incident"),
        ("policy:write", "admin", "sys/policy"),
        ("token:create", "admin", "sys/token"),
        ("user:unlock", "admin", "sys/user"),
        ("sys:seal", "admin", "sys/seal"),
        ("sys:rotate-key", "admin", "sys/rotate-key"),
    ],
)
def test_admin_resource(operation: str, capability: str, path: str) -> None:
    assert admin_resource(operation) == (capability, path)
