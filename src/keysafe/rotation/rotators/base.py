"""The contract every rotator meets.

The rotation protocol (``keysafe.rotation.service``) drives a rotator through four
steps, each recorded before the next starts so that a crash resumes or rolls back:

1. ``generate``: a new candidate value (stored as the *pending* version);
2. ``apply``: make the target accept the candidate (change a password, call a hook);
3. ``verify``: prove the target accepts it (log in with it); a failure never promotes;
4. ``retire``: after the grace period, stop the target accepting the *previous* value.

``apply`` and ``retire`` must be idempotent: after a crash the protocol may repeat them.
Rotators raise ``keysafe.errors.RotationFailed`` with a message a person understands;
they never put a secret value into a message.

Refinements by the protocol's author (for the postgres/redis rotators; nothing here
changes a signature):

- Rollback is ``apply(ctx, old)``: when ``verify`` fails (or ``apply`` fails half-way),
  the service calls ``apply`` again with the value that is still current, so ``apply``
  must also make the target accept an *earlier* value again.
- ``ctx.current`` is the promoted value (None for a brand-new secret); ``ctx.extra``
  holds ``run_id`` and ``step`` (apply | verify | retire | rollback) for messages/logs.
- Options whose name ends in ``-secret`` (``target-secret``, ``signing-secret``) name
  other keysafe secrets: whoever sets the policy must be able to read them, and the
  rotator then reads them with ``ctx.read_secret`` under the rotation engine's identity.
- Rotators are looked up by name in ``registry.py`` (one line each) and built with
  ``RotatorDeps``; a rotator class whose ``__init__`` takes no argument is fine.
- A rotator whose values nothing outside keysafe holds (``random``) sets the class
  attribute ``external = False``: its ``generate`` must be quick and pure and gets
  no ``ctx.current``; the protocol then calls neither ``apply``, ``verify`` nor
  ``retire`` but writes the run, the new version and their audit events in one
  transaction (promoted or nothing). Without the attribute a rotator is external.
- A rotator that connects somewhere (``postgres``, ``redis``) meets ``NetworkRotator``
  too: ``targets`` names every (target, login) a policy's steps will reach (checked
  when the policy is set), and before each connection it calls ``ctx.approve(target,
  login)``, which raises RotationFailed unless an admin approved that target. The
  default refuses everything: a context built without the check connects nowhere.
- ``verify``/``apply`` run in a worker thread while the service renews its claim on
  the policy: a step may block on the network, but should time out (30 s or so).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from keysafe.errors import RotationFailed

if TYPE_CHECKING:
    from keysafe.rotation.targets import Target


def refuse_all(target: Target, login: str) -> None:
    """The default network check: nothing is approved (fail closed)."""
    raise RotationFailed(f"{target.describe()} is not an approved rotation target")


@dataclass(frozen=True, slots=True)
class RotationContext:
    """What a rotator may know about the secret it rotates."""

    path: str
    # The policy's options as given to ``keysafe rotation set`` (``--role``, ``--length``...).
    options: Mapping[str, str]
    # The value currently in use, if any (the first rotation of a new secret has none).
    current: str | None
    # Reads another secret (an admin connection URL, say) through the vault's own checks.
    read_secret: Callable[[str], str]
    # Seconds the previous value stays valid on the target after promotion.
    grace_seconds: float = 0.0
    extra: Mapping[str, str] = field(default_factory=dict)
    # Raises RotationFailed unless an admin approved this target for this login; called
    # by a rotator just before each connection it opens.
    approve: Callable[[Target, str], None] = refuse_all


class Rotator(Protocol):
    """A target system whose credential keysafe can rotate."""

    name: str

    def check_options(self, options: Mapping[str, str]) -> None:
        """Refuse (InvalidInput) options this rotator cannot use, when a policy is set."""
        ...

    def generate(self, ctx: RotationContext) -> str:
        """A new candidate value; nothing changes on the target yet."""
        ...

    def apply(self, ctx: RotationContext, new: str) -> None:
        """Make the target accept ``new`` (idempotent)."""
        ...

    def verify(self, ctx: RotationContext, new: str) -> None:
        """Prove the target accepts ``new``; raise RotationFailed otherwise."""
        ...

    def retire(self, ctx: RotationContext, old: str) -> None:
        """Stop the target accepting ``old`` once its grace period is over (idempotent)."""
        ...


@runtime_checkable
class NetworkRotator(Protocol):
    """A rotator that connects to a target named by its policy (see the notes above)."""

    def targets(self, ctx: RotationContext) -> list[tuple[Target, str]]:
        """Every (target, login) the policy's steps will connect to, from its options
        and admin secret; InvalidInput when they cannot be parsed."""
        ...
