"""Per-invocation state: global options, and the SDK client and settings built from them.

Resolution order for addr/token/cacert: command-line flag, then ``KEYSAFE_*`` env, then
the ``--config`` file, then the profile. Without ``--config`` nothing imports pydantic,
which keeps ``keysafe secret get`` fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from keysafe.client import Client
    from keysafe.client._config import Connection
    from keysafe.config import Settings


@dataclass
class State:
    config_file: Path | None = None
    addr: str | None = None
    cacert: Path | None = None

    def settings(self) -> Settings:
        """Full settings (file, then env); for commands that run the server."""
        from keysafe.config import load_settings

        return load_settings(self.config_file)

    def client(self) -> Client:
        """An SDK client for the resolved server; raises ConnectionFailed without one."""
        from keysafe.client import Client

        conn = self.connection()
        # http.client rather than httpx: importing httpx would double a command's start-up.
        return Client(addr=conn.addr, token=conn.token, cacert=conn.cacert, http="stdlib")

    def connection(self) -> Connection:
        """The server address, token and CA this invocation uses (see the module doc)."""
        from keysafe.client._config import resolve

        addr, token, cacert, home = self.addr, None, self.cacert, None
        if self.config_file is not None:
            # The environment already wins over the file inside load_settings.
            settings = self.settings()
            addr = addr or settings.addr
            token = settings.token.get_secret_value() if settings.token else None
            cacert = cacert or settings.cacert
            home = settings.home  # whose profile fills what is still missing
        from keysafe.cli.project import project_addr

        # A repository's .keysafe.toml names its server only when nothing above does.
        addr = addr or project_addr(addr, home)
        return resolve(addr, token, cacert, home=home)


def state(ctx: typer.Context) -> State:
    obj = ctx.find_root().obj
    return obj if isinstance(obj, State) else State()
