"""The generic detector: ``password = ...``, ``api_key: ...`` and the like.

Any assignment to a secret-sounding name is a candidate; it is reported only when the
value looks like a secret (length, entropy, character mix) and not like a placeholder,
a reference to somewhere else (``${VAR}``, ``os.environ[...]``, ``process.env.X``), a
hash, a UUID, a path or an example.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from keysafe.scan.checksums import jwt_is_example
from keysafe.scan.entropy import char_classes, is_hex, is_uuid, shannon
from keysafe.scan.rules.base import PLACEHOLDER, Rule, RuleMatch

_NAME = (
    r"pass(?:word|wd|phrase|(?![a-z]))|pwd|secret|token|api[_.-]?key|apikey|access[_.-]?key|"
    r"auth[_.-]?key|private[_.-]?key|client[_.-]?secret|credentials?|auth"
)
# The regex starts at the secret word itself (a fast literal search); the rest of the
# name to its left is recovered in Python, see _full_key.
_ASSIGN = re.compile(
    r"(?i)(?P<key>(?:" + _NAME + r")[A-Za-z0-9_.-]{0,64})[\"'\]]*[ \t]*"
    r"(?P<op>:=|=>|==|!=|=|:|>)[ \t]*(?:\w+\()?[ \t]*(?:[fbrFBR]{1,2}(?=[\"'`]))?"
    r"(?:(?P<q>[\"'`])(?P<qv>[^\"'`\r\n]{1,300})(?P=q)|(?P<uv>[^\s\"'`;,()\[\]{}<>#]{1,300}))"
)
# Kubernetes and compose env lists: the name and its value sit on consecutive lines.
_ENV_PAIR = re.compile(
    r"(?i)name:[ \t]*[\"']?(?P<key>[A-Za-z0-9_.-]*(?:" + _NAME + r")[A-Za-z0-9_.-]*)[\"']?"
    r"[ \t]*\r?\n[ \t]*(?P<op>value:)[ \t]*"
    r"(?:(?P<q>[\"'])(?P<qv>[^\"'\r\n]{1,300})(?P=q)|(?P<uv>[^\s\"'#]{1,300}))"
)
KEYWORDS = (
    "password",
    "passwd",
    "passphrase",
    "pwd",
    "secret",
    "token",
    "apikey",
    "api_key",
    "api-key",
    "api.key",
    "access_key",
    "access-key",
    "accesskey",
    "auth",
    "credential",
    "private_key",
    "private-key",
    "_pass",
    "pass_",
    "pass=",
    "pass:",
    'pass"',
    "pass'",
)

# Names that hold something about a secret, not the secret itself.
_NOT_SECRET_NAME = re.compile(
    r"(?i)(?:hash|digest|checksum|sha\d*|md5|crc|"
    r"[_.-](?:name|id|ids|file|path|url|uri|type|length|len|size|field|prompt|label|env|var|"
    r"header|param|regex|pattern|policy|count|expires?|expiry|expiration|timeout|ttl|format|"
    r"endpoint|dir|hint|min|max|enabled|required|mode|help|store|provider|class|kind|"
    r"version|method|strategy|location|source|scheme|prefix|key_id)$|arn$|manager$|"
    r"tokeni[sz]e|tokens$|^auth(?:or|ors|ority|enticat\w*|ori[sz]\w*)$|author)"
)
_REFERENCE = re.compile(
    r"(?i)^(?:\$|%|\{|<|@|&|\*|\?|#|\\|/|\./|~/|[a-z]:\\)|os\.environ|getenv|process\.env|"
    r"env\(|env\[|environ|\bvault\b|secretkeyref|valuefrom|\.(?:get|read|load)\w*\(|"
    r"^(?:none|null|nil|true|false|undefined|required|optional|string|str|bytes|int)$|"
    r"^https?://|^file:|^\.[A-Za-z_]|"
    r"^(?:self|this|cls|ctx|config|settings|options|opts|args|params|props)\."
)
_HASHED = re.compile(
    r"^(?:\$(?:2[abxy]?|5|6|argon2\w*|scrypt|pbkdf2[\w-]*)\$|"
    r"pbkdf2_sha\d+\$|sha\d+[:$-]|md5[:$])"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z_.]*$|^[A-Z0-9_]+$|^[a-z0-9]+(?:[_.-][a-z0-9]+)+$")
_CHECKSUMMED = re.compile(r"gh[pousr]_[0-9A-Za-z]{36}$|ks_[a-z]{2,8}_[0-9A-Za-z]{38}$")
_CODE_VALUE = re.compile(r"^[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+$|^[A-Za-z]+_\w*$|^[\w.]+=")
# The pieces of a camelCase or ClassName value: words, acronyms, numbers.
_WORDS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# Header names, prompts, ARNs: text about a secret rather than one.
_PROSE = re.compile(
    r"^[A-Za-z]+(?:-[A-Za-z]+)+$|:\s*$|^:|^arn:|^urn:|\*$|^[a-z]+(?: [a-z]+)+$|"
    r"^[),;}\]]"  # the text between two string literals: '"password:"),f("'
)
# Minified code: a member access next to an operator (Y.password?Y.user+":"...).
_MEMBER = re.compile(r"[A-Za-z_$][\w$]*\.[A-Za-z_$]")
_OPERATOR = re.compile(r"[?!|&+]")
# A string escape ends an unquoted value found in escaped text (source maps, JSON).
_ESCAPE = re.compile(r"\\[nrt\"'\\]")
_TRAILING_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|[nrt0])$")
# Weak, well-known dummy passwords seen in docs and tests.
_DUMMY = re.compile(r"(?i)^(?:password|passw0rd|secret|admin|letmein|qwerty|test|hunter)\d*[!.]?$")
_CONTEXT = re.compile(r"(?i)\b(?:e\.g\.|for example|example|placeholder|dummy|sample)\b")


@dataclass(frozen=True)
class GenericAssignmentRule(Rule):
    """Scores ``name = value`` pairs instead of trusting one regex."""

    def extract(self, match: RuleMatch) -> tuple[str, int, int] | None:
        """The value assigned to a secret-sounding name when it looks like a real secret."""
        key, begin = _full_key(match)
        if begin > 0 and match.string[begin - 1] in ":/":
            return None  # a segment of an ARN, URL or path, not a name
        op = match.group("op")
        quoted = match.group("qv") is not None
        group = "qv" if quoted else "uv"
        value = match.group(group)
        end = match.end(group)
        if not quoted:
            escaped = _ESCAPE.search(value)
            if escaped is not None:
                value = value[: escaped.start()]
                end = match.start(group) + len(value)
        if not quoted and begin > 0 and match.string[begin - 1] in "?&":
            # A URL query (JDBC "&password=..."): the value ends at the next parameter.
            value = value.split("&", 1)[0]
            end = match.start(group) + len(value)
        if op in ("==", "!=") or _NOT_SECRET_NAME.search(key):
            return None
        if op == ">" and not key.lower().startswith(("pass", "secret", "token", "api")):
            return None  # a bare comparison, not an XML element
        if not _looks_secret(key.lower(), value, quoted):
            return None
        if _CONTEXT.search(_near(match)):
            return None
        return value, match.start(group), end


def _full_key(match: RuleMatch) -> tuple[str, int]:
    """The whole name a secret word sits in (``DB_PASSWORD`` for a match at ``PASSWORD``),
    and where it begins."""
    text, start = match.string, match.start("key")
    begin = start
    # Bounded: a name is short, and a minified line must not be walked once per hit.
    while begin > max(0, start - 128) and (text[begin - 1].isalnum() or text[begin - 1] in "_.-"):
        begin -= 1
    return text[begin:start] + match.group("key"), begin


def _near(match: RuleMatch, reach: int = 300) -> str:
    """The match's line, at most ``reach`` characters either side of it."""
    text, start, end = match.string, match.start(), match.end()
    line_start = text.rfind("\n", max(0, start - reach), start) + 1 or max(0, start - reach)
    line_end = text.find("\n", end, end + reach)
    return text[line_start : line_end if line_end >= 0 else end + reach]


