"""HTTPS targets: the request goes to the checked address, with the URL's name for TLS
(SNI, and the certificate checked against it), over a real TLS receiver."""

import datetime as dt
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import httpx2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from app.db.pool import Pool
from app.jobs import webhooks as webhooks_job
from app.jobs.outbox import DeliveryResult
from app.services import webhooks as webhooks_service
from app.settings import Settings
from tests.factories import Student, booked
from tests.webhooks.conftest import NOW, Receiver, deliveries, register

NAME = "hooks.example.org"


def _certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (its own CA)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.pem", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def tls_receiver(tmp_path: Path) -> Iterator[tuple[Receiver, list[str]]]:
    """An HTTPS receiver whose certificate names NAME; the SNI names it was asked for."""
    cert, key = _certificate(tmp_path, NAME)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    asked: list[str] = []
    context.sni_callback = lambda sock, name, ctx: asked.append(name or "")
    server = Receiver(tls=context)
    server.start()
    try:
        yield server, asked
    finally:
        server.stop()


def _client(trusted: Path) -> httpx2.AsyncClient:
    """The job's client, but trusting the test certificate."""
    context = ssl.create_default_context(cafile=str(trusted))
    return httpx2.AsyncClient(verify=context, follow_redirects=False, trust_env=False)


async def test_https_to_the_checked_address_with_the_name_for_tls(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    tls_receiver: tuple[Receiver, list[str]],
    pool: Pool,
    hook_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, asked = tls_receiver

    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == NAME else []

    monkeypatch.setattr(webhooks_service, "resolve", dns)
    hook = await register(api, admin, f"https://{NAME}:{receiver.port}/in", ["reservation.created"])
    await booked(api, alice, seat_id)

    async with _client(tmp_path / f"{NAME}.pem") as client:
        result = await webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW, client=client)

    assert result == DeliveryResult(sent=1)
    [request] = receiver.requests
    assert request.path == "/in"
    assert request.headers["host"] == f"{NAME}:{receiver.port}"
    assert asked == [NAME]  # SNI: the name, though the connection went to 127.0.0.1
    [delivery] = await deliveries(api, admin, hook["id"])
    assert delivery["status"] == "delivered"


async def test_a_certificate_for_another_name_is_not_trusted(
    api: httpx.AsyncClient,
    admin: Student,
    alice: Student,
    seat_id: int,
    tls_receiver: tuple[Receiver, list[str]],
    pool: Pool,
    hook_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    receiver, _ = tls_receiver

    async def dns(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(webhooks_service, "resolve", dns)
    url = f"https://other.example.org:{receiver.port}/in"
    hook = await register(api, admin, url, ["reservation.created"])
    await booked(api, alice, seat_id)

    async with _client(tmp_path / f"{NAME}.pem") as client:
        result = await webhooks_job.deliver_webhooks(pool, hook_settings, now=NOW, client=client)

    assert result == DeliveryResult(retried=1)
    assert receiver.requests == []
    [delivery] = await deliveries(api, admin, hook["id"])
    assert delivery["status"] == "pending" and "CERTIFICATE" in delivery["last_error"].upper()
