"""Opt-in verification (``keysafe scan --verify``): is a found credential live?

For each provider where one harmless read-only call proves a credential works, the
call is made once per distinct secret: ``live`` when the provider accepts it,
``revoked`` when it refuses it (401/403, or Slack's ``invalid_auth``), ``unknown``
otherwise (timeout, 5xx, rate limit, no probe for the rule). There are no retries, so a
scan can never lock an account out; every call has a timeout and at most ``workers``
run at once. Redirects are never followed and endpoints must be HTTPS, so a secret is
only ever sent to the provider's own API (or to an endpoint the user configured, which
is how the tests reach local fakes on loopback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from keysafe.errors import InvalidInput
from keysafe.scan.models import Finding

LIVE, REVOKED, UNKNOWN = "live", "revoked", "unknown"


@dataclass(frozen=True)
class Probe:
    """One read-only call: where, how the secret is presented, how to read the answer."""

    provider: str
    base: str
    method: str
    path: str
    headers: Callable[[str], dict[str, str]]
    # Reads a 200 answer's JSON; None: any 200 means live.
    judge: Callable[[Any], str] | None = None


def _bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _slack(doc: Any) -> str:
    if isinstance(doc, dict) and doc.get("ok") is True:
        return LIVE
    error = doc.get("error") if isinstance(doc, dict) else None
    revoked = ("invalid_auth", "token_revoked", "account_inactive", "not_authed")
    return REVOKED if error in revoked else UNKNOWN


_GITHUB = Probe(
    "github",
    "https://api.github.com",
    "GET",
    "/user",
    lambda s: {"Authorization": f"token {s}", "Accept": "application/vnd.github+json"},
)
PROBES: dict[str, Probe] = {
    "github-token": _GITHUB,
    "github-fine-grained-token": _GITHUB,
    "gitlab-token": Probe(
        "gitlab",
        "https://gitlab.com",
        "GET",
        "/api/v4/personal_access_tokens/self",
        lambda s: {"PRIVATE-TOKEN": s},
    ),
    "slack-token": Probe("slack", "https://slack.com", "POST", "/api/auth.test", _bearer, _slack),
    "stripe-secret-key": Probe("stripe", "https://api.stripe.com", "GET", "/v1/balance", _bearer),
    "openai-api-key": Probe("openai", "https://api.openai.com", "GET", "/v1/models", _bearer),
    "anthropic-api-key": Probe(
        "anthropic",
        "https://api.anthropic.com",
        "GET",
        "/v1/models",
        lambda s: {"x-api-key": s, "anthropic-version": "2023-06-01"},
    ),
    "sendgrid-api-key": Probe("sendgrid", "https://api.sendgrid.com", "GET", "/v3/scopes", _bearer),
}
PROVIDERS = sorted({p.provider for p in PROBES.values()})


def parse_endpoints(pairs: Sequence[str]) -> dict[str, str]:
    """``NAME=https://host`` options as a dict; raises InvalidInput naming a bad one."""
    endpoints: dict[str, str] = {}
    for pair in pairs:
        name, sep, url = pair.partition("=")
        if not sep or name not in PROVIDERS:
            raise InvalidInput(
                f"--verify-endpoint {pair!r}: expected NAME=URL with NAME one of "
                + ", ".join(PROVIDERS)
            )
        if not url.startswith("https://"):
            raise InvalidInput(f"--verify-endpoint {pair!r}: the URL must be https://")
        endpoints[name] = url.rstrip("/")
    return endpoints


def verify(
    findings: Sequence[Finding],
    *,
    endpoints: dict[str, str] | None = None,
    timeout: float = 5.0,
    workers: int = 4,
) -> None:
    """Set ``verification`` on every finding: one call per distinct (probe, secret)."""
    import httpx  # only --verify pays for the HTTP client

    endpoints = endpoints or {}
    wanted: dict[tuple[str, str], Probe] = {}
    for finding in findings:
        probe = PROBES.get(finding.rule)
        if probe is not None:
            wanted[(probe.provider, finding.secret)] = probe
    # trust_env: SSL_CERT_FILE may name a private CA; proxies from the environment too.
    with httpx.Client(timeout=timeout, follow_redirects=False, trust_env=True) as client:

        def call(key: tuple[str, str]) -> str:
            probe = wanted[key]
            url = endpoints.get(probe.provider, probe.base) + probe.path
            try:
                reply = client.request(probe.method, url, headers=probe.headers(key[1]))
            except httpx.HTTPError:
                return UNKNOWN
            if reply.status_code in (401, 403):
                return REVOKED
            if reply.status_code != 200:
                return UNKNOWN
            if probe.judge is None:
                return LIVE
            try:
                return probe.judge(reply.json())
            except ValueError:
                return UNKNOWN

        keys = list(wanted)
        with ThreadPoolExecutor(max(1, workers)) as pool:
            outcome = dict(zip(keys, pool.map(call, keys), strict=True))
    for finding in findings:
        probe = PROBES.get(finding.rule)
        key = (probe.provider, finding.secret) if probe is not None else None
        finding.verification = outcome.get(key, UNKNOWN) if key is not None else UNKNOWN
