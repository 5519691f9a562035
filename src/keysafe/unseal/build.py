"""The unseal source the settings ask for (``KEYSAFE_SEAL``), checked before use."""

from __future__ import annotations

from pathlib import Path

from keysafe.config import Settings
from keysafe.errors import InvalidInput
from keysafe.unseal.source import UnsealSource

__all__ = ["build_source"]


def build_source(settings: Settings) -> UnsealSource | None:
    """None without ``KEYSAFE_SEAL``; raises InvalidInput (one line) for a setting that
    is missing or unusable."""
    if settings.seal == "pkcs11":
        from keysafe.unseal.pkcs11_source import Pkcs11Source

        library = settings.pkcs11_library
        if library is None or not library.is_file():
            raise InvalidInput(
                "KEYSAFE_SEAL=pkcs11 needs KEYSAFE_PKCS11_LIBRARY (the PKCS#11 module's path)"
                + (f"; {library} does not exist" if library is not None else "")
            )
        if not settings.pkcs11_token_label:
            raise InvalidInput("KEYSAFE_SEAL=pkcs11 needs KEYSAFE_PKCS11_TOKEN_LABEL")
        pin = _secret(settings.pkcs11_pin, settings.pkcs11_pin_file, "KEYSAFE_PKCS11_PIN")
        return Pkcs11Source(
            library,
            settings.pkcs11_token_label,
            pin,
            settings.pkcs11_key_label,
            generate_key=settings.pkcs11_generate_key,
            timeout=settings.unseal_source_timeout_seconds,
        )
    if settings.seal == "transit":
        from keysafe.unseal.transit_source import TransitSource

        address = settings.transit_address
        if not address.startswith("https://") and not _loopback_http(address):
            raise InvalidInput(
                "KEYSAFE_SEAL=transit needs KEYSAFE_TRANSIT_ADDRESS, an https:// address "
                "(plain http only on a loopback host)"
            )
        if settings.transit_cacert is not None and not settings.transit_cacert.is_file():
            raise InvalidInput(f"KEYSAFE_TRANSIT_CACERT {settings.transit_cacert} does not exist")
        token = _secret(
            settings.transit_token, settings.transit_token_file, "KEYSAFE_TRANSIT_TOKEN"
        )
        return TransitSource(
            address,
            token,
            settings.transit_key_name,
            mount=settings.transit_mount_path,
            cacert=settings.transit_cacert,
            timeout=settings.unseal_source_timeout_seconds,
        )
    return None


def _secret(value: object, path: Path | None, env: str) -> str:
    """A PIN or token from its setting, else from its file (which must be private)."""
    from pydantic import SecretStr

    if isinstance(value, SecretStr) and value.get_secret_value():
        return value.get_secret_value()
    if path is None:
        raise InvalidInput(f"set {env} or {env}_FILE")
    try:
        mode = path.stat().st_mode
        text = path.read_text().strip()
    except OSError as exc:
        raise InvalidInput(f"cannot read {env}_FILE {path}: {exc.strerror}") from exc
    if mode & 0o077:
        raise InvalidInput(f"{env}_FILE {path} must be private to its owner (chmod 600)")
    if not text:
        raise InvalidInput(f"{env}_FILE {path} is empty")
    return text


def _loopback_http(address: str) -> bool:
    from urllib.parse import urlsplit

    from keysafe.netloc import is_loopback

    parts = urlsplit(address)
    return parts.scheme == "http" and bool(parts.hostname) and is_loopback(parts.hostname or "")
