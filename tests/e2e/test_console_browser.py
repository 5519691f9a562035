"""The web console in a real browser: the system's Chromium driven by Playwright against
the session's real ``keysafe up`` (HTTPS, two workers).

Two people: ``cora`` (TOTP enrolled; writes under ``uiapp/``, edits policies, reads
audit) and ``bram`` (read and list on ``uiapp/dev/*`` only, password only).
Screenshots of each page land in ``KEYSAFE_TEST_ARTIFACTS`` when set (CI keeps them),
else in the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pyotp
import pytest

from keysafe.cli.profile import read_profile

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page
    from tests.e2e.conftest import Vault

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
PASSWORD = "console browser passphrase"
CORA_POLICY = """
[[rule]]
path = "uiapp/**"
capabilities = ["read", "list", "write", "delete", "destroy"]

[[rule]]
path = "sys/policy"
capabilities = ["admin"]

[[rule]]
path = "sys/audit"
capabilities = ["read-audit"]
"""
BRAM_POLICY = '[[rule]]\npath = "uiapp/dev/*"\ncapabilities = ["read", "list"]\n'
SECRET = "uiapp/dev/DB_PASSWORD"
CSP_WORDS = ("Content Security Policy", "Content-Security-Policy")


@pytest.fixture(scope="module")
def api(vault: Vault) -> Iterator[httpx.Client]:
    profile = read_profile(vault.home / "profile.toml")
    with httpx.Client(
        base_url=vault.addr,
        verify=ssl.create_default_context(cafile=str(vault.home / "tls" / "ca.pem")),
        headers={"Authorization": f"Bearer {profile['token']}"},
        timeout=30,
    ) as client:
        yield client


def _ok(reply: httpx.Response) -> Any:
    assert reply.status_code < 300, reply.text
    return reply.json() if reply.content else None


@pytest.fixture(scope="module")
def people(api: httpx.Client, vault: Vault) -> pyotp.TOTP:
    """Policies, roles, the two people, cora's TOTP device; one secret at version 1."""
    for name, text in (("ui-cora", CORA_POLICY), ("ui-bram", BRAM_POLICY)):
        _ok(api.put(f"/api/v1/policies/{name}", json={"text": text}))
        _ok(api.put(f"/api/v1/roles/{name}", json={"policies": [name]}))
        person = name.removeprefix("ui-")
        _ok(api.post("/api/v1/users", json={"name": person, "password": PASSWORD, "roles": [name]}))
    _ok(api.put(f"/api/v1/secrets/{SECRET}", json={"value": "first-value-1"}))
    _ok(api.put("/api/v1/secrets/uiapp/prod/API_KEY", json={"value": "prod-value-1"}))
    # Enrol cora's TOTP through the API, confirming with the previous step's code so
    # that the current one is still fresh for the browser.
    login = _ok(api.post("/api/v1/auth/login", json={"name": "cora", "password": PASSWORD}))
    session = {"Authorization": f"Bearer {login['token']}"}
    begun = _ok(api.post("/api/v1/auth/totp", json={"password": PASSWORD}, headers=session))
    device = pyotp.TOTP(begun["secret"])
    code = device.at(time.time() - 30)
    _ok(api.post("/api/v1/auth/totp/confirm", json={"code": code}, headers=session))
    return device


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is missing: .ci/run installs it")
        pytest.skip("chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as play:
        launched = play.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # keysafe up's certificate comes from its own local CA, unknown to Chromium.
    made = browser.new_context(ignore_https_errors=True)
    try:
        yield made
    finally:
        made.close()


class Watch:
    """Every page's CSP header and the browser console's CSP complaints."""

    def __init__(self, page: Page) -> None:
        self.violations: list[str] = []
        self.csp: list[str | None] = []
        page.on("console", self._console)
        page.on("response", self._response)

    def _console(self, message: Any) -> None:
        if any(word in message.text for word in CSP_WORDS):
            self.violations.append(message.text)

    def _response(self, response: Any) -> None:
        if "/ui" in response.url and response.request.resource_type == "document":
            self.csp.append(response.headers.get("content-security-policy"))


def _shot(page: Page, folder: Path, name: str) -> None:
    kept = os.environ.get("KEYSAFE_TEST_ARTIFACTS")
    where = Path(kept) / "console" if kept else folder
    where.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(where / f"{name}.png"), full_page=True)


