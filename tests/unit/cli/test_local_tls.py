"""The local CA and loopback certificate that ``keysafe up`` serves with."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from keysafe.crypto.tls import ensure_local_tls


def test_files_and_permissions(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path / "tls")
    assert stat.S_IMODE(tls.key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls" / "ca-key.pem").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "tls").stat().st_mode) == 0o700


def test_server_certificate_names_loopback_and_chains_to_the_ca(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path)
    ca = x509.load_pem_x509_certificate(tls.ca_cert.read_bytes())
    cert = x509.load_pem_x509_certificate(tls.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(san.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    cert.verify_directly_issued_by(ca)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_second_call_reuses_the_files(tmp_path: Path) -> None:
    first = ensure_local_tls(tmp_path)
    before = {p: p.read_bytes() for p in (first.ca_cert, first.cert, first.key)}
    second = ensure_local_tls(tmp_path)
    assert second == first
    assert {p: p.read_bytes() for p in before} == before


def test_lost_server_key_is_reissued_under_the_same_ca(tmp_path: Path) -> None:
    tls = ensure_local_tls(tmp_path)
    ca_before = tls.ca_cert.read_bytes()
    tls.key.unlink()
    ensure_local_tls(tmp_path)
    assert tls.key.exists()
    assert tls.ca_cert.read_bytes() == ca_before
