"""Database and broker connection strings that embed a password."""

from __future__ import annotations

import re

from keysafe.scan.rules.base import Rule, rule

# Dev defaults and references are not leaks worth a finding.
_NOT_PASSWORDS = (
    re.compile(
        r"(?i)^(?:pass(?:word)?|passwd|pwd|secret|postgres|root|admin|test|guest|mysql|"
        r"redis|user|changeme|example|tiger|\*+|x+|\$\{[^}]*\}?|%[sd]|\{[^}]*\}?)$"
    ),
    # $VAR and $var are references; a password may well start with "$" otherwise.
    re.compile(r"^\$(?:[A-Z_][A-Z0-9_]*|[a-z_][a-z0-9_]*)$"),
    # Documentation templates: redis://[[username]:[password]]@host
    re.compile(r"^\[|\]$"),
    # Documentation's own: scott/tiger, "a%20secret".
    re.compile(r"(?i)^tiger\W|^[a-z]+(?:%20[a-z]+)+$"),
)

RULES: tuple[Rule, ...] = (
    rule(
        "database-connection-string",
        "Database or broker URL with an embedded password",
        r"(?i)\b(?:postgres(?:ql)?(?:\+\w+)?|mysql(?:\+\w+)?|mariadb|mssql(?:\+\w+)?|sqlserver|"
        r"oracle(?:\+\w+)?|mongodb(?:\+srv)?|rediss?|amqps?|jdbc:\w+|clickhouse|cockroachdb)"
        r"://[^\s:/@\"'`]*:([^\s@/\"`]{3,})@[^\s/\"'`:]+",
        # One keyword for every scheme: fewer keywords keep the automaton pass fast.
        ["://"],
        secret_group=1,
        allow_values=_NOT_PASSWORDS,
    ),
    rule(
        "url-credentials",
        "HTTP or FTP URL with an embedded password",
        r"(?i)\b(?:https?|ftps?|sftp|smtps?|ldaps?)://[^\s:/@\"'`]*:([^\s@/\"`:]{6,})@[\w.-]+",
        ["://"],
        secret_group=1,
        allow_values=_NOT_PASSWORDS,
        min_entropy=2.5,
        generic=True,
    ),
)
