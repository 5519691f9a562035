"""Schemathesis against the served OpenAPI document: every operation, on SQLite and
PostgreSQL, as root on a real unsealed ``keysafe server``. The document is the contract:
no answer may be a 500, or carry a status, media type or body the document does not
declare. Operations added later are fuzzed without anyone listing them here."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from server_proc import ServerProc, database_url, init_vault, running

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Both databases in about 3 minutes on two shared cores (12 examples: 218 s); the
# examples the document itself gives run as well.
MAX_EXAMPLES = 10


@pytest.fixture(scope="module", params=ENGINES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProc]:
    tmp = tmp_path_factory.mktemp(f"fuzz-{request.param}")
    with database_url(request.param, tmp) as url:
        vault = init_vault(request.param, tmp, url)
        with running(vault) as proc:
            yield proc


def _session(server: ServerProc) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would override verify
    session.verify = str(server.vault.tls.ca_cert)
    session.headers["Authorization"] = f"Bearer {server.vault.root_token}"
    return session


def _fuzz(
    operation: Any, session: requests.Session, server: ServerProc, after: Any = None
) -> list[str]:
    """Run the checks on ``MAX_EXAMPLES`` generated cases of ``operation`` (valid and
    invalid input), calling ``after()`` after each; the failures, as text."""
    failures: list[str] = []
    base_url, ca = server.base_url, str(server.vault.tls.ca_cert)

    for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(base_url=base_url, session=session, timeout=30, verify=ca)
            try:
                case.validate_response(response, checks=CHECKS)
            except (Exception, BaseExceptionGroup) as exc:  # a group of failed checks
                parts = getattr(exc, "exceptions", [exc])
                text = "; ".join(f"{type(e).__name__}: {e}" for e in parts)
                failures.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}"
                    f" {response.text[:300]!r}: {text[:1500]}"
                )
            if after is not None:
                after()

        try:
            run()
        except Unsatisfiable:
            pass  # nothing to make invalid: no parameters, no body
        except Exception as exc:  # generation itself failed: the document is at fault
            failures.append(f"{operation.label}: could not generate cases: {exc!r}"[:1500])
    return failures


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_schemathesis_finds_nothing(server: ServerProc) -> None:
    session = _session(server)
    doc = session.get(f"{server.base_url}/api/v1/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 80

    def unseal() -> None:
        """Sealing would stop every later case short at 503: unseal, and wait out the
        server's seal poller (every 0.5 s), which may still act on the sealed flag."""
        session.post(
            f"{server.base_url}/api/v1/sys/unseal",
            json={"key": server.vault.unseal_key},
            timeout=30,
        )
        time.sleep(1.2)
        for _ in range(100):
            if session.get(f"{server.base_url}/api/v1/sys/health", timeout=30).ok:
                return
            time.sleep(0.1)

    failures: list[str] = []
    for operation in operations:
        seals = operation.definition.raw.get("operationId") == "sys_seal"
        failures += _fuzz(operation, session, server, unseal if seals else None)
    health = session.get(f"{server.base_url}/api/v1/sys/health", timeout=30)
    assert health.status_code == 200, "the server must stay up and unsealed"
    assert not failures, f"{len(failures)} failure(s):\n" + "\n\n".join(failures[:20])
