"""Files of NAME=value pairs for ``keysafe secret import``: dotenv, JSON and YAML.

Every parser reads the whole file before anything is written and reports a problem as
``FILE:LINE: what is wrong`` without quoting the line (it may hold a value).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from keysafe.errors import InvalidInput

FORMATS = ("dotenv", "json", "yaml")
_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_DOTENV_LINE = re.compile(r"(?:export\s+)?([A-Za-z0-9_.-]+)\s*=\s*(.*)", re.DOTALL)


def guess_format(file: Path) -> str:
    suffix = file.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in {".yaml", ".yml"}:
        return "yaml"
    return "dotenv"


def parse_file(file: Path, fmt: str | None = None) -> dict[str, str]:
    """The pairs in ``file`` (format from ``fmt`` or the name); raises InvalidInput."""
    fmt = fmt or guess_format(file)
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    try:
        text = file.read_bytes().decode("utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read {file}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{file} is not UTF-8 text") from exc
    parsers = {"dotenv": parse_dotenv, "json": parse_json, "yaml": parse_yaml}
    pairs = parsers[fmt](text, str(file))
    if not pairs:
        raise InvalidInput(f"{file}: no NAME=value pairs found")
    return pairs


def _add(pairs: dict[str, str], name: str, value: str, where: str) -> None:
    if not _NAME.fullmatch(name) or name in {".", ".."}:
        raise InvalidInput(f"{where}: {name!r} is not a valid secret name ([A-Za-z0-9_.-]+)")
    if name in pairs:
        raise InvalidInput(f"{where}: {name} is set twice")
    if value == "":
        raise InvalidInput(f"{where}: {name} has an empty value")
    pairs[name] = value


def parse_dotenv(text: str, source: str) -> dict[str, str]:
    """``NAME=value`` lines; ``export`` prefixes, ``#`` comments; single quotes (only
    ``\\'`` and ``\\\\`` escaped, as ``keysafe export`` and python-dotenv write them) and
    double quotes (``\\n``, ``\\"``, ``\\\\``...) may span lines."""
    pairs: dict[str, str] = {}
    # Split on newlines only: str.splitlines() would also split on \f, \v and others.
    lines = text.replace("\r\n", "\n").split("\n")
    i = 0
    while i < len(lines):
        start = i + 1
        line = lines[i].lstrip()
        i += 1
        if not line.strip() or line.startswith("#"):
            continue
        match = _DOTENV_LINE.fullmatch(line)
        where = f"{source}:{start}"
        if match is None:
            raise InvalidInput(f"{where}: expected NAME=value")
        name, rest = match.group(1), match.group(2)
        if rest[:1] in {"'", '"'}:
            quote = rest[0]
            body = rest[1:]
            while _closing(body, quote) < 0:
                if i >= len(lines):
                    raise InvalidInput(f"{where}: unterminated {quote} quote")
                body += "\n" + lines[i]
                i += 1
            end = _closing(body, quote)
            trailing = body[end + 1 :].strip()
            if trailing and not trailing.startswith("#"):
                raise InvalidInput(f"{where}: unexpected text after the closing quote")
            value = body[:end]
            value = _unescape(value) if quote == '"' else re.sub(r"\\([\\'])", r"\1", value)
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].strip()
        _add(pairs, name, value, where)
    return pairs


def _closing(body: str, quote: str) -> int:
    escaped = False
    for pos, char in enumerate(body):
        if char == "\\" and not escaped:
            escaped = True
            continue
        if char == quote and not escaped:
            return pos
        escaped = False
    return -1


def _unescape(value: str) -> str:
    table = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}
    return re.sub(r"\\(.)", lambda m: table.get(m.group(1), "\\" + m.group(1)), value)


def _scalar(value: object, where: str, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise InvalidInput(f"{where}: {name} must be a string or number, not a list or map")


def parse_json(text: str, source: str) -> dict[str, str]:
    """One JSON object of names to strings or numbers."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}:{exc.lineno}: invalid JSON: {exc.msg}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}:1: expected one JSON object of NAME: value")
    pairs: dict[str, str] = {}
    for name, value in doc.items():
        where = f"{source}:{_json_line(text, name)}"
        _add(pairs, name, _scalar(value, where, name), where)
    return pairs


def _json_line(text: str, name: str) -> int:
    pos = text.find(json.dumps(name))
    return text.count("\n", 0, pos) + 1 if pos >= 0 else 1


_YAML_SCALARS = {f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool")}


def parse_yaml(text: str, source: str) -> dict[str, str]:
    """One YAML mapping of names to scalars (safe loader: no tags, no objects)."""
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else 1
        raise InvalidInput(f"{source}:{line}: invalid YAML: {exc.problem}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: invalid YAML") from exc
    if root is None:
        return {}
    if not isinstance(root, yaml.MappingNode):
        raise InvalidInput(f"{source}:{root.start_mark.line + 1}: expected a mapping NAME: value")
    pairs: dict[str, str] = {}
    for key_node, value_node in root.value:
        where = f"{source}:{key_node.start_mark.line + 1}"
        if not isinstance(key_node, yaml.ScalarNode) or not isinstance(value_node, yaml.ScalarNode):
            raise InvalidInput(f"{where}: expected NAME: value with a plain value")
        name = str(key_node.value)
        if value_node.tag == "tag:yaml.org,2002:null":
            raise InvalidInput(f"{where}: {name} has an empty value")
        if value_node.tag not in _YAML_SCALARS:
            raise InvalidInput(f"{where}: {name} has an unsupported tag; use a plain value")
        # The text as written: 0123 stays 0123 (YAML 1.1 would read an octal number).
        value = str(value_node.value)
        _add(pairs, name, value, where)
    return pairs
