"""Built-in detectors, one provider family per module.

Rule ids are persisted (baselines, SARIF, allowlists): only ever add rules.
"""

from __future__ import annotations

from keysafe.scan.rules import ai, cloud, database, generic, keys, saas, vcs
from keysafe.scan.rules.base import Rule, rule

__all__ = ["Rule", "builtin_rules", "rule"]


def builtin_rules() -> list[Rule]:
    """Every built-in rule, provider rules first so they win over generic ones."""
    return [
        *cloud.RULES,
        *vcs.RULES,
        *saas.RULES,
        *ai.RULES,
        *keys.RULES,
        *database.RULES,
        *generic.RULES,
    ]
