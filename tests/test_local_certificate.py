"""The certificate `make up` signs with its local CA for DOMAIN: made here by the
script's own command (`scripts/stack.sh local-certs`, no Docker), then read back."""

import subprocess
from pathlib import Path

from cryptography import x509

ROOT = Path(__file__).resolve().parents[1]
# Mozilla's intermediate server-side TLS profile: certificates of at most 366 days.
MAX_DAYS = 366


def test_the_local_server_certificate_lives_at_most_366_days(tmp_path: Path) -> None:
    settings = tmp_path / "settings.env"
    settings.write_text(f"LOCAL_CERTS_DIR='{tmp_path}'\nDOMAIN='stack.localhost'\n")
    subprocess.run(
        ["scripts/stack.sh", "local-certs"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "ENV_FILE": str(settings)},
        check=True,
        capture_output=True,
    )
    certificate = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert lifetime.days <= MAX_DAYS
