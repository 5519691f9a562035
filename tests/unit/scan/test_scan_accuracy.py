"""Accuracy fixes met on real code and real config files (scanner v2, issue 14)."""

from __future__ import annotations

import pytest
from scan_fakes import B62, HEX, URLSAFE, Fakes

from keysafe.scan.engine import Engine
from keysafe.scan.models import Location
from keysafe.scan.rules import builtin_rules

F = Fakes(seed=31)
ENGINE = Engine(builtin_rules())
RANDOM62 = "kZAYulMA52zoD63LTQmQ1OapQIM6OT2iosIvSYmO"
README_JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9l"
    "IiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
DO = "dop_v1_" + F.pick(HEX, 64)
TELEGRAM = "5512345678:AAH" + F.pick(URLSAFE, 32)

# (text, rule expected or None for "nothing reported", secret expected or None)
CASES: list[tuple[str, str | None, str | None]] = [
    # 1. unquoted .env / YAML values, hex passwords, JDBC query passwords
    (f"API_KEY={RANDOM62}", "generic-secret-assignment", RANDOM62),
    (f"api_key: {RANDOM62}", "generic-secret-assignment", RANDOM62),
    ("DB_PASSWORD=9f86d081884c7d659a2feaa0c55ad015", "generic-secret-assignment", None),
    ('DB_PASSWORD="9f86d081884c7d659a2feaa0c55ad015"', "generic-secret-assignment", None),
    (
        "url=jdbc:mysql://db:3306/app?user=app&password=Kq7xVb9Lm2&useSSL=true",
        "generic-secret-assignment",
        "Kq7xVb9Lm2",
    ),
    ("SESSION_SECRET=Kq7xVb9Lm2pQ8rT", "generic-secret-assignment", "Kq7xVb9Lm2pQ8rT"),
    # 2. providers
    (f"DIGITALOCEAN_TOKEN={DO}", "digitalocean-token", DO),
    (f"t = 'doo_v1_{F.pick(HEX, 64)}'", "digitalocean-token", None),
    (f"refresh: dor_v1_{F.pick(HEX, 64)}", "digitalocean-token", None),
    (f"SHOPIFY_TOKEN=shpat_{F.pick(HEX, 32)}", "shopify-token", None),
    (f"secret: shpss_{F.pick(HEX, 32)}", "shopify-token", None),
    (f"x = 'shpca_{F.pick(HEX, 32)}'", "shopify-token", None),
    (f"x = 'shppa_{F.pick(HEX, 32)}'", "shopify-token", None),
    (f"TELEGRAM_BOT_TOKEN={TELEGRAM}", "telegram-bot-token", TELEGRAM),
    (f"bot = Bot('{TELEGRAM}')", "telegram-bot-token", TELEGRAM),
    (f"VAULT_TOKEN=hvs.{F.pick(URLSAFE, 90)}", "vault-token", None),
    (f"token: hvb.{F.pick(URLSAFE, 130)}", "vault-token", None),
    (f"export VAULT_TOKEN=s.{F.pick(B62, 24)}", "vault-token", None),
    (f'-H "X-Vault-Token: s.{F.pick(B62, 24)}"', "vault-token", None),
    # 3. URL credentials
    (f"REDIS_URL=redis://:{F.pick(B62, 20)}@cache:6379/0", "database-connection-string", None),
    ("DATABASE_URL=postgres://app:$Kq7xVb9Lm2@db/app", "database-connection-string", None),
    ("dsn = postgres://app:pa'Kq7xVb9Lm2@db/app", "database-connection-string", None),
    ("https://deploy:Kq7x,Vb9Lm2@git.acme.io/x.git", "url-credentials", "Kq7x,Vb9Lm2"),
    ("https://:ghx7Kq9Vb2Lm4@git.acme.io/x.git", "url-credentials", None),
    # 4. false positives on real code
    ("engine = create_engine('postgresql://scott:tiger@localhost/test')", None, None),
    ("url = 'mysql+pymysql://scott:tiger@localhost/foo?charset=utf8mb4'", None, None),
    ("redis://[[username]:[password]]@localhost:6379/0", None, None),
    ("rediss://[[username]:[password]]@host:6380", None, None),
    ("    private_key: MLDSA44Ed25519PrivateKey,", None, None),
    ("def sign(self, private_key: Ed448PrivateKey) -> bytes:", None, None),
    ("secret_key: X25519PrivateKey = field()", None, None),
    (f"Authorization: Bearer {README_JWT}", None, None),
    (f"token = '{README_JWT}'", None, None),
    ('    "prompt_for_secret()",', None, None),
    ("    return prompt_for_secret()", None, None),
    ("e.token=F.isWritable=F.isReadable=F.isStream=void 0", None, None),
    ("password = getPasswordFromKeyring", None, None),
    ("url = 'http://user:password@host'", None, None),
    ("https://{user}:{password}@host/", None, None),
    ("url = 'http://%s:%s@%s' % (user, pw, host)", None, None),
    ('    AuthLoginPasswordChallenge = "Password\\x00"', None, None),
    (":param uri: uri of the form ``mongodb://[user:password]@host:port?...``,", None, None),
    ("mhu = MultiHostUrl('https://foo.com:123,foo:bar@bar.com/path')", None, None),
    ("mssql+pyodbc://scott:tiger^5HHH@mssql2017:1433/test", None, None),
    ("url = 'https://user:a%20secret@example.org'", None, None),
    ('el("label",{},"password:"),fe?Re.createElement("code",null," ",this)', None, None),
    ('Y.auth=Y.password?Y.username+":"+Y.password:Y.username', None, None),
    ('let ee={url:"",credentials:B&&B.withCredentials?"include":"same-origin"}', None, None),
    ('"basic_auth": ".legacy.auth",', None, None),
    (
        '"sourcesContent":["const x = 1;\\nexport const secret=swaggerUIRedirectOauth2\\n"]',
        None,
        None,
    ),
]


