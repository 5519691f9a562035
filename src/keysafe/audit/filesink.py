"""The JSON-lines audit file of one node: only committed lines, failing closed early.

A commit's lines are appended after the commit (a rolled-back operation writes
nothing), with one ``write`` each under ``O_APPEND``, so the lines of several processes
sharing the file never mix; one thread per chain keeps each chain in order. Since a
commit cannot be taken back when its write fails, the sink is checked before each
append instead: a file that cannot be opened, or one whose last write failed in the
past ``RETRY_SECONDS``, refuses the operation before it commits.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger("keysafe.audit")

RETRY_SECONDS = 5.0
_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class FileSink:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.failed_at: float | None = None

    def problem(self) -> str | None:
        """Why lines cannot be appended now (None when they can). Blocking (it opens
        the file): call it off the event loop."""
        failed = self.failed_at
        if failed is not None and time.monotonic() - failed < RETRY_SECONDS:
            return "the last write to the audit file failed"
        try:
            os.close(os.open(self.path, _FLAGS, 0o600))
        except OSError as exc:
            log.error("audit file cannot be opened: %s", exc)
            return f"the audit file cannot be written: {exc.strerror}"
        return None

    def write(self, data: bytes) -> None:
        """Append ``data`` in one write (flushed to the OS, like SQLite's WAL: it
        survives a process crash). Raises OSError, remembered by ``problem``."""
        try:
            fd = os.open(self.path, _FLAGS, 0o600)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            finally:
                os.close(fd)
        except OSError as exc:
            log.error("audit file could not be written: %s", exc)
            self.failed_at = time.monotonic()
            raise
        self.failed_at = None
