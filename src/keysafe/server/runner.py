"""Start the server: the embedded quick start (``keysafe up``) and production mode."""

from __future__ import annotations

import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from keysafe.config import Settings
from keysafe.errors import InvalidInput
from keysafe.netloc import is_loopback

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from keysafe.server.protocol import HardenedConfig

UNSEAL_KEY_FILENAME = "unseal.key"


@dataclass(frozen=True, slots=True)
class EmbeddedInit:
    root_token: str | None  # only on the very first initialisation
    unseal_key_file: Path
    created: bool


def prepare_embedded(settings: Settings) -> EmbeddedInit:
    """Create the data dir, the dev unseal key (0600) and the vault on first use."""
    from keysafe.server.services import build_services
    from keysafe.store.migrate import upgrade
    from keysafe.system.service import MODE_KEY

    settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    key_file = settings.home / UNSEAL_KEY_FILENAME
    svc = build_services(settings)
    try:
        upgrade(svc.engine)
        if svc.system.seal_config() is not None:
            if not key_file.exists():
                raise InvalidInput(
                    f"the vault under {settings.home} is initialised but its unseal key "
                    f"{key_file} is missing"
                )
            return EmbeddedInit(None, key_file, created=False)
        result = svc.system.initialize(1, 1, mode=MODE_KEY)
        _write_private(key_file, result.shares[0] + "\n")
        return EmbeddedInit(result.root_token, key_file, created=True)
    finally:
        svc.engine.dispose()


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def run_server(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    tls_cert: Path | None,
    tls_key: Path | None,
    insecure_http: bool,
    unseal_key_file: Path | None,
) -> None:
    """Serve until interrupted. Raises InvalidInput for unsafe or inconsistent options."""
    from keysafe.server.app import INTERNAL_SETTINGS_ENV, SECRET_SETTINGS_ENV
    from keysafe.server.protocol import HardenedConfig, VaultListProtocol
    from keysafe.server.services import db_timeouts, read_unseal_key
    from keysafe.store.engine import make_engine
    from keysafe.store.migrate import upgrade
    from keysafe.store.rawread import checkpoint

    if insecure_http:
        if not is_loopback(host):
            raise InvalidInput("--insecure-http is only allowed on a loopback address")
    elif tls_cert is None or tls_key is None:
        raise InvalidInput("give --tls-cert and --tls-key, or --insecure-http on loopback")
    for tls_file in (tls_cert, tls_key):
        if tls_file is not None and not insecure_http and not tls_file.is_file():
            raise InvalidInput(f"TLS file {tls_file} does not exist")
    if unseal_key_file is not None:
        settings = settings.model_copy(update={"unseal_key_file": unseal_key_file})
    has_key_source = read_unseal_key(settings) is not None
    from keysafe.unseal.build import build_source

    # Checks the settings now (one line and exit 2 when one is missing or unusable).
    has_key_source = build_source(settings) is not None or has_key_source
    if workers < 1:
        raise InvalidInput("--workers must be at least 1")
    if workers > 1 and not has_key_source:
        raise InvalidInput(
            "several workers need an unseal source (KEYSAFE_SEAL=pkcs11 or transit, "
            "--unseal-key-file or KEYSAFE_UNSEAL_KEY): each worker unseals itself; with "
            "Shamir shares run one worker per node"
        )
    _check_port_free(host, port)
    engine = make_engine(settings.resolved_database_url(), db_timeouts(settings))
    try:
        upgrade(engine)
        checkpoint(engine, "TRUNCATE")
        if settings.init_token_file is not None:
            # Absolute: the workers read it whatever their working directory.
            token_file = settings.init_token_file.expanduser().resolve()
            settings = settings.model_copy(update={"init_token_file": token_file})
            _prepare_init_token(engine, token_file)
    finally:
        engine.dispose()

    if workers > 1:
        # Each worker writes its metrics to files there; /metrics sums them all.
        from keysafe.monitor.metrics import prepare_multiprocess_dir
        from keysafe.monitor.nodelimits import prepare_node_file

        prepare_multiprocess_dir(settings.data_dir)
        # Rate limits without Redis: one count for the node, not one per worker.
        prepare_node_file(settings.data_dir, workers)
    # Worker processes rebuild the settings from this (the CLI may have merged a file).
    doc = orjson.loads(
        settings.model_dump_json(exclude={"token", "unseal_key", *SECRET_SETTINGS_ENV})
    )
    os.environ[INTERNAL_SETTINGS_ENV] = orjson.dumps(doc).decode()
    # The PIN and transit token reach the workers in clear (the dump masks secrets).
    for name, env_name in SECRET_SETTINGS_ENV.items():
        value = getattr(settings, name)
        if value is not None:
            os.environ[env_name] = value.get_secret_value()
    # One node id for this server's processes: the registry and the audit trail name it.
    from keysafe.system.nodes import NODE_ENV, NodeIdentity

    scheme = "http" if insecure_http else "https"
    os.environ[NODE_ENV] = NodeIdentity.new(
        f"{scheme}://{_advertised_host(host)}:{port}", time.time_ns() // 1000
    ).to_env()
    if workers > 1:
        # CPU-heavy jobs in their own process, not in the workers' threads (see there).
        from keysafe.server import jobprocess

        jobprocess.start()
    config = HardenedConfig(
        "keysafe.server.app:create_app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        ssl_certfile=None if insecure_http else str(tls_cert),
        ssl_keyfile=None if insecure_http else str(tls_key),
        http=VaultListProtocol,
        access_log=False,
        log_level="warning",
        timeout_keep_alive=settings.keep_alive_seconds,
        server_header=False,
        # Forwarded headers count only from KEYSAFE_TRUSTED_PROXIES, with keysafe's own
        # rule (keysafe.server.clientaddr); uvicorn's would let more peers choose an address.
        proxy_headers=False,
        # Anonymous clients may not hold connections or memory for free (see protocol).
        head_timeout=settings.header_timeout_seconds,
        max_head_bytes=settings.max_header_bytes,
        h11_max_incomplete_event_size=settings.max_header_bytes,  # were h11 ever chosen
        tls_handshake_timeout=settings.tls_handshake_timeout_seconds,
        body_idle_timeout=settings.body_idle_timeout_seconds,
    )
    _serve(config)


