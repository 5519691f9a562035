"""Shannon entropy and cheap shape tests used to score candidate secrets."""

from __future__ import annotations

import math
import re
from collections import Counter

_HEX = re.compile(r"[0-9a-fA-F]+")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def shannon(text: str) -> float:
    """Bits of entropy per character of ``text`` (0.0 for empty text)."""
    if not text:
        return 0.0
    length = len(text)
    return -sum(n / length * math.log2(n / length) for n in Counter(text).values())


def is_hex(text: str) -> bool:
    """True when ``text`` is only hexadecimal digits."""
    return _HEX.fullmatch(text) is not None


def is_uuid(text: str) -> bool:
    """True when ``text`` is a UUID in its canonical 8-4-4-4-12 form."""
    return _UUID.fullmatch(text) is not None


def char_classes(text: str) -> int:
    """How many of lowercase, uppercase, digits and symbols ``text`` uses."""
    classes = 0
    classes += any(c.islower() for c in text)
    classes += any(c.isupper() for c in text)
    classes += any(c.isdigit() for c in text)
    classes += any(not c.isalnum() for c in text)
    return classes
