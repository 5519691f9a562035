"""Typer parameters converted without pydantic, for a fast start-up.

typer (0.2x) converts every command-line value through a pydantic ``TypeAdapter``;
importing pydantic and building the adapters costs about 100 ms on every call, more
than the rest of a ``keysafe secret list``. The CLI's parameters are plain ``str``,
``int``, ``bool`` and ``Path`` (optional, or lists of them): :func:`install` makes typer
convert those here and hands everything else (choices, files, custom parsers) back to
typer's own coercion, so behaviour is the same and only the cost differs.

This leans on typer's private ``core.build_runtime_param``; when typer moves it,
``install`` does nothing and typer's own (slower) coercion runs. The start-up test
(tests/e2e/test_cli_startup.py) fails if pydantic comes back on the hot commands.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

_PLAIN = (str, int, float, bool, Path)


def install() -> None:
    """Route typer's conversion of plain parameters through :func:`convert` (idempotent)."""
    try:
        from typer import _coercion, core
        from typer._click.exceptions import BadParameter
        from typer._param_types import coerce_cli_path
    except ImportError:  # a typer without these internals: keep its own coercion
        return
    original: Callable[..., Any] | None = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if original is None or base is None or getattr(original, "keysafe_plain", False):
        return

    class PlainParam(base):  # type: ignore[misc,valid-type]  # typer's private base class
        """A plain parameter; values it does not expect go to typer's own coercion."""

        descriptor: Any = None

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            try:
                out = convert(self.annotation, self.parameter_info, value)
            except _Unhandled:
                assert original is not None
                fallback = original(self.descriptor)
                return fallback._coerce_value(value, param=param, ctx=ctx)
            except ValueError as exc:
                raise BadParameter(str(exc), ctx=ctx, param=param) from exc
            if _list_item(self.annotation) is not Path:
                return out
            # typer's own checks (exists, dir_okay...); a Path in needs no pydantic.
            info = self.parameter_info
            kind = info.path_type or Path

            def check(path: Path) -> Any:
                return coerce_cli_path(path, info, path_type=kind, param=param, ctx=ctx)

            return [check(p) for p in out] if isinstance(out, list) else check(out)

    def build(descriptor: Any) -> Any:
        assert original is not None
        if not is_plain(descriptor.annotation, descriptor.parameter_info):
            return original(descriptor)
        runtime = PlainParam(
            parameter_info=descriptor.parameter_info, annotation=descriptor.annotation
        )
        object.__setattr__(runtime, "descriptor", descriptor)  # a frozen dataclass
        return runtime

    build.keysafe_plain = True  # type: ignore[attr-defined]
    core.build_runtime_param = build  # type: ignore[attr-defined]


class _Unhandled(Exception):
    """A value of a shape this module does not convert (typer's coercion takes it)."""


def is_plain(annotation: Any, info: Any) -> bool:
    """Whether ``annotation`` (with typer's ``ParameterInfo`` ``info``) is one this module
    converts: a plain type or a list of one, with no parser, choices or file options."""
    if getattr(info, "parser", None) is not None or getattr(info, "click_type", None):
        return False
    if getattr(info, "clamp", False):
        return False
    leaf = _list_item(annotation)
    if leaf is not annotation and _list_item(leaf) is not leaf:
        return False  # list[list[...]] is typer's business
    if leaf is not Path and (getattr(info, "exists", False) or getattr(info, "path_type", None)):
        return False  # a str parameter with path checks: typer routes it as a path
    return leaf in _PLAIN


def convert(annotation: Any, info: Any, value: Any) -> Any:
    """``value`` (a string from argv or the environment, or already converted) as
    ``annotation``. Raises ValueError with a one-line reason; _Unhandled for shapes
    typer's own coercion must take."""
    leaf = _list_item(annotation)
    if leaf is not annotation:
        items = value if isinstance(value, (list, tuple)) else [value]
        return [_leaf(leaf, info, item) for item in items]
    return _leaf(annotation, info, value)


def _leaf(kind: Any, info: Any, value: Any) -> Any:
    if isinstance(value, bytes):
        raise _Unhandled
    if kind is str:
        return str(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        raise _Unhandled  # "yes"/"1" from an env var: typer's rules
    if kind is int or kind is float:
        return _number(kind, info, value)
    if kind is Path:
        return value if isinstance(value, Path) else Path(str(value))
    raise _Unhandled


def _number(kind: type[int] | type[float], info: Any, value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _Unhandled
    try:
        number = kind(value)
    except ValueError:
        label = "integer" if kind is int else "number"
        raise ValueError(f"{value!r} is not a valid {label}.") from None
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{number} is not in the range {_range(low, high)}.")
    return number


def _range(low: object, high: object) -> str:
    if low is not None and high is not None:
        return f"{low}<=x<={high}"
    return f"x>={low}" if low is not None else f"x<={high}"


def _list_item(annotation: Any) -> Any:
    from typing import get_args, get_origin

    if get_origin(annotation) is list:
        args = get_args(annotation)
        return args[0] if len(args) == 1 else annotation
    return annotation