def _sign_in(page: Page, addr: str, name: str, code: str = "") -> None:
    page.goto(f"{addr}/ui/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    if code:
        page.fill("#code", code)
    with page.expect_navigation():
        page.click("form[action='/ui/login'] button[type=submit]")


def _events(api: httpx.Client) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        batch = _ok(api.get("/api/v1/audit/events", params={"after": after, "limit": 1000}))
        found += batch["events"]
        if len(batch["events"]) < 1000:
            return found
        after = batch["events"][-1]["seq"]


def _value(api: httpx.Client, path: str) -> tuple[int, str]:
    doc = _ok(api.get(f"/api/v1/secrets/{path}"))
    return doc["version"], doc["value"]


def test_person_signs_in_with_totp_and_works_on_a_secret(
    vault: Vault,
    api: httpx.Client,
    people: pyotp.TOTP,
    context: BrowserContext,
    tmp_path: Path,
) -> None:
    page = context.new_page()
    watch = Watch(page)
    _sign_in(page, vault.addr, "cora", "000000")
    assert "/ui/login" in page.url
    assert page.locator(".error").inner_text() == "invalid name, password or second factor"
    assert not [c for c in context.cookies() if c["name"] == "ks_console"]

    _sign_in(page, vault.addr, "cora", people.now())
    assert page.url.endswith("/ui/secrets")
    cookie = next(c for c in context.cookies() if c["name"] == "ks_console")
    assert cookie["value"].startswith("ks_sess_")
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"], cookie["path"]) == (
        True,
        True,
        "Strict",
        "/ui",
    )
    # Nothing the page's scripts can reach holds the credential.
    assert page.evaluate("document.cookie") == ""
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0

    # Browse: folder, sub-folder, the secret.
    page.goto(f"{vault.addr}/ui/secrets?folder=uiapp/")
    _shot(page, tmp_path, "folder")
    with page.expect_navigation():
        page.click("text=dev/")
    with page.expect_navigation():
        page.click("text=DB_PASSWORD")
    assert "first-value-1" not in page.content()  # masked until "reveal"
    _shot(page, tmp_path, "secret")
    with page.expect_navigation():
        page.click("#reveal")
    assert page.locator("#value").inner_text() == "first-value-1"
    reads = [
        e
        for e in _events(api)
        if e["operation"] == "secret:read" and e["path"] == SECRET and e["actor"] == "user:cora"
    ]
    assert reads, "the reveal was not audited as a read"
    assert all("first-value-1" not in str(e) for e in _events(api))

    # Two editors open version 1; the first save wins, the second is refused and kept.
    other = context.new_page()
    other.goto(f"{vault.addr}/ui/secret?path={SECRET}")
    page.goto(f"{vault.addr}/ui/secret?path={SECRET}")
    page.fill("#edit-value", "second-value-2")
    with page.expect_navigation():
        page.click("#save")
    assert page.locator(".note").inner_text() == "Saved as a new version."
    other.fill("#edit-value", "stale-value")
    with other.expect_navigation() as stale:
        other.click("#save")
    response = stale.value
    assert response is not None
    assert response.status == 409
    assert "someone saved a newer version" in other.locator(".error").inner_text()
    assert other.locator("#edit-value").input_value() == "stale-value"  # nothing lost
    assert _value(api, SECRET) == (2, "second-value-2")

    # Roll back to version 1: a new version 3 holding version 1's value.
    with page.expect_navigation():
        page.click("button[aria-label='Roll back to version 1']")
    assert _value(api, SECRET) == (3, "first-value-1")

    # Destroy version 2: a wrong confirmation is refused, the path typed destroys it.
    page.click("tr:has(td:text-is('2')) summary")
    page.fill("#confirm-2", "wrong")
    with page.expect_navigation() as refused:
        page.click("button:text-is('Destroy version 2')")
    assert refused.value is not None
    assert refused.value.status == 400
    page.goto(f"{vault.addr}/ui/secret?path={SECRET}")
    page.click("tr:has(td:text-is('2')) summary")
    page.fill("#confirm-2", SECRET)
    with page.expect_navigation():
        page.click("button:text-is('Destroy version 2')")
    history = _ok(api.get(f"/api/v1/secrets/{SECRET}:history"))
    assert next(v for v in history["versions"] if v["version"] == 2)["destroyed"] is True

    # Policies: a syntax error names its line; "check" names the deciding rule.
    page.goto(f"{vault.addr}/ui/policy?name=ui-bram")
    _shot(page, tmp_path, "policy")
    page.fill("#policy-text", BRAM_POLICY + "\n[[rule]]\npath = \n")
    # The live check (the server's parser) names the line before saving.
    page.locator("#policy-live", has_text="Line 6").wait_for()
    with page.expect_navigation() as bad:
        page.click("text=Save policy")
    assert bad.value is not None
    assert bad.value.status == 400
    assert page.locator("#policy-error").inner_text().startswith("Line 6:")
    assert _ok(api.get("/api/v1/policies/ui-bram"))["text"] == BRAM_POLICY  # unchanged
    page.goto(f"{vault.addr}/ui/policy?name=ui-bram")
    page.fill("#check-path", "uiapp/dev/X")
    page.select_option("#check-cap", "read")
    with page.expect_navigation():
        page.click("#check")
    result = page.locator("#check-result").inner_text()
    assert "Allowed" in result
    assert "Deciding rule: policy ui-bram, rule 1 (line 1)" in result

    # Audit viewer with a filter, and the chain verified.
    page.goto(f"{vault.addr}/ui/audit?actor=user:cora&operation=secret:read")
    _shot(page, tmp_path, "audit")
    assert page.locator("tbody tr").count() >= 1
    with page.expect_navigation():
        page.click("#verify")
    assert page.locator("#verify-result").inner_text().startswith("Intact")

    assert watch.violations == []
    assert watch.csp
    assert all(c and "script-src 'self'" in c for c in watch.csp)
    assert page.evaluate("document.querySelectorAll('script:not([src]), [style]').length") == 0


