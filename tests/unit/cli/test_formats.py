"""Export formats read back exactly by the programs they are meant for."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import pytest
from dotenv import dotenv_values
from hypothesis import given, settings
from hypothesis import strategies as st

from keysafe.cli.formats import shell_quote, to_dotenv, to_json, to_shell

TRICKY = [
    "plain",
    "with space",
    "it's",
    'double "quoted"',
    "dollar $HOME and ${HOME} and $(id) and `id`",
    "back\\slash and \\n literal",
    "trailing backslash\\",
    "multi\nline\nvalue\n",
    "tab\tand\rcarriage",
    "unicode é ✓ 🔑",
    "#not-a-comment",
    "=equals=",
    "'",
    "''",
    "\\'",
]

# Values an environment variable can hold: no NUL byte (execve cannot pass one).
env_values = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))


@pytest.mark.parametrize("value", TRICKY)
def test_dotenv_round_trips_through_python_dotenv(value: str) -> None:
    text = to_dotenv({"KEY": value, "OTHER": "x"})
    parsed = dotenv_values(stream=io.StringIO(text), interpolate=False)
    assert parsed == {"KEY": value, "OTHER": "x"}


@given(st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,8}", fullmatch=True), env_values))
@settings(max_examples=200, deadline=None)
def test_dotenv_round_trips_any_text(env: dict[str, str]) -> None:
    parsed = dotenv_values(stream=io.StringIO(to_dotenv(env)), interpolate=False)
    assert dict(parsed) == env


@pytest.mark.parametrize("value", TRICKY)
def test_json_round_trips(value: str) -> None:
    assert json.loads(to_json({"KEY": value})) == {"KEY": value}


@pytest.mark.skipif(shutil.which("sh") is None, reason="needs a POSIX shell")
def test_shell_round_trips_through_eval() -> None:
    env = {f"V{i}": value for i, value in enumerate(TRICKY)}
    script = to_shell(env) + "".join(f'printf "%s\\0" "$V{i}"\n' for i in range(len(TRICKY)))
    out = subprocess.run(["sh", "-c", script], capture_output=True, check=True).stdout
    assert out.decode("utf-8").split("\0")[:-1] == TRICKY


@given(env_values)
@settings(max_examples=100, deadline=None)
def test_shell_quote_keeps_everything_inside_one_word(value: str) -> None:
    quoted = shell_quote(value)
    assert quoted.startswith("'")
    assert quoted.endswith("'")
    # Outside the quotes there is only the escaped quote sequence.
    assert quoted[1:-1].replace("'\\''", "").count("'") == 0


def test_shell_output_is_exported() -> None:
    assert to_shell({"A": "b"}) == "export A='b'\n"
