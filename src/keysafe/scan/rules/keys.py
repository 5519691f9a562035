"""Private keys in every armour, JSON Web Tokens, and keysafe's own credentials."""

from __future__ import annotations

from keysafe.crypto import keyformat
from keysafe.scan.checksums import jwt_valid
from keysafe.scan.rules.base import Rule, rule

_NL = r"(?:\\n|\r?\n)+"

RULES: tuple[Rule, ...] = (
    rule(
        "private-key",
        "Private key (PEM RSA/EC/DSA/OPENSSH/PKCS8, encrypted or not)",
        # A header alone (docs, parsers) is not a key: require a body and the footer.
        # Lines may also be JSON-escaped ("\\n"), as in cloud service-account files.
        r"(-----BEGIN ((?:RSA |EC |DSA |OPENSSH |ENCRYPTED |ENCRYPTED RSA )?PRIVATE KEY)-----"
        + _NL
        + r"(?:[A-Za-z-]+:[^\n\\]*"
        + _NL
        + r")*(?:[ \t]*[A-Za-z0-9+/=]{16,}[ \t]*"
        + _NL
        + r")+[ \t]*[A-Za-z0-9+/=]*[ \t]*(?:\\n|\r?\n)*[ \t]*-----END \2-----)",
        ["-----begin"],
        secret_group=1,
        window=64 * 1024,
        skip_placeholders=False,
        anchored=True,
    ),
    rule(
        "pgp-private-key",
        "PGP private key block",
        # Armor headers (Key: value): up to the first colon, then the rest of the line, so
        # each line matches one way only (two [^\n]* around ':' backtracked exponentially
        # over lines with several colons when no END line followed).
        r"(-----BEGIN PGP PRIVATE KEY BLOCK-----[\r\n]+(?:[^\r\n:]*:[^\r\n]*[\r\n]+)*[\r\n]*"
        r"(?:[A-Za-z0-9+/=]{16,}[\r\n]+)+(?:=[A-Za-z0-9+/]{4}[\r\n]+)?"
        r"-----END PGP PRIVATE KEY BLOCK-----)",
        ["-----begin pgp private"],
        secret_group=1,
        window=256 * 1024,
        skip_placeholders=False,
        anchored=True,
    ),
    rule(
        "putty-private-key",
        "PuTTY private key",
        r"(PuTTY-User-Key-File-\d: [^\r\n]+[\r\n]+(?:[^\r\n]+[\r\n]+){3,40}?"
        r"Private-Lines: \d+)",
        ["putty-user-key-file-"],
        secret_group=1,
        window=16 * 1024,
        skip_placeholders=False,
        anchored=True,
    ),
    rule(
        "jwt",
        "JSON Web Token",
        r"\b(eyJ[0-9A-Za-z_-]{10,}\.eyJ[0-9A-Za-z_-]{10,}\.[0-9A-Za-z_-]{16,})(?![0-9A-Za-z_.-])",
        ["eyj"],
        secret_group=1,
        validator=jwt_valid,
        skip_placeholders=False,
        severity="medium",
        anchored=True,
    ),
    rule(
        "keysafe-credential",
        "keysafe API key or token",
        keyformat.PATTERN.pattern,
        ["ks_"],
        secret_group=0,
        # The checksum tells a real keysafe key from look-alike text.
        validator=keyformat.is_valid,
        skip_placeholders=False,
        anchored=True,
    ),
)
