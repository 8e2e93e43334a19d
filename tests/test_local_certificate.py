"""The certificate `scripts/stack.sh` signs with its local CA for DOMAIN: made
here by the script's own function (no Docker), then read back."""

import subprocess
from pathlib import Path

from cryptography import x509

ROOT = Path(__file__).resolve().parents[1]
# Mozilla's intermediate server-side TLS profile: certificates of at most 366 days.
MAX_DAYS = 366


def test_the_local_server_certificate_lives_at_most_366_days(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", "-c", "source scripts/stack.sh && local_certs"],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "LOCAL_CERTS_DIR": str(tmp_path),
            "DOMAIN": "stack.localhost",
        },
        check=True,
        capture_output=True,
    )
    certificate = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days <= MAX_DAYS