@pytest.mark.parametrize(("text", "rule", "secret"), CASES)
def test_accuracy_case(text: str, rule: str | None, secret: str | None) -> None:
    found = ENGINE.scan_text(text, Location("config.env"))
    if rule is None:
        assert found == [], [(f.rule, f.secret) for f in found]
        return
    assert [f.rule for f in found] == [rule], [(f.rule, f.secret) for f in found]
    if secret is not None:
        assert found[0].secret == secret


def test_glued_provider_prefixes_are_not_dropped_as_identifiers() -> None:
    # The generic rule discarded dop_v1_/shpat_ values as identifiers; now the
    # provider rule reports them and the generic one yields.
    text = f"API_TOKEN={DO}"
    assert [f.rule for f in ENGINE.scan_text(text, Location("a.env"))] == ["digitalocean-token"]


def test_b62_alphabet_helper_is_used() -> None:
    assert set(F.pick(B62, 50)) <= set(B62)


def test_indented_pem_with_a_short_last_line() -> None:
    body = F.pem("RSA ").splitlines()
    lines = [*body[:-2], body[-2][:10], body[-1]]  # last base64 line cut short
    text = "key: |\n" + "\n".join("    " + line for line in lines) + "\n"
    assert [f.rule for f in ENGINE.scan_text(text, Location("values.yaml"))] == ["private-key"]


def test_two_glued_github_tokens_are_both_found() -> None:
    first, second = F.github(), F.github()
    found = ENGINE.scan_text(f"T={first}{second}", Location("a.env"))
    assert [f.secret for f in found] == [first, second]


# (text, reported?): inline allow markers.
ALLOWS: list[tuple[str, bool]] = [
    ("T = '{t}'  # keysafe:allow", False),
    ("T = '{t}'  # KEYSAFE:ALLOW", False),
    ("T = '{t}'  # gitleaks:allow", False),
    ("# keysafe:allow (test fixture)\nT = '{t}'", False),
    ("// gitleaks:allow\nconst t = '{t}'", False),
    ("x = 'keysafe:allow'\nT = '{t}'", True),  # not a comment line above
    ("# keysafe:allow\n\nT = '{t}'", True),  # not the line right above
    ("T = '{t}'", True),
]


@pytest.mark.parametrize(("template", "reported"), ALLOWS)
def test_allow_markers(template: str, reported: bool) -> None:
    found = ENGINE.scan_text(template.format(t=F.github()), Location("a.py"))
    assert bool(found) == reported
