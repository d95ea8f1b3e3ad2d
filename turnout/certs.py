"""`turnout certs init`: a private CA, the xDS server certificate and one client
certificate per proxy, as PEM files.

Keys are EC P-256 (fast handshakes, 128-bit security). The CA lives 10 years,
leaf certificates 1 year. Each proxy certificate names the proxy twice: CN and a
`URI:spiffe://turnout/node/<node-id>` SAN, which is what the xDS allow-list
(`turnout/xds/identity.py`) matches against the node id the proxy claims.

Layout of the output directory:

    ca.pem ca.key                the CA (keep ca.key offline in production)
    server.pem server.key        for `turnout serve --xds-tls-cert/--xds-tls-key`
    <node-id>.pem <node-id>.key  for `turnout bootstrap --client-cert/--client-key`
"""

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_VALIDITY = timedelta(days=3650)
LEAF_VALIDITY = timedelta(days=365)
NODE_URI_PREFIX = "spiffe://turnout/node/"


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Turnout"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_ca(cn: str = "Turnout CA", validity: timedelta = CA_VALIDITY) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Issued(cert, key)


def issue(
    ca: Issued,
    cn: str,
    *,
    server: bool,
    dns: list[str] | None = None,
    ips: list[str] | None = None,
    uris: list[str] | None = None,
    validity: timedelta = LEAF_VALIDITY,
) -> Issued:
    """A leaf certificate signed by `ca`, for a server or for a client."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns or []]
    sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips or []]
    sans += [x509.UniformResourceIdentifier(u) for u in uris or []]
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def write(issued: Issued, directory: Path, stem: str) -> tuple[Path, Path]:
    """`<stem>.pem` and `<stem>.key` (mode 0600) in `directory`."""
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    cert_path.write_bytes(issued.cert.public_bytes(serialization.Encoding.PEM))
    key_bytes = issued.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key_bytes)
    return cert_path, key_path


def load(directory: Path, stem: str) -> Issued:
    cert = x509.load_pem_x509_certificate((directory / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / f"{stem}.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return Issued(cert, key)


def init(
    directory: Path,
    nodes: list[str],
    server_names: list[str],
    server_ips: list[str],
) -> list[Path]:
    """Create (or reuse) the CA in `directory`, then the server and node certificates.

    An existing CA is kept so that more proxies can be added later without
    re-issuing every certificate; everything else is (re)written.
    """
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if (directory / "ca.pem").exists() and (directory / "ca.key").exists():
        ca = load(directory, "ca")
    else:
        ca = make_ca()
        written += write(ca, directory, "ca")
    server = issue(ca, server_names[0], server=True, dns=server_names, ips=server_ips)
    written += write(server, directory, "server")
    for node in nodes:
        client = issue(ca, node, server=False, uris=[NODE_URI_PREFIX + node])
        written += write(client, directory, node)
    return written
