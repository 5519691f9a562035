"""Every built-in rule against its own positive and negative samples."""

from __future__ import annotations

import pytest
from scan_fakes import Fakes

from keysafe.scan.engine import Engine
from keysafe.scan.models import Location
from keysafe.scan.rules import builtin_rules

F = Fakes(seed=11)

# (rule id, text, reported?)
SAMPLES: list[tuple[str, str, bool]] = [
    # AWS
    ("aws-access-key-id", f'AWS_ACCESS_KEY_ID="{F.aws_id()}"', True),
    ("aws-access-key-id", "aws_access_key_id = AKIAIOSFODNN7EXAMPLE", False),
    ("aws-access-key-id", "AKIAAAAAAAAAAAAAAAAA", False),
    ("aws-secret-access-key", f"aws_secret_access_key = {F.aws_secret()}", True),
    ("aws-secret-access-key", "aws_secret_access_key = " + "A" * 40, False),
    # Google Cloud
    ("gcp-api-key", f'const key = "{F.gcp_key()}";', True),
    ("gcp-api-key", 'const key = "AIzaSy-your-api-key-here";', False),
    ("gcp-oauth-client-secret", f'"client_secret": "{F.gcp_oauth()}"', True),
    ("gcp-oauth-client-secret", 'prefix = "GOCSPX-"', False),
    ("gcp-service-account", f'"private_key_id": "{F.pick("0123456789abcdef", 40)}",', True),
    ("gcp-service-account", '"private_key_id": "<key id>",', False),
    # Azure
    (
        "azure-storage-account-key",
        f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={F.azure_storage()};",
        True,
    ),
    ("azure-storage-account-key", "AccountName=acme;AccountKey=<storage-key>;", False),
    ("azure-ad-client-secret", f'AZURE_CLIENT_SECRET="{F.azure_ad()}"', True),
    ("azure-ad-client-secret", "ratio = a1Q~b", False),
    (
        "azure-sas-token",
        "https://acme.blob.core.windows.net/c?sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01"
        f"&sig={F.pick('ABCDEFGHIJKLMNOPabcdefghijkl0123456789', 44)}%3D",
        True,
    ),
    ("azure-sas-token", "sig=abc", False),
    # GitHub, GitLab, npm, PyPI
    ("github-token", f"token: {F.github('ghp')}", True),
    ("github-token", f"GITHUB_TOKEN={F.github('ghs')}", True),
    ("github-token", f"GH_OAUTH={F.github('gho')}", True),
    ("github-token", f"token: {F.github('ghp', valid=False)}", False),
    ("github-token", "ghp_" + "a" * 36, False),
    ("github-fine-grained-token", f"GH_PAT={F.github_pat()}", True),
    ("github-fine-grained-token", "github_pat_" + "x" * 20, False),
    ("gitlab-token", f'GITLAB_TOKEN = "{F.gitlab()}"', True),
    ("gitlab-token", 'GITLAB_TOKEN = "glpat-xxxxxxxxxxxxxxxxxxxx"', False),
    ("npm-token", f"//registry.npmjs.org/:_authToken={F.npm()}", True),
    ("npm-token", "npm_config_cache=/tmp/npm_cache_directory_for_builds01", False),
    ("pypi-token", f"password = {F.pypi()}", True),
    ("pypi-token", "password = pypi-AgEIcHlwaS5vcmc", False),
    # Payments, messaging, email, webhooks
    ("stripe-secret-key", f'stripe.api_key = "{F.stripe()}"', True),
    ("stripe-secret-key", f'STRIPE_KEY="{F.stripe("test")}"', True),
    ("stripe-secret-key", 'stripe.api_key = "sk_live_xxxxxxxxxxxxxxxxxxxxxxxx"', False),
    ("stripe-webhook-secret", f"STRIPE_WEBHOOK_SECRET={F.stripe_webhook()}", True),
    ("stripe-webhook-secret", "prefix whsec_", False),
    ("slack-token", f"SLACK_BOT_TOKEN={F.slack_bot()}", True),
    ("slack-token", "SLACK_BOT_TOKEN=xoxb-your-token", False),
    ("slack-webhook-url", f"webhook: {F.slack_webhook()}", True),
    ("slack-webhook-url", "webhook: https://hooks.slack.com/services/T000/B000/XXXX", False),
    ("discord-webhook-url", f'url = "{F.discord_webhook()}"', True),
    ("discord-webhook-url", 'url = "https://discord.com/api/webhooks/123/abc"', False),
    ("twilio-api-key", f"TWILIO_API_KEY={F.twilio_key()}", True),
    ("twilio-api-key", "TWILIO_API_KEY=SK" + "0" * 32, False),
    ("twilio-auth-token", f'TWILIO_AUTH_TOKEN = "{F.hex32()}"', True),
    ("twilio-auth-token", 'TWILIO_AUTH_TOKEN = "your_auth_token"', False),
    ("sendgrid-api-key", f"SENDGRID_API_KEY={F.sendgrid()}", True),
    ("sendgrid-api-key", "msg.send(SG.api)", False),
    ("mailgun-api-key", f"MAILGUN_KEY={F.mailgun()}", True),
    ("mailgun-api-key", "key-value store", False),
    # AI APIs
    ("openai-api-key", f"OPENAI_API_KEY={F.openai()}", True),
    ("openai-api-key", "OPENAI_API_KEY=sk-...", False),
    ("anthropic-api-key", f"ANTHROPIC_API_KEY={F.anthropic()}", True),
    ("anthropic-api-key", "ANTHROPIC_API_KEY=sk-ant-api03-...", False),
    ("huggingface-token", f"HF_TOKEN={F.huggingface()}", True),
    ("huggingface-token", "hf_hub_download_function_name_here_x", False),
    ("groq-api-key", f"GROQ_API_KEY={F.groq()}", True),
    ("groq-api-key", "gsk_" + "a" * 52, False),
    ("replicate-api-token", f"REPLICATE_API_TOKEN={F.replicate()}", True),
    ("replicate-api-token", "r8_short", False),
    # Keys and tokens
    ("private-key", F.pem("RSA "), True),
    ("private-key", F.pem("EC "), True),
    ("private-key", F.pem("OPENSSH "), True),
    ("private-key", F.pem(""), True),
    ("private-key", F.pem("ENCRYPTED "), True),
    ("private-key", F.pem("RSA ", encrypted_headers=True), True),
    ("private-key", '"private_key": "' + F.pem("").replace("\n", "\\n") + '\\n",', True),
    ("private-key", 'if line.startswith("-----BEGIN RSA PRIVATE KEY-----"):', False),
    ("private-key", "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----", False),
    ("pgp-private-key", F.pgp(), True),
    ("pgp-private-key", "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n", False),
    (
        "pgp-private-key",
        F.pgp().replace("BLOCK-----\n", "BLOCK-----\nVersion: GnuPG v2\nComment: a: b: c\n", 1),
        True,
    ),
    ("jwt", f"Authorization: Bearer {F.jwt()}", True),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9x.eyJzdWIiOiIxMjM0NTY3ODkwIn0.notavalidheader", False),
    ("keysafe-credential", f"KEYSAFE_TOKEN={F.keysafe('tok')}", True),
    ("keysafe-credential", f"root: {F.keysafe('root')}", True),
    ("keysafe-credential", f"KEYSAFE_TOKEN={F.keysafe('tok', valid=False)}", False),
    # Connection strings
    (
        "database-connection-string",
        f'DATABASE_URL="postgresql://app:{F.password()}@db.prod.internal:5432/app"',
        True,
    ),
    (
        "database-connection-string",
        f"MONGO=mongodb+srv://svc:{F.password()}@c0.mongodb.net/x",
        True,
    ),
    ("database-connection-string", f"redis://default:{F.password()}@cache:6379/0", True),
    ("database-connection-string", "postgresql://postgres:postgres@localhost/app", False),
    ("database-connection-string", "postgresql://app:${DB_PASSWORD}@db:5432/app", False),
    ("database-connection-string", "mysql://user:password@localhost/db", False),
    ("url-credentials", f"https://deploy:{F.password()}@git.acme.io/repo.git", True),
    ("url-credentials", "https://user:pass@example.com/", False),
    # Generic assignments
    ("generic-secret-assignment", f'password = "{F.password()}"', True),
    ("generic-secret-assignment", f"DB_PASSWORD={F.password()}", True),
    ("generic-secret-assignment", f'  api_key: "{F.pick("abcdef0123456789XYZ", 32)}"', True),
    ("generic-secret-assignment", f'{{"client_secret": "{F.password()}"}}', True),
    ("generic-secret-assignment", f'secret_token := "{F.password()}"', True),
    ("generic-secret-assignment", 'password = os.environ["DB_PASSWORD"]', False),
    ("generic-secret-assignment", "password = ${DB_PASSWORD}", False),
    ("generic-secret-assignment", "const apiKey = process.env.API_KEY;", False),
    ("generic-secret-assignment", 'password = "changeme"', False),
    ("generic-secret-assignment", 'api_key = "<your-api-key>"', False),
    ("generic-secret-assignment", 'password_hash = "5f4dcc3b5aa765d61d8327deb882cf99"', False),
    (
        "generic-secret-assignment",
        'password = "$2b$12$KIXQJ0rZkZ9yq0b1Lr5Qeu6c5Gm0Zq5Vq0QkM9u1s7eXkY8R1b2cW"',
        False,
    ),
    ("generic-secret-assignment", 'token = "123e4567-e89b-12d3-a456-426614174000"', False),
    ("generic-secret-assignment", 'secret_name = "payments/prod/db"', False),
    ("generic-secret-assignment", 'token_type = "bearer"', False),
    ("generic-secret-assignment", "if password == user_input:", False),
    ("generic-secret-assignment", 'password = getpass.getpass("Password: ")', False),
    ("generic-secret-assignment", 'api_key = "Example-Key-1234567890"  # e.g.', False),
    ("generic-secret-assignment", "password: {{ .Values.db.password }}", False),
    ("generic-secret-assignment", "token = self.tokenizer.next_token()", False),
    # Look-alikes met in real code (the Python stdlib and popular packages).
    ("generic-secret-assignment", "fiber_force_length_passive=FiberForceLengthPassive2016,", False),
    ("generic-secret-assignment", 'ACL_CREDENTIALS = "Access-Control-Allow-Credentials"', False),
    (
        "generic-secret-assignment",
        '"kms:Context:SecretARN":"arn:aws:secretsmanager:*:*:secret:*"',
        False,
    ),
    ("generic-secret-assignment", "token_number = self.tokens_taken+len(self.tokens)", False),
    (
        "generic-secret-assignment",
        '"Resource": "arn:aws:secretsmanager:*:*:secret:ecr-pull*"',
        False,
    ),
    ("generic-secret-assignment", 'password = ask_password("Password: ")', False),
    ("generic-secret-assignment", '{"BlockToken": b.block_token}', False),
    ("generic-secret-assignment", "user = User(username='scolvin', password='password1')", False),
    (
        "generic-secret-assignment",
        'arn = f"arn:aws:secretsmanager:{region}:{account}:secret:x"',
        False,
    ),
    (
        "http-bearer-token",
        f"curl -H 'Authorization: Bearer {F.pick('abAB0123456789xyzXYZ', 40)}'",
        True,
    ),
    ("http-bearer-token", "Authorization: Bearer $TOKEN", False),
    ("generic-secret-env-pair", f'- name: API_TOKEN\n  value: "{F.password()}"', True),
    ("generic-secret-env-pair", "- name: API_TOKEN\n  valueFrom:\n    secretKeyRef: {}", False),
    ("generic-secret-env-pair", '- name: LOG_TOKEN_FIELDS\n  value: "false"', False),
    ("perplexity-api-key", "PPLX_KEY=pplx-" + F.pick("abcdefXYZ0123456789", 48), True),
    ("perplexity-api-key", "pplx-" + "a" * 48, False),
    ("xai-api-key", "XAI_API_KEY=xai-" + F.pick("abcdefXYZ0123456789", 80), True),
    ("xai-api-key", "xai-grok-model-name", False),
    (
        "gitlab-runner-registration-token",
        "token: GR1348941" + F.pick("abcdefXYZ0123456789", 20),
        True,
    ),
    ("gitlab-runner-registration-token", "GR1348941", False),
    (
        "putty-private-key",
        "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 2\n"
        + F.pick("abcXYZ0123", 64)
        + "\n"
        + F.pick("abcXYZ0123", 20)
        + "\nPrivate-Lines: 1\n",
        True,
    ),
    ("putty-private-key", "PuTTY-User-Key-File-3 is the header", False),
    ("digitalocean-token", "DO_TOKEN=dop_v1_" + F.pick("0123456789abcdef", 64), True),
    ("digitalocean-token", "DO_TOKEN=dop_v1_" + "0" * 64, False),
    ("shopify-token", "SHOPIFY=shpat_" + F.pick("0123456789abcdef", 32), True),
    ("shopify-token", "prefix shpat_ is documented", False),
    ("telegram-bot-token", "BOT=123456789:AA" + F.pick("abcdefXYZ0123456789_-", 33), True),
    ("telegram-bot-token", "time 12:34:56 AA", False),
    ("vault-token", "VAULT_TOKEN=hvs." + F.pick("abcdefXYZ0123456789_-", 90), True),
    ("vault-token", "os.environ without a token named vault", False),
]