def test_read_only_person_sees_and_does_no_writes(
    vault: Vault, api: httpx.Client, people: pyotp.TOTP, context: BrowserContext
) -> None:
    page = context.new_page()
    _sign_in(page, vault.addr, "bram")
    page.goto(f"{vault.addr}/ui/secret?path={SECRET}")
    assert page.locator("#reveal").count() == 1
    for hidden in ("#save", "text=Delete latest version", "summary:text('Destroy')"):
        assert page.locator(hidden).count() == 0, hidden
    assert page.locator("a:text('Policies'), a:text('Audit')").count() == 0
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    before = _value(api, SECRET)

    # Forged posts with bram's own valid token: the server refuses them anyway.
    origin = {"Origin": vault.addr}
    for url, form in (
        ("/ui/secret/write", {"path": SECRET, "value": "forged", "cas": str(before[0])}),
        ("/ui/secret/destroy", {"path": SECRET, "version": "1", "confirm": SECRET}),
        ("/ui/secret/reveal", {"path": "uiapp/prod/API_KEY"}),
        ("/ui/policy", {"name": "ui-bram", "text": '[[rule]]\npath="**"\ncapabilities=["read"]'}),
    ):
        reply = page.request.post(
            f"{vault.addr}{url}", form={**form, "csrf": csrf or ""}, headers=origin
        )
        assert reply.status == 403, (url, reply.status)
        assert "prod-value-1" not in reply.text()
    assert _value(api, SECRET) == before
    assert _ok(api.get("/api/v1/policies/ui-bram"))["text"] == BRAM_POLICY
    page.goto(f"{vault.addr}/ui/secrets?folder=uiapp/prod/")
    assert "API_KEY" not in page.content()


def test_csrf_and_logout(
    vault: Vault, api: httpx.Client, people: pyotp.TOTP, context: BrowserContext
) -> None:
    page = context.new_page()
    _sign_in(page, vault.addr, "bram")
    assert page.url.endswith("/ui/secrets")
    token = next(c["value"] for c in context.cookies() if c["name"] == "ks_console")
    target = f"{vault.addr}/ui/secret/reveal"
    same_site = {"Origin": vault.addr}
    # The session cookie alone (no CSRF token, or a wrong one) is refused.
    for form in ({"path": SECRET}, {"path": SECRET, "csrf": "0" * 64}):
        reply = page.request.post(target, form=form, headers=same_site)
        assert reply.status == 403
        assert "first-value-1" not in reply.text()
    # Another site's form, even carrying a token, is refused by its origin.
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content") or ""
    cross = page.request.post(
        target, form={"path": SECRET, "csrf": csrf}, headers={"Origin": "https://evil.example"}
    )
    assert cross.status == 403
    # Sign-in itself needs its form's token.
    assert page.request.post(f"{vault.addr}/ui/login", form={"name": "bram"}).status == 403

    with page.expect_navigation():
        page.click("text=Sign out")
    assert page.url.endswith("/ui/login")
    # The session is over on the server, not only in this browser.
    reply = api.get("/api/v1/auth/self", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code == 401
    page.goto(f"{vault.addr}/ui/secrets")
    assert page.url.endswith("/ui/login")
