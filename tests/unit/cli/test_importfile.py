"""The import parsers: what each format yields, and a bad line named without its value."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keysafe.cli.formats import to_dotenv
from keysafe.cli.importfile import parse_dotenv, parse_file, parse_json, parse_yaml
from keysafe.errors import InvalidInput

GOOD_DOTENV = [
    ("A=1", {"A": "1"}),
    ("export A=1", {"A": "1"}),
    ("A = spaced  # comment", {"A": "spaced"}),
    ("A='lit $HOME \\n'", {"A": "lit $HOME \\n"}),
    ("A='it\\'s \\\\'", {"A": "it's \\"}),
    ('A="x\\ny \\"q\\""', {"A": 'x\ny "q"'}),
    ('A="two\nlines"', {"A": "two\nlines"}),
    ("# only a comment\n\nmy-key.v2=ok", {"my-key.v2": "ok"}),
    ("A=a#b", {"A": "a#b"}),
]
BAD_DOTENV = [
    ("A=1\nB", "f:2: expected NAME=value"),
    ("A=1\nA=2", "f:2: A is set twice"),
    ("A='open\nB=2", "f:1: unterminated ' quote"),
    ("A=", "f:1: A has an empty value"),
    ("A='x' trailing", "f:1: unexpected text after the closing quote"),
    ("bad name=1", "f:1: expected NAME=value"),
]


@pytest.mark.parametrize(("text", "expected"), GOOD_DOTENV)
def test_dotenv_reads(text: str, expected: dict[str, str]) -> None:
    assert parse_dotenv(text, "f") == expected


@pytest.mark.parametrize(("text", "error"), BAD_DOTENV)
def test_dotenv_names_the_line_and_never_the_value(text: str, error: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_dotenv(text, "f")
    assert info.value.detail == error


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(["A", "B_2", "my-key.v2"]), st.text(min_size=1)))
def test_dotenv_export_round_trips_through_import(env: dict[str, str]) -> None:
    # What `keysafe export` writes, `keysafe secret import` reads back exactly (a CRLF
    # inside a value is the one thing a dotenv file cannot keep apart from a line end).
    env = {k: v for k, v in env.items() if "\r\n" not in v}
    assert parse_dotenv(to_dotenv(env), "f") == env


def test_json_and_yaml() -> None:
    assert parse_json('{"A": "x", "PORT": 5432, "ON": true}', "f") == {
        "A": "x",
        "PORT": "5432",
        "ON": "true",
    }
    assert parse_yaml("A: x\nPORT: 0123\nB: |\n  two\n  lines\n", "f") == {
        "A": "x",
        "PORT": "0123",
        "B": "two\nlines\n",
    }


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("x.json", '{"A": 1,\n "B": [1]}', "x.json:2: B must be a string or number"),
        ("x.json", '{"A": 1,\n  oops}', "x.json:2: invalid JSON"),
        ("x.json", "[1]", "x.json:1: expected one JSON object"),
        ("x.yaml", "A: 1\nB:\n  C: 2\n", "x.yaml:2: expected NAME: value with a plain value"),
        ("x.yml", "A: 1\nB: [\n", "x.yml:3: invalid YAML"),
        ("x.yaml", "A: 1\nB:\n", "x.yaml:2: B has an empty value"),
        ("x.yaml", "A: !!python/object:os.system x\n", "x.yaml:1: A has an unsupported tag"),
        ("x.env", "", "x.env: no NAME=value pairs found"),
    ],
)
def test_bad_files(tmp_path: Path, name: str, text: str, error: str) -> None:
    file = tmp_path / name
    file.write_text(text)
    with pytest.raises(InvalidInput) as info:
        parse_file(file)
    assert info.value.detail.startswith(str(tmp_path / error.split(":")[0]) + error[len(name) :])
