"""Cloud providers: AWS, Google Cloud, Azure."""

from __future__ import annotations

import re

from keysafe.scan.rules.base import Rule, rule

# AWS documentation's own example key ids end in EXAMPLE.
_AWS_EXAMPLE = (re.compile(r"EXAMPLE$"),)

RULES: tuple[Rule, ...] = (
    rule(
        "aws-access-key-id",
        "AWS access key id",
        r"\b((?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16})\b",
        ["akia", "asia", "abia", "acca"],
        secret_group=1,
        allow_values=_AWS_EXAMPLE,
        min_entropy=3.0,
        anchored=True,
    ),
    rule(
        "aws-secret-access-key",
        "AWS secret access key",
        r"(?i)aws_?(?:secret)?_?(?:access)?_?key[\"']?\s*(?:[:=]|=>)\s*[\"']?"
        r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        ["aws_secret", "awssecret", "aws_key", "secret_access_key"],
        secret_group=1,
        min_entropy=4.0,
    ),
    rule(
        "gcp-api-key",
        "Google Cloud / Google AI API key",
        r"\b(AIza[0-9A-Za-z_-]{35})(?![0-9A-Za-z_-])",
        ["aiza"],
        secret_group=1,
        min_entropy=3.5,
        anchored=True,
    ),
    rule(
        "gcp-oauth-client-secret",
        "Google OAuth client secret",
        r"\b(GOCSPX-[0-9A-Za-z_-]{28})(?![0-9A-Za-z_-])",
        ["gocspx-"],
        secret_group=1,
        anchored=True,
    ),
    rule(
        "gcp-service-account",
        "Google Cloud service account key file",
        r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"",
        ["private_key_id"],
        secret_group=1,
    ),
    rule(
        "azure-storage-account-key",
        "Azure storage account key",
        r"(?i)AccountKey=([A-Za-z0-9+/]{86}==)",
        ["accountkey="],
        secret_group=1,
        anchored=True,
    ),
    rule(
        "azure-ad-client-secret",
        "Azure AD (Entra ID) client secret",
        r"(?:^|[^A-Za-z0-9_~.-])([A-Za-z0-9_~.]{3}\dQ~[A-Za-z0-9_~.-]{31,34})(?![A-Za-z0-9_~.-])",
        ["q~"],
        secret_group=1,
        min_entropy=3.5,
    ),
    rule(
        "azure-sas-token",
        "Azure shared access signature",
        r"(?i)[?&]sv=\d{4}-\d\d-\d\d[^\s\"']*?&sig=([A-Za-z0-9%+/]{40,}(?:%3D|=){0,2})",
        ["sig="],
        secret_group=1,
    ),
    rule(
        "digitalocean-token",
        "DigitalOcean personal access, OAuth or refresh token",
        r"\b(do[opr]_v1_[a-f0-9]{64})\b",
        ["dop_v1_", "doo_v1_", "dor_v1_"],
        secret_group=1,
        min_entropy=3.0,
        anchored=True,
    ),
    rule(
        "vault-token",
        "HashiCorp Vault service or batch token",
        # Legacy "s." tokens are too short a prefix alone: only on a line naming Vault.
        r"(?<![0-9A-Za-z_.-])(hv[sb]\.[0-9A-Za-z_-]{24,}|s\.[0-9A-Za-z]{24})(?![0-9A-Za-z_.-])",
        ["hvs.", "hvb.", "vault"],
        secret_group=1,
        min_entropy=3.5,
    ),
)
