"""Secrets rendered for deployment targets: Kubernetes, Docker and GitHub Actions.

- ``k8s``: a ``v1`` ``Secret`` manifest (``kubectl apply -f -``): base64 ``data``; a
  label naming keysafe and the source folder, and annotations with every source path
  and version, so ``kubectl describe`` shows where a value came from.
- ``docker``: ``docker run --env-file`` lines, ``NAME=value`` taken literally (Docker
  reads no quotes or escapes, so a multi-line value cannot be written: refused).
- ``github``: ``::add-mask::`` workflow commands (on stdout, one per line of each value,
  since a mask covers one line) and ``NAME<<DELIMITER`` blocks for ``$GITHUB_ENV``
  with a random delimiter that no value contains.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from collections.abc import Mapping

from keysafe.errors import InvalidInput

_K8S_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"[^A-Za-z0-9_.-]+")
ANNOTATION = "keysafe.dev/sources"


def check_k8s_name(name: str | None, flag: str = "--name") -> str:
    if not name:
        raise InvalidInput(f"--format k8s needs {flag} (the Secret's name)")
    if not _K8S_NAME.fullmatch(name):
        raise InvalidInput(
            f"{flag} {name!r} is not a Kubernetes name: lower-case letters, digits, '-' "
            "and '.', starting and ending with a letter or digit, at most 253 characters"
        )
    return name


def _label(value: str) -> str:
    # Label values: at most 63 of [A-Za-z0-9_.-], starting and ending alphanumeric.
    return _LABEL_VALUE.sub(".", value)[:63].strip("._-") or "none"


def to_k8s(
    env: Mapping[str, str],
    sources: Mapping[str, tuple[str, int]],
    *,
    name: str,
    namespace: str | None = None,
) -> str:
    """The manifest as YAML (every string double-quoted, so nothing is re-typed)."""
    check_k8s_name(name)
    folders = sorted({path.rsplit("/", 1)[0] for path, _ in sources.values()})
    listing = {var: f"{path}@{version}" for var, (path, version) in sorted(sources.items())}
    lines = [
        "apiVersion: v1",
        "kind: Secret",
        "metadata:",
        f"  name: {_q(name)}",
    ]
    if namespace:
        lines.append(f"  namespace: {_q(check_k8s_name(namespace, '--namespace'))}")
    lines += [
        "  labels:",
        '    app.kubernetes.io/managed-by: "keysafe"',
        f"    keysafe.dev/folder: {_q(_label(','.join(folders)))}",
        "  annotations:",
        f"    {ANNOTATION}: {_q(json.dumps(listing, separators=(',', ':')))}",
        "type: Opaque",
        "data:" if env else "data: {}",
    ]
    lines += [
        f"  {_q(var)}: {_q(base64.b64encode(value.encode()).decode())}"
        for var, value in env.items()
    ]
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    # A JSON string is a valid YAML double-quoted scalar (same escapes).
    return json.dumps(text, ensure_ascii=True)


def to_docker(env: Mapping[str, str]) -> str:
    for var, value in env.items():
        if "\n" in value or "\r" in value:
            raise InvalidInput(
                f"{var} holds several lines, which a Docker env-file cannot carry: use "
                "--format dotenv with Compose's env_file, or --format k8s"
            )
    return "".join(f"{var}={value}\n" for var, value in env.items())


def github_masks(env: Mapping[str, str]) -> str:
    """``::add-mask::`` commands so the runner hides every value (each line) in its logs."""
    out = []
    for value in env.values():
        for line in value.splitlines():
            if line.strip():
                escaped = line.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
                out.append(f"::add-mask::{escaped}\n")
    return "".join(out)


def github_env(env: Mapping[str, str]) -> str:
    """``$GITHUB_ENV`` blocks: ``NAME<<DELIM``, the value, ``DELIM``."""
    blocks = []
    for var, value in env.items():
        delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        while delimiter in value:  # practically never; but a value must not end the block
            delimiter = f"ghadelimiter_{secrets.token_hex(16)}"
        blocks.append(f"{var}<<{delimiter}\n{value}\n{delimiter}\n")
    return "".join(blocks)
