"""The leak scanner: finds credentials in files, git history, staged changes and streams.

Runs without a server and imports nothing server-side, so ``keysafe scan`` starts fast
and works offline.
"""

from __future__ import annotations

from keysafe.scan.models import Finding, Location

__all__ = ["Finding", "Location"]