def _serve(config: HardenedConfig) -> None:
    """``uvicorn.run`` for a prepared config (``uvicorn.run`` builds its own plain one)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    server = uvicorn.Server(config=config)
    if config.workers > 1:
        sock = config.bind_socket()
        Multiprocess(config, sockets=[sock]).run()
        return
    server.run()
    if not server.started:
        raise SystemExit(3)


def _prepare_init_token(engine: Engine, path: Path) -> None:
    """Before a vault is initialised, make sure its init token file exists (see
    ``keysafe.system.init_token``) and say where; afterwards it is of no use."""
    from sqlalchemy import select

    from keysafe.store.engine import read_conn
    from keysafe.store.tables import sys_state
    from keysafe.system.init_token import prepare_init_token

    with read_conn(engine) as conn:
        initialised = conn.execute(
            select(sys_state.c.key).where(sys_state.c.key == "seal_config")
        ).first()
    if initialised is not None:
        return
    created = prepare_init_token(path)
    print(  # the operator's next step (the token itself stays in the file)
        f"keysafe: init needs the one-time token {'written to' if created else 'in'} {path}",
        file=sys.stderr,
        flush=True,
    )


def _advertised_host(host: str) -> str:
    """The host part of this node's address in the registry: the listening address, or
    the host name when it listens on every interface."""
    if host in ("", "0.0.0.0", "::"):  # noqa: S104 - compared, not bound
        return socket.gethostname()
    return f"[{host}]" if ":" in host else host


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InvalidInput(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