def _wordy(value: str) -> bool:
    """True for camelCase and ClassName identifiers (``getPassword``,
    ``MLDSA44Ed25519PrivateKey``): made of few long words, where random base62 splits
    into many one- or two-letter pieces."""
    if not value.isalnum():
        return False
    pieces = _WORDS.findall(value)
    return bool(pieces) and len(value) / len(pieces) >= 3.5


def _looks_secret(key: str, value: str, quoted: bool) -> bool:
    if _CHECKSUMMED.match(value):
        # A format with a checksum is judged by its own rule: a failed checksum means
        # look-alike text, not a secret for the generic rule to pick up.
        return False
    is_password = "pass" in key or "pwd" in key
    value = _TRAILING_ESCAPE.sub("", value)  # "Password\x00" is the word Password
    if len(value) < (8 if is_password else 12) or len(value) > 200:
        return False
    if PLACEHOLDER.search(value) or _REFERENCE.search(value) or _HASHED.search(value):
        return False
    if value.startswith("eyJ") and jwt_is_example(value):
        return False
    if (
        _PROSE.search(value)
        or _DUMMY.match(value)
        or ("{" in value and "}" in value)
        or "(?" in value
    ):
        return False
    if is_hex(value) and len(value) < (16 if is_password else 24):
        return False  # short hex: ids, etags, truncated digests
    if is_uuid(value) or (
        is_hex(value)
        and len(value) in (32, 40, 64, 128)
        and not is_password  # a password may be hex; a hash is in a *_hash name
        and "key" not in key
        and "secret" not in key
        and "token" not in key
    ):
        return False
    if _IDENTIFIER.match(value) or (" " in value and (not is_password or value.count(" ") > 3)):
        return False
    if not quoted and (
        _CODE_VALUE.match(value)
        or _wordy(value)
        or (_MEMBER.search(value) and _OPERATOR.search(value))
    ):
        return False  # settings.SECRET, self.password, other_name, key=value chains
    entropy = shannon(value)
    if is_password:
        return entropy >= 2.5 and char_classes(value) >= 2
    return entropy >= 3.2 and char_classes(value) >= 2


RULES: tuple[Rule, ...] = (
    GenericAssignmentRule(
        id="generic-secret-assignment",
        description="Secret assigned to a password, token or API key variable",
        regex=_ASSIGN,
        keywords=KEYWORDS,
        generic=True,
        anchored=True,
        severity="medium",
    ),
    GenericAssignmentRule(
        id="generic-secret-env-pair",
        description="Secret value of a secret-sounding environment variable (name/value list)",
        regex=_ENV_PAIR,
        keywords=("name:",),
        window=400,
        generic=True,
        anchored=True,
        severity="medium",
    ),
    Rule(
        id="http-bearer-token",
        description="Bearer token in an HTTP Authorization header",
        regex=re.compile(r"(?i)\bbearer[ \t]+([0-9A-Za-z_\-.=:/+~]{20,})(?![0-9A-Za-z_\-.=:/+~])"),
        keywords=("bearer",),
        secret_group=1,
        min_entropy=3.5,
        generic=True,
        anchored=True,
        severity="medium",
    ),
)
