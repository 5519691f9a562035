"""Write the SDK's reply types (TypedDicts) from the server's reply models.

The server documents every JSON answer with a pydantic model (keysafe.server.replies);
the SDK must not import pydantic or the server, so this writes the same shapes as
``TypedDict``s into ``src/keysafe/client/types.py``. The admin methods return these
dicts: typed for mypy and editors, plain dicts at run time (no parsing cost, and a field
the server adds later is simply there). ``--check`` exits 1 when the file is out of
date (tests/unit/client/test_reply_types.py runs it), so the SDK's types cannot drift
from what the server documents.

Usage: python scripts/gen_sdk_types.py [--check]
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import types
import typing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "keysafe" / "client" / "types.py"
MODULES = ("access", "alerts", "exchange", "incidents", "leases", "monitor", "people")
MODULES += ("rotation", "tokens")
HEADER = '''"""The shapes of the server's JSON replies, as the SDK's admin methods return them.

Generated from keysafe.server.replies by scripts/gen_sdk_types.py: do not edit. Each is
a ``TypedDict``: a plain dict at run time (fields the server adds later are kept), typed
for mypy and editors; ``NotRequired`` fields may be absent from a reply.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

__all__ = [{names}]
'''


def models() -> list[type[Any]]:
    from pydantic import BaseModel

    found: dict[str, type[Any]] = {}
    for name in MODULES:
        module = importlib.import_module(f"keysafe.server.replies.{name}")
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseModel)
                and value is not BaseModel
                and value.__module__ == module.__name__
            ):
                found[value.__name__] = value
    return list(found.values())


def render(annotation: Any) -> str:
    """``annotation`` as source text, nested models by their (TypedDict) name."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is type(None):
        return "None"
    if origin in (typing.Union, types.UnionType):
        return " | ".join(render(a) for a in args)
    if origin is typing.Literal:
        return f"Literal[{', '.join(repr(a) for a in args)}]"
    if origin in (list, tuple, set, frozenset, dict):
        name = {list: "list", tuple: "tuple", set: "list", frozenset: "list", dict: "dict"}
        inner = ", ".join("..." if a is Ellipsis else render(a) for a in args)
        return f"{name[origin]}[{inner}]" if args else name[origin]
    if annotation is Any:
        return "Any"
    if isinstance(annotation, type):
        return annotation.__name__
    return "Any"


def source() -> str:
    classes = models()
    blocks = []
    for cls in classes:
        bases = [b.__name__ for b in cls.__bases__ if b.__name__ in {c.__name__ for c in classes}]
        own = {
            n: f
            for n, f in cls.model_fields.items()
            if not any(n in getattr(b, "model_fields", {}) for b in cls.__bases__)
        }
        doc = (cls.__doc__ or "").strip().splitlines()
        lines = [f"class {cls.__name__}({', '.join(bases) or 'TypedDict'}):"]
        if doc and not doc[0].startswith("!!!"):
            lines.append(f'    """{doc[0]}"""')
            lines.append("")
        for name, field in own.items():
            kind = render(field.annotation)
            # A field with a default may be absent from a reply.
            lines.append(f"    {name}: {kind if field.is_required() else f'NotRequired[{kind}]'}")
        if len(lines) == 1:
            lines.append("    pass")
        blocks.append("\n".join(lines))
    names = ", ".join(f'"{c.__name__}"' for c in sorted(classes, key=lambda c: c.__name__))
    return HEADER.format(names=names) + "\n\n" + "\n\n\n".join(blocks) + "\n"


def formatted(text: str) -> str:
    ruff = [sys.executable, "-m", "ruff"]
    for step in (["check", "--fix", "--quiet"], ["format"]):
        done = subprocess.run(
            [*ruff, *step, "--stdin-filename", str(TARGET), "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
        )
        text = done.stdout or text
    return text


def main(argv: list[str]) -> int:
    text = formatted(source())
    current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
    if text == current:
        return 0
    if "--check" in argv:
        print("src/keysafe/client/types.py is out of date: run python scripts/gen_sdk_types.py")
        return 1
    TARGET.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
