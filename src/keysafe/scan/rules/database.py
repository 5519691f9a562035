"""Database and broker connection strings that embed a password."""

from __future__ import annotations

import re

from keysafe.scan.rules.base import Rule, rule

# Dev defaults and references are not leaks worth a finding.
_NOT_PASSWORDS = (
    re.compile(
        r"(?i)^(?:pass(?:word)?|passwd|pwd|secret|postgres|root|admin|test|guest|mysql|"
        r"redis|user|changeme|example|\*+|x+|\$\w+|\$\{[^}]*\}?|%[sd]|\{[^}]*\}?)$"
    ),
)

RULES: tuple[Rule, ...] = (
    rule(
        "database-connection-string",
        "Database or broker URL with an embedded password",
        r"(?i)\b(?:postgres(?:ql)?(?:\+\w+)?|mysql(?:\+\w+)?|mariadb|mssql(?:\+\w+)?|sqlserver|"
        r"oracle(?:\+\w+)?|mongodb(?:\+srv)?|rediss?|amqps?|jdbc:\w+|clickhouse|cockroachdb)"
        r"://[^\s:/@\"'`]+:([^\s@/\"'`]{3,})@[^\s/\"'`:]+",
        # One keyword for every scheme: fewer keywords keep the automaton pass fast.
        ["://"],
        secret_group=1,
        allow_values=_NOT_PASSWORDS,
    ),
    rule(
        "url-credentials",
        "HTTP or FTP URL with an embedded password",
        r"(?i)\b(?:https?|ftps?|sftp|smtps?|ldaps?)://[^\s:/@\"'`]+:([^\s@/\"'`,]{6,})@[\w.-]+",
        ["://"],
        secret_group=1,
        allow_values=_NOT_PASSWORDS,
        min_entropy=2.5,
        generic=True,
    ),
)
