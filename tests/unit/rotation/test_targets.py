"""Parsing rotator connection URLs into the target that is checked and connected to:
tables of (input, expected), and a property test that what is checked is what is used."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict

from keysafe.errors import InvalidInput
from keysafe.rotation.targets import (
    Target,
    make_target,
    normalize_host,
    parse_postgres,
    parse_redis,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("LOCALHOST", "localhost"),
        ("localhost.", "localhost"),
        ("db.Internal", "db.internal"),
        ("[::1]", "::1"),
        ("0:0:0:0:0:0:0:1", "::1"),
        ("::ffff:127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("cafe", "cafe"),
        ("my_db-1.svc", "my_db-1.svc"),
    ],
)
def test_hosts_are_normalised(raw: str, expected: str) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "fe80::1%eth0", "fe80::1%25eth0", "db/x", "a b", "db:5432", "-db", "a..b", "x" * 254, "é"],
)
def test_bad_hosts_are_refused(raw: str) -> None:
    with pytest.raises(InvalidInput):
        normalize_host(raw)


@pytest.mark.parametrize(
    ("url", "target", "user"),
    [
        ("postgresql://u:p@db:5433/app", Target("postgres", "db", 5433, "app"), "u"),
        ("postgres://u@DB/app", Target("postgres", "db", 5432, "app"), "u"),
        ("postgresql+psycopg://u:p@[::1]/app", Target("postgres", "::1", 5432, "app"), "u"),
        ("postgresql://u:p@127.0.0.%31:5432", Target("postgres", "127.0.0.1", 5432, "u"), "u"),
        ("postgresql://u@db/app?sslmode=require", Target("postgres", "db", 5432, "app"), "u"),
        ("host=db port=6000 dbname=x user=u", Target("postgres", "db", 6000, "x"), "u"),
    ],
)
def test_postgres_urls(url: str, target: Target, user: str) -> None:
    conn = parse_postgres(url)
    assert (conn.target, conn.user) == (target, user)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@db/x", "not a PostgreSQL URL"),
        ("postgresql://u@db/x?host=evil", "'host' is not allowed"),
        ("postgresql://u@db/x?port=1", "'port' is not allowed"),
        ("postgresql://u@db/x?hostaddr=10.0.0.1", "'hostaddr' is not allowed"),
        ("postgresql://u@db/x?service=evil", "'service' is not allowed"),
        ("postgresql://u@db/x?sslrootcert=/etc/shadow", "'sslrootcert' is not allowed"),
        ("postgresql://u@db/x?passfile=/etc/shadow", "'passfile' is not allowed"),
        ("postgresql://u@db/x?sslmode=bogus", "sslmode"),
        ("host=db hostaddr=10.0.0.1 user=u", "'hostaddr' is not allowed"),
        ("postgresql://u@/x", "network host"),
        ("postgresql://u@%2Ftmp/x", "network host"),
        ("postgresql://u@a,b/x", "single host"),
        ("postgresql://u@db:1,2/x", "single host"),
        ("postgresql://db/x", "name its user"),
        ("postgresql://u@[fe80::1%25eth0]/x", "host"),
    ],
)
def test_postgres_urls_refused(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        parse_postgres(url)
    assert "evil" not in info.value.detail


def test_a_refusal_never_quotes_the_password() -> None:
    with pytest.raises(InvalidInput) as info:
        parse_postgres("postgresql://u:hunter2@db/x?hostaddr=1.2.3.4")
    assert "hunter2" not in info.value.detail


@pytest.mark.parametrize(
    ("url", "target", "user"),
    [
        ("redis://127.0.0.1:6379/0", Target("redis", "127.0.0.1", 6379, "0"), "default"),
        ("rediss://u:p@Cache/3", Target("redis", "cache", 6379, "3"), "u"),
        ("redis://u:p@[::1]:7000", Target("redis", "::1", 7000, "0"), "u"),
        ("redis://u:p@127.0.0.%31/01", Target("redis", "127.0.0.1", 6379, "1"), "u"),
    ],
)
def test_redis_urls(url: str, target: Target, user: str) -> None:
    conn = parse_redis(url)
    assert (conn.target, conn.user) == (target, user)


@pytest.mark.parametrize(
    "url",
    [
        "unix:///tmp/redis.sock",
        "redis://db/0?unix_socket_path=/tmp/x",
        "redis://db/x",
        "redis://db:99999/0",
        "redis:///0",
        "redis://db/0#frag",
    ],
)
def test_redis_urls_refused(url: str) -> None:
    with pytest.raises(InvalidInput):
        parse_redis(url)


def test_make_target_defaults_and_limits() -> None:
    assert make_target("redis", "db", None, "") == Target("redis", "db", 6379, "0")
    assert make_target("postgres", "db", None, "app") == Target("postgres", "db", 5432, "app")
    for kind, port, database in (("mysql", 1, "x"), ("postgres", 0, "x"), ("postgres", 1, "")):
        with pytest.raises(InvalidInput):
            make_target(kind, "db", port, database)


_label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)


@given(
    host=st.one_of(
        st.ip_addresses().map(str),
        st.lists(_label, min_size=1, max_size=3).map(".".join),
    ),
    port=st.integers(1, 65535),
    database=_label,
    user=_label,
)
def test_what_is_checked_is_what_libpq_connects_to(
    host: str, port: int, database: str, user: str
) -> None:
    netloc = f"[{host}]" if ":" in host else host
    conn = parse_postgres(f"postgresql://{user}:pw@{netloc}:{port}/{database}?sslmode=require")
    used = conninfo_to_dict(conn.conninfo())
    assert used["host"] == conn.target.host
    assert int(used["port"]) == conn.target.port == port
    assert used["dbname"] == conn.target.database == database
    assert (used["user"], used["sslmode"]) == (user, "require")
    assert set(used) <= {"host", "port", "dbname", "user", "password", "sslmode"}
