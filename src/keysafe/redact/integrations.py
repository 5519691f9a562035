"""Hooks for logging libraries: a ``logging.Filter`` and a structlog processor."""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from typing import Any

from keysafe.redact.redactor import Redactor

_MAX_DEPTH = 8


class RedactingFilter(logging.Filter):
    """Rewrites each record's message (and its traceback text) with secrets redacted.

    Add it to the *handlers* that write records out (``handler.addFilter(...)``): a
    filter on a logger does not see records its child loggers propagate. Never drops a
    record."""

    def __init__(self, redactor: Redactor | None = None, name: str = "") -> None:
        super().__init__(name)
        self.redactor = redactor if redactor is not None else Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # bad %-args: logging reports it, not us
            return True
        clean = self.redactor.redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redactor.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.redact(record.stack_info)
        return True


class RedactProcessor:
    """A structlog processor: every string in the event dict, nested ones too, redacted.

    Put it last before the renderer: ``structlog.configure(processors=[...,
    RedactProcessor(), structlog.processors.JSONRenderer()])``."""

    def __init__(self, redactor: Redactor | None = None) -> None:
        self.redactor = redactor if redactor is not None else Redactor()

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event_dict.items()):
            event_dict[key] = self._clean(value, 0)
        return event_dict

    def _clean(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.redactor.redact(value)
        if depth >= _MAX_DEPTH:
            return value
        if isinstance(value, Mapping):
            return {k: self._clean(v, depth + 1) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(self._clean(v, depth + 1) for v in value)
        if isinstance(value, BaseException):
            return self.redactor.redact(repr(value))
        return value
