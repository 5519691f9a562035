"""References inside secret values: ``${payments/prod/DB_HOST}`` and ``${DB_HOST}``.

Expanded on the client, with the reader's own token: every referenced secret is read
through the API like any other, so the server's policy decides per reference and a
reference can never show more than the reader could read directly. ``${NAME}`` (no
``/``) is a secret in the same folder; ``$${`` writes a literal ``${``. Stdlib only
(``secret get`` runs it on its fast path).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from keysafe.errors import Forbidden, InvalidInput, NotFound

# A reference, or the escape $${ (kept as a literal ${).
_REF = re.compile(r"\$\$\{|\$\{([A-Za-z0-9_.\-/]+)\}")
MAX_DEPTH = 10


def has_refs(value: str) -> bool:
    return "${" in value


def target(ref: str, path: str) -> str:
    """The full path ``ref`` names when found in the secret at ``path``."""
    if "/" in ref:
        return ref.strip("/")
    folder = path.rsplit("/", 1)[0] if "/" in path else ""
    return f"{folder}/{ref}" if folder else ref


def expand(path: str, value: str, fetch: Callable[[str], str]) -> str:
    """``value`` (of the secret at ``path``) with every reference replaced by the value
    it names, read with ``fetch`` (which raises NotFound/Forbidden like the API).

    Errors name the paths, never a value: NotFound (missing), Forbidden (the reader may
    not read it), InvalidInput (a cycle, a chain deeper than MAX_DEPTH, a bad path)."""
    cache: dict[str, str] = {}
    return _expand(path, value, fetch, (path,), cache)


def _expand(
    path: str,
    value: str,
    fetch: Callable[[str], str],
    chain: tuple[str, ...],
    cache: dict[str, str],
) -> str:
    if not has_refs(value):
        return value

    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        ref = target(match.group(1), path)
        if ref in chain:
            loop = " -> ".join((*chain[chain.index(ref) :], ref))
            raise InvalidInput(f"reference cycle: {loop}")
        if len(chain) > MAX_DEPTH:
            raise InvalidInput(f"references nested deeper than {MAX_DEPTH}: {' -> '.join(chain)}")
        if ref not in cache:
            try:
                raw = fetch(ref)
            except NotFound as exc:
                raise NotFound(f"{path} references {ref}, which does not exist") from exc
            except Forbidden as exc:
                raise Forbidden(f"{path} references {ref}, which you may not read") from exc
            except InvalidInput as exc:
                raise InvalidInput(f"{path} references {ref!r}: not a secret path") from exc
            cache[ref] = _expand(ref, raw, fetch, (*chain, ref), cache)
        return cache[ref]

    return _REF.sub(replace, value)
