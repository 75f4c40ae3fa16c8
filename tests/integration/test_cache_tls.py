"""The API against a real Valkey/Redis that speaks only TLS with a private CA, as Memorystore
does: with the CA file it verifies the server and uses it; without, it refuses the server
and falls back to its in-process limiter instead of failing."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps.api.backends import Backends
from tests.integration.conftest import free_port, redis_server

pytestmark = pytest.mark.integration


def _pki(tmp: Path, ip_in_san: bool = True) -> tuple[Path, Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test server CA")])
    ca = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
        .public_key(ca_key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key()).serial_number(2)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
    )  # fmt: skip
    if ip_in_san:
        cert = cert.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    cert = cert.sign(ca_key, hashes.SHA256())
    pem = serialization.Encoding.PEM
    paths = (tmp / "ca.crt", tmp / "server.crt", tmp / "server.key")
    paths[0].write_bytes(ca.public_bytes(pem))
    paths[1].write_bytes(cert.public_bytes(pem))
    paths[2].write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(params=["ip-in-san", "ip-in-cn-only"])
def tls_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, Path]]:
    """A TLS-only server; `ip-in-cn-only` presents a certificate like Memorystore's, which
    names its IP in the CN alone."""
    ca, cert, key = _pki(tmp_path, ip_in_san=request.param == "ip-in-san")
    port = free_port()
    tls = [
        "--tls-cert-file", str(cert), "--tls-key-file", str(key), "--tls-ca-cert-file", str(ca),
        "--tls-auth-clients", "no", "--requirepass", "t0ken",
    ]  # fmt: skip
    with redis_server(tmp_path, ["--port", "0", "--tls-port", str(port)], *tls):
        yield f"rediss://:t0ken@127.0.0.1:{port}/0", ca


def test_the_api_verifies_a_private_ca_server_with_its_ca_file(
    tls_redis: tuple[str, Path],
) -> None:
    url, ca = tls_redis
    backends = Backends(url, "2/minute", ca_file=str(ca))
    assert backends.ping() is True
    assert [backends.hit("client") for _ in range(3)][:2] == [None, None]
    assert backends.hit("client") is not None  # limited through the server, shared by pods
    assert backends.redis_ok is True


def test_another_ca_is_refused(tls_redis: tuple[str, Path], tmp_path: Path) -> None:
    """Host names are not checked with a private CA, so the chain is what protects: a server
    whose certificate another CA signed is refused."""
    url, _ca = tls_redis
    other = tmp_path / "other"
    other.mkdir()
    other_ca, _cert, _key = _pki(other)
    backends = Backends(url, "2/minute", ca_file=str(other_ca))
    assert backends.ping() is False


def test_without_the_ca_the_server_is_refused_and_the_api_degrades(
    tls_redis: tuple[str, Path],
) -> None:
    url, _ca = tls_redis
    backends = Backends(url, "2/minute")
    assert backends.ping() is False  # certificate verify failed: never trusted blindly
    assert backends.hit("client") is None  # the in-process limiter still serves
    assert backends.redis_ok is False
