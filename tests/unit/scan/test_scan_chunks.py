"""Chunked reading: overlapping chunks find every token once, whole, at its real place."""

from __future__ import annotations

import io

import pytest
from scan_fakes import Fakes

from keysafe.scan import sources
from keysafe.scan.engine import Engine
from keysafe.scan.models import Finding, Location
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanService, _scan_chunk

F = Fakes(seed=23)
ENGINE = Engine(builtin_rules())
TOKEN = F.github("ghp")


def _chunked(data: bytes, chunk: int, overlap: int) -> list[Finding]:
    found: list[Finding] = []
    for piece in sources.iter_text_chunks(io.BytesIO(data), chunk=chunk, overlap=overlap):
        found += _scan_chunk(ENGINE, piece, "f")
    return found


def _whole(data: bytes) -> list[tuple[str, int, int, str]]:
    text = data.decode("utf-8", "replace")
    return [(f.rule, f.line, f.column, f.secret) for f in ENGINE.scan_text(text, Location("f"))]


# (name, bytes): every layout is cut by small chunks at many places.
LAYOUTS: list[tuple[str, bytes]] = [
    ("one long line", ("x" * 997 + " " + TOKEN + " ").encode() * 7),
    ("long line, token at every offset", "".join(f"{'y' * n} {TOKEN}" for n in range(60)).encode()),
    ("many short lines", (f"a = 1\nT={TOKEN}\n" * 40).encode()),
    ("multibyte around the cut", ("é€" * 333 + f" {TOKEN} ").encode() * 5),
    ("no newline at end", ("z\n" * 300 + f"k {TOKEN}").encode()),
    ("pem across cut", ("x\n" * 300 + F.pem("RSA ") + "\n" + "y\n" * 300).encode()),
    ("crlf lines", (f"a\r\nT={TOKEN}\r\n" * 50).encode()),
]


@pytest.mark.parametrize(("name", "data"), LAYOUTS, ids=[n for n, _ in LAYOUTS])
@pytest.mark.parametrize(("chunk", "overlap"), [(200, 120), (333, 150), (1000, 400)])
def test_chunks_cover_the_stream_once(name: str, data: bytes, chunk: int, overlap: int) -> None:
    pieces = list(sources.iter_text_chunks(io.BytesIO(data), chunk=chunk, overlap=overlap))
    assert "".join(p.text[: p.stop] for p in pieces) == data.decode("utf-8", "replace")
    got = [(f.rule, f.line, f.column, f.secret) for f in _chunked(data, chunk, overlap)]
    assert sorted(got) == sorted(_whole(data)), name
    assert got, name


def test_token_across_the_stdin_chunk_cut_is_found() -> None:
    # stdin is read 256 KiB at a time: put a token across the first cut of a long line.
    for before in (256 * 1024 - 20, 256 * 1024 - 64 * 1024 - 10, 3 * 256 * 1024 + 5):
        data = ("q" * before + " " + TOKEN + " " + "q" * 600_000).encode()
        result = ScanService(ENGINE).scan_stream(io.BytesIO(data))
        assert [(f.line, f.column, f.secret) for f in result.findings] == [
            (1, before + 2, TOKEN)
        ], before


def test_token_across_the_file_chunk_cut_is_found(tmp_path: io.TextIOBase) -> None:
    data = "w" * (sources.CHUNK - 30) + " " + TOKEN + " " + "w" * 100_000
    path = tmp_path / "min.js"  # type: ignore[operator]
    path.write_text(data)
    found = [(f.line, f.column) for f in ScanService(ENGINE).scan_paths([str(path)]).findings]
    assert found == [(1, sources.CHUNK - 28)]


# (text, expected (line, column) of each finding): line starts found incrementally.
POSITIONS: list[tuple[str, list[tuple[int, int]]]] = [
    (f"{TOKEN}", [(1, 1)]),
    (f"\n\n  {TOKEN}", [(3, 3)]),
    (f"a {TOKEN} b {TOKEN}\nc {TOKEN}", [(1, 3), (1, 46), (2, 3)]),
    ("\n" * 5 + ("x " * 50 + TOKEN + " ") * 3, [(6, 101), (6, 242), (6, 383)]),
    (f"password = 'Kq7xVb9Lm2zz'\n\nT={TOKEN}", [(1, 13), (3, 3)]),
]


@pytest.mark.parametrize(("text", "where"), POSITIONS)
def test_positions_on_long_and_short_lines(text: str, where: list[tuple[int, int]]) -> None:
    assert [(f.line, f.column) for f in ENGINE.scan_text(text, Location("f"))] == where


def test_many_hits_on_one_line_are_all_reported() -> None:
    line = " ".join(f"t{i}={F.github('ghp')}" for i in range(300))
    found = ENGINE.scan_text(line, Location("f"))
    assert len(found) == 300
    assert all(line[f.column - 1 : f.end_column - 1] == f.secret for f in found)
