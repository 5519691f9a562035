"""Rotators by name: one line per plugin.

A plugin is one module in this package with a class meeting ``base.Rotator``; add its
factory to ``_FACTORIES``. Modules are imported on first use, so a rotator's driver
(psycopg, redis) costs nothing until a policy names it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine

from keysafe.access.apikeys import KeyService
from keysafe.clock import Clock
from keysafe.errors import InvalidInput
from keysafe.rotation.rotators.base import Rotator

__all__ = ["PRIVILEGED", "Registry", "RotatorDeps", "names"]


@dataclass(frozen=True, slots=True)
class RotatorDeps:
    """What a rotator may be built with."""

    engine: Engine
    clock: Clock
    keys: KeyService


def _plain(module: str, cls: str) -> Callable[[RotatorDeps], Rotator]:
    """A factory for a rotator class built without arguments, imported when first used."""

    def build(_: RotatorDeps) -> Rotator:
        rotator: Rotator = getattr(importlib.import_module(f"{__package__}.{module}"), cls)()
        return rotator

    return build


def _apikey(deps: RotatorDeps) -> Rotator:
    from keysafe.rotation.rotators.apikey import ApiKeyRotator

    return ApiKeyRotator(deps.keys, deps.engine, deps.clock)


# Names are persisted in policies: only ever add.
_FACTORIES: dict[str, Callable[[RotatorDeps], Rotator]] = {
    "random": _plain("random", "RandomRotator"),
    "command": _plain("command", "CommandRotator"),
    "webhook": _plain("webhook", "WebhookRotator"),
    "apikey": _apikey,
    "postgres": _plain("postgres", "PostgresRotator"),
    "redis": _plain("redis", "RedisRotator"),
}

# Rotators that run code on the server or send the value to an address the policy
# names: setting such a policy needs ``admin`` on ``sys/rotation`` besides ``rotate``.
PRIVILEGED = frozenset({"command", "webhook"})


def names() -> list[str]:
    return sorted(_FACTORIES)


class Registry:
    """Builds each rotator once, on first use."""

    def __init__(
        self, deps: RotatorDeps, extra: dict[str, Callable[[RotatorDeps], Rotator]] | None = None
    ) -> None:
        self._deps = deps
        self._factories = {**_FACTORIES, **(extra or {})}
        self._built: dict[str, Rotator] = {}

    @property
    def deps(self) -> RotatorDeps:
        return self._deps

    def get(self, name: str) -> Rotator:
        """The rotator called ``name``; InvalidInput for an unknown name."""
        rotator = self._built.get(name)
        if rotator is None:
            factory = self._factories.get(name)
            if factory is None:
                known = ", ".join(sorted(self._factories))
                raise InvalidInput(f"unknown rotator {name!r} (known: {known})")
            rotator = self._built[name] = factory(self._deps)
        return rotator
