"""Unseal source settings: each missing or unusable one is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from keysafe.config import Settings, load_settings
from keysafe.errors import InvalidInput
from keysafe.unseal.build import build_source
from keysafe.unseal.pkcs11_source import Pkcs11Source
from keysafe.unseal.transit_source import TransitSource


def _settings(**values: object) -> Settings:
    return Settings.model_validate(values)


def test_no_source_without_keysafe_seal() -> None:
    assert build_source(_settings()) is None


def test_pkcs11_settings(tmp_path: Path) -> None:
    lib = tmp_path / "lib.so"
    lib.write_bytes(b"")
    with pytest.raises(InvalidInput, match="KEYSAFE_PKCS11_LIBRARY"):
        build_source(_settings(seal="pkcs11"))
    with pytest.raises(InvalidInput, match="TOKEN_LABEL"):
        build_source(_settings(seal="pkcs11", pkcs11_library=lib))
    with pytest.raises(InvalidInput, match="KEYSAFE_PKCS11_PIN"):
        build_source(_settings(seal="pkcs11", pkcs11_library=lib, pkcs11_token_label="t"))
    pin_file = tmp_path / "pin"
    pin_file.write_text("1234\n")
    pin_file.chmod(0o644)
    with pytest.raises(InvalidInput, match="chmod 600"):
        build_source(
            _settings(
                seal="pkcs11", pkcs11_library=lib, pkcs11_token_label="t", pkcs11_pin_file=pin_file
            )
        )
    pin_file.chmod(0o600)
    source = build_source(
        _settings(
            seal="pkcs11", pkcs11_library=lib, pkcs11_token_label="t", pkcs11_pin_file=pin_file
        )
    )
    assert isinstance(source, Pkcs11Source)
    assert "1234" not in source.describe()


def test_transit_settings() -> None:
    with pytest.raises(InvalidInput, match=r"https://"):
        build_source(_settings(seal="transit", transit_address="http://vault.example:8200"))
    source = build_source(
        _settings(
            seal="transit",
            transit_address="https://vault.example:8200",
            transit_token="tok-SECRET-123",
        )
    )
    assert isinstance(source, TransitSource)
    assert "SECRET" not in source.describe()


def test_secrets_never_come_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "keysafe.toml"
    config.write_text('seal = "pkcs11"\npkcs11_pin = "1234"\n')
    with pytest.raises(InvalidInput, match="KEYSAFE_PKCS11_PIN"):
        load_settings(config)


def test_unknown_seal_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="seal"):
        _settings(seal="aws-kms")
