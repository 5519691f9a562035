"""Token-mode authorisation: deny by default, prefix-bound, root-only admin."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keysafe.access.models import Principal, authorize

ROOT = Principal("tok_root", "root", "root", "", None)
READ = Principal("tok_r", "scoped", "read", "payments/dev/", None)
WRITE = Principal("tok_w", "scoped", "write", "payments/", None)


@pytest.mark.parametrize(
    ("principal", "capability", "path", "allowed"),
    [
        (ROOT, "admin", "", True),
        (ROOT, "destroy", "any/path", True),
        (READ, "read", "payments/dev/DB", True),
        (READ, "list", "payments/dev/", True),
        (READ, "write", "payments/dev/DB", False),
        (READ, "read", "payments/prod/DB", False),
        (READ, "read", "payments/dev", False),
        (READ, "admin", "", False),
        (WRITE, "write", "payments/prod/DB", True),
        (WRITE, "destroy", "payments/prod/DB", True),
        (WRITE, "read", "billing/DB", False),
        (WRITE, "admin", "", False),
    ],
)
def test_decisions(principal: Principal, capability: str, path: str, allowed: bool) -> None:
    decision = authorize(principal, capability, path)
    assert bool(decision) is allowed
    assert decision.reason


@given(
    mode=st.sampled_from(["read", "write", "bogus"]),
    prefix=st.text(min_size=1, max_size=10),
    path=st.text(max_size=20),
    capability=st.sampled_from(["read", "list", "write", "delete", "destroy", "admin"]),
)
def test_scoped_tokens_never_reach_outside_their_prefix(
    mode: str, prefix: str, path: str, capability: str
) -> None:
    decision = authorize(Principal("t", "scoped", mode, prefix, None), capability, path)
    if not path.startswith(prefix) or capability == "admin" or mode == "bogus":
        assert not decision
