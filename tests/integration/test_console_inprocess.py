"""The web console over ASGI in process: headers, CSRF, forms, sealed state, switch-off.

The browser-level behaviour (sign-in with TOTP, editing, the read-only person) is in
``tests/e2e/test_console_browser.py``; these are the cheap checks on every database.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from vaultkit import Vault

from keysafe.server.app import create_app

pytestmark = pytest.mark.anyio

SAME_SITE = {"Sec-Fetch-Site": "same-origin", "Origin": "https://t"}


def _client(vault: Vault, ui: bool = True) -> httpx.AsyncClient:
    settings = vault.svc.settings.model_copy(update={"ui": ui})
    vault.svc.settings = settings
    app = create_app(settings, services=vault.svc)
    # https: the console's cookies are Secure.
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://t")


@pytest.fixture
async def browser(vault: Vault) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(vault) as client:
        yield client


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


async def _sign_in(browser: httpx.AsyncClient, token: str) -> str:
    page = await browser.get("/ui/login")
    reply = await browser.post(
        "/ui/login/token", data={"csrf": _csrf(page.text), "token": token}, headers=SAME_SITE
    )
    assert reply.status_code == 303, reply.text
    secrets = await browser.get("/ui/secrets")
    assert secrets.status_code == 200
    return _csrf(secrets.text)


async def test_every_answer_carries_the_security_headers(browser: httpx.AsyncClient) -> None:
    for url, status in (
        ("/ui/login", 200),
        ("/ui/static/console.css", 200),
        ("/ui/static/console.js", 200),
        ("/ui/static/../app.py", 404),
        ("/ui/nothing", 404),
        ("/ui/secrets", 303),  # not signed in: to the sign-in page
    ):
        reply = await browser.get(url)
        assert reply.status_code == status, url
        csp = reply.headers["content-security-policy"]
        assert "default-src 'none'" in csp, url
        assert "frame-ancestors 'none'" in csp, url
        assert "unsafe-inline" not in csp
        assert reply.headers["referrer-policy"] == "no-referrer", url
        assert reply.headers["cache-control"] == "no-store", url
    login = await browser.get("/ui/login")
    assert "<script>" not in login.text
    assert "style=" not in login.text
    assert "ks_console_csrf=" in login.headers["set-cookie"]
    assert "httponly" in login.headers["set-cookie"].lower()


async def test_csrf_origin_and_bad_forms_are_refused(
    vault: Vault, browser: httpx.AsyncClient
) -> None:
    await vault.svc.secrets.write(vault.root, "app/KEY", "the-value")
    csrf = await _sign_in(browser, vault.root_token)
    reveal = {"path": "app/KEY", "csrf": csrf}
    for data, headers in (
        ({"path": "app/KEY"}, SAME_SITE),  # no token
        ({**reveal, "csrf": "0" * 64}, SAME_SITE),  # a wrong one
        (reveal, {"Sec-Fetch-Site": "cross-site"}),  # another site's form
        (reveal, {"Origin": "https://evil.example"}),
    ):
        reply = await browser.post("/ui/secret/reveal", data=data, headers=headers)
        assert reply.status_code == 403, (data, headers)
        assert "the-value" not in reply.text
    ok = await browser.post("/ui/secret/reveal", data=reveal, headers=SAME_SITE)
    assert ok.status_code == 200
    assert "the-value" in ok.text
    page = await browser.get("/ui/secret", params={"path": "app/KEY"})
    assert "the-value" not in page.text  # only in the reveal's answer
    # Not a URL-encoded form, or too big: one clear refusal, never a 500.
    typed = await browser.post("/ui/secret/reveal", json=reveal, headers=SAME_SITE)
    assert typed.status_code == 400
    big = await browser.post(
        "/ui/secret/write",
        data={**reveal, "value": "x" * (4 * vault.svc.settings.max_value_bytes), "cas": "1"},
        headers=SAME_SITE,
    )
    assert big.status_code == 413
    events = vault.svc.audit.events(0, 10_000)
    assert any(e.event.operation == "console:csrf" for e in events)
    assert any(e.event.operation == "secret:read" and e.event.path == "app/KEY" for e in events)


async def test_folder_pages_list_children_with_their_metadata(
    vault: Vault, browser: httpx.AsyncClient
) -> None:
    for i in range(60):
        await vault.svc.secrets.write(vault.root, f"team/big/K{i:02d}", "v")
    await vault.svc.secrets.write(vault.root, "team/TOP", "v")
    await vault.svc.secrets.set_metadata(
        vault.root, "team/TOP", {"owner": "ops", "tags": {"env": "dev"}}
    )
    await _sign_in(browser, vault.root_token)
    team = (await browser.get("/ui/secrets", params={"folder": "team"})).text
    assert "big/</a>" in team
    assert "60 secrets" in team
    assert "env=dev" in team
    assert "ops" in team
    first = (await browser.get("/ui/secrets", params={"folder": "team/big/"})).text
    second = (await browser.get("/ui/secrets", params={"folder": "team/big/", "page": "2"})).text
    assert "K00" in first
    assert "K59" not in first
    assert "K59" in second
    assert "K00" not in second
    bad = await browser.get("/ui/secrets", params={"folder": "team//x"})
    assert bad.status_code == 400


async def test_a_rule_asking_for_a_recent_second_factor_offers_the_step_up(
    vault: Vault, browser: httpx.AsyncClient
) -> None:
    root = {"Authorization": f"Bearer {vault.root_token}"}
    policy = '[[rule]]\npath = "mfa/*"\ncapabilities = ["list"]\nmfa_within_minutes = 15\n'
    await vault.svc.secrets.write(vault.root, "mfa/KEY", "v")
    for url, body in (
        ("/api/v1/policies/ui-mfa", {"text": policy}),
        ("/api/v1/roles/ui-mfa", {"policies": ["ui-mfa"]}),
    ):
        assert (await browser.put(url, json=body, headers=root)).status_code == 200
    person = {"name": "dana", "password": "console step-up passphrase"}
    made = await browser.post("/api/v1/users", json={**person, "roles": ["ui-mfa"]}, headers=root)
    assert made.status_code == 200
    login = await browser.post("/api/v1/auth/login", json=person)
    session = {"Cookie": f"ks_console={login.json()['token']}"}
    page = await browser.get("/ui/secret", params={"path": "mfa/KEY"}, headers=session)
    assert page.status_code == 403
    assert 'action="/ui/mfa"' in page.text
    assert 'name="back" value="/ui/secret?path=mfa%2FKEY"' in page.text
    # dana has no TOTP enrolled: the step-up says so, in one line.
    proof = await browser.post(
        "/ui/mfa",
        data={"csrf": _csrf(page.text), "code": "123456", "back": "https://evil.example/"},
        headers={**SAME_SITE, **session},
    )
    assert proof.status_code == 400
    assert "no second factor enrolled" in proof.text


async def test_sign_in_with_a_wrong_token_is_refused_and_audited(
    vault: Vault, browser: httpx.AsyncClient
) -> None:
    page = await browser.get("/ui/login")
    reply = await browser.post(
        "/ui/login/token",
        data={"csrf": _csrf(page.text), "token": "ks_root_nope"},
        headers=SAME_SITE,
    )
    assert reply.status_code == 401
    assert "ks_console=" not in reply.headers.get("set-cookie", "")
    assert any(e.event.operation == "auth:token" for e in vault.svc.audit.events(0, 10_000))


async def test_sealed_vault_shows_the_sealed_page(vault: Vault, browser: httpx.AsyncClient) -> None:
    await _sign_in(browser, vault.root_token)
    vault.svc.system.seal()
    try:
        reply = await browser.get("/ui/secrets")
        assert reply.status_code == 503
        assert "The vault is sealed" in reply.text
        assert reply.headers["cache-control"] == "no-store"
        assert (await browser.get("/ui/static/console.css")).status_code == 200
        assert (await browser.get("/api/v1/secrets/app/KEY")).status_code == 503
    finally:
        vault.svc.system.unseal(key=vault.unseal_key)


async def test_the_console_can_be_turned_off(vault: Vault) -> None:
    async with _client(vault, ui=False) as client:
        assert (await client.get("/ui/login")).status_code == 404
        assert (await client.get("/ui/")).status_code == 404


async def test_audit_viewer_filters_and_verifies(vault: Vault, browser: httpx.AsyncClient) -> None:
    await vault.svc.secrets.write(vault.root, "aud/KEY", "v")
    csrf = await _sign_in(browser, vault.root_token)
    page = await browser.get("/ui/audit", params={"operation": "secret:write", "path": "aud/"})
    assert page.status_code == 200
    assert "aud/KEY" in page.text
    assert "auth:token" not in page.text
    later = await browser.get("/ui/audit", params={"path": "aud/", "since": "9999-01-01"})
    assert "aud/KEY" not in later.text
    bad = await browser.get("/ui/audit", params={"since": "yesterday"})
    assert bad.status_code == 400
    assert "since must be an ISO 8601" in bad.text
    verified = await browser.post("/ui/audit/verify", data={"csrf": csrf}, headers=SAME_SITE)
    assert verified.status_code == 200
    assert "Intact:" in verified.text
