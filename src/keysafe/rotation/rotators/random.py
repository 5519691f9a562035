"""``random``: a fresh random value, for secrets no outside system has to accept
(webhook signing secrets, session keys). Nothing to apply, verify or retire.

Options: ``length`` (8-4096 characters, default 32), ``alphabet`` (``alnum`` default,
``hex``, ``base64url``, ``digits``, ``symbols`` = alnum plus ``!#%+-.:=@^_~``, or
``chars:<the characters>``), ``format`` (a template holding ``{value}`` once, e.g.
``whsec_{value}``). Characters are drawn uniformly with ``secrets``.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping

from keysafe.errors import InvalidInput
from keysafe.rotation.rotators.base import RotationContext

__all__ = ["RandomRotator", "alphabet_of", "random_value"]

ALPHABETS: dict[str, str] = {
    "alnum": string.ascii_letters + string.digits,
    "hex": "0123456789abcdef",
    "base64url": string.ascii_letters + string.digits + "-_",
    "digits": string.digits,
    "symbols": string.ascii_letters + string.digits + "!#%+-.:=@^_~",
}
DEFAULT_LENGTH = 32
MIN_LENGTH, MAX_LENGTH = 8, 4096
_OPTIONS = frozenset({"length", "alphabet", "format"})


def alphabet_of(options: Mapping[str, str]) -> str:
    """The characters to draw from; raises InvalidInput for an unknown or tiny set."""
    name = options.get("alphabet", "alnum")
    if name.startswith("chars:"):
        chars = "".join(dict.fromkeys(name[len("chars:") :]))  # unique, order kept
        if len(chars) < 2 or not chars.isprintable():
            raise InvalidInput("alphabet chars: needs at least 2 distinct printable characters")
        return chars
    if name not in ALPHABETS:
        known = ", ".join(sorted(ALPHABETS))
        raise InvalidInput(f"unknown alphabet {name!r} (known: {known}, or chars:...)")
    return ALPHABETS[name]


def _length(options: Mapping[str, str]) -> int:
    raw = options.get("length", str(DEFAULT_LENGTH))
    if not raw.isdigit() or not MIN_LENGTH <= int(raw) <= MAX_LENGTH:
        raise InvalidInput(f"length must be a number from {MIN_LENGTH} to {MAX_LENGTH}")
    return int(raw)


def _template(options: Mapping[str, str]) -> str:
    fmt = options.get("format", "{value}")
    if fmt.count("{value}") != 1 or len(fmt) > 256:
        raise InvalidInput("format must hold {value} exactly once (at most 256 characters)")
    return fmt


def random_value(options: Mapping[str, str]) -> str:
    """A value drawn per ``options`` (already checked)."""
    chars = alphabet_of(options)
    body = "".join(secrets.choice(chars) for _ in range(_length(options)))
    return _template(options).replace("{value}", body)


class RandomRotator:
    name = "random"
    external = False  # only keysafe holds the value: the protocol runs in one transaction

    def check_options(self, options: Mapping[str, str]) -> None:
        unknown = sorted(set(options) - _OPTIONS)
        if unknown:
            raise InvalidInput(f"the random rotator takes no option {', '.join(unknown)}")
        alphabet_of(options)
        _length(options)
        _template(options)

    def generate(self, ctx: RotationContext) -> str:
        return random_value(ctx.options)

    def apply(self, ctx: RotationContext, new: str) -> None:
        """Nothing holds the value but keysafe."""

    def verify(self, ctx: RotationContext, new: str) -> None:
        """Nothing to prove against."""

    def retire(self, ctx: RotationContext, old: str) -> None:
        """Nothing to revoke."""