ENGINE = Engine(builtin_rules())


def _ids(text: str) -> list[str]:
    return [f.rule for f in ENGINE.scan_text(text, Location("sample.txt"))]


@pytest.mark.parametrize(
    ("rule_id", "text", "reported"),
    SAMPLES,
    ids=[f"{s[0]}-{'pos' if s[2] else 'neg'}-{i}" for i, s in enumerate(SAMPLES)],
)
def test_rule_sample(rule_id: str, text: str, reported: bool) -> None:
    found = _ids(text)
    if reported:
        assert rule_id in found, found
    else:
        assert rule_id not in found, found


def test_every_rule_has_positive_and_negative_samples() -> None:
    for rule in builtin_rules():
        kinds = {reported for rid, _, reported in SAMPLES if rid == rule.id}
        assert kinds == {True, False}, rule.id


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in builtin_rules()]
    assert len(ids) == len(set(ids))


def test_inline_allow_comment_silences_a_line() -> None:
    token = F.github("ghp")
    assert _ids(f"token = '{token}'  # keysafe:allow") == []
    assert _ids(f"token = '{token}'") == ["github-token"]


def test_provider_rule_wins_over_generic() -> None:
    assert _ids(f'GITHUB_TOKEN = "{F.github("ghp")}"') == ["github-token"]


def test_finding_position_and_redaction() -> None:
    token = F.github("ghp")
    [finding] = ENGINE.scan_text(f"a\nb\n  x = '{token}'\n", Location("f.py"))
    assert (finding.line, finding.column) == (3, 8)
    assert finding.secret == token


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_pgp_armor_headers_do_not_backtrack(eol: str) -> None:
    # Lines of several colons and no END line: exponential in the number of lines with the
    # old header pattern (8 lines took seconds); pytest-timeout guards it.
    head = "-----BEGIN PGP PRIVATE KEY BLOCK-----" + eol
    assert _ids(head + ("a:b:c:d:e:f:g:h" + eol) * 200 + "x") == []
