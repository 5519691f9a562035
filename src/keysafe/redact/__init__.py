"""Log redaction for applications that read secrets from keysafe.

::

    import logging
    from keysafe.redact import RedactingFilter

    handler = logging.StreamHandler()
    handler.addFilter(RedactingFilter())   # or structlog: RedactProcessor()

Every value this process received from keysafe (through the SDK, or from ``keysafe
run``, which hands its child the values' digests in ``KEYSAFE_REDACT``, never the
values) and every string the scanner's rules recognise is replaced by
``[REDACTED:<path or rule id>]``. Values shorter than 4 characters are not tracked.

The names below load on first use (PEP 562): the SDK records digests through
``keysafe.redact.registry`` on every read and must not pay for logging or the scanner.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from keysafe.redact.integrations import RedactingFilter, RedactProcessor
    from keysafe.redact.redactor import Redactor, redact_text
    from keysafe.redact.registry import (
        ENV_VAR,
        Registry,
        child_env,
        process_registry,
        remember,
    )

__all__ = [
    "ENV_VAR",
    "RedactProcessor",
    "RedactingFilter",
    "Redactor",
    "Registry",
    "child_env",
    "process_registry",
    "redact_text",
    "remember",
]

# Where each public name lives; a static table, not dynamic dispatch.
_HOMES = {
    "RedactingFilter": "keysafe.redact.integrations",
    "RedactProcessor": "keysafe.redact.integrations",
    "Redactor": "keysafe.redact.redactor",
    "redact_text": "keysafe.redact.redactor",
} | dict.fromkeys(
    ("ENV_VAR", "Registry", "child_env", "process_registry", "remember"),
    "keysafe.redact.registry",
)


def __getattr__(name: str) -> Any:
    module = _HOMES.get(name)
    if module is None:
        raise AttributeError(f"module 'keysafe.redact' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
