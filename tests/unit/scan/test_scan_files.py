"""Files that were skipped or failed: UTF-16, stray NULs, nested repositories, symlinks."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from scan_fakes import Fakes

from keysafe.scan import textcodec
from keysafe.scan.engine import Engine
from keysafe.scan.rules import builtin_rules
from keysafe.scan.service import ScanOptions, ScanService

F = Fakes(seed=57)
TOKEN = F.github()
ENV = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent-keysafe-test-home"}


def scan(*targets: Path) -> tuple[list[tuple[str, int, int]], list[str], list[str]]:
    result = ScanService(Engine(builtin_rules()), ScanOptions(jobs=1)).scan_paths(
        [str(t) for t in targets]
    )
    found = [(Path(f.file).name, f.line, f.column) for f in result.findings]
    return found, result.problems, result.warnings


TEXT = f"# deploy\r\n$token = '{TOKEN}'\r\n"
# (name, bytes): encodings and content that must be read as text.
ENCODED: list[tuple[str, bytes]] = [
    ("utf16le-bom.ps1", b"\xff\xfe" + TEXT.encode("utf-16-le")),
    ("utf16be-bom.ps1", b"\xfe\xff" + TEXT.encode("utf-16-be")),
    ("utf16le-nobom.ps1", TEXT.encode("utf-16-le")),
    ("utf8-bom.ps1", b"\xef\xbb\xbf" + TEXT.encode()),
    ("nul-in-log.log", b"start\x00\n" + TEXT.encode() + b"x" * 9000),
    ("latin1.txt", "caf\xe9\n".encode("latin-1") + TEXT.encode()),
]


@pytest.mark.parametrize(("name", "data"), ENCODED, ids=[n for n, _ in ENCODED])
def test_text_in_any_encoding_is_scanned(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    found, problems, _ = scan(tmp_path / name)
    line = 3 if name.startswith(("nul", "latin")) else 2  # one line before TEXT
    assert [(n, at) for n, at, _ in found] == [(name, line)]
    assert problems == []


# (name, bytes): binary content stays skipped.
BINARY: list[tuple[str, bytes]] = [
    ("blob.dat", bytes(range(256)) * 40 + TOKEN.encode()),
    ("zeros.dat", b"\x00" * 4000 + TOKEN.encode()),
]


@pytest.mark.parametrize(("name", "data"), BINARY, ids=[n for n, _ in BINARY])
def test_binary_content_is_skipped(tmp_path: Path, name: str, data: bytes) -> None:
    (tmp_path / name).write_bytes(data)
    assert scan(tmp_path / name) == ([], [], [])


def test_utf16_large_file_keeps_line_numbers(tmp_path: Path) -> None:
    body = "x = 1\n" * 200_000 + f"t = '{TOKEN}'\n"
    (tmp_path / "big.ps1").write_bytes(b"\xff\xfe" + body.encode("utf-16-le"))
    assert scan(tmp_path / "big.ps1")[0] == [("big.ps1", 200_001, 6)]


def test_utf16_detection_table() -> None:
    assert textcodec.utf16_codec(b"\xff\xfeh\x00") == "utf-16"
    assert textcodec.utf16_codec("hello world".encode("utf-16-le")) == "utf-16-le"
    assert textcodec.utf16_codec("hello world".encode("utf-16-be")) == "utf-16-be"
    assert textcodec.utf16_codec(b"hello world") is None
    assert textcodec.utf16_codec(b"\x00" * 64) is None


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], env=ENV, check=True, capture_output=True)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_nested_repository_and_submodule_are_walked(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "vendor" / "lib"
    inner.mkdir(parents=True)
    git(outer, "init", "-q")
    git(inner, "init", "-q")
    (inner / "conf.env").write_text(f"T={TOKEN}\n")
    (outer / "app.py").write_text("x = 1\n")
    sub_src = tmp_path / "sub_src"
    sub_src.mkdir()
    git(sub_src, "init", "-q")
    (sub_src / "s.env").write_text(f"T={F.github()}\n")
    git(sub_src, "add", "-A")
    git(sub_src, "-c", "user.name=a", "-c", "user.email=a@b", "commit", "-qm", "s")
    git(
        outer,
        "-c",
        "protocol.file.allow=always",
        "submodule",
        "add",
        "-q",
        str(sub_src),
        "mods/sub",
    )
    found, problems, _ = scan(outer)
    assert problems == []
    assert sorted(n for n, _, _ in found) == ["conf.env", "s.env"]


def test_dangling_symlink_in_a_clean_tree_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("nothing here\n")
    (tmp_path / "gone.env").symlink_to(tmp_path / "missing.env")
    found, problems, warnings = scan(tmp_path)
    assert (found, problems) == ([], [])
    assert warnings == ["skipped broken symlink: " + str(tmp_path / "gone.env")]


# (link target relative to the tree, followed?)
LINKS: list[tuple[str, bool]] = [
    ("inside/real.env", True),
    ("../outside/secret.env", False),
    ("../outside", False),
]


@pytest.mark.parametrize(("target", "followed"), LINKS)
def test_symlinks_out_of_the_tree_are_not_followed(
    tmp_path: Path, target: str, followed: bool
) -> None:
    tree = tmp_path / "tree"
    (tree / "inside").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.env").write_text(f"T={TOKEN}\n")
    (tree / "inside" / "real.env").write_text(f"T={TOKEN}\n")
    (tree / "link.env").symlink_to(target)
    found, problems, _ = scan(tree)
    names = sorted(n for n, _, _ in found)
    assert names == (["link.env", "real.env"] if followed else ["real.env"])
    assert problems == []
