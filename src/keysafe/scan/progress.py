"""A progress bar on a terminal's stderr only; a no-op when piped or disabled."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class Progress:
    """Counts work done; draws a rich bar on stderr when ``enabled`` and stderr is a tty."""

    def __init__(self, enabled: bool, total: float, description: str) -> None:
        self._bar: Any = None
        self._task: Any = None
        if enabled and total and sys.stderr.isatty():
            # Imported here: rich costs start-up time that pipes and CI never need.
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            columns = [TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn()]
            if description == "scanning files":
                columns.insert(2, DownloadColumn())
            self._bar = RichProgress(*columns, console=Console(stderr=True), transient=True)
            self._task = self._bar.add_task(description, total=total)
            self._bar.start()

    def advance(self, amount: float) -> None:
        """Record ``amount`` more units of work done."""
        if self._bar is not None:
            self._bar.advance(self._task, amount)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._bar is not None:
            self._bar.stop()
