"""``keysafe run`` hands its child the digests of the values (never the values), so the
child's logs are redacted by ``keysafe.redact`` without asking keysafe again."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.e2e.conftest import Vault

CHILD = """
import logging, os, sys
from keysafe.redact import RedactingFilter
handler = logging.StreamHandler(sys.stdout)
handler.addFilter(RedactingFilter())
log = logging.getLogger("app")
log.addHandler(handler)
log.warning("connecting with %s", os.environ["DB_PASSWORD"])
print("digests-only" if os.environ["DB_PASSWORD"] not in os.environ["KEYSAFE_REDACT"] else "LEAK")
"""


def test_run_child_logs_are_redacted(vault: Vault) -> None:
    value = "e2e-redact-value-0123"
    done = vault.run("secret", "set", "e2e/redact/DB_PASSWORD", stdin=value)
    assert done.returncode == 0, done.stderr
    run = vault.run("run", "--path", "e2e/redact", "--", sys.executable, "-c", CHILD)
    assert run.returncode == 0, run.stderr
    assert value not in run.stdout + run.stderr
    assert "connecting with [REDACTED:e2e/redact/DB_PASSWORD]" in run.stdout
    assert "digests-only" in run.stdout
